#include "sampler_flags.h"

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

}  // namespace ddpm::app
