#include "ddpm/diffusion/likelihood.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "ddpm/diffusion/process.h"

namespace ddpm {

namespace {

constexpr double kLn2 = 0.69314718055994530942;

// The terms that one model call at code timesteps t[] contributes, per image, in bits/dim.
struct TermEvaluator {
  const NoiseSchedule& schedule;
  const BoundOptions& options;
  int64_t per_item;

  // x̂0 of one value, in float64 from the float32 x_t and ε, clipped when asked.
  double predicted_x0(double x_t, double eps, int64_t i) const {
    const double x0 = schedule.sqrt_recip_alphas_cumprod()[i] * x_t - schedule.sqrt_recipm1_alphas_cumprod()[i] * eps;
    return options.clip_x0 ? std::clamp(x0, -1.0, 1.0) : x0;
  }

  // L_i of one image (the KL for i >= 1, the decoder for i = 0) and the mean squared x̂0 error; v is
  // the model's variance output for learned_range (null otherwise).
  void image_term(const float* x0, const float* x_t, const float* eps, const float* v, int64_t i, double* term_bpd,
                  double* x0_sq_error) const {
    const bool learned = options.variance == Variance::learned_range;
    const double fixed_log_variance = learned ? 0.0 : schedule.log_variance(options.variance)[i];
    double sum = 0, sq_error = 0;
    for (int64_t d = 0; d < per_item; ++d) {
      const double x0_hat = predicted_x0(x_t[d], eps[d], i);
      const double error = x0[d] - x0_hat;
      sq_error += error * error;
      const double log_variance = learned ? schedule.learned_log_variance(i, v[d]) : fixed_log_variance;
      sum += reverse_step_nats(schedule, i, x0[d], x_t[d], x0_hat, log_variance);
    }
    *term_bpd = sum / static_cast<double>(per_item) / kLn2;
    *x0_sq_error = sq_error / static_cast<double>(per_item);
  }
};

}  // namespace

double normal_kl(double mean1, double logvar1, double mean2, double logvar2) {
  const double d = mean1 - mean2;
  return 0.5 * (-1.0 + logvar2 - logvar1 + std::exp(logvar1 - logvar2) + d * d * std::exp(-logvar2));
}

double standard_normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

double discretized_gaussian_log_likelihood(double x, double mean, double log_scale) {
  return discretized_gaussian_log_likelihood(x, mean, log_scale, nullptr);
}

double discretized_gaussian_log_likelihood(double x, double mean, double log_scale, double* d_log_scale) {
  const double inv_stdv = std::exp(-log_scale);
  const double half_bin = 1.0 / 255.0;
  const double upper = (x - mean + half_bin) * inv_stdv;
  const double lower = (x - mean - half_bin) * inv_stdv;
  const bool open_below = x < -0.999, open_above = x > 0.999;
  double probability;
  if (open_below) {
    probability = standard_normal_cdf(upper);  // open bin (−∞, x + 1/255]
  } else if (open_above) {
    probability = standard_normal_cdf(-lower);  // open bin [x − 1/255, ∞), as 1 − Φ without cancellation
  } else if (lower > 0) {
    probability = standard_normal_cdf(-lower) - standard_normal_cdf(-upper);  // right tail: no cancellation
  } else {
    probability = standard_normal_cdf(upper) - standard_normal_cdf(lower);
  }
  constexpr double kFloor = 1e-12;
  if (d_log_scale != nullptr) {
    // d(upper)/d(log_scale) = −upper (same for lower), and dΦ(z)/dz = φ(z).
    const auto pdf = [](double z) { return std::exp(-0.5 * z * z) * 0.39894228040143267794; };
    double d_probability = 0;
    if (!open_above) d_probability -= upper * pdf(upper);
    if (!open_below) d_probability += lower * pdf(lower);
    *d_log_scale = probability > kFloor ? d_probability / probability : 0.0;
  }
  return std::log(std::max(probability, kFloor));
}

double reverse_step_nats(const NoiseSchedule& schedule, int64_t i, double x0, double x_t, double x0_hat,
                         double log_variance, double* d_log_variance) {
  const auto s = static_cast<size_t>(i);
  const double coef1 = schedule.posterior_mean_coef1()[s], coef2 = schedule.posterior_mean_coef2()[s];
  if (i > 0) {
    // The two means differ by coef1 (x0 − x̂0).
    const double posterior_log_variance = schedule.posterior_log_variance_clipped()[s];
    const double mean_gap = coef1 * (x0 - x0_hat);
    const double variance_ratio = std::exp(posterior_log_variance - log_variance);
    const double gap_term = mean_gap * mean_gap * std::exp(-log_variance);
    if (d_log_variance != nullptr) *d_log_variance = 0.5 * (1.0 - variance_ratio - gap_term);
    return 0.5 * (-1.0 + log_variance - posterior_log_variance + variance_ratio + gap_term);
  }
  double d_log_scale = 0;
  const double log_p = discretized_gaussian_log_likelihood(x0, coef1 * x0_hat + coef2 * x_t, 0.5 * log_variance,
                                                           d_log_variance ? &d_log_scale : nullptr);
  if (d_log_variance != nullptr) *d_log_variance = -0.5 * d_log_scale;
  return -log_p;
}

double prior_bpd(const float* x0, int64_t per_item, const NoiseSchedule& schedule) {
  const int64_t last = schedule.num_timesteps() - 1;
  const double alpha_bar = schedule.alphas_cumprod()[last];
  const double sqrt_alpha_bar = schedule.sqrt_alphas_cumprod()[last];
  const double log_variance = std::log1p(-alpha_bar);
  double sum = 0;
  for (int64_t d = 0; d < per_item; ++d) sum += normal_kl(sqrt_alpha_bar * x0[d], log_variance, 0, 0);
  return sum / static_cast<double>(per_item) / kLn2;
}

void variational_bound(const BatchEpsModel& model, const float* x0, int64_t batch, int64_t per_item,
                       const NoiseSchedule& schedule, const BoundOptions& options, NoiseRng& rng,
                       ImageBound* bounds, BoundProfile* profile,
                       const std::function<void(int64_t, int64_t)>& progress) {
  if (options.variance == Variance::learned_range)
    throw std::invalid_argument("variational_bound: learned_range variance needs a model that predicts it");
  if (!model) throw std::invalid_argument("variational_bound: no model given");
  const BatchEpsVarianceModel eps_only = [&model](const float* x_t, const int64_t* t, float* eps, float*) {
    model(x_t, t, eps);
  };
  variational_bound(eps_only, x0, batch, per_item, schedule, options, rng, bounds, profile, progress);
}

void variational_bound(const BatchEpsVarianceModel& model, const float* x0, int64_t batch, int64_t per_item,
                       const NoiseSchedule& schedule, const BoundOptions& options, NoiseRng& rng,
                       ImageBound* bounds, BoundProfile* profile,
                       const std::function<void(int64_t, int64_t)>& progress) {
  if (!model) throw std::invalid_argument("variational_bound: no model given");
  if (batch < 1 || per_item < 1)
    throw std::invalid_argument("variational_bound: batch and per_item must be positive");
  const int64_t T = schedule.num_timesteps();
  if (T < 2) throw std::invalid_argument("variational_bound: needs a schedule with at least 2 timesteps");
  const bool exact = options.timesteps == 0;
  if (options.timesteps < 0 || options.timesteps > T - 1)
    throw std::invalid_argument("variational_bound: timesteps must be 0 (all) or in [1, " + std::to_string(T - 1) +
                                "], got " + std::to_string(options.timesteps));
  if (profile != nullptr && exact && profile->term_bpd.empty()) {
    profile->term_bpd.assign(static_cast<size_t>(T), 0.0);
    profile->x0_sq_error.assign(static_cast<size_t>(T), 0.0);
  }

  const size_t n = static_cast<size_t>(batch * per_item);
  std::vector<float> noise(n), x_t(n), eps(n), v(n);
  std::vector<int64_t> t(static_cast<size_t>(batch));
  std::vector<double> weight(static_cast<size_t>(batch));
  const TermEvaluator terms{schedule, options, per_item};
  for (int64_t b = 0; b < batch; ++b) bounds[b] = ImageBound{prior_bpd(x0 + b * per_item, per_item, schedule), 0, 0};

  // One model call at t[]: adds weight[b] · L_{t[b]} to image b's diffusion or decoder term.
  auto evaluate = [&]() {
    rng.fill_normal(noise.data(), static_cast<int64_t>(n));
    q_sample(x_t.data(), x0, noise.data(), t.data(), batch, per_item, schedule);
    model(x_t.data(), t.data(), eps.data(), v.data());
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t offset = b * per_item;
      double term = 0, sq_error = 0;
      terms.image_term(x0 + offset, x_t.data() + offset, eps.data() + offset, v.data() + offset, t[b], &term,
                       &sq_error);
      (t[b] == 0 ? bounds[b].decoder : bounds[b].diffusion) += weight[b] * term;
      if (profile != nullptr && exact) {
        profile->term_bpd[t[b]] += term;
        profile->x0_sq_error[t[b]] += sq_error;
      }
    }
  };

  const int64_t calls = exact ? T : options.timesteps + 1;
  int64_t done = 0;
  if (exact) {
    std::fill(weight.begin(), weight.end(), 1.0);
    for (int64_t i = T - 1; i >= 1; --i) {  // HO-REPO's order: T−1 down to 0
      std::fill(t.begin(), t.end(), i);
      evaluate();
      if (progress) progress(++done, calls);
    }
  } else {
    const int64_t K = options.timesteps;
    for (int64_t k = 0; k < K; ++k) {
      // Stratum k covers code timesteps [1 + k(T−1)/K, 1 + (k+1)(T−1)/K).
      const int64_t first = 1 + k * (T - 1) / K;
      const int64_t size = 1 + (k + 1) * (T - 1) / K - first;
      for (int64_t b = 0; b < batch; ++b) t[b] = first + rng.uniform_int(size);
      std::fill(weight.begin(), weight.end(), static_cast<double>(size));
      evaluate();
      if (progress) progress(++done, calls);
    }
  }
  std::fill(t.begin(), t.end(), 0);
  std::fill(weight.begin(), weight.end(), 1.0);
  evaluate();
  if (progress) progress(++done, calls);
  if (profile != nullptr) profile->images += batch;
}

}  // namespace ddpm
