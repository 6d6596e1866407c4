// Global average pooling over pixels (the classifier's last spatial reduction), NHWC.
#pragma once

#include <cstdint>

namespace ddpm::cpu {

// y[b, c] = mean over p of x[b, p, c]; x: [batch, pixels, channels], y: [batch, channels].
// Sums in fp32 over pixels, then one multiply by 1 / pixels. Throws std::invalid_argument for a
// non-positive dimension.
void global_avg_pool_forward(float* y, const float* x, int64_t batch, int64_t pixels, int64_t channels);

// dx[b, p, c] = dy[b, c] / pixels (overwritten).
void global_avg_pool_backward(float* dx, const float* dy, int64_t batch, int64_t pixels, int64_t channels);

}  // namespace ddpm::cpu
