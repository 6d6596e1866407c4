// Dispatch from SamplerOptions to the sampler files.
#include "ddpm/diffusion/sampler.h"

#include <algorithm>
#include <stdexcept>

#include "ddpm/diffusion/ddim_sampler.h"
#include "ddpm/diffusion/dpm_solver.h"
#include "diffusion/per_item.h"

namespace ddpm {

SamplerKind parse_sampler_kind(const std::string& name) {
  if (name == "ddpm") return SamplerKind::ddpm;
  if (name == "ddim") return SamplerKind::ddim;
  if (name == "dpm-solver++" || name == "dpmsolver++") return SamplerKind::dpm_solver_pp;
  throw std::invalid_argument("unknown sampler '" + name + "': expected ddpm, ddim or dpm-solver++");
}

const char* sampler_kind_name(SamplerKind kind) {
  switch (kind) {
    case SamplerKind::ddpm: return "ddpm";
    case SamplerKind::ddim: return "ddim";
    case SamplerKind::dpm_solver_pp: return "dpm-solver++";
  }
  return "?";
}

std::vector<int64_t> sampler_timesteps(const NoiseSchedule& schedule, const SamplerOptions& options) {
  const int64_t T = schedule.num_timesteps();
  std::vector<int64_t> timesteps =
      sampling_timesteps(T, options.steps == 0 ? T : options.steps, options.spacing, options.steps_offset);
  if (!(options.strength > 0 && options.strength <= 1))
    throw std::invalid_argument("strength " + std::to_string(options.strength) + " must be in (0, 1]");
  const auto K = static_cast<int64_t>(timesteps.size());
  const int64_t kept = std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(K) * options.strength));
  timesteps.erase(timesteps.begin(), timesteps.begin() + (K - kept));
  return timesteps;
}

void run_sampler(const EpsModel& model, float* x, int64_t batch, int64_t per_item, const NoiseSchedule& schedule,
                 const SamplerOptions& options, NoiseRng& rng, const SampleProgress& progress) {
  const std::vector<int64_t> timesteps = sampler_timesteps(schedule, options);
  switch (options.kind) {
    case SamplerKind::ddpm:
      sample_ddpm_respaced(model, x, batch, per_item, schedule, timesteps, options.variance, options.clip_x0, rng,
                           progress);
      return;
    case SamplerKind::ddim:
      sample_ddim(model, x, batch, per_item, schedule, timesteps,
                  DdimOptions{options.eta, options.clip_x0, options.eps_from_clipped_x0, options.final_alpha_one}, rng,
                  progress);
      return;
    case SamplerKind::dpm_solver_pp:
      sample_dpm_solver_pp(model, x, batch, per_item, schedule, timesteps, options.clip_x0, progress);
      return;
  }
}

void run_sampler(const EpsVarianceModel& model, float* x, int64_t batch, int64_t per_item,
                 const NoiseSchedule& schedule, const SamplerOptions& options, NoiseRng& rng,
                 const SampleProgress& progress) {
  if (!model) throw std::invalid_argument("run_sampler: no model given");
  diffusion_detail::check_sizes(batch, per_item, "run_sampler");
  if (options.kind == SamplerKind::ddpm) {
    sample_ddpm_respaced(model, x, batch, per_item, schedule, sampler_timesteps(schedule, options), options.variance,
                         options.clip_x0, rng, progress);
    return;
  }
  std::vector<float> unused_v(static_cast<size_t>(batch * per_item));
  const EpsModel eps_only = [&](const float* x_t, int64_t t, float* eps) { model(x_t, t, eps, unused_v.data()); };
  run_sampler(eps_only, x, batch, per_item, schedule, options, rng, progress);
}

}  // namespace ddpm
