// The forward (noising) process q(x_t | x_0), its posterior q(x_{t−1} | x_t, x_0), the inversion
// x̂_0(x_t, ε), and the L_simple training draw. Arrays are float32, [batch, per_item] (per_item =
// the elements of one image, any layout); t holds one code timestep (0..T-1) per batch item. The
// arithmetic runs in float64 with the schedule's float64 coefficients, rounded once on store.
#pragma once

#include <cstdint>

#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/diffusion/schedule.h"

namespace ddpm {

// x_t = sqrt(ᾱ_t) x0 + sqrt(1 − ᾱ_t) noise (diffusers add_noise). x_t may alias x0 or noise.
// Throws std::out_of_range for a t outside [0, T), std::invalid_argument for negative sizes.
void q_sample(float* x_t, const float* x0, const float* noise, const int64_t* t, int64_t batch, int64_t per_item,
              const NoiseSchedule& schedule);

// Mean of q(x_{t−1} | x_t, x0) = coef1_t x0 + coef2_t x_t into mean (may alias x0 or x_t); when
// not null, variance[b] = β̃_t and log_variance[b] = the clipped log β̃_t of item b.
void q_posterior_mean_variance(float* mean, double* variance, double* log_variance, const float* x0,
                               const float* x_t, const int64_t* t, int64_t batch, int64_t per_item,
                               const NoiseSchedule& schedule);

// x̂0 = sqrt(1/ᾱ_t) x_t − sqrt(1/ᾱ_t − 1) eps: the x0 whose noising with eps gives x_t. x0 may
// alias x_t or eps.
void predict_x0_from_eps(float* x0, const float* x_t, const float* eps, const int64_t* t, int64_t batch,
                         int64_t per_item, const NoiseSchedule& schedule);

// One L_simple training draw (paper Alg. 1): t[b] uniform on {0..T−1} for every item (in item
// order), then noise ~ N(0, I) over all batch·per_item values, then x_t = q_sample(x0, noise, t).
// The loss is then mse(model(x_t, t), noise). Both draws come from rng, in that order.
void draw_training_batch(float* x_t, float* noise, int64_t* t, const float* x0, int64_t batch, int64_t per_item,
                         const NoiseSchedule& schedule, NoiseRng& rng);

// A data-parallel worker's part of draw_training_batch: t [batch] for the whole batch, noise and
// x_t [count, per_item] for items [first, first + count) from x0 [count, per_item]; the values are
// those of the whole draw and rng advances as by it.
void draw_training_shard(float* x_t, float* noise, int64_t* t, const float* x0, int64_t batch, int64_t first,
                         int64_t count, int64_t per_item, const NoiseSchedule& schedule, NoiseRng& rng);

}  // namespace ddpm
