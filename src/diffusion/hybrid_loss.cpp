#include "ddpm/diffusion/hybrid_loss.h"

#include <stdexcept>

#include "ddpm/diffusion/likelihood.h"
#include "diffusion/per_item.h"

namespace ddpm {

namespace {
constexpr double kLn2 = 0.69314718055994530942;
}

void split_eps_variance(const float* out, float* eps, float* v, int64_t pixels, int64_t channels) {
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t c = 0; c < channels; ++c) {
      eps[p * channels + c] = out[p * 2 * channels + c];
      v[p * channels + c] = out[p * 2 * channels + channels + c];
    }
}

void join_eps_variance(float* out, const float* eps, const float* v, int64_t pixels, int64_t channels) {
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t c = 0; c < channels; ++c) {
      out[p * 2 * channels + c] = eps[p * channels + c];
      out[p * 2 * channels + channels + c] = v[p * channels + c];
    }
}

HybridLoss hybrid_loss(const float* x0, const float* x_t, const float* noise, const float* eps, const float* v,
                       const int64_t* t, int64_t batch, int64_t per_item, const NoiseSchedule& schedule,
                       double vlb_weight, float* d_eps, float* d_v) {
  diffusion_detail::check_sizes(batch, per_item, "hybrid_loss");
  diffusion_detail::check_timesteps(t, batch, schedule, "hybrid_loss");
  if (batch == 0 || per_item == 0) throw std::invalid_argument("hybrid_loss: empty batch");
  if (!(vlb_weight >= 0)) throw std::invalid_argument("hybrid_loss: the L_vlb weight must be >= 0");
  const int64_t n = batch * per_item;
  const double T = static_cast<double>(schedule.num_timesteps());
  HybridLoss loss;
  double sq_sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double diff = static_cast<double>(eps[i]) - static_cast<double>(noise[i]);
    sq_sum += diff * diff;
    d_eps[i] = static_cast<float>(2.0 * diff / static_cast<double>(n));
  }
  loss.simple = sq_sum / static_cast<double>(n);

  // d total / d L_t(value) for one value: weight · T / batch / per_item / ln 2.
  const double value_scale = vlb_weight * T / static_cast<double>(batch) / static_cast<double>(per_item) / kLn2;
  double vlb_sum = 0;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t i = t[b];
    const auto s = static_cast<size_t>(i);
    const double recip = schedule.sqrt_recip_alphas_cumprod()[s], recipm1 = schedule.sqrt_recipm1_alphas_cumprod()[s];
    const double d_log_variance_d_v = 0.5 * (schedule.log_betas()[s] - schedule.posterior_log_variance_clipped()[s]);
    double item_nats = 0;
    for (int64_t d = b * per_item; d < (b + 1) * per_item; ++d) {
      const double x0_hat = recip * static_cast<double>(x_t[d]) - recipm1 * static_cast<double>(eps[d]);
      double d_log_variance = 0;
      item_nats += reverse_step_nats(schedule, i, x0[d], x_t[d], x0_hat, schedule.learned_log_variance(i, v[d]),
                                     &d_log_variance);
      d_v[d] = static_cast<float>(value_scale * d_log_variance * d_log_variance_d_v);
    }
    vlb_sum += item_nats / static_cast<double>(per_item) / kLn2;
  }
  loss.vlb = vlb_sum / static_cast<double>(batch);
  loss.total = loss.simple + vlb_weight * T * loss.vlb;
  return loss;
}

}  // namespace ddpm
