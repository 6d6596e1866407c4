// DDPM ancestral sampling (paper Alg. 2 as HO-REPO's p_sample, facts §1.4): predict ε, form x̂0,
// optionally clip it to [−1, 1], take the posterior mean and add σ_t z except at t = 0.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/diffusion/schedule.h"

namespace ddpm {

// The model as a sampler sees it: eps[0 .. batch·per_item) = ε_θ(x_t, t) for the whole batch at
// one code timestep t.
using EpsModel = std::function<void(const float* x_t, int64_t t, float* eps)>;
// A model that also predicts its variance (Variance::learned_range): eps as EpsModel, and
// v[0 .. batch·per_item) in [−1, 1], the interpolation between log β̃_t and log β_t.
using EpsVarianceModel = std::function<void(const float* x_t, int64_t t, float* eps, float* v)>;
// Called after each step with (steps done, steps in all); may be empty.
using SampleProgress = std::function<void(int64_t done, int64_t total)>;

// One reverse step over n values, all at timestep t:
//   x̂0 = sqrt(1/ᾱ_t) x_t − sqrt(1/ᾱ_t − 1) eps, clipped to [−1, 1] when clip_x0,
//   x_prev = coef1_t x̂0 + coef2_t x_t + exp(0.5 · log_variance_t) z   (no noise term at t = 0;
//   z is then not read and may be null).
// With Variance::learned_range, v (the model's variance output, n values) gives the log variance
// of each value (NoiseSchedule::learned_log_variance); otherwise v is not read.
// x_prev may alias x_t. Arithmetic in float64. Throws std::out_of_range unless 0 <= t < T.
void ddpm_step(float* x_prev, const float* x_t, const float* eps, int64_t t, const float* z, int64_t n,
               const NoiseSchedule& schedule, Variance variance, bool clip_x0, const float* v = nullptr);

// The full chain: x holds x_T ~ N(0, I) on entry ([batch, per_item]) and x_0 on return. Visits
// t = T−1, ..., 0, calling model once per step; the noise of step t > 0 is rng.fill_normal of
// batch·per_item values (step 0 draws nothing). Allocates two batch-sized buffers.
void sample_ddpm(const EpsModel& model, float* x, int64_t batch, int64_t per_item, const NoiseSchedule& schedule,
                 Variance variance, bool clip_x0, NoiseRng& rng, const SampleProgress& progress = {});

// Respaced DDPM (IDDPM-REPO respace.py): the same chain over the K timesteps in `timesteps`
// (strictly decreasing, e.g. from sampling_timesteps) with schedule.respaced(timesteps): step i
// runs ddpm_step at index K−1−i of the respaced schedule and calls model with the original
// timestep timesteps[i]. With all T timesteps it is sample_ddpm exactly. Noise as sample_ddpm
// (none at the last step). A learned variance interpolates the respaced schedule's β and β̃, as
// IDDPM-REPO's SpacedDiffusion does: that is what lets it sample in few steps.
void sample_ddpm_respaced(const EpsModel& model, float* x, int64_t batch, int64_t per_item,
                          const NoiseSchedule& schedule, const std::vector<int64_t>& timesteps, Variance variance,
                          bool clip_x0, NoiseRng& rng, const SampleProgress& progress = {});
void sample_ddpm_respaced(const EpsVarianceModel& model, float* x, int64_t batch, int64_t per_item,
                          const NoiseSchedule& schedule, const std::vector<int64_t>& timesteps, Variance variance,
                          bool clip_x0, NoiseRng& rng, const SampleProgress& progress = {});

}  // namespace ddpm
