// Single-head self-attention: finite differences, PyTorch, and bf16 against fp32.
#include "ddpm/kernels/attention.h"

#include <gtest/gtest.h>

#include <cmath>

#include "test_support.h"

namespace ddpm {
namespace {

struct Sizes {
  int64_t batch, positions, channels;
  int64_t tokens() const { return batch * positions * channels; }
};

TEST(Attention, GradientsMatchFiniteDifferences) {
  for (Sizes s : {Sizes{1, 35, 3}, Sizes{3, 6, 4}}) {
    cpu::Attention att(s.batch, s.positions, s.channels, Precision::fp32);
    const size_t n = static_cast<size_t>(s.tokens());
    auto x = test::random_normal(n, 1);
    auto params = test::random_normal(static_cast<size_t>(att.parameter_count()), 2, 0.5f);
    const auto residual = test::random_normal(n, 3);
    const auto w = test::random_normal(n, 4);
    std::vector<float> y(n), dx(n), dparams(params.size());
    att.set_weights(params.data());
    att.forward(x.data(), residual.data(), y.data());
    att.backward(w.data(), dx.data(), dparams.data());
    auto loss = [&] {
      att.set_weights(params.data());
      att.forward(x.data(), residual.data(), y.data());
      return test::weighted_sum(y.data(), w.data(), n);
    };
    const std::string what = "attention " + std::to_string(s.batch) + "x" + std::to_string(s.positions) + "x" +
                             std::to_string(s.channels);
    test::expect_gradient(x, dx, loss, {}, what + " dx");
    test::expect_gradient(params, dparams, loss, {}, what + " dparams");
  }
}

// fp32 against float64 PyTorch: 1e-5 relative plus 1e-5 absolute (sums over up to 256 positions).
TEST(Attention, MatchesPyTorch) {
  for (const auto& c : test::reference_cases("attention")) {
    const auto shape = c.shape("x");
    const Sizes s{shape[0], shape[1], shape[2]};
    cpu::Attention att(s.batch, s.positions, s.channels, Precision::fp32);
    const auto x = c.f32("x"), residual = c.f32("residual"), params = c.f32("params"), dy = c.f32("dy");
    std::vector<float> y(x.size()), dx(x.size()), dparams(params.size());
    att.set_weights(params.data());
    att.forward(x.data(), residual.data(), y.data());
    att.backward(dy.data(), dx.data(), dparams.data());
    test::expect_close(y, c.f32("y"), 1e-5, 1e-5, c.name + " y");
    test::expect_close(dx, c.f32("dx"), 1e-5, 1e-5, c.name + " dx");
    test::expect_close(dparams, c.f32("dparams"), 1e-5, 1e-5, c.name + " dparams");
    test::expect_close(dy, c.f32("dresidual"), 0, 0, c.name + " dresidual is dy");
  }
}

// bf16 operands with fp32 accumulation: a relative error of the output norm of order 2^-8.
TEST(Attention, Bf16MatchesFp32) {
  const Sizes s{2, 64, 32};
  const size_t n = static_cast<size_t>(s.tokens());
  const auto x = test::random_normal(n, 5), residual = test::random_normal(n, 6), dy = test::random_normal(n, 7);
  std::vector<std::vector<float>> y(2, std::vector<float>(n)), dx = y, dp;
  for (int i = 0; i < 2; ++i) {
    cpu::Attention att(s.batch, s.positions, s.channels, i == 0 ? Precision::fp32 : Precision::bf16);
    const auto params = test::random_normal(static_cast<size_t>(att.parameter_count()), 8, 0.2f);
    dp.emplace_back(params.size());
    att.set_weights(params.data());
    att.forward(x.data(), residual.data(), y[i].data());
    att.backward(dy.data(), dx[i].data(), dp[i].data());
  }
  EXPECT_LT(test::relative_norm_error(y[1], y[0]), 1e-2);
  EXPECT_LT(test::relative_norm_error(dx[1], dx[0]), 2e-2);
  EXPECT_LT(test::relative_norm_error(dp[1], dp[0]), 2e-2);
  EXPECT_GT(test::relative_norm_error(y[1], y[0]), 0.0) << "bf16 mode did not change the arithmetic";
}

}  // namespace
}  // namespace ddpm
