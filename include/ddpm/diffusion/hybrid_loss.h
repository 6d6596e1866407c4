// Improved DDPM's training objective for a model that learns its variance (Nichol & Dhariwal
// 2021; facts §2; IDDPM-REPO training_losses with LEARNED_RANGE and RESCALED_MSE):
//   L_hybrid = L_simple + λ·T·L_t,
// L_simple the mean squared ε error over every value, L_t the variational-bound term of each
// item's timestep in bits/dim (reverse_step_nats averaged over the item's values / ln 2), averaged
// over the batch. The mean of p_θ in L_t is built from a stop-gradient copy of ε, so L_t trains
// only v and L_simple trains only ε. λ = 0.001 with T = 1000 is IDDPM-REPO's T/1000 factor. x̂0 is
// not clipped (clip_denoised=False in IDDPM-REPO's training loss).
//
// The U-Net's output for such a model has 2C channels per pixel (NHWC): ε in the first C and v
// in the last C, as diffusers splits its NCHW output along channels.
#pragma once

#include <cstdint>

#include "ddpm/diffusion/schedule.h"

namespace ddpm {

// out [pixels, 2C] -> eps [pixels, C], v [pixels, C].
void split_eps_variance(const float* out, float* eps, float* v, int64_t pixels, int64_t channels);
// eps, v [pixels, C] -> out [pixels, 2C] (gradients back into the U-Net's output layout).
void join_eps_variance(float* out, const float* eps, const float* v, int64_t pixels, int64_t channels);

struct HybridLoss {
  double simple = 0;  // L_simple
  double vlb = 0;     // mean over items of L_t, in bits/dim (before the λ·T weight)
  double total = 0;   // simple + vlb_weight · T · vlb
};

// The loss of a batch ([batch, per_item] arrays; t[b] in [0, T)) and its gradients with respect to
// the model's outputs: d_eps from L_simple alone, d_v from the weighted L_t. Arithmetic in float64.
// Throws std::invalid_argument for bad sizes or a negative weight, std::out_of_range for a bad t.
HybridLoss hybrid_loss(const float* x0, const float* x_t, const float* noise, const float* eps, const float* v,
                       const int64_t* t, int64_t batch, int64_t per_item, const NoiseSchedule& schedule,
                       double vlb_weight, float* d_eps, float* d_v);

}  // namespace ddpm
