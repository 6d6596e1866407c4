// The DDPM ancestral step and the loop that runs it from x_T to x_0.
#include "ddpm/diffusion/ddpm_sampler.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "diffusion/per_item.h"

namespace ddpm {

void ddpm_step(float* x_prev, const float* x_t, const float* eps, int64_t t, const float* z, int64_t n,
               const NoiseSchedule& schedule, Variance variance, bool clip_x0, const float* v) {
  diffusion_detail::check_sizes(1, n, "ddpm_step");
  schedule.check_timestep(t, "ddpm_step");
  const auto s = static_cast<size_t>(t);
  const double recip = schedule.sqrt_recip_alphas_cumprod()[s], recipm1 = schedule.sqrt_recipm1_alphas_cumprod()[s];
  const double c1 = schedule.posterior_mean_coef1()[s], c2 = schedule.posterior_mean_coef2()[s];
  const bool learned = variance == Variance::learned_range;
  const double sigma = t > 0 && !learned ? std::exp(0.5 * schedule.log_variance(variance)[s]) : 0.0;
  if (t > 0 && z == nullptr && n > 0) throw std::invalid_argument("ddpm_step: noise z is null at t = " + std::to_string(t));
  if (t > 0 && learned && v == nullptr && n > 0)
    throw std::invalid_argument("ddpm_step: learned_range variance needs the model's variance output v");
  const double lo = clip_x0 ? -1.0 : -HUGE_VAL, hi = clip_x0 ? 1.0 : HUGE_VAL;
  diffusion_detail::for_each_item_chunk(1, n, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const double xt = x_t[i];
      const double x0 = std::clamp(recip * xt - recipm1 * static_cast<double>(eps[i]), lo, hi);
      double mean = c1 * x0 + c2 * xt;
      if (t > 0) {
        const double sd = learned ? std::exp(0.5 * schedule.learned_log_variance(t, v[i])) : sigma;
        mean += sd * static_cast<double>(z[i]);
      }
      x_prev[i] = static_cast<float>(mean);
    }
  });
}

void sample_ddpm(const EpsModel& model, float* x, int64_t batch, int64_t per_item, const NoiseSchedule& schedule,
                 Variance variance, bool clip_x0, NoiseRng& rng, const SampleProgress& progress) {
  diffusion_detail::check_sizes(batch, per_item, "sample_ddpm");
  if (!model) throw std::invalid_argument("sample_ddpm: no model given");
  const int64_t n = batch * per_item, T = schedule.num_timesteps();
  std::vector<float> eps(static_cast<size_t>(n)), z(static_cast<size_t>(n));
  for (int64_t t = T - 1; t >= 0; --t) {
    model(x, t, eps.data());
    if (t > 0) rng.fill_normal(z.data(), n);
    ddpm_step(x, x, eps.data(), t, z.data(), n, schedule, variance, clip_x0);
    if (progress) progress(T - t, T);
  }
}

void sample_ddpm_respaced(const EpsModel& model, float* x, int64_t batch, int64_t per_item,
                          const NoiseSchedule& schedule, const std::vector<int64_t>& timesteps, Variance variance,
                          bool clip_x0, NoiseRng& rng, const SampleProgress& progress) {
  if (variance == Variance::learned_range)
    throw std::invalid_argument("sample_ddpm_respaced: learned_range variance needs a model that predicts it");
  if (!model) throw std::invalid_argument("sample_ddpm_respaced: no model given");
  const EpsVarianceModel eps_only = [&model](const float* x_t, int64_t t, float* eps, float*) { model(x_t, t, eps); };
  sample_ddpm_respaced(eps_only, x, batch, per_item, schedule, timesteps, variance, clip_x0, rng, progress);
}

void sample_ddpm_respaced(const EpsVarianceModel& model, float* x, int64_t batch, int64_t per_item,
                          const NoiseSchedule& schedule, const std::vector<int64_t>& timesteps, Variance variance,
                          bool clip_x0, NoiseRng& rng, const SampleProgress& progress) {
  diffusion_detail::check_sizes(batch, per_item, "sample_ddpm_respaced");
  if (!model) throw std::invalid_argument("sample_ddpm_respaced: no model given");
  const NoiseSchedule respaced = schedule.respaced(timesteps);
  const int64_t n = batch * per_item, K = static_cast<int64_t>(timesteps.size());
  std::vector<float> eps(static_cast<size_t>(n)), z(static_cast<size_t>(n)), v(static_cast<size_t>(n));
  for (int64_t i = 0; i < K; ++i) {
    const int64_t index = K - 1 - i;
    model(x, timesteps[static_cast<size_t>(i)], eps.data(), v.data());
    if (index > 0) rng.fill_normal(z.data(), n);
    ddpm_step(x, x, eps.data(), index, z.data(), n, respaced, variance, clip_x0, v.data());
    if (progress) progress(i + 1, K);
  }
}

}  // namespace ddpm
