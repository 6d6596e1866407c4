// Which sampler to run, as a user names it (the flags of `ddpm sample`, the fields of the C API),
// and how that combines with a model's scheduler config (which supplies the defaults, as
// diffusers' schedulers read it).
#pragma once

#include <cstdint>
#include <string>

#include "ddpm/diffusion/sampler.h"
#include "ddpm/io/model_config.h"

namespace ddpm {

struct SamplerChoice {
  std::string sampler = "ddpm", spacing;  // spacing "": the scheduler config's
  int64_t steps = 0;                      // 0: all T for ddpm, 50 otherwise
  double eta = 0.0;
  bool no_clip = false;
  bool clipped_eps = false;
};

// The options to run: the choice where given; otherwise the scheduler config's timestep_spacing,
// steps_offset, set_alpha_to_one, variance_type and clip_sample. Throws std::invalid_argument
// naming the setting (as its command-line flag) when a value cannot be used (e.g. --eta with a
// sampler other than ddim, or more steps than the model's T).
SamplerOptions sampler_options(const SamplerChoice& choice, const SchedulerConfig& scheduler);

// "dpm-solver++, 20 steps (leading spacing)" and the like, for progress lines and reports.
std::string describe_sampler(const SamplerOptions& options, int64_t num_train_timesteps);

}  // namespace ddpm
