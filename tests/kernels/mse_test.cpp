// MSE loss: finite differences, PyTorch, determinism across thread counts.
#include "ddpm/kernels/mse.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "test_support.h"

namespace ddpm {
namespace {

TEST(Mse, GradientMatchesFiniteDifferences) {
  for (size_t n : {1, 5, 35, 105, 315}) {
    auto prediction = test::random_normal(n, 11 + n);
    const auto target = test::random_normal(n, 23 + n);
    std::vector<float> dprediction(n);
    const auto count = static_cast<int64_t>(n);
    cpu::mse_backward(dprediction.data(), prediction.data(), target.data(), count);
    test::expect_gradient(prediction, dprediction,
                          [&] { return cpu::mse_forward(prediction.data(), target.data(), count); },
                          {1e-2, 1e-3, 1e-6, 200}, "mse n=" + std::to_string(n));
    // With an upstream gradient: d(3 * mse) = 3 * d(mse).
    std::vector<float> scaled(n);
    cpu::mse_backward(scaled.data(), prediction.data(), target.data(), count, 3.0f);
    test::expect_gradient(prediction, scaled,
                          [&] { return 3.0 * cpu::mse_forward(prediction.data(), target.data(), count); },
                          {1e-2, 1e-3, 1e-6, 200}, "mse scale 3 n=" + std::to_string(n));
  }
}

// The loss sums in double: against the float64 reference it agrees to ~1e-12 (the reference is
// carried as two float32 parts). The gradient is one float32 subtraction and multiply.
TEST(Mse, MatchesPyTorch) {
  int count = 0;
  for (const auto& c : test::reference_cases("mse")) {
    const auto prediction = c.f32("prediction"), target = c.f32("target");
    const auto n = static_cast<int64_t>(prediction.size());
    const double expected = c.scalar("loss_hi") + c.scalar("loss_lo");
    const double loss = cpu::mse_forward(prediction.data(), target.data(), n);
    EXPECT_NEAR(loss, expected, 1e-12 * expected) << c.name;
    std::vector<float> dprediction(prediction.size());
    cpu::mse_backward(dprediction.data(), prediction.data(), target.data(), n, static_cast<float>(c.scalar("scale")));
    test::expect_close(dprediction, c.f32("dprediction"), 1e-6, 1e-12, c.name + " dprediction");
    ++count;
  }
  EXPECT_EQ(count, 4);
}

TEST(Mse, IndependentOfThreadCount) {
  const size_t n = 3 * 1000003;
  const auto prediction = test::random_normal(n, 1), target = test::random_normal(n, 2);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = cpu::mse_forward(prediction.data(), target.data(), static_cast<int64_t>(n));
  omp_set_num_threads(3);
  const double many = cpu::mse_forward(prediction.data(), target.data(), static_cast<int64_t>(n));
  omp_set_num_threads(saved);
  EXPECT_EQ(one, many);
  // and close to a plain long double sum
  long double s = 0;
  for (size_t i = 0; i < n; ++i) {
    const long double d = static_cast<long double>(prediction[i]) - target[i];
    s += d * d;
  }
  EXPECT_NEAR(one, static_cast<double>(s / n), 1e-13);
}

TEST(Mse, BackwardMayAliasAndRejectsEmpty) {
  auto p = test::random_normal(100, 3);
  const auto t = test::random_normal(100, 4);
  std::vector<float> expected(100);
  cpu::mse_backward(expected.data(), p.data(), t.data(), 100);
  cpu::mse_backward(p.data(), p.data(), t.data(), 100);
  EXPECT_EQ(p, expected);
  EXPECT_THROW(cpu::mse_forward(p.data(), t.data(), 0), std::invalid_argument);
}

}  // namespace
}  // namespace ddpm
