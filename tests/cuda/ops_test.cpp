// The CUDA backend's own kernels (include/ddpm/kernels/cuda/ops.h) against their CPU twins, on
// seeded random inputs of awkward sizes (odd counts, channels not a multiple of 32, group-norm
// groups spread over several 256-pixel chunks, a large-mean input). Device outputs start as NaN, so
// a value a kernel fails to write shows up. Tolerances, and why:
//   exact (bit-identical): adds, bias add, upsampling, concatenation, dropout masks, mse_backward,
//     bf16 conversions (the same float32 operations in the same order);
//   fp32 ops with exp or reordered sums (SiLU, softmax, group norm): max |error| / max |reference|
//     <= 1e-5, or elementwise rtol 1e-5 plus an atol far below the values' scale;
//   double reductions (bias gradient, MSE, gradient norm): relative 1e-6 after the float32 cast,
//     1e-12 on the double results;
//   fill_normal: every value within 1 float32 ulp of NoiseRng's (the Philox words are equal; only
//     float64 log/sincos differ in their last bits) and at most 1 in 10^4 values differing at all;
//   timestep embedding, ddpm_step: float64 evaluation rounded once: 2e-6 absolute, 2.5e-7 relative;
//   optimizer_step: Adam's float32 update may round differently where either compiler fuses a
//     multiply-add: param and EMA rtol 1e-6 + atol 1e-7, m and v 1e-5 of their largest value.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "cuda_test_support.h"
#include "ddpm/diffusion/ddpm_sampler.h"
#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/diffusion/schedule.h"
#include "ddpm/kernels/add.h"
#include "ddpm/kernels/concat.h"
#include "ddpm/kernels/convert.h"
#include "ddpm/kernels/cuda/ops.h"
#include "ddpm/kernels/cuda/runtime.h"
#include "ddpm/kernels/dropout.h"
#include "ddpm/kernels/group_norm.h"
#include "ddpm/kernels/mse.h"
#include "ddpm/kernels/optimizer.h"
#include "ddpm/kernels/silu.h"
#include "ddpm/kernels/softmax.h"
#include "ddpm/kernels/timestep_embedding.h"
#include "ddpm/kernels/upsample.h"
#include "test_support.h"

namespace ddpm {
namespace {

using test::DeviceArray;

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Bit-for-bit equality (NaNs included); reports the first difference.
void expect_bits_equal(const std::vector<float>& actual, const std::vector<float>& expected, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  size_t differ = 0, first = 0;
  for (size_t i = 0; i < actual.size(); ++i)
    if (bits(actual[i]) != bits(expected[i]) && differ++ == 0) first = i;
  EXPECT_EQ(differ, 0u) << what << ": " << differ << " of " << actual.size() << " differ; first at [" << first
                        << "]: got " << actual[first] << ", expected " << expected[first];
}

// max |actual - expected| / max |expected|: the measure for outputs whose terms cancel.
void expect_max_relative(const std::vector<float>& actual, const std::vector<float>& expected, double tol,
                         const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  double err = 0.0, ref = 0.0;
  size_t worst = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double e = std::fabs(static_cast<double>(actual[i]) - expected[i]);
    if (!(e <= err)) {  // NaN wins
      err = std::isnan(e) ? std::numeric_limits<double>::infinity() : e;
      worst = i;
    }
    ref = std::max(ref, std::fabs(static_cast<double>(expected[i])));
  }
  EXPECT_LE(err, tol * ref) << what << ": max error " << err << " at [" << worst << "] (got " << actual[worst]
                            << ", expected " << expected[worst] << "), max |reference| " << ref;
}

std::vector<float> plus(std::vector<float> v, float shift) {
  for (float& x : v) x += shift;
  return v;
}

// ---- elementwise ----

TEST(CudaOps, SiluMatchesCpu) {
  DDPM_REQUIRE_CUDA_DEVICE();
  const int64_t n = 100003;
  const auto x = test::random_normal(n, 1, 4.0f), dy = test::random_normal(n, 2);
  std::vector<float> y(n), dx(n);
  cpu::silu_forward(y.data(), x.data(), n);
  cpu::silu_backward(dx.data(), dy.data(), x.data(), n);
  DeviceArray dx_d(x), ddy(dy), dout(n), dgrad(n);
  cuda::silu_forward(dout.data(), dx_d.data(), n);
  cuda::silu_backward(dgrad.data(), ddy.data(), dx_d.data(), n);
  test::expect_close(dout.host(), y, 1e-5, 1e-7, "silu forward");
  test::expect_close(dgrad.host(), dx, 1e-5, 1e-6, "silu backward");
  // dx may alias dy.
  cuda::silu_backward(ddy.data(), ddy.data(), dx_d.data(), n);
  expect_bits_equal(ddy.host(), dgrad.host(), "silu backward in place");
}

TEST(CudaOps, AddsAreExact) {
  DDPM_REQUIRE_CUDA_DEVICE();
  const int64_t n = 77777;
  const auto a = test::random_normal(n, 3), b = test::random_normal(n, 4);
  std::vector<float> y(n);
  cpu::add_forward(y.data(), a.data(), b.data(), n);
  DeviceArray da(a), db(b), dy(n);
  cuda::add_forward(dy.data(), da.data(), db.data(), n);
  expect_bits_equal(dy.host(), y, "add_forward");
  cuda::add_inplace(da.data(), db.data(), n);
  expect_bits_equal(da.host(), y, "add_inplace");
}

TEST(CudaOps, ChannelBiasMatchesCpu) {
  DDPM_REQUIRE_CUDA_DEVICE();
  struct Case {
    int64_t batch, pixels, channels;
  };
  for (const Case c : {Case{3, 35, 96}, Case{2, 4099, 37}, Case{1, 1, 1}, Case{5, 64, 40}}) {
    const std::string what = std::to_string(c.batch) + "x" + std::to_string(c.pixels) + "x" + std::to_string(c.channels);
    const int64_t n = c.batch * c.pixels * c.channels;
    const auto y0 = test::random_normal(n, 5), bias = test::random_normal(c.batch * c.channels, 6);
    std::vector<float> y = y0, dbias(c.batch * c.channels);
    cpu::add_channel_bias_forward(y.data(), bias.data(), c.batch, c.pixels, c.channels);
    // A mean far from zero: the double sums must still agree.
    const auto dy = plus(test::random_normal(n, 7), 3.0f);
    cpu::add_channel_bias_backward(dbias.data(), dy.data(), c.batch, c.pixels, c.channels);
    DeviceArray dy0(y0), dbias_in(bias), ddy(dy), ddbias(c.batch * c.channels);
    cuda::add_channel_bias_forward(dy0.data(), dbias_in.data(), c.batch, c.pixels, c.channels);
    expect_bits_equal(dy0.host(), y, "add_channel_bias_forward " + what);
    cuda::add_channel_bias_backward(ddbias.data(), ddy.data(), c.batch, c.pixels, c.channels);
    test::expect_close(ddbias.host(), dbias, 1e-6, 1e-6, "add_channel_bias_backward " + what);
  }
}

TEST(CudaOps, UpsampleIsExact) {
  DDPM_REQUIRE_CUDA_DEVICE();
  struct Case {
    int64_t batch, height, width, channels;
  };
  for (const Case c : {Case{2, 5, 7, 3}, Case{3, 4, 4, 40}, Case{1, 1, 1, 1}}) {
    const std::string what = std::to_string(c.batch) + "x" + std::to_string(c.height) + "x" +
                             std::to_string(c.width) + "x" + std::to_string(c.channels);
    const int64_t n = c.batch * c.height * c.width * c.channels;
    const auto x = test::random_normal(n, 8), dy = test::random_normal(4 * n, 9);
    std::vector<float> y(4 * n), dx(n);
    cpu::upsample_nearest2x_forward(y.data(), x.data(), c.batch, c.height, c.width, c.channels);
    cpu::upsample_nearest2x_backward(dx.data(), dy.data(), c.batch, c.height, c.width, c.channels);
    DeviceArray dxin(x), ddy(dy), dout(4 * n), dgrad(n);
    cuda::upsample_nearest2x_forward(dout.data(), dxin.data(), c.batch, c.height, c.width, c.channels);
    cuda::upsample_nearest2x_backward(dgrad.data(), ddy.data(), c.batch, c.height, c.width, c.channels);
    expect_bits_equal(dout.host(), y, "upsample forward " + what);
    expect_bits_equal(dgrad.host(), dx, "upsample backward " + what);
  }
}

TEST(CudaOps, ConcatIsExact) {
  DDPM_REQUIRE_CUDA_DEVICE();
  for (const auto& [ca, cb, positions] : {std::tuple<int64_t, int64_t, int64_t>{5, 67, 33}, {64, 32, 17}, {1, 1, 1}}) {
    const std::string what = std::to_string(ca) + "+" + std::to_string(cb) + " x " + std::to_string(positions);
    const auto a = test::random_normal(ca * positions, 10), b = test::random_normal(cb * positions, 11);
    const auto dy = test::random_normal((ca + cb) * positions, 12);
    std::vector<float> y((ca + cb) * positions), da(ca * positions), db(cb * positions);
    cpu::concat_channels_forward(y.data(), a.data(), ca, b.data(), cb, positions);
    cpu::concat_channels_backward(da.data(), db.data(), dy.data(), ca, cb, positions);
    DeviceArray dain(a), dbin(b), ddy(dy), dout(y.size()), dda(da.size()), ddb(db.size());
    cuda::concat_channels_forward(dout.data(), dain.data(), ca, dbin.data(), cb, positions);
    cuda::concat_channels_backward(dda.data(), ddb.data(), ddy.data(), ca, cb, positions);
    expect_bits_equal(dout.host(), y, "concat forward " + what);
    expect_bits_equal(dda.host(), da, "concat backward a " + what);
    expect_bits_equal(ddb.host(), db, "concat backward b " + what);
  }
}

TEST(CudaOps, DropoutMaskIsTheCpuMask) {
  DDPM_REQUIRE_CUDA_DEVICE();
  const int64_t n = 100001;
  const auto x = test::random_normal(n, 13), dy = test::random_normal(n, 14);
  for (float p : {0.1f, 0.5f, 0.9f, 0.0f, 1.0f}) {
    for (int64_t first : {int64_t{0}, int64_t{12345}}) {
      const uint64_t seed = 0xDEADBEEF12345ull + static_cast<uint64_t>(first);
      const std::string what = "p " + std::to_string(p) + " first " + std::to_string(first);
      std::vector<float> y(n), dx(n);
      cpu::dropout_forward(y.data(), x.data(), n, p, seed, first);
      cpu::dropout_backward(dx.data(), dy.data(), n, p, seed, first);
      DeviceArray dxin(x), ddy(dy), dout(n), dgrad(n);
      cuda::dropout_forward(dout.data(), dxin.data(), n, p, seed, first);
      cuda::dropout_backward(dgrad.data(), ddy.data(), n, p, seed, first);
      expect_bits_equal(dout.host(), y, "dropout forward " + what);
      expect_bits_equal(dgrad.host(), dx, "dropout backward " + what);
      // In place (y aliases x), as the CPU allows.
      cuda::dropout_forward(dxin.data(), dxin.data(), n, p, seed, first);
      expect_bits_equal(dxin.host(), y, "dropout forward in place " + what);
    }
  }
  EXPECT_THROW(cuda::dropout_forward(nullptr, nullptr, 1, 1.5f, 0), std::invalid_argument);
}

TEST(CudaOps, MseMatchesCpuAndIsDeterministic) {
  DDPM_REQUIRE_CUDA_DEVICE();
  for (int64_t n : {int64_t{1}, int64_t{1000}, int64_t{1000003}}) {
    const auto pred = test::random_normal(n, 15), target = plus(test::random_normal(n, 16), 0.25f);
    const double ref = cpu::mse_forward(pred.data(), target.data(), n);
    DeviceArray dp(pred), dt(target), dgrad(n);
    const double got = cuda::mse_forward(dp.data(), dt.data(), n);
    EXPECT_NEAR(got, ref, 1e-12 * ref) << "n " << n;
    EXPECT_EQ(cuda::mse_forward(dp.data(), dt.data(), n), got) << "n " << n << ": not deterministic";
    std::vector<float> grad(n);
    cpu::mse_backward(grad.data(), pred.data(), target.data(), n, 0.75f);
    cuda::mse_backward(dgrad.data(), dp.data(), dt.data(), n, 0.75f);
    expect_bits_equal(dgrad.host(), grad, "mse_backward n " + std::to_string(n));
  }
  EXPECT_THROW(cuda::mse_forward(nullptr, nullptr, 0), std::invalid_argument);
}

TEST(CudaOps, Bf16ConversionsAreBitExact) {
  DDPM_REQUIRE_CUDA_DEVICE();
  std::vector<float> x = test::random_normal(50001, 17, 100.0f);
  const float inf = std::numeric_limits<float>::infinity();
  for (float v : {0.0f, -0.0f, inf, -inf, std::numeric_limits<float>::quiet_NaN(),
                  -std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::max(),
                  std::numeric_limits<float>::min(), std::numeric_limits<float>::denorm_min(), 1.0f, -1.0f})
    x.push_back(v);
  // Ties (to even, both ways), a value that rounds up into infinity, and signalling NaNs.
  for (uint32_t u : {0x3F808000u, 0x3F818000u, 0x7F7FFFFFu, 0x7F800001u, 0xFF800001u, 0x7FBFFFFFu, 0x00008000u})
    x.push_back([u] {
      float f;
      std::memcpy(&f, &u, 4);
      return f;
    }());
  const auto n = static_cast<int64_t>(x.size());
  std::vector<uint16_t> h(n);
  cpu::convert_f32_to_bf16(h.data(), x.data(), n);
  std::vector<float> back(n);
  cpu::convert_bf16_to_f32(back.data(), h.data(), n);

  DeviceArray dx(x), dback(n);
  cuda::DeviceBuffer dh(n * sizeof(uint16_t));
  cuda::f32_to_bf16(dh.as<uint16_t>(), dx.data(), n);
  std::vector<uint16_t> got(n);
  cuda::download(got.data(), dh.data(), n * sizeof(uint16_t));
  size_t differ = 0;
  for (int64_t i = 0; i < n; ++i) differ += got[i] != h[i];
  EXPECT_EQ(differ, 0u) << "f32_to_bf16";
  cuda::bf16_to_f32(dback.data(), dh.as<uint16_t>(), n);
  expect_bits_equal(dback.host(), back, "bf16_to_f32");
}

// ---- group norm ----

struct GnCase {
  int64_t batch, pixels, channels, groups;
  float mean_shift;  // added to x: the variance must survive a mean large against the spread
  std::string name() const {
    return std::to_string(batch) + "x" + std::to_string(pixels) + "x" + std::to_string(channels) + " g" +
           std::to_string(groups) + (mean_shift != 0.0f ? " mean " + std::to_string(mean_shift) : "");
  }
};

TEST(CudaOps, GroupNormMatchesCpu) {
  DDPM_REQUIRE_CUDA_DEVICE();
  for (const GnCase& c : {GnCase{3, 35, 96, 32, 0.0f}, GnCase{3, 35, 96, 32, 100.0f}, GnCase{2, 300, 40, 8, 0.0f},
                          GnCase{2, 1030, 64, 32, 30.0f}, GnCase{1, 3, 5, 5, 0.0f}, GnCase{4, 16, 12, 1, 0.0f}}) {
    for (bool silu : {false, true}) {
      const std::string what = c.name() + (silu ? " silu" : "");
      const cpu::GroupNormShape s{c.batch, c.pixels, c.channels, c.groups, 1e-5f};
      const int64_t n = c.batch * c.pixels * c.channels, bg = c.batch * c.groups;
      const auto x = plus(test::random_normal(n, 20, 0.5f), c.mean_shift);
      const auto gamma = plus(test::random_normal(c.channels, 21, 0.2f), 1.0f);
      const auto beta = test::random_normal(c.channels, 22, 0.2f);
      const auto dy = test::random_normal(n, 23);

      std::vector<double> ws_storage((cpu::group_norm_workspace_floats(s) + 1) / 2 + 1);
      auto* ws = reinterpret_cast<float*>(ws_storage.data());
      const size_t ws_floats = ws_storage.size() * 2;
      std::vector<float> y(n), mean(bg), rstd(bg), dx(n), dgamma(c.channels), dbeta(c.channels);
      cpu::group_norm_forward(y.data(), mean.data(), rstd.data(), x.data(), gamma.data(), beta.data(), s, silu, ws,
                              ws_floats);
      cpu::group_norm_backward(dx.data(), dgamma.data(), dbeta.data(), dy.data(), x.data(), mean.data(), rstd.data(),
                               gamma.data(), beta.data(), s, silu, ws, ws_floats);

      DeviceArray dxin(x), dgm(gamma), dbt(beta), ddy(dy), dout(n), dmean(bg), drstd(bg), dgrad(n), ddg(c.channels),
          ddb(c.channels);
      cuda::group_norm_forward(dout.data(), dmean.data(), drstd.data(), dxin.data(), dgm.data(), dbt.data(), s, silu);
      const auto got_mean = dmean.host(), got_rstd = drstd.host();
      test::expect_close(got_mean, mean, 1e-6, 1e-7, "group norm mean " + what);
      test::expect_close(got_rstd, rstd, 1e-5, 0.0, "group norm rstd " + what);
      expect_max_relative(dout.host(), y, 1e-5, "group norm y " + what);

      // The backward from the CPU's statistics, so that it is compared on its own.
      DeviceArray cpu_mean(mean), cpu_rstd(rstd);
      cuda::group_norm_backward(dgrad.data(), ddg.data(), ddb.data(), ddy.data(), dxin.data(), cpu_mean.data(),
                                cpu_rstd.data(), dgm.data(), dbt.data(), s, silu);
      const auto got_dx = dgrad.host(), got_dg = ddg.host(), got_db = ddb.host();
      expect_max_relative(got_dx, dx, 1e-5, "group norm dx " + what);
      expect_max_relative(got_dg, dgamma, 1e-5, "group norm dgamma " + what);
      expect_max_relative(got_db, dbeta, 1e-5, "group norm dbeta " + what);

      // Run to run identical, and dx may alias dy.
      cuda::group_norm_backward(ddy.data(), ddg.data(), ddb.data(), ddy.data(), dxin.data(), cpu_mean.data(),
                                cpu_rstd.data(), dgm.data(), dbt.data(), s, silu);
      expect_bits_equal(ddy.host(), got_dx, "group norm dx in place " + what);
      expect_bits_equal(ddg.host(), got_dg, "group norm dgamma rerun " + what);
      expect_bits_equal(ddb.host(), got_db, "group norm dbeta rerun " + what);
    }
  }
}

TEST(CudaOps, GroupNormRejectsBadShapes) {
  DDPM_REQUIRE_CUDA_DEVICE();
  EXPECT_THROW(cuda::group_norm_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                        cpu::GroupNormShape{1, 4, 10, 3, 1e-5f}, false),
               std::invalid_argument);
}

// ---- softmax ----

TEST(CudaOps, SoftmaxMatchesCpu) {
  DDPM_REQUIRE_CUDA_DEVICE();
  const float scale = 0.125f;
  for (int64_t cols : {int64_t{1}, int64_t{7}, int64_t{33}, int64_t{1000}, int64_t{1024}, int64_t{1025}, int64_t{4096}}) {
    const int64_t rows = 37, n = rows * cols;
    const std::string what = "37 x " + std::to_string(cols);
    const auto x = test::random_normal(n, 30, 8.0f), dy = test::random_normal(n, 31);
    std::vector<float> y(n), dx(n);
    cpu::softmax_forward(y.data(), x.data(), rows, cols, scale);
    cpu::softmax_backward(dx.data(), dy.data(), y.data(), rows, cols, scale);
    DeviceArray dxin(x), ddy(dy), dout(n), dgrad(n), cpu_y(y);
    cuda::softmax_forward(dout.data(), dxin.data(), rows, cols, scale);
    const auto got_y = dout.host();
    test::expect_close(got_y, y, 1e-5, 1e-9, "softmax forward " + what);
    // The backward from the CPU's y, so that it is compared on its own.
    cuda::softmax_backward(dgrad.data(), ddy.data(), cpu_y.data(), rows, cols, scale);
    const auto got_dx = dgrad.host();
    expect_max_relative(got_dx, dx, 1e-5, "softmax backward " + what);
    // In place: y aliases x, dx aliases dy.
    cuda::softmax_forward(dxin.data(), dxin.data(), rows, cols, scale);
    expect_bits_equal(dxin.host(), got_y, "softmax forward in place " + what);
    cuda::softmax_backward(ddy.data(), ddy.data(), cpu_y.data(), rows, cols, scale);
    expect_bits_equal(ddy.host(), got_dx, "softmax backward in place " + what);
  }
}

// ---- timestep embedding ----

TEST(CudaOps, TimestepEmbeddingMatchesCpu) {
  DDPM_REQUIRE_CUDA_DEVICE();
  const std::vector<float> t = {0.0f, 1.0f, 17.0f, 250.5f, 999.0f};
  const auto batch = static_cast<int64_t>(t.size());
  struct Case {
    int64_t dim;
    bool flip;
    float shift, scale;
  };
  for (const Case c : {Case{32, true, 0.0f, 1.0f}, Case{33, false, 1.0f, 1.0f}, Case{128, false, 1.0f, 2.0f},
                       Case{1, true, 1.0f, 1.0f}, Case{3, true, 0.0f, 1.0f}}) {
    const std::string what = "dim " + std::to_string(c.dim) + (c.flip ? " flip" : "") + " shift " +
                             std::to_string(c.shift) + " scale " + std::to_string(c.scale);
    std::vector<float> ref(batch * c.dim);
    cpu::timestep_embedding_forward(ref.data(), t.data(), batch, c.dim, c.flip, c.shift, c.scale);
    DeviceArray dt(t), dout(ref.size());
    cuda::timestep_embedding_forward(dout.data(), dt.data(), batch, c.dim, c.flip, c.shift, c.scale);
    test::expect_close(dout.host(), ref, 0.0, 2e-6, "timestep embedding " + what);
  }
  EXPECT_THROW(cuda::timestep_embedding_forward(nullptr, nullptr, 1, 2, false, 1.0f), std::invalid_argument);
}

// ---- optimizer ----

TEST(CudaOps, GlobalGradNormMatchesCpuAndIsDeterministic) {
  DDPM_REQUIRE_CUDA_DEVICE();
  for (int64_t n : {int64_t{1}, int64_t{1001}, int64_t{3000017}}) {
    const auto g = test::random_normal(n, 40, 0.01f);
    const double ref = cpu::global_grad_norm(g.data(), n);
    DeviceArray dg(g);
    const double got = cuda::global_grad_norm(dg.data(), n);
    EXPECT_NEAR(got, ref, 1e-12 * ref) << "n " << n;
    EXPECT_EQ(cuda::global_grad_norm(dg.data(), n), got) << "n " << n << ": not deterministic";
  }
}

struct OptimizerStep {
  float max_norm;      // <= 0: no clipping
  bool poison;         // a NaN gradient: the step must change nothing
};

void run_optimizer_steps(bool with_ema, const cpu::AdamConfig& config) {
  const int64_t n = 100003;
  const float decay = 0.999f;
  std::vector<float> param = test::random_normal(n, 50), m(n, 0.0f), v(n, 0.0f), ema = param;
  DeviceArray dparam(param), dm(m), dv(v), dema(ema), dnorm(1);
  cuda::DeviceBuffer workspace(cuda::optimizer_workspace_bytes(n));
  const std::vector<OptimizerStep> steps = {{1.0f, false}, {1.0f, false}, {1.0f, true}, {0.0f, false},
                                            {1000.0f, false}, {0.0f, true}, {1.0f, false}};
  int64_t step = 0;
  for (size_t k = 0; k < steps.size(); ++k) {
    const OptimizerStep& s = steps[k];
    const std::string what = std::string(with_ema ? "ema" : "no ema") + ", call " + std::to_string(k) + ", max_norm " +
                             std::to_string(s.max_norm) + (s.poison ? ", NaN gradient" : "");
    std::vector<float> grad = test::random_normal(n, 60 + k, 0.5f);
    if (s.poison) grad[n / 2] = std::numeric_limits<float>::quiet_NaN();
    DeviceArray dgrad(grad);

    // The CPU: clip (or only the norm), then Adam and the EMA unless the norm is not finite.
    const float norm = s.max_norm > 0.0f ? cpu::clip_grad_norm(grad.data(), n, s.max_norm)
                                         : static_cast<float>(cpu::global_grad_norm(grad.data(), n));
    const bool finite = std::isfinite(norm);
    if (finite) {
      ++step;
      cpu::adam_step(param.data(), grad.data(), m.data(), v.data(), n, config, step);
      if (with_ema) cpu::ema_update(ema.data(), param.data(), n, decay);
    }
    const auto before_param = dparam.host(), before_m = dm.host(), before_v = dv.host(), before_ema = dema.host();
    cuda::optimizer_step(dparam.data(), dgrad.data(), dm.data(), dv.data(), with_ema ? dema.data() : nullptr, n, config,
                         finite ? step : std::max<int64_t>(step, 1), s.max_norm, decay, dnorm.data(), workspace.data());
    const float got_norm = dnorm.host()[0];
    if (!finite) {
      EXPECT_FALSE(std::isfinite(got_norm)) << what;
      expect_bits_equal(dparam.host(), before_param, "param untouched, " + what);
      expect_bits_equal(dm.host(), before_m, "m untouched, " + what);
      expect_bits_equal(dv.host(), before_v, "v untouched, " + what);
      expect_bits_equal(dema.host(), before_ema, "ema untouched, " + what);
      expect_bits_equal(dgrad.host(), grad, "grad untouched, " + what);
      continue;
    }
    EXPECT_NEAR(got_norm, norm, 1e-6 * norm) << what;
    test::expect_close(dgrad.host(), grad, 1e-6, 1e-12, "clipped grad, " + what);
    test::expect_close(dparam.host(), param, 1e-6, 1e-7, "param, " + what);
    expect_max_relative(dm.host(), m, 1e-5, "m, " + what);
    expect_max_relative(dv.host(), v, 1e-5, "v, " + what);
    if (with_ema)
      test::expect_close(dema.host(), ema, 1e-6, 1e-7, "ema, " + what);
    else
      expect_bits_equal(dema.host(), ema, "ema untouched without EMA, " + what);
    // Keep both sides on the same state: the next step compares one step's error only.
    cuda::upload(dparam.data(), param.data(), n * sizeof(float));
    cuda::upload(dm.data(), m.data(), n * sizeof(float));
    cuda::upload(dv.data(), v.data(), n * sizeof(float));
    cuda::upload(dema.data(), ema.data(), n * sizeof(float));
  }
  EXPECT_EQ(step, 5);
}

TEST(CudaOps, OptimizerStepMatchesClipAdamEma) {
  DDPM_REQUIRE_CUDA_DEVICE();
  run_optimizer_steps(true, cpu::AdamConfig{});
}

TEST(CudaOps, OptimizerStepWithWeightDecayWithoutEma) {
  DDPM_REQUIRE_CUDA_DEVICE();
  cpu::AdamConfig config;
  config.lr = 2e-4f;
  config.weight_decay = 0.01f;
  config.beta2 = 0.99f;
  run_optimizer_steps(false, config);
}

// ---- noise and the sampler step ----

TEST(CudaOps, FillNormalMatchesNoiseRng) {
  DDPM_REQUIRE_CUDA_DEVICE();
  struct Case {
    uint64_t seed, offset;
    int64_t n, begin, count;
  };
  for (const Case c : {Case{0, 0, 100003, 0, 100003}, Case{42, 7, 1001, 3, 997}, Case{0x123456789ABCDEF0ull,
                       0xFFFFFFF0ull, 4099, 1, 4097}, Case{5, 1, 10, 9, 1}, Case{9, 0, 1 << 20, 6, (1 << 20) - 13}}) {
    const std::string what = "seed " + std::to_string(c.seed) + " offset " + std::to_string(c.offset) + " values [" +
                             std::to_string(c.begin) + ", " + std::to_string(c.begin + c.count) + ") of " +
                             std::to_string(c.n);
    std::vector<float> ref(c.count);
    NoiseRng rng(c.seed, c.offset);
    rng.fill_normal_part(ref.data(), c.n, c.begin, c.count);
    DeviceArray d(c.count);
    cuda::fill_normal(d.data(), c.seed, c.offset, c.n, c.begin, c.count);
    const auto got = d.host();
    int64_t differ = 0, far = 0;
    for (int64_t i = 0; i < c.count; ++i) {
      if (bits(got[i]) == bits(ref[i])) continue;
      ++differ;
      const auto ulps = std::abs(static_cast<int64_t>(bits(got[i])) - static_cast<int64_t>(bits(ref[i])));
      if (std::isnan(got[i]) || std::signbit(got[i]) != std::signbit(ref[i]) || ulps > 1) {
        if (far++ == 0) ADD_FAILURE() << what << ": value " << i << " is " << got[i] << ", NoiseRng has " << ref[i];
      }
    }
    EXPECT_EQ(far, 0) << what;
    EXPECT_LE(differ, std::max<int64_t>(1, c.count / 10000)) << what << ": values one ulp apart";
    if (differ > 0) std::printf("fill_normal %s: %lld of %lld values one ulp from NoiseRng's\n", what.c_str(),
                                static_cast<long long>(differ), static_cast<long long>(c.count));
  }
}

TEST(CudaOps, DdpmStepMatchesCpu) {
  DDPM_REQUIRE_CUDA_DEVICE();
  const int64_t n = 30011;
  const auto x_t = test::random_normal(n, 70, 1.5f), eps = test::random_normal(n, 71), z = test::random_normal(n, 72);
  for (const auto& schedule : {NoiseSchedule(ScheduleKind::linear, 1000), NoiseSchedule(ScheduleKind::cosine, 50)}) {
    const int64_t T = schedule.num_timesteps();
    for (int64_t t : {T - 1, T / 2, int64_t{1}, int64_t{0}}) {
      for (auto [variance, clip] : {std::pair{Variance::fixed_large, false}, {Variance::fixed_small, true}}) {
        const std::string what = "T " + std::to_string(T) + " t " + std::to_string(t) + " " + variance_name(variance) +
                                 (clip ? " clip" : "");
        std::vector<float> ref(n);
        ddpm_step(ref.data(), x_t.data(), eps.data(), t, z.data(), n, schedule, variance, clip);
        const auto s = static_cast<size_t>(t);
        cuda::DdpmStepCoefficients c{};
        c.recip = schedule.sqrt_recip_alphas_cumprod()[s];
        c.recipm1 = schedule.sqrt_recipm1_alphas_cumprod()[s];
        c.c1 = schedule.posterior_mean_coef1()[s];
        c.c2 = schedule.posterior_mean_coef2()[s];
        c.sigma = t > 0 ? std::exp(0.5 * schedule.log_variance(variance)[s]) : 0.0;
        c.lo = clip ? -1.0 : -HUGE_VAL;
        c.hi = clip ? 1.0 : HUGE_VAL;
        DeviceArray dx(x_t), deps(eps), dz(z), dout(n);
        cuda::ddpm_step(dout.data(), dx.data(), deps.data(), t > 0 ? dz.data() : nullptr, n, c);
        test::expect_close(dout.host(), ref, 2.5e-7, 1e-12, "ddpm_step " + what);
        // In place, as the sampler runs it.
        cuda::ddpm_step(dx.data(), dx.data(), deps.data(), t > 0 ? dz.data() : nullptr, n, c);
        expect_bits_equal(dx.host(), dout.host(), "ddpm_step in place " + what);
      }
    }
  }
}

}  // namespace
}  // namespace ddpm
