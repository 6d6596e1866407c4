// Nearest x2 upsampling: finite differences and PyTorch (F.interpolate, mode="nearest").
#include "ddpm/kernels/upsample.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_support.h"

namespace ddpm {
namespace {

TEST(UpsampleNearest2x, GradientMatchesFiniteDifferences) {
  struct Shape {
    int64_t b, h, w, c;
  };
  uint64_t seed = 1;
  for (const Shape s : {Shape{1, 5, 7, 3}, Shape{3, 5, 7, 3}, Shape{2, 3, 2, 17}}) {
    const size_t n = static_cast<size_t>(s.b * s.h * s.w * s.c);
    auto x = test::random_normal(n, seed++);
    const auto w = test::random_normal(4 * n, seed++);
    std::vector<float> y(4 * n), dx(n);
    cpu::upsample_nearest2x_backward(dx.data(), w.data(), s.b, s.h, s.w, s.c);
    test::expect_gradient(x, dx, [&] {
      cpu::upsample_nearest2x_forward(y.data(), x.data(), s.b, s.h, s.w, s.c);
      return test::weighted_sum(y.data(), w.data(), y.size());
    }, {}, "upsample b=" + std::to_string(s.b) + " c=" + std::to_string(s.c));
  }
}

// fp32 tolerance: forward is a copy (exact); backward sums 4 values (1e-6 relative, 1e-6 absolute).
TEST(UpsampleNearest2x, MatchesPyTorch) {
  for (const auto& c : test::reference_cases("upsample")) {
    const auto shape = c.shape("x");
    ASSERT_EQ(shape.size(), 4u) << c.name;
    const auto x = c.f32("x"), dy = c.f32("dy");
    std::vector<float> y(4 * x.size()), dx(x.size());
    cpu::upsample_nearest2x_forward(y.data(), x.data(), shape[0], shape[1], shape[2], shape[3]);
    cpu::upsample_nearest2x_backward(dx.data(), dy.data(), shape[0], shape[1], shape[2], shape[3]);
    test::expect_close(y, c.f32("y"), 0.0, 0.0, c.name + " y");
    test::expect_close(dx, c.f32("dx"), 1e-6, 1e-6, c.name + " dx");
  }
}

}  // namespace
}  // namespace ddpm
