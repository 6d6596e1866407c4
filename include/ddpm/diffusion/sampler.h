// One entry point for every sampler: which one, how many steps, which timesteps. Each sampler
// sees the model only as ε = f(x_t, t) and visits the list that sampling_timesteps gives.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ddpm/diffusion/ddpm_sampler.h"
#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/diffusion/schedule.h"
#include "ddpm/diffusion/timesteps.h"

namespace ddpm {

enum class SamplerKind {
  ddpm,           // ancestral sampling (respaced when steps < T)
  ddim,           // DDIM with η
  dpm_solver_pp,  // DPM-Solver++(2M), deterministic
};

// "ddpm" | "ddim" | "dpm-solver++"; std::invalid_argument naming them otherwise.
SamplerKind parse_sampler_kind(const std::string& name);
const char* sampler_kind_name(SamplerKind kind);

struct SamplerOptions {
  SamplerKind kind = SamplerKind::ddpm;
  int64_t steps = 0;  // model calls; 0: all T
  Spacing spacing = Spacing::leading;
  int64_t steps_offset = 0;  // added to leading timesteps (diffusers' steps_offset)
  bool clip_x0 = true;
  Variance variance = Variance::fixed_large;  // ddpm (learned_range needs an EpsVarianceModel)
  double eta = 0.0;                           // ddim
  bool eps_from_clipped_x0 = false;           // ddim (see DdimOptions)
  bool final_alpha_one = true;                // ddim (see DdimOptions)
  // Image-to-image (SDEdit, diffusers' strength): only the last max(1, floor(K · strength)) of the
  // K timesteps are visited, starting from the input image noised to the first of them.
  double strength = 1.0;
};

// The timesteps the sampler visits, strictly decreasing (steps 0 means all T), cut by strength.
std::vector<int64_t> sampler_timesteps(const NoiseSchedule& schedule, const SamplerOptions& options);

// x holds x_T on entry ([batch, per_item]) and x_0 on return; progress counts model calls.
// Stochastic samplers draw their noise from rng.
void run_sampler(const EpsModel& model, float* x, int64_t batch, int64_t per_item, const NoiseSchedule& schedule,
                 const SamplerOptions& options, NoiseRng& rng, const SampleProgress& progress = {});
// The same for a model that predicts its variance: ddpm uses it when options.variance is
// learned_range; ddim and dpm-solver++ use ε alone (their step variances are their own).
void run_sampler(const EpsVarianceModel& model, float* x, int64_t batch, int64_t per_item,
                 const NoiseSchedule& schedule, const SamplerOptions& options, NoiseRng& rng,
                 const SampleProgress& progress = {});

}  // namespace ddpm
