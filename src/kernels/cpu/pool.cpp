// Global average pooling forward and backward: channels are contiguous in NHWC, so both loops run
// along the channel vector; OpenMP splits the batch when the work is large.
#include "ddpm/kernels/pool.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels/cpu/parallel.h"

namespace ddpm::cpu {
namespace {

void check_shape(const char* op, int64_t batch, int64_t pixels, int64_t channels) {
  if (batch <= 0 || pixels <= 0 || channels <= 0)
    throw std::invalid_argument(std::string(op) + ": batch, pixels and channels must be positive, got [" +
                                std::to_string(batch) + "," + std::to_string(pixels) + "," +
                                std::to_string(channels) + "]");
}

}  // namespace

void global_avg_pool_forward(float* y, const float* x, int64_t batch, int64_t pixels, int64_t channels) {
  check_shape("global_avg_pool_forward", batch, pixels, channels);
  const float inv = 1.0f / static_cast<float>(pixels);
  parallel_for(batch, batch * pixels * channels >= kParallelGrain, [&](int64_t b) {
    float* out = y + b * channels;
    const float* in = x + b * pixels * channels;
    std::fill(out, out + channels, 0.0f);
    for (int64_t p = 0; p < pixels; ++p) {
      const float* row = in + p * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) out[c] += row[c];
    }
#pragma omp simd
    for (int64_t c = 0; c < channels; ++c) out[c] *= inv;
  });
}

void global_avg_pool_backward(float* dx, const float* dy, int64_t batch, int64_t pixels, int64_t channels) {
  check_shape("global_avg_pool_backward", batch, pixels, channels);
  const float inv = 1.0f / static_cast<float>(pixels);
  parallel_for(batch, batch * pixels * channels >= kParallelGrain, [&](int64_t b) {
    const float* g = dy + b * channels;
    float* out = dx + b * pixels * channels;
    for (int64_t p = 0; p < pixels; ++p) {
      float* row = out + p * channels;
#pragma omp simd
      for (int64_t c = 0; c < channels; ++c) row[c] = g[c] * inv;
    }
  });
}

}  // namespace ddpm::cpu
