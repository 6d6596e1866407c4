// Nearest-neighbour upsampling by 2 on NHWC activations (diffusers Upsample2D before its conv):
// out(y, x) = in(floor(y / 2), floor(x / 2)).
#pragma once

#include <cstdint>

namespace ddpm::cpu {

// x: [batch, height, width, channels] -> y: [batch, 2*height, 2*width, channels].
void upsample_nearest2x_forward(float* y, const float* x, int64_t batch, int64_t height, int64_t width,
                                int64_t channels);
// dx[b,h,w,c] = sum of dy over its 4 children (2h+i, 2w+j); dx overwritten. Sizes are those of x.
void upsample_nearest2x_backward(float* dx, const float* dy, int64_t batch, int64_t height, int64_t width,
                                 int64_t channels);

}  // namespace ddpm::cpu
