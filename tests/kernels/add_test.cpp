// Add, add_inplace and the NHWC channel-bias broadcast add: finite differences and PyTorch.
#include "ddpm/kernels/add.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <string>

#include "test_support.h"

namespace ddpm {
namespace {

// The backward of add is the identity for each input; check that claim against finite differences
// of sum(w * (a + b)) with respect to a and to b.
TEST(Add, GradientIsIdentity) {
  for (size_t n : {1, 5, 35, 103}) {
    auto a = test::random_normal(n, 11 + n, 2.0f);
    auto b = test::random_normal(n, 17 + n);
    const auto w = test::random_normal(n, 23 + n);
    std::vector<float> y(n);
    auto loss = [&] {
      cpu::add_forward(y.data(), a.data(), b.data(), static_cast<int64_t>(n));
      return test::weighted_sum(y.data(), w.data(), n);
    };
    test::expect_gradient(a, w, loss, {}, "add da n=" + std::to_string(n));
    test::expect_gradient(b, w, loss, {}, "add db n=" + std::to_string(n));
  }
}

TEST(Add, InplaceAccumulatesAndForwardMayAlias) {
  const size_t n = 1000;
  const auto a = test::random_normal(n, 1), b = test::random_normal(n, 2);
  std::vector<float> expected(n);
  for (size_t i = 0; i < n; ++i) expected[i] = a[i] + b[i];
  auto y = a;
  cpu::add_inplace(y.data(), b.data(), static_cast<int64_t>(n));
  EXPECT_EQ(y, expected);
  y = a;
  cpu::add_forward(y.data(), y.data(), b.data(), static_cast<int64_t>(n));
  EXPECT_EQ(y, expected);
  y = b;
  cpu::add_forward(y.data(), a.data(), y.data(), static_cast<int64_t>(n));
  EXPECT_EQ(y, expected);
}

struct BiasShape {
  int64_t batch, pixels, channels;
};

TEST(AddChannelBias, GradientMatchesFiniteDifferences) {
  for (const BiasShape s : {BiasShape{1, 35, 3}, BiasShape{3, 35, 3}, BiasShape{2, 6, 19}}) {
    const size_t ny = static_cast<size_t>(s.batch * s.pixels * s.channels);
    const size_t nb = static_cast<size_t>(s.batch * s.channels);
    const auto x = test::random_normal(ny, 5 + ny);
    auto bias = test::random_normal(nb, 7 + nb);
    const auto w = test::random_normal(ny, 9 + ny);
    std::vector<float> y(ny), dbias(nb);
    cpu::add_channel_bias_backward(dbias.data(), w.data(), s.batch, s.pixels, s.channels);
    const std::string what = "bias b=" + std::to_string(s.batch) + " p=" + std::to_string(s.pixels) +
                             " c=" + std::to_string(s.channels);
    auto loss = [&] {
      y = x;
      cpu::add_channel_bias_forward(y.data(), bias.data(), s.batch, s.pixels, s.channels);
      return test::weighted_sum(y.data(), w.data(), ny);
    };
    test::expect_gradient(bias, dbias, loss, {}, what + " dbias");
    auto xv = x;  // dL/dx = w (identity backward)
    test::expect_gradient(xv, w, [&] {
      y = xv;
      cpu::add_channel_bias_forward(y.data(), bias.data(), s.batch, s.pixels, s.channels);
      return test::weighted_sum(y.data(), w.data(), ny);
    }, {}, what + " dx");
  }
}

TEST(AddChannelBias, BackwardIndependentOfThreadCount) {
  const int64_t batch = 3, pixels = 1024, channels = 300;
  const auto dy = test::random_normal(static_cast<size_t>(batch * pixels * channels), 77);
  std::vector<float> one(static_cast<size_t>(batch * channels)), many(one.size());
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  cpu::add_channel_bias_backward(one.data(), dy.data(), batch, pixels, channels);
  omp_set_num_threads(3);
  cpu::add_channel_bias_backward(many.data(), dy.data(), batch, pixels, channels);
  omp_set_num_threads(saved);
  EXPECT_EQ(one, many);
}

// fp32 tolerance: the forward is one float add (exact against float64 up to the final rounding);
// the bias gradient sums in double and rounds once.
TEST(Add, MatchesPyTorch) {
  int add_cases = 0, bias_cases = 0;
  for (const auto& c : test::reference_cases("add")) {
    if (c.name.rfind("add_", 0) == 0) {
      ++add_cases;
      const auto a = c.f32("a"), b = c.f32("b"), dy = c.f32("dy");
      std::vector<float> y(a.size()), acc(a.size(), 0.0f);
      cpu::add_forward(y.data(), a.data(), b.data(), static_cast<int64_t>(a.size()));
      test::expect_close(y, c.f32("y"), 1e-6, 1e-7, c.name + " y");
      // Gradients: identity, passed on (da) or accumulated into zero (db).
      cpu::add_inplace(acc.data(), dy.data(), static_cast<int64_t>(dy.size()));
      test::expect_close(dy, c.f32("da"), 0, 0, c.name + " da");
      test::expect_close(acc, c.f32("db"), 0, 0, c.name + " db");
    } else {
      ++bias_cases;
      const auto shape = c.shape("x");  // NHWC
      ASSERT_EQ(shape.size(), 4u) << c.name;
      const int64_t batch = shape[0], pixels = shape[1] * shape[2], channels = shape[3];
      auto y = c.f32("x");
      const auto bias = c.f32("bias"), dy = c.f32("dy");
      cpu::add_channel_bias_forward(y.data(), bias.data(), batch, pixels, channels);
      test::expect_close(y, c.f32("y"), 1e-6, 1e-7, c.name + " y");
      std::vector<float> dbias(bias.size());
      cpu::add_channel_bias_backward(dbias.data(), dy.data(), batch, pixels, channels);
      test::expect_close(dbias, c.f32("dbias"), 1e-6, 1e-6, c.name + " dbias");
      test::expect_close(dy, c.f32("dx"), 0, 0, c.name + " dx");
    }
  }
  EXPECT_EQ(add_cases, 3);
  EXPECT_EQ(bias_cases, 3);
}

}  // namespace
}  // namespace ddpm
