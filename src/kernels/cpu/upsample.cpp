// Nearest x2 upsampling forward (copies) and backward (sums of 2x2 children), OpenMP-parallel
// over input rows, vectorised along the contiguous channels.
#include "ddpm/kernels/upsample.h"

#include <algorithm>

#include "ddpm/bench/profiler.h"
#include "kernels/cpu/vec_math.h"

namespace ddpm::cpu {

void upsample_nearest2x_forward(float* y, const float* x, int64_t batch, int64_t height, int64_t width,
                                int64_t channels) {
  profile::Scope profile_scope(profile::Kind::op, "upsample fwd");
  const int64_t in_row = width * channels, out_row = 2 * in_row;
  parallel_for(batch * height, batch * height * in_row >= kParallelGrain, [&](int64_t r) {
    const float* xr = x + r * in_row;
    float* y0 = y + 2 * r * out_row;  // output rows 2h and 2h+1 of the same sample are adjacent
    for (int64_t w = 0; w < width; ++w) {
      std::copy_n(xr + w * channels, channels, y0 + 2 * w * channels);
      std::copy_n(xr + w * channels, channels, y0 + (2 * w + 1) * channels);
    }
    std::copy_n(y0, out_row, y0 + out_row);
  });
}

void upsample_nearest2x_backward(float* dx, const float* dy, int64_t batch, int64_t height, int64_t width,
                                 int64_t channels) {
  profile::Scope profile_scope(profile::Kind::op, "upsample bwd");
  const int64_t in_row = width * channels, out_row = 2 * in_row;
  parallel_for(batch * height, batch * height * in_row >= kParallelGrain, [&](int64_t r) {
    float* dxr = dx + r * in_row;
    const float* d0 = dy + 2 * r * out_row;
    const float* d1 = d0 + out_row;
    for (int64_t w = 0; w < width; ++w) {
      const float* a0 = d0 + 2 * w * channels;
      const float* a1 = d1 + 2 * w * channels;
      float* o = dxr + w * channels;
      int64_t c = 0;
      for (; c + kVec <= channels; c += kVec) {
        const VecF top = VecF::load_unaligned(a0 + c) + VecF::load_unaligned(a0 + channels + c);
        const VecF bottom = VecF::load_unaligned(a1 + c) + VecF::load_unaligned(a1 + channels + c);
        (top + bottom).store_unaligned(o + c);
      }
      for (; c < channels; ++c) o[c] = (a0[c] + a0[channels + c]) + (a1[c] + a1[channels + c]);
    }
  });
}

}  // namespace ddpm::cpu
