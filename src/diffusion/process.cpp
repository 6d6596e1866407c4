// The forward process and its posterior: per-item float64 coefficients applied elementwise (in
// float64, so that x̂0 at large t, sqrt(1/ᾱ) ≈ 157 times a difference of float32 values, is not
// also burdened with float32 rounding of the products).
#include "ddpm/diffusion/process.h"

#include <stdexcept>
#include <string>

#include "diffusion/per_item.h"

namespace ddpm {

using diffusion_detail::check_sizes;
using diffusion_detail::check_timesteps;
using diffusion_detail::for_each_item_chunk;

namespace {

// out = ca[t_b] · a + cb[t_b] · b per item: the shape of all three maps in this file.
void combine(float* out, const double* ca, const float* a, const double* cb, const float* b, const int64_t* t,
             int64_t batch, int64_t per_item) {
  for_each_item_chunk(batch, per_item, [&](int64_t item, int64_t begin, int64_t end) {
    const double wa = ca[t[item]], wb = cb[t[item]];
    const int64_t base = item * per_item;
    for (int64_t i = base + begin; i < base + end; ++i)
      out[i] = static_cast<float>(wa * static_cast<double>(a[i]) + wb * static_cast<double>(b[i]));
  });
}

}  // namespace

void q_sample(float* x_t, const float* x0, const float* noise, const int64_t* t, int64_t batch, int64_t per_item,
              const NoiseSchedule& schedule) {
  check_sizes(batch, per_item, "q_sample");
  check_timesteps(t, batch, schedule, "q_sample");
  combine(x_t, schedule.sqrt_alphas_cumprod().data(), x0, schedule.sqrt_one_minus_alphas_cumprod().data(), noise, t,
          batch, per_item);
}

void q_posterior_mean_variance(float* mean, double* variance, double* log_variance, const float* x0,
                               const float* x_t, const int64_t* t, int64_t batch, int64_t per_item,
                               const NoiseSchedule& schedule) {
  check_sizes(batch, per_item, "q_posterior_mean_variance");
  check_timesteps(t, batch, schedule, "q_posterior_mean_variance");
  combine(mean, schedule.posterior_mean_coef1().data(), x0, schedule.posterior_mean_coef2().data(), x_t, t, batch,
          per_item);
  for (int64_t b = 0; b < batch; ++b) {
    const auto s = static_cast<size_t>(t[b]);
    if (variance) variance[b] = schedule.posterior_variance()[s];
    if (log_variance) log_variance[b] = schedule.posterior_log_variance_clipped()[s];
  }
}

void predict_x0_from_eps(float* x0, const float* x_t, const float* eps, const int64_t* t, int64_t batch,
                         int64_t per_item, const NoiseSchedule& schedule) {
  check_sizes(batch, per_item, "predict_x0_from_eps");
  check_timesteps(t, batch, schedule, "predict_x0_from_eps");
  const auto& m1 = schedule.sqrt_recipm1_alphas_cumprod();
  for_each_item_chunk(batch, per_item, [&](int64_t item, int64_t begin, int64_t end) {
    const double wa = schedule.sqrt_recip_alphas_cumprod()[static_cast<size_t>(t[item])];
    const double wb = m1[static_cast<size_t>(t[item])];
    const int64_t base = item * per_item;
    for (int64_t i = base + begin; i < base + end; ++i)
      x0[i] = static_cast<float>(wa * static_cast<double>(x_t[i]) - wb * static_cast<double>(eps[i]));
  });
}

void draw_training_batch(float* x_t, float* noise, int64_t* t, const float* x0, int64_t batch, int64_t per_item,
                         const NoiseSchedule& schedule, NoiseRng& rng) {
  check_sizes(batch, per_item, "draw_training_batch");
  rng.fill_uniform_int(t, batch, schedule.num_timesteps());
  rng.fill_normal(noise, batch * per_item);
  q_sample(x_t, x0, noise, t, batch, per_item, schedule);
}

void draw_training_shard(float* x_t, float* noise, int64_t* t, const float* x0, int64_t batch, int64_t first,
                         int64_t count, int64_t per_item, const NoiseSchedule& schedule, NoiseRng& rng) {
  check_sizes(batch, per_item, "draw_training_shard");
  if (first < 0 || count < 1 || first + count > batch)
    throw std::invalid_argument("draw_training_shard: items [" + std::to_string(first) + ", " +
                                std::to_string(first + count) + ") of a batch of " + std::to_string(batch));
  rng.fill_uniform_int(t, batch, schedule.num_timesteps());
  rng.fill_normal_part(noise, batch * per_item, first * per_item, count * per_item);
  q_sample(x_t, x0, noise, t + first, count, per_item, schedule);
}

}  // namespace ddpm
