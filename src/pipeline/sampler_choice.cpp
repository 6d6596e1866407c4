#include "ddpm/pipeline/sampler_choice.h"

#include <cstdio>
#include <stdexcept>

#include "ddpm/diffusion/schedule.h"

namespace ddpm {

SamplerOptions sampler_options(const SamplerChoice& flags, const SchedulerConfig& scheduler) {
  SamplerOptions o;
  o.kind = parse_sampler_kind(flags.sampler);
  if (flags.eta != 0.0 && o.kind != SamplerKind::ddim)
    throw std::invalid_argument("--eta " + std::to_string(flags.eta) + " applies to --sampler ddim only");
  if (flags.clipped_eps && o.kind != SamplerKind::ddim)
    throw std::invalid_argument("--clipped-eps applies to --sampler ddim only");
  o.eps_from_clipped_x0 = flags.clipped_eps;
  o.steps = flags.steps > 0 ? flags.steps : (o.kind == SamplerKind::ddpm ? 0 : 50);
  if (o.steps > scheduler.num_train_timesteps)
    throw std::invalid_argument("--steps " + std::to_string(o.steps) + ": the model was trained with T = " +
                                std::to_string(scheduler.num_train_timesteps) + " timesteps; use at most that");
  o.spacing = parse_spacing(flags.spacing.empty() ? scheduler.timestep_spacing : flags.spacing);
  o.steps_offset = o.spacing == Spacing::leading ? scheduler.steps_offset : 0;
  o.clip_x0 = scheduler.clip_sample && !flags.no_clip;
  o.variance = parse_variance(scheduler.variance_type);
  o.eta = flags.eta;
  o.final_alpha_one = scheduler.set_alpha_to_one;
  return o;
}

std::string describe_sampler(const SamplerOptions& o, int64_t num_train_timesteps) {
  const int64_t steps = o.steps > 0 ? o.steps : num_train_timesteps;
  std::string s = std::string(sampler_kind_name(o.kind)) + ", " + std::to_string(steps) + " steps";
  if (steps < num_train_timesteps) s += " (" + std::string(spacing_name(o.spacing)) + " spacing)";
  if (o.kind == SamplerKind::ddim) {
    char eta[32];
    std::snprintf(eta, sizeof eta, ", eta %g", o.eta);
    s += eta;
    if (o.eps_from_clipped_x0) s += ", eps from clipped x0";
  }
  return s;
}

}  // namespace ddpm
