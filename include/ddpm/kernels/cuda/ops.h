// The CUDA backend's own kernels: the same functions, with the same meaning, as the CPU ops of
// include/ddpm/kernels/*.h (namespace ddpm::cpu), over device pointers. Each is queued on the
// backend's stream and returns without waiting, except those that return a number to the host
// (mse_forward, global_grad_norm), which wait for it. Statistics and reductions accumulate in fp32
// or better, as on the CPU. Tests: tests/cuda/ (each op against its CPU twin on random inputs).
#pragma once

#include <cstdint>

#include "ddpm/kernels/group_norm.h"
#include "ddpm/kernels/optimizer.h"

namespace ddpm::cuda {

// ---- elementwise (cpu: silu.h, add.h, upsample.h, concat.h, dropout.h, mse.h) ----
void fill(float* y, float value, int64_t n);  // y[i] = value (e.g. one timestep for a whole batch)
void silu_forward(float* y, const float* x, int64_t n);
void silu_backward(float* dx, const float* dy, const float* x, int64_t n);
void add_forward(float* y, const float* a, const float* b, int64_t n);
void add_inplace(float* y, const float* x, int64_t n);
void add_channel_bias_forward(float* y, const float* bias, int64_t batch, int64_t pixels, int64_t channels);
void add_channel_bias_backward(float* dbias, const float* dy, int64_t batch, int64_t pixels, int64_t channels);
void upsample_nearest2x_forward(float* y, const float* x, int64_t batch, int64_t height, int64_t width,
                                int64_t channels);
void upsample_nearest2x_backward(float* dx, const float* dy, int64_t batch, int64_t height, int64_t width,
                                 int64_t channels);
void concat_channels_forward(float* y, const float* a, int64_t ca, const float* b, int64_t cb, int64_t positions);
void concat_channels_backward(float* da, float* db, const float* dy, int64_t ca, int64_t cb, int64_t positions);
// The CPU's mask exactly (the same splitmix64 hash of (seed, first + i)), so a model trained on
// either device drops the same elements.
void dropout_forward(float* y, const float* x, int64_t n, float p, uint64_t seed, int64_t first = 0);
void dropout_backward(float* dx, const float* dy, int64_t n, float p, uint64_t seed, int64_t first = 0);
double mse_forward(const float* prediction, const float* target, int64_t n);  // waits for the result
void mse_backward(float* dprediction, const float* prediction, const float* target, int64_t n, float scale = 1.0f);

// ---- precision conversions ----
// bf16 values are stored as uint16_t (the top half of the float32), rounded to nearest even, as
// cpu::convert does.
void f32_to_bf16(uint16_t* y, const float* x, int64_t n);
void bf16_to_f32(float* y, const uint16_t* x, int64_t n);

// ---- group norm (+ SiLU), softmax, timestep embedding (cpu: group_norm.h, softmax.h, ...) ----
// PyTorch's semantics as cpu::group_norm_forward; statistics in fp32 per (sample, group) with a
// shifted two-pass variance. No workspace: one block per (sample, group).
void group_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma, const float* beta,
                        const cpu::GroupNormShape& s, bool fuse_silu);
// dx, dgamma, dbeta overwritten. dx may alias dy.
void group_norm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x, const float* mean,
                         const float* rstd, const float* gamma, const float* beta, const cpu::GroupNormShape& s,
                         bool fuse_silu);
void softmax_forward(float* y, const float* x, int64_t rows, int64_t cols, float scale);
void softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols, float scale);
// timesteps: device [batch]; out: device [batch, dim].
void timestep_embedding_forward(float* out, const float* timesteps, int64_t batch, int64_t dim, bool flip_sin_to_cos,
                                float freq_shift, float scale = 1.0f, float max_period = 10000.0f);

// ---- optimizer (cpu: optimizer.h) ----
double global_grad_norm(const float* grad, int64_t n);  // waits for the result
// The whole optimizer step in one pass over the flat buffers, nothing read back to the host:
//   clip: grad *= min(1, max_norm / (norm + 1e-6)) when max_norm > 0, norm = the global L2 norm,
//         computed on the device first (a non-finite norm leaves grad untouched and skips the step:
//         *norm_out, a device float, receives the norm for the caller to check afterwards);
//   Adam (torch.optim.Adam, as cpu::adam_step), then EMA (as cpu::ema_update) when ema != null.
// workspace: device memory of optimizer_workspace_bytes(n).
size_t optimizer_workspace_bytes(int64_t n);
void optimizer_step(float* param, float* grad, float* m, float* v, float* ema, int64_t n, const cpu::AdamConfig& config,
                    int64_t step, float max_norm, float ema_decay, float* norm_out, void* workspace);

// ---- randomness and the sampler update ----
// Values [begin, begin + count) of NoiseRng(seed, offset).fill_normal(·, n): the same Philox4x32-10
// blocks and float64 Box-Muller, so the device draws the CPU's numbers (equal to within one float
// rounding of log/sincos). The caller advances its NoiseRng by (n + 3) / 4 blocks.
void fill_normal(float* out, uint64_t seed, uint64_t offset, int64_t n, int64_t begin, int64_t count);
// The DDPM ancestral step (cpu: ddpm_step with fixed variance), coefficients from the host:
//   x0 = clamp(recip * x_t - recipm1 * eps, lo, hi);  x_prev = c1 * x0 + c2 * x_t + sigma * z
// in float64 per element, as the CPU. z may be null when sigma is 0. x_prev may alias x_t.
struct DdpmStepCoefficients {
  double recip, recipm1, c1, c2, sigma, lo, hi;
};
void ddpm_step(float* x_prev, const float* x_t, const float* eps, const float* z, int64_t n,
               const DdpmStepCoefficients& c);

}  // namespace ddpm::cuda
