// β schedules and the float64 coefficients derived from them, evaluated in the same order as the
// reference NumPy code (HO-REPO, IDDPM-REPO) so that they agree to the last bit or two.
#include "ddpm/diffusion/schedule.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <stdexcept>
#include <string>
#include <utility>

#include "diffusion/per_item.h"

namespace ddpm {

namespace {

std::string fmt(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// np.linspace(start, stop, num): start + i * step, with the last entry set to stop exactly.
std::vector<double> linspace(double start, double stop, int64_t num) {
  std::vector<double> y(static_cast<size_t>(num));
  if (num == 1) {
    y[0] = start;
    return y;
  }
  const double step = (stop - start) / static_cast<double>(num - 1);
  for (int64_t i = 0; i < num; ++i) {
    const volatile double scaled = static_cast<double>(i) * step;  // no fused multiply-add: NumPy rounds twice
    y[static_cast<size_t>(i)] = scaled + start;
  }
  y.back() = stop;
  return y;
}

// IDDPM-REPO betas_for_alpha_bar with alpha_bar(t) = cos((t + 0.008) / 1.008 * pi / 2) ** 2.
std::vector<double> cosine_betas(int64_t num) {
  const auto alpha_bar = [](double t) {
    const double c = std::cos((t + 0.008) / 1.008 * std::numbers::pi / 2);
    return c * c;
  };
  std::vector<double> betas(static_cast<size_t>(num));
  const double n = static_cast<double>(num);
  for (int64_t i = 0; i < num; ++i) {
    const double t1 = static_cast<double>(i) / n, t2 = static_cast<double>(i + 1) / n;
    betas[static_cast<size_t>(i)] = std::min(1.0 - alpha_bar(t2) / alpha_bar(t1), 0.999);
  }
  return betas;
}

}  // namespace

ScheduleKind parse_schedule_kind(const std::string& name) {
  if (name == "linear") return ScheduleKind::linear;
  if (name == "cosine" || name == "squaredcos_cap_v2") return ScheduleKind::cosine;
  throw std::invalid_argument("unknown beta schedule '" + name +
                              "': expected linear or cosine (diffusers: squaredcos_cap_v2)");
}

const char* schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::linear: return "linear";
    case ScheduleKind::cosine: return "cosine";
    case ScheduleKind::respaced: return "respaced";
  }
  return "?";
}

Variance parse_variance(const std::string& name) {
  if (name == "fixed_large" || name == "fixedlarge") return Variance::fixed_large;
  if (name == "fixed_small" || name == "fixedsmall") return Variance::fixed_small;
  if (name == "learned_range") return Variance::learned_range;
  throw std::invalid_argument("unknown variance type '" + name +
                              "': expected fixed_large, fixed_small or learned_range");
}

const char* variance_name(Variance variance) {
  switch (variance) {
    case Variance::fixed_large: return "fixed_large";
    case Variance::fixed_small: return "fixed_small";
    case Variance::learned_range: return "learned_range";
  }
  return "?";
}

NoiseSchedule::NoiseSchedule(ScheduleKind kind, int64_t num_timesteps, double beta_start, double beta_end)
    : kind_(kind), beta_start_(beta_start), beta_end_(beta_end) {
  if (num_timesteps < 1)
    throw std::invalid_argument("noise schedule: the number of timesteps T must be >= 1, got " +
                                std::to_string(num_timesteps));
  if (kind == ScheduleKind::linear) {
    for (const auto& [name, value] : {std::pair{"beta_start", beta_start}, std::pair{"beta_end", beta_end}})
      if (!(value > 0.0 && value < 1.0))
        throw std::invalid_argument(std::string("linear noise schedule: ") + name + " must be in (0, 1), got " +
                                    fmt(value));
    betas_ = linspace(beta_start, beta_end, num_timesteps);
  } else {
    betas_ = cosine_betas(num_timesteps);
  }
  derive_coefficients();
}

NoiseSchedule NoiseSchedule::respaced(const std::vector<int64_t>& kept) const {
  diffusion_detail::check_timestep_list(kept, *this, "respaced schedule");
  NoiseSchedule r;
  r.kind_ = ScheduleKind::respaced;
  r.beta_start_ = beta_start_, r.beta_end_ = beta_end_;
  double last = 1.0;
  for (auto it = kept.rbegin(); it != kept.rend(); ++it) {
    const double ab = alphas_cumprod_[static_cast<size_t>(*it)];
    r.betas_.push_back(1.0 - ab / last);
    last = ab;
  }
  r.derive_coefficients();
  return r;
}

void NoiseSchedule::derive_coefficients() {
  const ScheduleKind kind = kind_;
  const size_t T = betas_.size();
  const auto sized = [T](std::vector<double>& v) { v.assign(T, 0.0); };
  for (auto* v : {&alphas_, &alphas_cumprod_, &alphas_cumprod_prev_, &sqrt_alphas_cumprod_,
                  &sqrt_one_minus_alphas_cumprod_, &sqrt_recip_alphas_cumprod_, &sqrt_recipm1_alphas_cumprod_,
                  &posterior_variance_, &posterior_log_variance_clipped_, &posterior_mean_coef1_,
                  &posterior_mean_coef2_, &large_variance_, &large_log_variance_, &log_betas_})
    sized(*v);

  double cumprod = 1.0;
  for (size_t t = 0; t < T; ++t) {
    const double beta = betas_[t];
    if (!(beta > 0.0 && beta < 1.0))  // a cosine schedule with a huge T can round β to 0
      throw std::invalid_argument("noise schedule (" + std::string(schedule_kind_name(kind)) + ", T=" +
                                  std::to_string(T) + "): beta[" + std::to_string(t) + "] = " + fmt(beta) +
                                  " is outside (0, 1)");
    alphas_[t] = 1.0 - beta;
    alphas_cumprod_prev_[t] = cumprod;
    cumprod *= alphas_[t];
    alphas_cumprod_[t] = cumprod;
  }
  for (size_t t = 0; t < T; ++t) {
    const double ab = alphas_cumprod_[t], ab_prev = alphas_cumprod_prev_[t], beta = betas_[t];
    sqrt_alphas_cumprod_[t] = std::sqrt(ab);
    sqrt_one_minus_alphas_cumprod_[t] = std::sqrt(1.0 - ab);
    sqrt_recip_alphas_cumprod_[t] = std::sqrt(1.0 / ab);
    sqrt_recipm1_alphas_cumprod_[t] = std::sqrt(1.0 / ab - 1.0);
    posterior_variance_[t] = beta * (1.0 - ab_prev) / (1.0 - ab);
    posterior_mean_coef1_[t] = beta * std::sqrt(ab_prev) / (1.0 - ab);
    posterior_mean_coef2_[t] = (1.0 - ab_prev) * std::sqrt(alphas_[t]) / (1.0 - ab);
  }
  // β̃_0 = 0: index 0 borrows index 1's value, in both variance choices (HO-REPO).
  const double index0 = T > 1 ? posterior_variance_[1] : betas_[0];
  for (size_t t = 0; t < T; ++t) {
    posterior_log_variance_clipped_[t] = std::log(t == 0 ? index0 : posterior_variance_[t]);
    large_variance_[t] = t == 0 ? index0 : betas_[t];
    large_log_variance_[t] = std::log(large_variance_[t]);
    log_betas_[t] = std::log(betas_[t]);
  }
}

const std::vector<double>& NoiseSchedule::variance(Variance v) const {
  if (v == Variance::learned_range)
    throw std::invalid_argument("learned_range variance depends on the model's output: use learned_log_variance");
  return v == Variance::fixed_large ? large_variance_ : posterior_variance_;
}

const std::vector<double>& NoiseSchedule::log_variance(Variance v) const {
  if (v == Variance::learned_range)
    throw std::invalid_argument("learned_range variance depends on the model's output: use learned_log_variance");
  return v == Variance::fixed_large ? large_log_variance_ : posterior_log_variance_clipped_;
}

void NoiseSchedule::check_timestep(int64_t t, const char* what) const {
  if (t < 0 || t >= num_timesteps())
    throw std::out_of_range(std::string(what) + ": timestep " + std::to_string(t) + " is outside [0, " +
                            std::to_string(num_timesteps()) + ")");
}

}  // namespace ddpm
