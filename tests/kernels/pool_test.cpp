// Global average pooling: finite differences, PyTorch, rejected shapes.
#include "ddpm/kernels/pool.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "test_support.h"

namespace ddpm {
namespace {

// The op is linear: central differences are exact up to rounding, so a large step keeps the
// objective's fp32 rounding small.
TEST(GlobalAvgPool, GradientMatchesFiniteDifferences) {
  test::GradCheck opt;
  opt.eps = 0.5;
  opt.rtol = 1e-3;
  opt.atol = 1e-4;
  uint64_t seed = 1;
  for (const auto& [batch, pixels, channels] :
       std::vector<std::array<int64_t, 3>>{{1, 1, 1}, {3, 5, 7}, {2, 9, 33}, {1, 35, 3}}) {
    const std::string what = "pool [" + std::to_string(batch) + "," + std::to_string(pixels) + "," +
                             std::to_string(channels) + "]";
    auto x = test::random_normal(static_cast<size_t>(batch * pixels * channels), seed++);
    const auto w = test::random_normal(static_cast<size_t>(batch * channels), seed++);
    std::vector<float> y(w.size(), test::kNaN), dx(x.size(), test::kNaN);
    cpu::global_avg_pool_backward(dx.data(), w.data(), batch, pixels, channels);
    test::expect_gradient(x, dx, [&] {
      cpu::global_avg_pool_forward(y.data(), x.data(), batch, pixels, channels);
      return test::weighted_sum(y.data(), w.data(), y.size());
    }, opt, what);
  }
}

// fp32 tolerance: y is an fp32 sum of `pixels` O(1) terms times 1/pixels (relative error a few
// 1e-7 * sqrt(pixels)), so rtol 1e-5 and atol 1e-6; dx is one multiply, rtol 1e-6.
TEST(GlobalAvgPool, MatchesPyTorch) {
  int count = 0;
  for (const auto& c : test::reference_cases("pool")) {
    const auto shape = c.shape("x");
    ASSERT_EQ(shape.size(), 4u) << c.name;
    const int64_t batch = shape[0], pixels = shape[1] * shape[2], channels = shape[3];
    const auto x = c.f32("x"), dy = c.f32("dy");
    std::vector<float> y(dy.size(), test::kNaN), dx(x.size(), test::kNaN);
    cpu::global_avg_pool_forward(y.data(), x.data(), batch, pixels, channels);
    cpu::global_avg_pool_backward(dx.data(), dy.data(), batch, pixels, channels);
    test::expect_close(y, c.f32("y"), 1e-5, 1e-6, c.name + " y");
    test::expect_close(dx, c.f32("dx"), 1e-6, 1e-9, c.name + " dx");
    ++count;
  }
  EXPECT_EQ(count, 5);
}

TEST(GlobalAvgPool, RejectsEmptyShapes) {
  float v = 0;
  EXPECT_THROW(cpu::global_avg_pool_forward(&v, &v, 1, 0, 1), std::invalid_argument);
  EXPECT_THROW(cpu::global_avg_pool_backward(&v, &v, 0, 1, 1), std::invalid_argument);
}

}  // namespace
}  // namespace ddpm
