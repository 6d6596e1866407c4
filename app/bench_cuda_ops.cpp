// `ddpm bench ops --device cuda`: the CUDA backend's ops at cifar10-ddpm's shapes (the convolutions
// bench/torch_cuda.py times in PyTorch on the same card, group norm + SiLU, attention), forward and
// backward, as milliseconds and TFLOP/s. Times are medians of synchronised repeats after warm-up.
#include "bench_cuda_ops.h"

#include <cstdio>
#include <stdexcept>

#include "ddpm/kernels/cuda/runtime.h"

#ifdef DDPM_HAVE_CUDA
#include <algorithm>
#include <chrono>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "ddpm/kernels/cuda/attention.h"
#include "ddpm/kernels/cuda/conv2d.h"
#include "ddpm/kernels/cuda/ops.h"
#include "ddpm/kernels/precision.h"
#endif

namespace ddpm::app {

#ifndef DDPM_HAVE_CUDA

int run_bench_cuda_ops(const BenchCudaOpsOptions&) {
  cuda::require_device("ddpm bench ops --device cuda");  // throws: built without CUDA
  return 1;
}

#else

namespace {

// Device buffers of normal random values, alive as long as the op being timed.
struct DeviceData {
  std::vector<cuda::DeviceBuffer> owned;
  std::mt19937 rng{1234};
  float* make(int64_t n, float scale = 1.0f) {
    std::vector<float> host(static_cast<size_t>(n));
    std::normal_distribution<float> normal(0.0f, scale);
    for (float& v : host) v = normal(rng);
    owned.emplace_back(host.size() * sizeof(float));
    cuda::upload(owned.back().data(), host.data(), host.size() * sizeof(float));
    return owned.back().as<float>();
  }
};

// Median milliseconds of `work`, each repeat synchronised (so a repeat is the op's device time plus
// one launch and one synchronisation: a few microseconds, negligible at these batch sizes).
double median_ms(const std::function<void()>& work, int repeats) {
  for (int i = 0; i < 3; ++i) work();
  cuda::synchronize();
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    work();
    cuda::synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(ms.begin(), ms.begin() + repeats / 2, ms.end());
  return ms[static_cast<size_t>(repeats / 2)];
}

struct Row {
  std::string name;
  double fwd_ms, bwd_ms, fwd_flops;  // bwd does twice the forward's products (input and weight)
};

void print(const Row& r, const char* precision, bool json) {
  const double fwd_tflops = r.fwd_flops > 0 ? r.fwd_flops / r.fwd_ms / 1e9 : 0.0;
  const double bwd_tflops = r.fwd_flops > 0 ? 2 * r.fwd_flops / r.bwd_ms / 1e9 : 0.0;
  if (json)
    std::printf("{\"what\":\"cuda_op\",\"name\":\"%s\",\"precision\":\"%s\",\"fwd_ms\":%.5g,\"bwd_ms\":%.5g,"
                "\"fwd_tflops\":%.4g,\"bwd_tflops\":%.4g}\n",
                r.name.c_str(), precision, r.fwd_ms, r.bwd_ms, fwd_tflops, bwd_tflops);
  else
    std::printf("  %-28s %-5s fwd %8.3f ms %7.1f TFLOP/s   bwd %8.3f ms %7.1f TFLOP/s\n", r.name.c_str(), precision,
                r.fwd_ms, fwd_tflops, r.bwd_ms, bwd_tflops);
  std::fflush(stdout);
}

// cifar10-ddpm's convolutions at batch 128: bench/torch_cuda.py's CONV_SHAPES, in the same order.
struct ConvCase {
  const char* name;
  int64_t height, in, out;
  int stride;
};
constexpr ConvCase kConvs[] = {
    {"conv3x3 32x32 128->128", 32, 128, 128, 1}, {"conv3x3 32x32 256->128", 32, 256, 128, 1},
    {"conv3x3 16x16 256->256", 16, 256, 256, 1}, {"conv3x3 8x8 512->256", 8, 512, 256, 1},
    {"conv3x3 4x4 256->256", 4, 256, 256, 1},    {"conv3x3s2 32x32 128->128", 32, 128, 128, 2},
};

Row time_conv(const ConvCase& c, int64_t batch, Precision precision, int repeats) {
  cpu::Conv2dShape s;
  s.batch = batch;
  s.height = s.width = c.height;
  s.in_channels = c.in;
  s.out_channels = c.out;
  s.stride = c.stride;
  if (c.stride == 2) s.pad_before = 0;  // diffusers' Downsample2D: pad (0, 1)
  cuda::Conv2d conv(s, precision);
  DeviceData d;
  const float* weight = d.make(conv.weight_shape().numel(), 0.05f);
  const float* bias = d.make(c.out);
  const float* x = d.make(conv.input_shape().numel());
  const float* dy = d.make(conv.output_shape().numel());
  float* y = d.make(conv.output_shape().numel());
  float* dx = d.make(conv.input_shape().numel());
  float* dw = d.make(conv.weight_shape().numel());
  float* db = d.make(c.out);
  conv.set_weights(weight);
  Row r{c.name, 0, 0, conv.forward_flops()};
  r.fwd_ms = median_ms([&] { conv.forward(x, bias, y); }, repeats);
  r.bwd_ms = median_ms([&] { conv.backward(x, dy, dx, dw, db); }, repeats);
  return r;
}

Row time_group_norm(int64_t batch, int repeats) {
  const cpu::GroupNormShape s{batch, 32 * 32, 128, 32, 1e-6f};
  DeviceData d;
  const int64_t n = s.batch * s.pixels * s.channels;
  const float* x = d.make(n);
  const float* dy = d.make(n);
  const float* gamma = d.make(s.channels);
  const float* beta = d.make(s.channels);
  float* y = d.make(n);
  float* dx = d.make(n);
  float* mean = d.make(s.batch * s.groups);
  float* rstd = d.make(s.batch * s.groups);
  float* dgamma = d.make(s.channels);
  float* dbeta = d.make(s.channels);
  Row r{"groupnorm+silu 32x32x128", 0, 0, 0};
  r.fwd_ms = median_ms([&] { cuda::group_norm_forward(y, mean, rstd, x, gamma, beta, s, true); }, repeats);
  r.bwd_ms = median_ms(
      [&] { cuda::group_norm_backward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta, s, true); }, repeats);
  return r;
}

Row time_attention(int64_t batch, Precision precision, int repeats) {
  const int64_t positions = 16 * 16, channels = 256;
  cuda::Attention attention(batch, positions, channels, precision);
  DeviceData d;
  const int64_t n = batch * positions * channels;
  const float* params = d.make(cuda::Attention::parameter_count(channels), 0.05f);
  const float* x = d.make(n);
  const float* dy = d.make(n);
  float* y = d.make(n);
  float* dx = d.make(n);
  float* dparams = d.make(cuda::Attention::parameter_count(channels));
  attention.set_weights(params);
  Row r{"attention 16x16x256", 0, 0, attention.forward_flops()};
  r.fwd_ms = median_ms([&] { attention.forward(x, x, y); }, repeats);
  r.bwd_ms = median_ms([&] { attention.backward(dy, dx, dparams); }, repeats);
  return r;
}

}  // namespace

int run_bench_cuda_ops(const BenchCudaOpsOptions& options) {
  cuda::require_device("ddpm bench ops --device cuda");
  if (!options.json)
    std::printf("CUDA ops at cifar10-ddpm's shapes, batch %lld, on %s (medians of %d)\n",
                static_cast<long long>(options.batch), cuda::device_info().description.c_str(), options.repeats);
  for (const std::string& name : options.precisions) {
    const Precision precision = parse_precision(name);
    for (const ConvCase& c : kConvs)
      if (options.filter.empty() || std::string(c.name).find(options.filter) != std::string::npos)
        print(time_conv(c, options.batch, precision, options.repeats), name.c_str(), options.json);
    if (options.filter.empty() || std::string("attention").find(options.filter) != std::string::npos)
      print(time_attention(options.batch, precision, options.repeats), name.c_str(), options.json);
  }
  if (options.filter.empty() || std::string("groupnorm").find(options.filter) != std::string::npos)
    print(time_group_norm(options.batch, options.repeats), "fp32", options.json);
  return 0;
}

#endif

}  // namespace ddpm::app
