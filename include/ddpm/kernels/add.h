// Elementwise add (residual and skip connections) and the per-(image, channel) broadcast add that
// puts the time-embedding projection into a ResNet block's NHWC activations.
#pragma once

#include <cstdint>

namespace ddpm::cpu {

// y = a + b over n values. y may alias a or b. The backward is the identity for both inputs
// (da = dy, db = dy), so there is no add_backward: callers pass dy on, or accumulate it into an
// existing gradient with add_inplace.
void add_forward(float* y, const float* a, const float* b, int64_t n);

// y += x over n values: accumulates the gradient of a tensor that feeds more than one consumer
// (skip connections). x must not partially overlap y.
void add_inplace(float* y, const float* x, int64_t n);

// y[n, p, c] += bias[n, c] in place, for y in NHWC layout [batch, pixels, channels] (pixels = H*W).
void add_channel_bias_forward(float* y, const float* bias, int64_t batch, int64_t pixels, int64_t channels);

// dbias[n, c] = sum over p of dy[n, p, c]; overwrites dbias ([batch, channels]). The gradient with
// respect to y is dy itself (identity). Each sum runs in a fixed order, so the result does not
// depend on the thread count.
void add_channel_bias_backward(float* dbias, const float* dy, int64_t batch, int64_t pixels, int64_t channels);

}  // namespace ddpm::cpu
