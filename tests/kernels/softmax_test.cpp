// Scaled row softmax: finite differences, PyTorch, aliasing.
#include "ddpm/kernels/softmax.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "test_support.h"

namespace ddpm {
namespace {

TEST(Softmax, GradientMatchesFiniteDifferences) {
  uint64_t seed = 1;
  for (int64_t cols : {1, 5, 7, 17, 35}) {
    for (float scale : {0.7f, -1.3f}) {
      const int64_t rows = 3;
      const size_t n = static_cast<size_t>(rows * cols);
      auto x = test::random_normal(n, seed++, 1.5f);
      const auto w = test::random_normal(n, seed++);
      std::vector<float> y(n), dx(n);
      cpu::softmax_forward(y.data(), x.data(), rows, cols, scale);
      cpu::softmax_backward(dx.data(), w.data(), y.data(), rows, cols, scale);
      test::expect_gradient(x, dx, [&] {
        cpu::softmax_forward(y.data(), x.data(), rows, cols, scale);
        return test::weighted_sum(y.data(), w.data(), n);
      }, {}, "softmax cols=" + std::to_string(cols) + " scale=" + std::to_string(scale));
    }
  }
}

// fp32 tolerance: 1e-5 relative plus 1e-6 absolute (probabilities are at most 1; dx is a difference
// of products of order 1, so near-cancelling entries get the absolute part).
TEST(Softmax, MatchesPyTorch) {
  for (const auto& c : test::reference_cases("softmax")) {
    const auto shape = c.shape("x");
    ASSERT_EQ(shape.size(), 2u) << c.name;
    const int64_t rows = shape[0], cols = shape[1];
    const auto scale = static_cast<float>(c.scalar("scale"));
    const auto x = c.f32("x"), dy = c.f32("dy");
    std::vector<float> y(x.size()), dx(x.size());
    cpu::softmax_forward(y.data(), x.data(), rows, cols, scale);
    cpu::softmax_backward(dx.data(), dy.data(), y.data(), rows, cols, scale);
    test::expect_close(y, c.f32("y"), 1e-5, 1e-6, c.name + " y");
    test::expect_close(dx, c.f32("dx"), 1e-5, 1e-6, c.name + " dx");
  }
}

TEST(Softmax, RowsSumToOneWithoutOverflow) {
  const int64_t rows = 4, cols = 77;
  auto x = test::random_normal(rows * cols, 9, 300.0f);  // scale * x far beyond fp32 exp's range
  std::vector<float> y(x.size());
  cpu::softmax_forward(y.data(), x.data(), rows, cols, 1.0f);
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0.0;
    for (int64_t j = 0; j < cols; ++j) {
      ASSERT_TRUE(std::isfinite(y[r * cols + j]));
      sum += y[r * cols + j];
    }
    EXPECT_NEAR(sum, 1.0, 1e-6) << "row " << r;
  }
}

TEST(Softmax, OutputsMayAliasInputs) {
  const int64_t rows = 5, cols = 40;
  const auto x = test::random_normal(rows * cols, 3, 2.0f);
  const auto dy = test::random_normal(rows * cols, 4);
  std::vector<float> y(x.size()), dx(x.size());
  cpu::softmax_forward(y.data(), x.data(), rows, cols, 0.3f);
  cpu::softmax_backward(dx.data(), dy.data(), y.data(), rows, cols, 0.3f);
  auto inplace = x;
  cpu::softmax_forward(inplace.data(), inplace.data(), rows, cols, 0.3f);
  EXPECT_EQ(inplace, y);
  auto g = dy;
  cpu::softmax_backward(g.data(), g.data(), y.data(), rows, cols, 0.3f);
  EXPECT_EQ(g, dx);
}

}  // namespace
}  // namespace ddpm
