// Channel concatenation of NHWC activations (the U-Net's skip connections): torch.cat([a, b], dim=1)
// in NCHW is the last dimension in NHWC.
#pragma once

#include <cstdint>

namespace ddpm::cpu {

// y[p, 0:ca] = a[p, :], y[p, ca:ca+cb] = b[p, :] for each of `positions` (B*H*W) pixels.
void concat_channels_forward(float* y, const float* a, int64_t ca, const float* b, int64_t cb, int64_t positions);
// The split: da[p, :] = dy[p, 0:ca], db[p, :] = dy[p, ca:ca+cb]; da and db overwritten.
void concat_channels_backward(float* da, float* db, const float* dy, int64_t ca, int64_t cb, int64_t positions);

}  // namespace ddpm::cpu
