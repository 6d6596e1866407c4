// Dropout: mask reproducibility and statistics, finite differences, and PyTorch's formula.
#include "ddpm/kernels/dropout.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "test_support.h"

namespace ddpm {
namespace {

constexpr int64_t kBig = 1000000;

std::vector<float> ones(size_t n) { return std::vector<float>(n, 1.0f); }

size_t count_kept(const std::vector<float>& y) {
  size_t kept = 0;
  for (float v : y) kept += v != 0.0f;
  return kept;
}

TEST(Dropout, MaskReproducibleForSeedAndDifferentForAnother) {
  const auto x = ones(kBig);
  std::vector<float> a(kBig), b(kBig), c(kBig);
  cpu::dropout_forward(a.data(), x.data(), kBig, 0.3f, 42);
  cpu::dropout_forward(b.data(), x.data(), kBig, 0.3f, 42);
  cpu::dropout_forward(c.data(), x.data(), kBig, 0.3f, 43);
  EXPECT_EQ(a, b);
  // Independent masks disagree on a fraction 2 p (1 - p) = 0.42 of the elements.
  size_t differ = 0;
  for (int64_t i = 0; i < kBig; ++i) differ += (a[i] != 0) != (c[i] != 0);
  const double q = 2 * 0.3 * 0.7, sigma = std::sqrt(q * (1 - q) / kBig);
  EXPECT_NEAR(static_cast<double>(differ) / kBig, q, 4 * sigma);
  for (int64_t i : {int64_t{0}, int64_t{1}, int64_t{12345}, kBig - 1})
    EXPECT_EQ(cpu::dropout_keeps(42, i, 0.3f), a[i] != 0) << i;
}

TEST(Dropout, KeptFractionWithinFourSigma) {
  const auto x = ones(kBig);
  std::vector<float> y(kBig);
  for (float p : {0.1f, 0.3f, 0.5f, 0.9f}) {
    for (uint64_t seed : {1u, 2u, 1000u}) {
      cpu::dropout_forward(y.data(), x.data(), kBig, p, seed);
      const double keep = 1.0 - p, sigma = std::sqrt(keep * p / kBig);
      EXPECT_NEAR(static_cast<double>(count_kept(y)) / kBig, keep, 4 * sigma) << "p " << p << " seed " << seed;
      // Neighbours are independent: both kept with probability keep^2.
      size_t pairs = 0;
      for (int64_t i = 0; i + 1 < kBig; i += 2) pairs += y[i] != 0 && y[i + 1] != 0;
      const double q = keep * keep, half = kBig / 2.0;
      EXPECT_NEAR(pairs / half, q, 4 * std::sqrt(q * (1 - q) / half)) << "pairs p " << p << " seed " << seed;
    }
  }
}

TEST(Dropout, PreservesExpectation) {
  auto x = test::random_normal(kBig, 5);
  for (auto& v : x) v += 1.0f;
  std::vector<float> y(kBig);
  for (float p : {0.1f, 0.5f}) {
    cpu::dropout_forward(y.data(), x.data(), kBig, p, 77);
    double sx = 0, sd = 0, sdd = 0;
    for (int64_t i = 0; i < kBig; ++i) {
      const double d = static_cast<double>(y[i]) - x[i];
      sx += x[i];
      sd += d;
      sdd += d * d;
    }
    const double mean_d = sd / kBig, sd_d = std::sqrt(sdd / kBig - mean_d * mean_d);
    EXPECT_NEAR(mean_d, 0.0, 4 * sd_d / std::sqrt(kBig)) << "p " << p << ", E[x] " << sx / kBig;
  }
}

TEST(Dropout, IndependentOfThreadCount) {
  const auto x = test::random_normal(kBig + 3, 9);
  std::vector<float> one(x.size()), many(x.size());
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  cpu::dropout_forward(one.data(), x.data(), static_cast<int64_t>(x.size()), 0.2f, 5);
  omp_set_num_threads(3);
  cpu::dropout_forward(many.data(), x.data(), static_cast<int64_t>(x.size()), 0.2f, 5);
  omp_set_num_threads(saved);
  EXPECT_EQ(one, many);
}

TEST(Dropout, EdgeProbabilitiesAliasingAndErrors) {
  const auto x = test::random_normal(1001, 3);
  std::vector<float> y(x.size());
  const auto n = static_cast<int64_t>(x.size());
  cpu::dropout_forward(y.data(), x.data(), n, 0.0f, 1);
  EXPECT_EQ(y, x);
  cpu::dropout_forward(y.data(), x.data(), n, 1.0f, 1);
  EXPECT_EQ(count_kept(y), 0u);
  std::vector<float> expected(x.size());
  cpu::dropout_forward(expected.data(), x.data(), n, 0.25f, 8);
  y = x;
  cpu::dropout_forward(y.data(), y.data(), n, 0.25f, 8);
  EXPECT_EQ(y, expected);
  cpu::dropout_backward(y.data(), y.data(), n, 0.0f, 8);  // p = 0 in place: unchanged
  EXPECT_EQ(y, expected);
  EXPECT_THROW(cpu::dropout_forward(y.data(), x.data(), n, -0.1f, 1), std::invalid_argument);
  EXPECT_THROW(cpu::dropout_forward(y.data(), x.data(), n, 1.5f, 1), std::invalid_argument);
  EXPECT_THROW(cpu::dropout_backward(y.data(), x.data(), n, std::nanf(""), 1), std::invalid_argument);
}

TEST(Dropout, GradientMatchesFiniteDifferences) {
  for (size_t n : {1, 5, 35, 103}) {
    for (float p : {0.1f, 0.5f}) {
      auto x = test::random_normal(n, 11 + n, 2.0f);
      const auto w = test::random_normal(n, 23 + n);
      std::vector<float> y(n), dx(n);
      const uint64_t seed = 1000 + n;
      cpu::dropout_backward(dx.data(), w.data(), static_cast<int64_t>(n), p, seed);
      test::expect_gradient(x, dx, [&] {
        cpu::dropout_forward(y.data(), x.data(), static_cast<int64_t>(n), p, seed);
        return test::weighted_sum(y.data(), w.data(), n);
      }, {}, "dropout n=" + std::to_string(n) + " p=" + std::to_string(p));
    }
  }
}

// PyTorch cannot replay our mask. With our mask m = (y != 0) (the inputs have no zeros), y and dx
// must follow PyTorch's float32 formula x * m * scale, scale = PyTorch's float32 1/(1-p), and equal
// PyTorch's own outputs wherever both masks keep the element.
TEST(Dropout, MatchesPyTorchFormula) {
  for (const auto& c : test::reference_cases("dropout")) {
    const auto x = c.f32("x"), dy = c.f32("dy"), y_t = c.f32("y"), dx_t = c.f32("dx"), mask_t = c.f32("mask");
    const float p = static_cast<float>(c.scalar("p")), scale = static_cast<float>(c.scalar("scale"));
    const auto n = static_cast<int64_t>(x.size());
    std::vector<float> y(x.size()), dx(x.size());
    const uint64_t seed = 2024;
    cpu::dropout_forward(y.data(), x.data(), n, p, seed);
    cpu::dropout_backward(dx.data(), dy.data(), n, p, seed);
    std::vector<float> y_formula(x.size()), dx_formula(x.size());
    std::vector<float> y_both, y_t_both, dx_both, dx_t_both;
    size_t kept = 0, torch_kept = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const bool m = y[i] != 0.0f, mt = mask_t[i] != 0.0f;
      kept += m;
      torch_kept += mt;
      ASSERT_EQ(m, dx[i] != 0.0f) << c.name << ": forward and backward masks differ at " << i;
      ASSERT_EQ(mt, y_t[i] != 0.0f) << c.name << ": reference mask inconsistent at " << i;
      y_formula[i] = m ? x[i] * scale : 0.0f;
      dx_formula[i] = m ? dy[i] * scale : 0.0f;
      if (m && mt) {
        y_both.push_back(y[i]);
        y_t_both.push_back(y_t[i]);
        dx_both.push_back(dx[i]);
        dx_t_both.push_back(dx_t[i]);
      }
    }
    // One float32 multiply on both sides; allow an ulp for how 1/(1-p) was rounded.
    test::expect_close(y, y_formula, 2e-7, 0, c.name + " y vs x*mask*scale");
    test::expect_close(dx, dx_formula, 2e-7, 0, c.name + " dx vs dy*mask*scale");
    test::expect_close(y_both, y_t_both, 2e-7, 0, c.name + " y vs PyTorch where both keep");
    test::expect_close(dx_both, dx_t_both, 2e-7, 0, c.name + " dx vs PyTorch where both keep");
    EXPECT_FALSE(y_both.empty()) << c.name;
    const double keep = 1.0 - p, sigma = std::sqrt(keep * p / static_cast<double>(n)) + 1e-12;
    EXPECT_NEAR(static_cast<double>(kept) / n, keep, 4 * sigma + 1.0 / n) << c.name << " ours";
    EXPECT_NEAR(static_cast<double>(torch_kept) / n, keep, 4 * sigma + 1.0 / n) << c.name << " PyTorch";
  }
}

}  // namespace
}  // namespace ddpm
