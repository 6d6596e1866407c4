// The DDIM step, its chain, and its inversion.
#include "ddpm/diffusion/ddim_sampler.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "diffusion/per_item.h"

namespace ddpm {

namespace {

void check_alpha(double a, const char* name) {
  if (!(a > 0.0 && a <= 1.0))
    throw std::invalid_argument(std::string("ddim_step: ") + name + " = " + std::to_string(a) + " is outside (0, 1]");
}

void check_chain(const EpsModel& model, int64_t batch, int64_t per_item, const NoiseSchedule& schedule,
                 const std::vector<int64_t>& timesteps, const char* what) {
  diffusion_detail::check_sizes(batch, per_item, what);
  if (!model) throw std::invalid_argument(std::string(what) + ": no model given");
  diffusion_detail::check_timestep_list(timesteps, schedule, what);
}

}  // namespace

double ddim_sigma(double alpha_cumprod_t, double alpha_cumprod_prev, double eta) {
  if (eta == 0.0) return 0.0;  // also for inversion's steps from ᾱ = 1, where the formula is 0/0
  const double variance = (1.0 - alpha_cumprod_prev) / (1.0 - alpha_cumprod_t) * (1.0 - alpha_cumprod_t / alpha_cumprod_prev);
  return eta * std::sqrt(std::max(variance, 0.0));
}

void ddim_step(float* x_prev, const float* x_t, const float* eps, double alpha_cumprod_t, double alpha_cumprod_prev,
               const float* z, int64_t n, const DdimOptions& options) {
  diffusion_detail::check_sizes(1, n, "ddim_step");
  check_alpha(alpha_cumprod_t, "alpha_cumprod_t");
  check_alpha(alpha_cumprod_prev, "alpha_cumprod_prev");
  if (!(options.eta >= 0.0)) throw std::invalid_argument("ddim_step: eta must be >= 0, got " + std::to_string(options.eta));
  const double sigma = ddim_sigma(alpha_cumprod_t, alpha_cumprod_prev, options.eta);
  if (sigma > 0 && z == nullptr && n > 0) throw std::invalid_argument("ddim_step: noise z is null but sigma > 0");
  const double sa = std::sqrt(alpha_cumprod_t), s1a = std::sqrt(1.0 - alpha_cumprod_t);
  const double sa_prev = std::sqrt(alpha_cumprod_prev);
  const double direction = std::sqrt(std::max(1.0 - alpha_cumprod_prev - sigma * sigma, 0.0));
  const double lo = options.clip_x0 ? -1.0 : -HUGE_VAL, hi = options.clip_x0 ? 1.0 : HUGE_VAL;
  const bool rederive = options.clip_x0 && options.eps_from_clipped_x0;
  diffusion_detail::for_each_item_chunk(1, n, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const double xt = x_t[i];
      double e = eps[i];
      const double x0 = std::clamp((xt - s1a * e) / sa, lo, hi);
      if (rederive) e = (xt - sa * x0) / s1a;
      double out = sa_prev * x0 + direction * e;
      if (sigma > 0) out += sigma * static_cast<double>(z[i]);
      x_prev[i] = static_cast<float>(out);
    }
  });
}

void sample_ddim(const EpsModel& model, float* x, int64_t batch, int64_t per_item, const NoiseSchedule& schedule,
                 const std::vector<int64_t>& timesteps, const DdimOptions& options, NoiseRng& rng,
                 const SampleProgress& progress) {
  check_chain(model, batch, per_item, schedule, timesteps, "sample_ddim");
  const int64_t n = batch * per_item, K = static_cast<int64_t>(timesteps.size());
  const auto& ab = schedule.alphas_cumprod();
  std::vector<float> eps(static_cast<size_t>(n)), z;
  for (int64_t i = 0; i < K; ++i) {
    const double a_t = ab[static_cast<size_t>(timesteps[static_cast<size_t>(i)])];
    const double a_prev = i + 1 < K ? ab[static_cast<size_t>(timesteps[static_cast<size_t>(i + 1)])]
                                    : (options.final_alpha_one ? 1.0 : ab[0]);
    model(x, timesteps[static_cast<size_t>(i)], eps.data());
    if (ddim_sigma(a_t, a_prev, options.eta) > 0) {
      z.resize(static_cast<size_t>(n));
      rng.fill_normal(z.data(), n);
    }
    ddim_step(x, x, eps.data(), a_t, a_prev, z.empty() ? nullptr : z.data(), n, options);
    if (progress) progress(i + 1, K);
  }
}

void invert_ddim(const EpsModel& model, float* x, int64_t batch, int64_t per_item, const NoiseSchedule& schedule,
                 const std::vector<int64_t>& timesteps, const SampleProgress& progress) {
  check_chain(model, batch, per_item, schedule, timesteps, "invert_ddim");
  const int64_t n = batch * per_item, K = static_cast<int64_t>(timesteps.size());
  std::vector<float> eps(static_cast<size_t>(n));
  double a_from = 1.0;
  for (int64_t i = 0; i < K; ++i) {
    const int64_t t = timesteps[static_cast<size_t>(K - 1 - i)];
    const double a_to = schedule.alphas_cumprod()[static_cast<size_t>(t)];
    model(x, t, eps.data());
    // From ᾱ = 1 there is no noise to remove: x̂0 = x, and the step is q's mean plus ε.
    ddim_step(x, x, eps.data(), a_from, a_to, nullptr, n, DdimOptions{});
    a_from = a_to;
    if (progress) progress(i + 1, K);
  }
}

}  // namespace ddpm
