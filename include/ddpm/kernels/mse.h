// Mean squared error, the DDPM training loss L_simple (mean over every element of the batch).
#pragma once

#include <cstdint>

namespace ddpm::cpu {

// mean((prediction - target)^2) over n > 0 values, accumulated in double; the result does not
// depend on the thread count. Throws std::invalid_argument when n <= 0.
double mse_forward(const float* prediction, const float* target, int64_t n);

// dprediction = scale * 2 (prediction - target) / n, where scale is dL/d(mse) (1 when the MSE is
// the whole loss; a loss-scaling factor otherwise). dprediction may alias prediction or target.
// The gradient with respect to target is -dprediction (not needed for noise targets).
void mse_backward(float* dprediction, const float* prediction, const float* target, int64_t n, float scale = 1.0f);

}  // namespace ddpm::cpu
