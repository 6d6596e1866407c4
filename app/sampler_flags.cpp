#include "sampler_flags.h"

#include <stdexcept>

#include "ddpm/diffusion/schedule.h"

namespace ddpm::app {

void add_sampler_flags(CLI::App* cmd, SamplerFlags& flags) {
  cmd->add_option("--sampler", flags.sampler, "ddpm | ddim | dpm-solver++")
      ->check(CLI::IsMember({"ddpm", "ddim", "dpm-solver++"}))
      ->capture_default_str();
  cmd->add_option("--steps", flags.steps, "U-Net evaluations per image (default: all T for ddpm, 50 otherwise)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--eta", flags.eta, "DDIM noise: 0 deterministic, 1 as DDPM")->check(CLI::Range(0.0, 1e6));
  cmd->add_option("--spacing", flags.spacing, "leading | trailing | linspace | quadratic (default: the scheduler config's)")
      ->check(CLI::IsMember({"leading", "trailing", "linspace", "quadratic"}));
  cmd->add_flag("--no-clip", flags.no_clip, "do not clip the predicted x0 to [-1, 1]");
  cmd->add_flag("--clipped-eps", flags.clipped_eps,
                "ddim: re-derive eps from the clipped x0 (IDDPM's ddim_sample; diffusers' use_clipped_model_output)");
}

SamplerOptions sampler_options(const SamplerFlags& flags, const SchedulerConfig& scheduler) {
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

}  // namespace ddpm::app
