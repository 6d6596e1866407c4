// cuda::Attention against cpu::Attention on seeded random data: y, dx and every parameter gradient,
// fp32 (TF32 off) and bf16, at an odd channel count (parameters only float-aligned) and an aligned
// one; inference mode; and what must fail.
#include "ddpm/kernels/cuda/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_test_support.h"
#include "ddpm/kernels/attention.h"
#include "ddpm/kernels/cuda/runtime.h"

namespace ddpm {
namespace {

using test::DeviceArray;
using test::kNaN;
using test::relative_norm_error;

struct Sizes {
  int64_t batch, positions, channels;
  size_t tokens() const { return static_cast<size_t>(batch * positions * channels); }
};

struct Inputs {
  std::vector<float> x, residual, params, dy;
  Inputs(const Sizes& s, uint64_t seed)
      : x(test::random_normal(s.tokens(), seed)),
        residual(test::random_normal(s.tokens(), seed + 1)),
        params(test::random_normal(static_cast<size_t>(cpu::Attention::parameter_count(s.channels)), seed + 2,
                                   1.0f / std::sqrt(static_cast<float>(s.channels)))),
        dy(test::random_normal(s.tokens(), seed + 3)) {}
};

struct Results {
  std::vector<float> y, dx, dparams;
};

Results run_cpu(const Sizes& s, Precision p, const Inputs& in) {
  cpu::Attention att(s.batch, s.positions, s.channels, p);
  Results r{std::vector<float>(s.tokens(), kNaN), std::vector<float>(s.tokens(), kNaN),
            std::vector<float>(in.params.size(), kNaN)};
  att.set_weights(in.params.data());
  att.forward(in.x.data(), in.residual.data(), r.y.data());
  att.backward(in.dy.data(), r.dx.data(), r.dparams.data());
  return r;
}

Results run_cuda(const Sizes& s, Precision p, const Inputs& in) {
  cuda::Attention att(s.batch, s.positions, s.channels, p);
  const DeviceArray x(in.x), residual(in.residual), params(in.params), dy(in.dy);
  DeviceArray y(s.tokens()), dx(s.tokens()), dparams(in.params.size());
  att.set_weights(params.data());
  att.forward(x.data(), residual.data(), y.data());
  att.backward(dy.data(), dx.data(), dparams.data());
  return {y.host(), dx.host(), dparams.host()};
}

std::vector<float> slice(const std::vector<float>& v, int64_t begin, int64_t count) {
  return std::vector<float>(v.begin() + begin, v.begin() + begin + count);
}

// Each parameter's gradient on its own. to_k.bias's is zero in exact arithmetic (adding a constant
// to every key shifts each score row by a constant, which softmax ignores): only rounding noise,
// held against the size of the whole gradient instead.
void expect_params_close(const std::vector<float>& got, const std::vector<float>& want, int64_t c,
                         double tolerance) {
  const char* names[] = {"to_q", "to_k", "to_v", "to_out.0"};
  double total = 0.0;
  for (float v : want) total += static_cast<double>(v) * v;
  for (int which = 0; which < 4; ++which) {
    const int64_t w = which * (c * c + c), b = w + c * c;
    EXPECT_LE(relative_norm_error(slice(got, w, c * c), slice(want, w, c * c)), tolerance)
        << names[which] << ".weight";
    if (which == 1) {
      double err = 0.0;
      for (int64_t i = b; i < b + c; ++i) {
        const double d = static_cast<double>(got[static_cast<size_t>(i)]) - want[static_cast<size_t>(i)];
        err += d * d;
      }
      EXPECT_LE(std::sqrt(err), tolerance * std::sqrt(total)) << "to_k.bias";
    } else {
      EXPECT_LE(relative_norm_error(slice(got, b, c), slice(want, b, c)), tolerance) << names[which] << ".bias";
    }
  }
}

void expect_matches_cpu(Precision p, double tolerance) {
  cuda::set_allow_tf32(false);
  uint64_t seed = 40;
  for (const Sizes& s : {Sizes{2, 9, 5}, Sizes{3, 35, 3}, Sizes{2, 64, 64}}) {
    SCOPED_TRACE("attention " + std::to_string(s.batch) + "x" + std::to_string(s.positions) + "x" +
                 std::to_string(s.channels) + " " + precision_name(p));
    const Inputs in(s, seed += 10);
    const Results want = run_cpu(s, p, in);
    const Results got = run_cuda(s, p, in);
    EXPECT_LE(relative_norm_error(got.y, want.y), tolerance) << "y";
    EXPECT_LE(relative_norm_error(got.dx, want.dx), tolerance) << "dx";
    expect_params_close(got.dparams, want.dparams, s.channels, tolerance);
  }
}

TEST(CudaAttention, Fp32MatchesCpu) {
  DDPM_REQUIRE_CUDA_DEVICE();
  expect_matches_cpu(Precision::fp32, 1e-5);
}

TEST(CudaAttention, Bf16MatchesCpu) {
  DDPM_REQUIRE_CUDA_DEVICE();
  expect_matches_cpu(Precision::bf16, 1e-2);
}

TEST(CudaAttention, InferenceForwardMatchesAndRefusesBackward) {
  DDPM_REQUIRE_CUDA_DEVICE();
  cuda::set_allow_tf32(false);
  const Sizes s{2, 16, 8};
  const Inputs in(s, 11);
  const Results want = run_cpu(s, Precision::fp32, in);
  cuda::Attention att(s.batch, s.positions, s.channels, Precision::fp32, /*training=*/false);
  const DeviceArray x(in.x), residual(in.residual), params(in.params), dy(in.dy);
  DeviceArray y(s.tokens()), dx(s.tokens()), dparams(in.params.size());
  att.set_weights(params.data());
  att.forward(x.data(), residual.data(), y.data());
  EXPECT_LE(relative_norm_error(y.host(), want.y), 1e-5);
  EXPECT_THROW(att.backward(dy.data(), dx.data(), dparams.data()), std::logic_error);
}

TEST(CudaAttention, WithoutADeviceConstructionThrowsNamingTheReason) {
  if (cuda::device_info().usable) GTEST_SKIP() << "a device answers: nothing to refuse";
  try {
    cuda::Attention att(1, 4, 8, Precision::fp32);
    FAIL() << "planned an attention without a device";
  } catch (const cuda::Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs a CUDA device"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ddpm
