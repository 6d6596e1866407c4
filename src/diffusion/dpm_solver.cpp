// DPM-Solver++(2M): per-step float64 coefficients, one elementwise pass per step.
#include "ddpm/diffusion/dpm_solver.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "diffusion/per_item.h"

namespace ddpm {

void sample_dpm_solver_pp(const EpsModel& model, float* x, int64_t batch, int64_t per_item,
                          const NoiseSchedule& schedule, const std::vector<int64_t>& timesteps, bool clip_x0,
                          const SampleProgress& progress) {
  diffusion_detail::check_sizes(batch, per_item, "sample_dpm_solver_pp");
  if (!model) throw std::invalid_argument("sample_dpm_solver_pp: no model given");
  diffusion_detail::check_timestep_list(timesteps, schedule, "sample_dpm_solver_pp");
  const int64_t n = batch * per_item, K = static_cast<int64_t>(timesteps.size());
  const auto alpha = [&](int64_t t) { return std::sqrt(schedule.alphas_cumprod()[static_cast<size_t>(t)]); };
  const auto sigma = [&](int64_t t) { return std::sqrt(1.0 - schedule.alphas_cumprod()[static_cast<size_t>(t)]); };
  const double lo = clip_x0 ? -1.0 : -HUGE_VAL, hi = clip_x0 ? 1.0 : HUGE_VAL;
  std::vector<float> eps(static_cast<size_t>(n)), x0_prev(static_cast<size_t>(n));
  double h_prev = 0.0;
  for (int64_t i = 0; i < K; ++i) {
    const int64_t t = timesteps[static_cast<size_t>(i)];
    model(x, t, eps.data());
    const double a_t = alpha(t), s_t = sigma(t), lambda_t = std::log(a_t / s_t);
    const bool last = i + 1 == K;
    // Coefficients of x_s = cx·x_t + cd·D with D = (1 + w)·x̂0_t − w·x̂0_prev.
    double cx = 0.0, cd = 1.0, w = 0.0, h = 0.0;
    if (!last) {
      const int64_t s = timesteps[static_cast<size_t>(i + 1)];
      const double a_s = alpha(s), s_s = sigma(s);
      h = std::log(a_s / s_s) - lambda_t;
      cx = s_s / s_t;
      cd = -a_s * std::expm1(-h);
      if (i > 0) w = 0.5 * h / h_prev;  // 1/(2r), r = h_prev/h
    }
    diffusion_detail::for_each_item_chunk(1, n, [&](int64_t, int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) {
        const double xt = x[j];
        const double x0 = std::clamp((xt - s_t * static_cast<double>(eps[j])) / a_t, lo, hi);
        const double d = (1.0 + w) * x0 - w * static_cast<double>(x0_prev[j]);
        x[j] = static_cast<float>(cx * xt + cd * d);
        x0_prev[j] = static_cast<float>(x0);
      }
    });
    h_prev = h;
    if (progress) progress(i + 1, K);
  }
}

}  // namespace ddpm
