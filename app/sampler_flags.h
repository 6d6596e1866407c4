// The sampler flags that `ddpm sample` and `ddpm eval fd` share, and how they combine with a
// model's scheduler config (which supplies the defaults, as diffusers' schedulers read it).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "ddpm/diffusion/sampler.h"
#include "ddpm/io/model_config.h"

namespace ddpm::app {

struct SamplerFlags {
  std::string sampler = "ddpm", spacing;
  int64_t steps = 0;
  double eta = 0.0;
  bool no_clip = false;
  bool clipped_eps = false;
};

// --sampler, --steps, --eta, --spacing, --no-clip, --clipped-eps.
void add_sampler_flags(CLI::App* cmd, SamplerFlags& flags);

// The options to run: the flags where given; otherwise the scheduler config's timestep_spacing,
// steps_offset, set_alpha_to_one, variance_type and clip_sample. Throws std::invalid_argument
// naming the flag when a value cannot be used (e.g. --eta with a sampler other than ddim, or more
// steps than the model's T).
SamplerOptions sampler_options(const SamplerFlags& flags, const SchedulerConfig& scheduler);

// "dpm-solver++, 20 steps (leading spacing)" and the like, for progress lines and reports.
std::string describe_sampler(const SamplerOptions& options, int64_t num_train_timesteps);

}  // namespace ddpm::app
