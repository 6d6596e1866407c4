// Linear (oneDNN matmul): finite differences, PyTorch, bf16 against fp32, and no reference kernels.
#include "ddpm/kernels/linear.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <iostream>
#include <limits>

#include "ddpm/kernels/dnnl_info.h"
#include "test_support.h"

namespace ddpm {
namespace {

using cpu::Linear;

using test::kNaN;
using test::relative_norm_error;

size_t count(int64_t a, int64_t b) { return static_cast<size_t>(a * b); }

// Outputs start as NaN so that a gradient the op fails to overwrite shows up.
struct Grads {
  std::vector<float> dx, dweight, dbias;
  explicit Grads(const Linear& l)
      : dx(count(l.rows(), l.in_features()), kNaN), dweight(count(l.out_features(), l.in_features()), kNaN),
        dbias(count(l.out_features(), 1), kNaN) {}
};

TEST(Linear, RejectsBadShapesNamingThem) {
  try {
    Linear bad(0, 3, 4, Precision::fp32);
    FAIL() << "zero rows accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("linear fp32 [rows=0,3->4]"), std::string::npos) << e.what();
  }
}

// The layer is linear in each argument: central differences are exact up to rounding, so a large
// step keeps the fp32 rounding of the objective small.
TEST(Linear, GradientMatchesFiniteDifferences) {
  test::GradCheck opt;
  opt.eps = 0.5;
  opt.rtol = 1e-3;
  opt.atol = 1e-3;
  uint64_t seed = 200;
  for (const auto& [rows, in, out] : std::vector<std::array<int64_t, 3>>{{1, 3, 4}, {3, 3, 4}, {7, 5, 6}}) {
    const std::string what = "linear rows=" + std::to_string(rows) + " " + std::to_string(in) + "->" +
                             std::to_string(out);
    Linear lin(rows, in, out, Precision::fp32);
    auto x = test::random_normal(count(rows, in), ++seed);
    auto weight = test::random_normal(count(out, in), ++seed, 0.5f);
    auto bias = test::random_normal(count(out, 1), ++seed);
    const auto dy = test::random_normal(count(rows, out), ++seed);
    std::vector<float> y(dy.size());
    Grads g(lin);
    lin.set_weights(weight.data());
    lin.backward(x.data(), dy.data(), g.dx.data(), g.dweight.data(), g.dbias.data());
    const auto loss = [&] {
      lin.set_weights(weight.data());
      lin.forward(x.data(), bias.data(), y.data());
      return test::weighted_sum(y.data(), dy.data(), y.size());
    };
    test::expect_gradient(x, g.dx, loss, opt, what + " dx");
    test::expect_gradient(weight, g.dweight, loss, opt, what + " dweight");
    test::expect_gradient(bias, g.dbias, loss, opt, what + " dbias");
  }
}

struct RefCase {
  int64_t rows, in, out;
  std::vector<float> x, weight, bias, y, dy, dx, dweight, dbias;
};

RefCase load(const test::ReferenceCase& c) {
  const auto xs = c.shape("x"), ws = c.shape("weight");
  return {xs[0], xs[1], ws[0], c.f32("x"), c.f32("weight"), c.f32("bias"), c.f32("y"), c.f32("dy"),
          c.f32("dx"), c.f32("dweight"), c.f32("dbias")};
}

// fp32 tolerance: rtol 1e-5, plus atol 1e-7 * (terms in the reduction) + 1e-6: O(1) inputs, fp32
// sums of n terms with absolute errors of a few 6e-8*sqrt(n).
TEST(Linear, MatchesPyTorch) {
  for (const auto& c : test::reference_cases("linear")) {
    const RefCase r = load(c);
    Linear lin(r.rows, r.in, r.out, Precision::fp32);
    std::vector<float> y(r.y.size(), kNaN);
    Grads g(lin);
    lin.set_weights(r.weight.data());
    lin.forward(r.x.data(), r.bias.data(), y.data());
    lin.backward(r.x.data(), r.dy.data(), g.dx.data(), g.dweight.data(), g.dbias.data());
    test::expect_close(y, r.y, 1e-5, 1e-7 * static_cast<double>(r.in) + 1e-6, c.name + " y");
    test::expect_close(g.dx, r.dx, 1e-5, 1e-7 * static_cast<double>(r.out) + 1e-6, c.name + " dx");
    test::expect_close(g.dweight, r.dweight, 1e-5, 1e-7 * static_cast<double>(r.rows) + 1e-6, c.name + " dweight");
    test::expect_close(g.dbias, r.dbias, 1e-5, 1e-7 * static_cast<double>(r.rows) + 1e-6, c.name + " dbias");
  }
}

// bf16 rounds x, W and dy to 8 significant bits (relative error 2^-9 each) and accumulates in fp32:
// the relative error of each result's norm is a few 1e-3; we require 1e-2. dbias is an fp32 sum of
// the fp32 dy, so it keeps fp32 accuracy.
TEST(Linear, Bf16MatchesFp32) {
  for (const auto& c : test::reference_cases("linear")) {
    const RefCase r = load(c);
    Linear lin(r.rows, r.in, r.out, Precision::bf16);
    std::vector<float> y(r.y.size(), kNaN);
    Grads g(lin);
    lin.set_weights(r.weight.data());
    lin.forward(r.x.data(), r.bias.data(), y.data());
    lin.backward(r.x.data(), r.dy.data(), g.dx.data(), g.dweight.data(), g.dbias.data());
    EXPECT_LT(relative_norm_error(y, r.y), 1e-2) << c.name << " y";
    EXPECT_LT(relative_norm_error(g.dx, r.dx), 1e-2) << c.name << " dx";
    EXPECT_LT(relative_norm_error(g.dweight, r.dweight), 1e-2) << c.name << " dweight";
    test::expect_close(g.dbias, r.dbias, 1e-5, 1e-7 * static_cast<double>(r.rows) + 1e-6, c.name + " bf16 dbias");
    EXPECT_GT(relative_norm_error(y, r.y), 1e-5) << c.name << " y is not bf16";
  }
}

TEST(Linear, NullBiasAndSkippedGradients) {
  for (Precision p : {Precision::fp32, Precision::bf16}) {
    Linear lin(9, 13, 11, p);
    const auto x = test::random_normal(9 * 13, 1), weight = test::random_normal(11 * 13, 2);
    const auto dy = test::random_normal(9 * 11, 3);
    const std::vector<float> zeros(11, 0.0f);
    std::vector<float> y0(dy.size()), y1(dy.size());
    lin.set_weights(weight.data());
    lin.forward(x.data(), nullptr, y0.data());
    lin.forward(x.data(), zeros.data(), y1.data());
    EXPECT_EQ(y0, y1) << precision_name(p);
    Grads all(lin), some(lin);
    lin.backward(x.data(), dy.data(), all.dx.data(), all.dweight.data(), all.dbias.data());
    lin.backward(x.data(), dy.data(), nullptr, some.dweight.data(), nullptr);
    EXPECT_EQ(all.dweight, some.dweight) << precision_name(p);
  }
}

// Training resumes bit for bit only if the bias gradient, our own reduction, ignores the thread count.
TEST(Linear, BiasGradientIndependentOfThreadCount) {
  Linear lin(1000, 8, 40, Precision::fp32);
  const auto x = test::random_normal(8000, 1), weight = test::random_normal(320, 2);
  const auto dy = test::random_normal(40000, 3, 10.0f);
  std::vector<float> dweight(320), db_one(40), db_many(40);
  lin.set_weights(weight.data());
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  lin.backward(x.data(), dy.data(), nullptr, dweight.data(), db_one.data());
  omp_set_num_threads(3);
  lin.backward(x.data(), dy.data(), nullptr, dweight.data(), db_many.data());
  omp_set_num_threads(threads);
  EXPECT_EQ(db_one, db_many);
}

// The shapes of the real models: timestep-embedding MLP and per-block projections (rows = batch),
// attention projections (rows = batch * positions).
TEST(Linear, RealModelShapesUseNoReferenceKernels) {
  const std::vector<std::array<int64_t, 3>> shapes = {
      {128, 128, 512}, {128, 512, 512}, {128, 512, 256}, {2, 128, 512}, {512, 256, 256}, {2048, 128, 128},
      {98, 64, 64},    {128, 32, 128},  {128, 128, 64}};
  for (Precision p : {Precision::fp32, Precision::bf16}) {
    for (const auto& [rows, in, out] : shapes) {
      Linear lin(rows, in, out, p);
      const auto x = test::random_normal(count(rows, in), 1);
      const auto weight = test::random_normal(count(out, in), 2, 0.05f);
      std::vector<float> y(count(rows, out));
      Grads g(lin);
      lin.set_weights(weight.data());
      lin.forward(x.data(), nullptr, y.data());
      lin.backward(x.data(), y.data(), g.dx.data(), g.dweight.data(), g.dbias.data());
      EXPECT_TRUE(std::isfinite(test::weighted_sum(g.dx.data(), g.dx.data(), g.dx.size())));
    }
  }
  size_t n = 0;
  for (const auto& r : cpu::created_primitives()) {
    if (r.what.rfind("linear", 0) != 0) continue;
    ++n;
    std::cout << "  " << r.implementation << "  " << r.what << "\n";
    EXPECT_FALSE(cpu::is_reference_implementation(r.implementation)) << r.what << " uses " << r.implementation;
  }
  EXPECT_GE(n, shapes.size() * 2 * 3);
}

}  // namespace
}  // namespace ddpm
