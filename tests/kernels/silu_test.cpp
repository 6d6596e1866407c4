// SiLU: finite differences and PyTorch.
#include "ddpm/kernels/silu.h"

#include <gtest/gtest.h>

#include "test_support.h"

namespace ddpm {
namespace {

TEST(Silu, GradientMatchesFiniteDifferences) {
  for (size_t n : {1, 5, 35, 103}) {
    auto x = test::random_normal(n, 11 + n, 2.0f);
    const auto w = test::random_normal(n, 23 + n);
    std::vector<float> y(n), dx(n);
    cpu::silu_backward(dx.data(), w.data(), x.data(), static_cast<int64_t>(n));
    test::expect_gradient(x, dx, [&] {
      cpu::silu_forward(y.data(), x.data(), static_cast<int64_t>(n));
      return test::weighted_sum(y.data(), w.data(), n);
    }, {}, "silu n=" + std::to_string(n));
  }
}

// fp32 tolerance: 1e-5 relative (the vector exp is within a few ulp).
TEST(Silu, MatchesPyTorch) {
  for (const auto& c : test::reference_cases("silu")) {
    const auto x = c.f32("x"), dy = c.f32("dy");
    std::vector<float> y(x.size()), dx(x.size());
    cpu::silu_forward(y.data(), x.data(), static_cast<int64_t>(x.size()));
    cpu::silu_backward(dx.data(), dy.data(), x.data(), static_cast<int64_t>(x.size()));
    test::expect_close(y, c.f32("y"), 1e-5, 1e-6, c.name + " y");
    test::expect_close(dx, c.f32("dx"), 1e-5, 1e-6, c.name + " dx");
  }
}

TEST(Silu, BackwardMayAliasGradient) {
  auto x = test::random_normal(100, 3);
  auto g = test::random_normal(100, 4);
  std::vector<float> expected(100);
  cpu::silu_backward(expected.data(), g.data(), x.data(), 100);
  cpu::silu_backward(g.data(), g.data(), x.data(), 100);
  EXPECT_EQ(g, expected);
}

}  // namespace
}  // namespace ddpm
