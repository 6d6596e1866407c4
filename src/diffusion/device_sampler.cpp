// The DDPM sampler's loop on the device: per step one model call, one Philox fill and one update
// kernel, all queued on the backend's stream; the host only computes the step's coefficients.
#include "ddpm/diffusion/device_sampler.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "ddpm/kernels/cuda/runtime.h"
#include "diffusion/per_item.h"

#ifdef DDPM_HAVE_CUDA
#include "ddpm/kernels/cuda/ops.h"
#endif

namespace ddpm {

void ddpm_step_on_device(float* x, const float* eps, float* z, int64_t index, int64_t n, const NoiseSchedule& schedule,
                         Variance variance, bool clip_x0, NoiseRng& rng) {
  if (variance == Variance::learned_range)
    throw std::invalid_argument("ddpm_step_on_device: learned_range variance runs on the host sampler");
  schedule.check_timestep(index, "ddpm_step_on_device");
  cuda::require_device("sampling on --device cuda");
#ifdef DDPM_HAVE_CUDA
  // As ddpm_step: float64 coefficients; noise only when index > 0, drawn where rng stands and
  // advancing it as fill_normal(·, n) does.
  const auto s = static_cast<size_t>(index);
  cuda::DdpmStepCoefficients c{};
  c.recip = schedule.sqrt_recip_alphas_cumprod()[s];
  c.recipm1 = schedule.sqrt_recipm1_alphas_cumprod()[s];
  c.c1 = schedule.posterior_mean_coef1()[s];
  c.c2 = schedule.posterior_mean_coef2()[s];
  c.sigma = index > 0 ? std::exp(0.5 * schedule.log_variance(variance)[s]) : 0.0;
  c.lo = clip_x0 ? -1.0 : -HUGE_VAL;
  c.hi = clip_x0 ? 1.0 : HUGE_VAL;
  if (index > 0) {
    cuda::fill_normal(z, rng.seed(), rng.offset(), n, 0, n);
    rng.set_state(rng.seed(), rng.offset() + static_cast<uint64_t>((n + 3) / 4));
  }
  cuda::ddpm_step(x, x, eps, index > 0 ? z : nullptr, n, c);
#else
  (void)x, (void)eps, (void)z, (void)n, (void)clip_x0, (void)rng;
#endif
}

void sample_ddpm_respaced_on_device(const DeviceEpsModel& model, float* x, int64_t batch, int64_t per_item,
                                    const NoiseSchedule& schedule, const std::vector<int64_t>& timesteps,
                                    Variance variance, bool clip_x0, NoiseRng& rng, const SampleProgress& progress) {
  diffusion_detail::check_sizes(batch, per_item, "sample_ddpm_respaced_on_device");
  if (!model) throw std::invalid_argument("sample_ddpm_respaced_on_device: no model given");
  if (variance == Variance::learned_range)
    throw std::invalid_argument("sample_ddpm_respaced_on_device: learned_range variance runs on the host sampler");
  cuda::require_device("sampling on --device cuda");
  const NoiseSchedule respaced = schedule.respaced(timesteps);
  const int64_t n = batch * per_item, K = static_cast<int64_t>(timesteps.size());
  const size_t bytes = static_cast<size_t>(n) * sizeof(float);
  cuda::DeviceBuffer x_dev(bytes), eps(bytes), z(bytes);
  cuda::upload(x_dev.data(), x, bytes);
  for (int64_t i = 0; i < K; ++i) {
    model(x_dev.as<float>(), timesteps[static_cast<size_t>(i)], eps.as<float>());
    ddpm_step_on_device(x_dev.as<float>(), eps.as<float>(), z.as<float>(), K - 1 - i, n, respaced, variance, clip_x0,
                        rng);
    if (progress) progress(i + 1, K);
  }
  cuda::download(x, x_dev.data(), bytes);
}

}  // namespace ddpm
