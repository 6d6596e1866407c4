// Elementwise add, in-place accumulate and the NHWC per-channel broadcast add with its backward.
#include "ddpm/kernels/add.h"

#include <algorithm>

#include "ddpm/bench/profiler.h"
#include "kernels/cpu/vec_math.h"

namespace ddpm::cpu {

void add_forward(float* y, const float* a, const float* b, int64_t n) {
  profile::Scope profile_scope(profile::Kind::op, "add");
  parallel_chunks(n, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
    for (; i + kVec <= end; i += kVec)
      (VecF::load_unaligned(a + i) + VecF::load_unaligned(b + i)).store_unaligned(y + i);
    for (; i < end; ++i) y[i] = a[i] + b[i];
  });
}

void add_inplace(float* y, const float* x, int64_t n) { add_forward(y, y, x, n); }

namespace {

// y[0..c) += b[0..c)
inline void add_row(float* y, const float* b, int64_t c) {
  int64_t i = 0;
  for (; i + kVec <= c; i += kVec)
    (VecF::load_unaligned(y + i) + VecF::load_unaligned(b + i)).store_unaligned(y + i);
  for (; i < c; ++i) y[i] += b[i];
}

// Channels summed together by one task of the bias backward; its double accumulators live on the
// stack.
constexpr int64_t kChannelBlock = 256;

}  // namespace

void add_channel_bias_forward(float* y, const float* bias, int64_t batch, int64_t pixels, int64_t channels) {
  profile::Scope profile_scope(profile::Kind::op, "add channel bias fwd");
  const int64_t rows = batch * pixels;
  parallel_for(rows, rows * channels >= kParallelGrain,
               [&](int64_t r) { add_row(y + r * channels, bias + (r / pixels) * channels, channels); });
}

void add_channel_bias_backward(float* dbias, const float* dy, int64_t batch, int64_t pixels, int64_t channels) {
  profile::Scope profile_scope(profile::Kind::op, "add channel bias bwd");
  // Sums run in double, pixel after pixel: exact enough for any image size, and the same order
  // whatever the thread count.
  const int64_t blocks = (channels + kChannelBlock - 1) / kChannelBlock;
  const int64_t tasks = batch * blocks;
  parallel_for(tasks, batch * pixels * channels >= kParallelGrain, [&](int64_t task) {
    const int64_t n = task / blocks;
    const int64_t c0 = (task % blocks) * kChannelBlock;
    const int64_t width = std::min(kChannelBlock, channels - c0);
    double acc[kChannelBlock];
    std::fill(acc, acc + width, 0.0);
    const float* src = dy + n * pixels * channels + c0;
    for (int64_t p = 0; p < pixels; ++p, src += channels)
      for (int64_t c = 0; c < width; ++c) acc[c] += src[c];
    float* dst = dbias + n * channels + c0;
    for (int64_t c = 0; c < width; ++c) dst[c] = static_cast<float>(acc[c]);
  });
}

}  // namespace ddpm::cpu
