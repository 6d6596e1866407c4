// Softmax over the last dimension of a row-major [rows, cols] matrix, with a scale (attention).
#pragma once

#include <cstdint>

namespace ddpm::cpu {

// y[r,:] = softmax(scale * x[r,:]) over cols, computed in fp32 with the row max subtracted.
// y may alias x.
void softmax_forward(float* y, const float* x, int64_t rows, int64_t cols, float scale);
// dx = scale * y * (dy - sum_j(dy*y)); dx may alias dy.
void softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols, float scale);

}  // namespace ddpm::cpu
