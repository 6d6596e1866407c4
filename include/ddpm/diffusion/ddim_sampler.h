// DDIM (Song, Meng & Ermon 2020, Eq. 12 and 16; facts §3) as diffusers' DDIMScheduler.step, over
// any list of timesteps, and its inversion (an image to the x_T that decodes back to it).
#pragma once

#include <cstdint>
#include <vector>

#include "ddpm/diffusion/ddpm_sampler.h"
#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/diffusion/schedule.h"

namespace ddpm {

struct DdimOptions {
  double eta = 0.0;       // 0: deterministic; 1: σ² = the posterior variance of the step, as DDPM
  bool clip_x0 = false;   // clip x̂0 to [−1, 1]
  // Re-derive ε from the clipped x̂0 before forming the direction term, as the DDIM and IDDPM code
  // do (diffusers: use_clipped_model_output=True; its default, False, keeps the model's ε).
  bool eps_from_clipped_x0 = false;
  // The last step goes to ᾱ = 1, returning x̂0 (diffusers' set_alpha_to_one); false: to ᾱ_0.
  bool final_alpha_one = true;
};

// σ of a step from ᾱ_t to ᾱ_prev: η sqrt((1 − ᾱ_prev)/(1 − ᾱ_t)) sqrt(1 − ᾱ_t/ᾱ_prev) (Eq. 16).
double ddim_sigma(double alpha_cumprod_t, double alpha_cumprod_prev, double eta);

// One step over n values: x̂0 = (x_t − sqrt(1 − ᾱ_t) ε)/sqrt(ᾱ_t) (clipped if asked),
// x_prev = sqrt(ᾱ_prev) x̂0 + sqrt(1 − ᾱ_prev − σ²) ε + σ z with σ = ddim_sigma(ᾱ_t, ᾱ_prev, η).
// z is read only when σ > 0 (and may then not be null). x_prev may alias x_t. Float64 arithmetic.
void ddim_step(float* x_prev, const float* x_t, const float* eps, double alpha_cumprod_t, double alpha_cumprod_prev,
               const float* z, int64_t n, const DdimOptions& options);

// The chain over `timesteps` (strictly decreasing): step i goes from timesteps[i] to
// timesteps[i+1], the last step to the end (ᾱ = 1, or ᾱ_0). x holds x_T on entry and x_0 on
// return. A step with σ > 0 first draws its batch·per_item noise values from rng.
void sample_ddim(const EpsModel& model, float* x, int64_t batch, int64_t per_item, const NoiseSchedule& schedule,
                 const std::vector<int64_t>& timesteps, const DdimOptions& options, NoiseRng& rng,
                 const SampleProgress& progress = {});

// DDIM inversion (η = 0, no clipping): the same deterministic steps in the other direction, from
// x_0 (ᾱ = 1) up through `timesteps` (given strictly decreasing, as to sample_ddim, and visited in
// reverse); step i uses ε = model(x, t_i) at the point it starts from. x holds x_0 on entry and
// the encoding at timesteps[0] on return; sample_ddim with η = 0 over the same timesteps maps it
// back to x_0 up to the discretisation error, which vanishes as the steps shrink.
void invert_ddim(const EpsModel& model, float* x, int64_t batch, int64_t per_item, const NoiseSchedule& schedule,
                 const std::vector<int64_t>& timesteps, const SampleProgress& progress = {});

}  // namespace ddpm
