// cuda::Conv2d against cpu::Conv2d on seeded random data: forward and every gradient, in fp32
// (TF32 off) and bf16, over the layer shapes of the U-Net (3x3, 1x1, the (0,1)-padded stride-2
// downsample) at odd channel counts, plus what must fail.
#include "ddpm/kernels/cuda/conv2d.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_test_support.h"
#include "ddpm/kernels/conv2d.h"
#include "ddpm/kernels/cuda/runtime.h"

namespace ddpm {
namespace {

using cpu::Conv2dShape;
using test::DeviceArray;
using test::kNaN;
using test::relative_norm_error;

struct Case {
  const char* name;
  Conv2dShape shape;
};

// {batch, height, width, in, out, kernel, stride, pad_before, pad_after}
const Case kCases[] = {
    {"3x3 s1 p1, 5->7", {3, 9, 7, 5, 7, 3, 1, 1, 1}},
    {"1x1, 5->7", {3, 9, 7, 5, 7, 1, 1, 0, 0}},
    {"3x3 s2 p(0,1) even, 5->7", {3, 8, 8, 5, 7, 3, 2, 0, 1}},
    {"3x3 s2 p(0,1) odd, 5->7", {3, 9, 7, 5, 7, 3, 2, 0, 1}},
    {"3x3 s2 p1, 5->7", {3, 8, 8, 5, 7, 3, 2, 1, 1}},
    {"3x3 s1 p1, 3->8", {2, 8, 8, 3, 8, 3, 1, 1, 1}},
    {"3x3 s1 p1, 64->128", {2, 16, 16, 64, 128, 3, 1, 1, 1}},
    {"1x1, 64->128", {2, 16, 16, 64, 128, 1, 1, 0, 0}},
    {"3x3 s2 p(0,1), 64->64", {2, 16, 16, 64, 64, 3, 2, 0, 1}},
};

size_t numel(const Shape& s) { return static_cast<size_t>(s.numel()); }

struct Results {
  std::vector<float> y, dx, dweight, dbias;
};

struct Inputs {
  std::vector<float> x, weight, bias, dy;
  Inputs(const Conv2dShape& s, uint64_t seed) {
    const size_t fan_in = static_cast<size_t>(s.in_channels * s.kernel * s.kernel);
    x = test::random_normal(static_cast<size_t>(s.batch * s.height * s.width * s.in_channels), seed);
    weight = test::random_normal(static_cast<size_t>(s.out_channels) * fan_in, seed + 1,
                                 1.0f / std::sqrt(static_cast<float>(fan_in)));
    bias = test::random_normal(static_cast<size_t>(s.out_channels), seed + 2);
    dy = test::random_normal(static_cast<size_t>(s.batch * s.out_height() * s.out_width() * s.out_channels), seed + 3);
  }
};

Results run_cpu(const Conv2dShape& s, Precision p, const Inputs& in) {
  cpu::Conv2d conv(s, p);
  Results r{std::vector<float>(numel(conv.output_shape()), kNaN), std::vector<float>(in.x.size(), kNaN),
            std::vector<float>(in.weight.size(), kNaN), std::vector<float>(in.bias.size(), kNaN)};
  conv.set_weights(in.weight.data());
  conv.forward(in.x.data(), in.bias.data(), r.y.data());
  conv.backward(in.x.data(), in.dy.data(), r.dx.data(), r.dweight.data(), r.dbias.data());
  return r;
}

Results run_cuda(const Conv2dShape& s, Precision p, const Inputs& in) {
  cuda::Conv2d conv(s, p);
  std::printf("  %s %s: %s\n", s.str().c_str(), precision_name(p), conv.algorithms().c_str());
  const DeviceArray x(in.x), weight(in.weight), bias(in.bias), dy(in.dy);
  DeviceArray y(numel(conv.output_shape())), dx(in.x.size()), dweight(in.weight.size()), dbias(in.bias.size());
  conv.set_weights(weight.data());
  conv.forward(x.data(), bias.data(), y.data());
  conv.backward(x.data(), dy.data(), dx.data(), dweight.data(), dbias.data());
  return {y.host(), dx.host(), dweight.host(), dbias.host()};
}

void expect_matches_cpu(Precision p, double tolerance) {
  cuda::set_allow_tf32(false);
  uint64_t seed = 100;
  for (const Case& c : kCases) {
    SCOPED_TRACE(std::string(c.name) + " " + precision_name(p));
    const Inputs in(c.shape, seed += 10);
    const Results want = run_cpu(c.shape, p, in);
    const Results got = run_cuda(c.shape, p, in);
    EXPECT_LE(relative_norm_error(got.y, want.y), tolerance) << "y";
    EXPECT_LE(relative_norm_error(got.dx, want.dx), tolerance) << "dx";
    EXPECT_LE(relative_norm_error(got.dweight, want.dweight), tolerance) << "dweight";
    EXPECT_LE(relative_norm_error(got.dbias, want.dbias), tolerance) << "dbias";
  }
}

TEST(CudaConv2d, Fp32MatchesCpu) {
  DDPM_REQUIRE_CUDA_DEVICE();
  expect_matches_cpu(Precision::fp32, 1e-5);
}

TEST(CudaConv2d, Bf16MatchesCpu) {
  DDPM_REQUIRE_CUDA_DEVICE();
  expect_matches_cpu(Precision::bf16, 1e-2);
}

// bf16 against the exact fp32 result: the rounding of operands and outputs stays small.
TEST(CudaConv2d, Bf16IsCloseToFp32) {
  DDPM_REQUIRE_CUDA_DEVICE();
  const Conv2dShape s{3, 8, 8, 5, 7, 3, 2, 0, 1};
  const Inputs in(s, 7);
  const Results want = run_cpu(s, Precision::fp32, in);
  const Results got = run_cuda(s, Precision::bf16, in);
  EXPECT_LE(relative_norm_error(got.y, want.y), 2e-2);
  EXPECT_LE(relative_norm_error(got.dx, want.dx), 2e-2);
  EXPECT_LE(relative_norm_error(got.dweight, want.dweight), 2e-2);
  EXPECT_LE(relative_norm_error(got.dbias, want.dbias), 1e-5);  // summed from the fp32 dy
}

// No bias, no dx, no dbias: y has no bias added, and the buffers not asked for stay untouched.
TEST(CudaConv2d, NullBiasAndSkippedGradients) {
  DDPM_REQUIRE_CUDA_DEVICE();
  cuda::set_allow_tf32(false);
  const Conv2dShape s{2, 6, 6, 5, 7, 3, 1, 1, 1};
  Inputs in(s, 21);
  std::fill(in.bias.begin(), in.bias.end(), 0.0f);
  const Results want = run_cpu(s, Precision::fp32, in);

  cuda::Conv2d conv(s, Precision::fp32);
  const DeviceArray x(in.x), weight(in.weight), dy(in.dy);
  DeviceArray y(want.y.size()), dweight(in.weight.size());
  conv.set_weights(weight.data());
  conv.forward(x.data(), nullptr, y.data());
  conv.backward(x.data(), dy.data(), nullptr, dweight.data(), nullptr);
  EXPECT_LE(relative_norm_error(y.host(), want.y), 1e-5);
  EXPECT_LE(relative_norm_error(dweight.host(), want.dweight), 1e-5);
}

TEST(CudaConv2d, InferenceOnlyRefusesBackward) {
  DDPM_REQUIRE_CUDA_DEVICE();
  const Conv2dShape s{1, 8, 8, 5, 7, 3, 2, 0, 1};
  const Inputs in(s, 3);
  cuda::Conv2d conv(s, Precision::bf16, /*with_backward=*/false);
  const DeviceArray x(in.x), weight(in.weight), bias(in.bias), dy(in.dy);
  DeviceArray y(in.dy.size()), dx(in.x.size()), dweight(in.weight.size()), dbias(in.bias.size());
  conv.set_weights(weight.data());
  conv.forward(x.data(), bias.data(), y.data());
  EXPECT_LE(relative_norm_error(y.host(), run_cpu(s, Precision::bf16, in).y), 1e-2);
  EXPECT_THROW(conv.backward(x.data(), dy.data(), dx.data(), dweight.data(), dbias.data()), std::logic_error);
}

TEST(CudaConv2d, ForwardBeforeSetWeightsThrows) {
  DDPM_REQUIRE_CUDA_DEVICE();
  const Conv2dShape s{1, 4, 4, 3, 4, 3, 1, 1, 1};
  cuda::Conv2d conv(s, Precision::fp32);
  DeviceArray x(48), y(64);
  EXPECT_THROW(conv.forward(x.data(), nullptr, y.data()), std::logic_error);
}

TEST(CudaConv2d, WithoutADeviceConstructionThrowsNamingTheReason) {
  if (cuda::device_info().usable) GTEST_SKIP() << "a device answers: nothing to refuse";
  try {
    cuda::Conv2d conv(Conv2dShape{1, 8, 8, 4, 4, 3, 1, 1, 1}, Precision::fp32);
    FAIL() << "planned a cuDNN convolution without a device";
  } catch (const cuda::Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs a CUDA device"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ddpm
