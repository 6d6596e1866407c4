// BatchedMatmul (oneDNN matmul): finite differences through the products attention's backward
// uses, PyTorch, bf16 against fp32, and no reference kernels.
#include "ddpm/kernels/batched_matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <limits>

#include "ddpm/kernels/dnnl_info.h"
#include "test_support.h"

namespace ddpm {
namespace {

using cpu::BatchedMatmul;

using test::kNaN;
using test::relative_norm_error;

// C = alpha op(A) op(B) and the two products of its gradient, each itself a BatchedMatmul:
//   dA (stored like A) = alpha dC op(B)^T, or its transpose alpha op(B) dC^T when A is transposed;
//   dB (stored like B) = alpha op(A)^T dC, or its transpose alpha dC^T op(A) when B is transposed.
struct Product {
  int64_t batch, m, k, n;
  bool ta, tb;
  BatchedMatmul forward, grad_a, grad_b;
  Product(int64_t batch_, int64_t m_, int64_t k_, int64_t n_, bool ta_, bool tb_, Precision p, float alpha)
      : batch(batch_), m(m_), k(k_), n(n_), ta(ta_), tb(tb_),
        forward(batch, m, k, n, ta, tb, p, alpha),
        grad_a(ta ? BatchedMatmul(batch, k, n, m, tb, true, p, alpha) : BatchedMatmul(batch, m, n, k, false, !tb, p, alpha)),
        grad_b(tb ? BatchedMatmul(batch, n, m, k, true, ta, p, alpha) : BatchedMatmul(batch, k, m, n, !ta, false, p, alpha)) {}
  size_t a_size() const { return static_cast<size_t>(batch * m * k); }
  size_t b_size() const { return static_cast<size_t>(batch * k * n); }
  size_t c_size() const { return static_cast<size_t>(batch * m * n); }
  void backward(const float* a, const float* b, const float* dc, float* da, float* db) {
    if (ta) grad_a.run(b, dc, da); else grad_a.run(dc, b, da);
    if (tb) grad_b.run(dc, a, db); else grad_b.run(a, dc, db);
  }
};

std::string flags(bool ta, bool tb) { return std::string(ta ? "A^T" : "A") + (tb ? " B^T" : " B"); }

TEST(BatchedMatmul, RejectsBadShapesNamingThem) {
  try {
    BatchedMatmul bad(2, 3, 0, 4, false, true, Precision::bf16);
    FAIL() << "k = 0 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("batched_matmul bf16 [batch=2,m=3,k=0,n=4,B^T]"), std::string::npos)
        << e.what();
  }
}

// The product is linear in A and in B: central differences are exact up to rounding.
TEST(BatchedMatmul, GradientMatchesFiniteDifferences) {
  test::GradCheck opt;
  opt.eps = 0.5;
  opt.rtol = 1e-3;
  opt.atol = 1e-3;
  const float alpha = 0.37f;
  uint64_t seed = 300;
  for (int64_t batch : {1, 3}) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        const std::string what = "batched_matmul batch=" + std::to_string(batch) + " " + flags(ta, tb);
        Product p(batch, 5, 7, 3, ta, tb, Precision::fp32, alpha);
        auto a = test::random_normal(p.a_size(), ++seed), b = test::random_normal(p.b_size(), ++seed);
        const auto dc = test::random_normal(p.c_size(), ++seed);
        std::vector<float> c(p.c_size()), da(p.a_size(), kNaN), db(p.b_size(), kNaN);
        p.backward(a.data(), b.data(), dc.data(), da.data(), db.data());
        const auto loss = [&] {
          p.forward.run(a.data(), b.data(), c.data());
          return test::weighted_sum(c.data(), dc.data(), c.size());
        };
        test::expect_gradient(a, da, loss, opt, what + " dA");
        test::expect_gradient(b, db, loss, opt, what + " dB");
      }
    }
  }
}

struct RefCase {
  int64_t batch, m, k, n;
  bool ta, tb;
  float alpha;
  std::vector<float> a, b, c, dc, da, db;
};

RefCase load(const test::ReferenceCase& rc) {
  const auto cfg = rc.i64("config");
  const auto as = rc.shape("a"), cs = rc.shape("c");
  const bool ta = cfg[0] != 0, tb = cfg[1] != 0;
  return {cs[0], cs[1], ta ? as[1] : as[2], cs[2], ta, tb, static_cast<float>(rc.scalar("alpha")),
          rc.f32("a"), rc.f32("b"), rc.f32("c"), rc.f32("dc"), rc.f32("da"), rc.f32("db")};
}

// fp32 tolerance: rtol 1e-5, plus atol 1e-7 * (terms in the reduction) + 1e-6 (O(1) inputs; fp32
// sums of n terms carry absolute errors of a few 6e-8*sqrt(n)).
TEST(BatchedMatmul, MatchesPyTorch) {
  for (const auto& rc : test::reference_cases("batched_matmul")) {
    const RefCase r = load(rc);
    Product p(r.batch, r.m, r.k, r.n, r.ta, r.tb, Precision::fp32, r.alpha);
    std::vector<float> c(p.c_size(), kNaN), da(p.a_size(), kNaN), db(p.b_size(), kNaN);
    p.forward.run(r.a.data(), r.b.data(), c.data());
    p.backward(r.a.data(), r.b.data(), r.dc.data(), da.data(), db.data());
    test::expect_close(c, r.c, 1e-5, 1e-7 * static_cast<double>(r.k) + 1e-6, rc.name + " C");
    test::expect_close(da, r.da, 1e-5, 1e-7 * static_cast<double>(r.n) + 1e-6, rc.name + " dA");
    test::expect_close(db, r.db, 1e-5, 1e-7 * static_cast<double>(r.m) + 1e-6, rc.name + " dB");
  }
}

// bf16 rounds A and B to 8 significant bits and accumulates in fp32: norm errors of a few 1e-3.
TEST(BatchedMatmul, Bf16MatchesFp32) {
  for (const auto& rc : test::reference_cases("batched_matmul")) {
    const RefCase r = load(rc);
    Product p(r.batch, r.m, r.k, r.n, r.ta, r.tb, Precision::bf16, r.alpha);
    std::vector<float> c(p.c_size(), kNaN), da(p.a_size(), kNaN), db(p.b_size(), kNaN);
    p.forward.run(r.a.data(), r.b.data(), c.data());
    p.backward(r.a.data(), r.b.data(), r.dc.data(), da.data(), db.data());
    EXPECT_LT(relative_norm_error(c, r.c), 1e-2) << rc.name << " C";
    EXPECT_LT(relative_norm_error(da, r.da), 1e-2) << rc.name << " dA";
    EXPECT_LT(relative_norm_error(db, r.db), 1e-2) << rc.name << " dB";
    EXPECT_GT(relative_norm_error(c, r.c), 1e-5) << rc.name << " C is not bf16";
  }
}

// alpha is a constant output scale: alpha = 0.5 halves the product exactly.
TEST(BatchedMatmul, AlphaScalesTheProduct) {
  for (Precision prec : {Precision::fp32, Precision::bf16}) {
    BatchedMatmul plain(2, 4, 6, 5, false, true, prec), half(2, 4, 6, 5, false, true, prec, 0.5f);
    const auto a = test::random_normal(2 * 4 * 6, 1), b = test::random_normal(2 * 5 * 6, 2);
    std::vector<float> c1(40), c2(40);
    plain.run(a.data(), b.data(), c1.data());
    half.run(a.data(), b.data(), c2.data());
    for (size_t i = 0; i < c1.size(); ++i) EXPECT_EQ(c2[i], 0.5f * c1[i]) << precision_name(prec) << " [" << i << "]";
  }
}

// Attention's products for the real models: CIFAR-10 DDPM attention at 16x16 (256 positions,
// 256 channels), Fashion-MNIST at 7x7 (49 positions, 64 channels); all six products each.
TEST(BatchedMatmul, RealModelShapesUseNoReferenceKernels) {
  const std::vector<std::array<int64_t, 3>> shapes = {{2, 256, 256}, {16, 49, 64}};
  for (Precision prec : {Precision::fp32, Precision::bf16}) {
    for (const auto& [batch, positions, channels] : shapes) {
      for (bool ta : {false, true}) {
        for (bool tb : {false, true}) {
          // q k^T is (positions, channels, positions, B^T); P v is (positions, positions, channels).
          Product qk(batch, positions, channels, positions, ta, tb, prec, 1.0f);
          Product pv(batch, positions, positions, channels, ta, tb, prec, 1.0f);
          for (Product* p : {&qk, &pv}) {
            const auto a = test::random_normal(p->a_size(), 1), b = test::random_normal(p->b_size(), 2);
            const auto dc = test::random_normal(p->c_size(), 3);
            std::vector<float> c(p->c_size()), da(p->a_size()), db(p->b_size());
            p->forward.run(a.data(), b.data(), c.data());
            p->backward(a.data(), b.data(), dc.data(), da.data(), db.data());
          }
        }
      }
    }
  }
  size_t n = 0;
  for (const auto& r : cpu::created_primitives()) {
    if (r.what.rfind("batched_matmul", 0) != 0) continue;
    ++n;
    std::cout << "  " << r.implementation << "  " << r.what << "\n";
    EXPECT_FALSE(cpu::is_reference_implementation(r.implementation)) << r.what << " uses " << r.implementation;
  }
  EXPECT_GE(n, 2u * shapes.size() * 4 * 2 * 3);
}

}  // namespace
}  // namespace ddpm
