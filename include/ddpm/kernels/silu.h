// SiLU (swish): y = x * sigmoid(x), elementwise over n values.
#pragma once

#include <cstdint>

namespace ddpm::cpu {

void silu_forward(float* y, const float* x, int64_t n);
// dx = dy * s * (1 + x * (1 - s)), s = sigmoid(x). dx may alias dy.
void silu_backward(float* dx, const float* dy, const float* x, int64_t n);

}  // namespace ddpm::cpu
