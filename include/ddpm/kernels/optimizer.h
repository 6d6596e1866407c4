// Optimizer kernels over flat parameter/gradient buffers: global gradient norm and clipping
// (torch.nn.utils.clip_grad_norm_), Adam (torch.optim.Adam), and the EMA of the weights.
#pragma once

#include <cstdint>

namespace ddpm::cpu {

// sqrt(sum grad[i]^2), summed in double. The result does not depend on the thread count (fixed
// blocks, fixed order).
double global_grad_norm(const float* grad, int64_t n);

// Returns the norm before clipping. With clip_coef = max_norm / (norm + 1e-6) formed in float32
// as PyTorch does, grad is multiplied by clip_coef when clip_coef < 1 and left alone otherwise.
// A non-finite norm (NaN/inf gradients) is returned as is and grad is left untouched, so the
// caller can see it and stop or skip the step. Throws std::invalid_argument unless max_norm > 0.
float clip_grad_norm(float* grad, int64_t n, float max_norm);

struct AdamConfig {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // L2: weight_decay * param is added to the gradient (not AdamW)
};

// One torch.optim.Adam step (amsgrad off, maximize off) over n parameters, in one pass:
//   g = grad + weight_decay * param
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   param -= (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
// step counts from 1 (the first call after m = v = 0). The bias corrections are computed in
// double, the elementwise update in float32; an element's result does not depend on where it sits
// in the buffer. grad is not modified. Throws std::invalid_argument
// for step < 1 or betas outside [0, 1).
void adam_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamConfig& config,
               int64_t step);

// ema = decay * ema + (1 - decay) * param, evaluated as torch.lerp(ema, param, 1 - decay) does
// (ema + (1 - decay) (param - ema) for decay > 0.5, param - decay (param - ema) otherwise), which
// keeps float32 precision for decay near 1 (0.9999) and gives param exactly for decay 0.
void ema_update(float* ema, const float* param, int64_t n, float decay);

}  // namespace ddpm::cpu
