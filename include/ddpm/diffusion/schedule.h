// The noise schedule of the diffusion process: β_t and every coefficient derived from it, in
// float64 (HO-REPO diffusion_utils_2.py GaussianDiffusion2; facts §1.4, §2). Indices are the
// code's t = 0..T-1 (the paper's t = index + 1).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm {

enum class ScheduleKind {
  linear,  // np.linspace(beta_start, beta_end, T) in float64 (DDPM)
  cosine,  // Nichol & Dhariwal's ᾱ(t) = cos²((t/T + s)/(1 + s)·π/2), s = 0.008, β capped at 0.999
  respaced,  // a subset of another schedule's timesteps (NoiseSchedule::respaced)
};

// The fixed reverse-process variance σ_t² (facts §1.4).
enum class Variance {
  fixed_large,  // σ_t² = β_t ("fixedlarge", diffusers "fixed_large"; DDPM's CIFAR-10 setting)
  fixed_small,  // σ_t² = β̃_t, the posterior variance ("fixedsmall", diffusers "fixed_small")
  // Improved DDPM (facts §2): the model predicts v in [−1, 1] per value (its second C output
  // channels) and log σ² = frac·log β_t + (1 − frac)·log β̃_t (clipped), frac = (v + 1)/2
  // (IDDPM-REPO LEARNED_RANGE, diffusers "learned_range").
  learned_range,
};

// "linear" | "cosine" (also diffusers' name "squaredcos_cap_v2"); throws std::invalid_argument
// naming the accepted values otherwise.
ScheduleKind parse_schedule_kind(const std::string& name);
const char* schedule_kind_name(ScheduleKind kind);
// "fixed_large" | "fixed_small" (also HO-REPO's "fixedlarge" | "fixedsmall") | "learned_range".
Variance parse_variance(const std::string& name);
const char* variance_name(Variance variance);

class NoiseSchedule {
 public:
  // Throws std::invalid_argument unless T >= 1 and, for the linear schedule, 0 < beta_start < 1
  // and 0 < beta_end < 1. The cosine schedule ignores beta_start and beta_end (as diffusers).
  NoiseSchedule(ScheduleKind kind, int64_t num_timesteps, double beta_start = 1e-4, double beta_end = 0.02);

  // The schedule of a K-step chain that visits only `kept` (strictly decreasing, as
  // sampling_timesteps returns them) of this schedule's timesteps: ᾱ'_i = ᾱ_{kept_i}, so
  // β'_i = 1 − ᾱ_{S_i}/ᾱ_{S_{i−1}} with S = kept in ascending order (IDDPM-REPO respace.py, facts
  // §2). Index i of the result is timestep S_i of this one. Throws std::invalid_argument unless
  // kept is non-empty, strictly decreasing and within [0, T).
  NoiseSchedule respaced(const std::vector<int64_t>& kept) const;

  ScheduleKind kind() const { return kind_; }
  int64_t num_timesteps() const { return static_cast<int64_t>(betas_.size()); }  // T
  double beta_start() const { return beta_start_; }
  double beta_end() const { return beta_end_; }

  // Each vector has T entries, indexed by the code's t = 0..T-1.
  const std::vector<double>& betas() const { return betas_; }                                // β_t
  const std::vector<double>& log_betas() const { return log_betas_; }                        // log β_t
  const std::vector<double>& alphas() const { return alphas_; }                              // α_t = 1 − β_t
  const std::vector<double>& alphas_cumprod() const { return alphas_cumprod_; }              // ᾱ_t = Π_{s<=t} α_s
  const std::vector<double>& alphas_cumprod_prev() const { return alphas_cumprod_prev_; }    // ᾱ_{t−1}, 1 at t = 0
  const std::vector<double>& sqrt_alphas_cumprod() const { return sqrt_alphas_cumprod_; }    // sqrt(ᾱ_t)
  const std::vector<double>& sqrt_one_minus_alphas_cumprod() const { return sqrt_one_minus_alphas_cumprod_; }
  const std::vector<double>& sqrt_recip_alphas_cumprod() const { return sqrt_recip_alphas_cumprod_; }      // sqrt(1/ᾱ_t)
  const std::vector<double>& sqrt_recipm1_alphas_cumprod() const { return sqrt_recipm1_alphas_cumprod_; }  // sqrt(1/ᾱ_t − 1)
  // β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t); 0 at t = 0.
  const std::vector<double>& posterior_variance() const { return posterior_variance_; }
  // log β̃_t, with index 0 taking index 1's value (β̃_0 = 0). With T = 1 there is no index 1, and
  // index 0 takes log β_0 instead (only reached by likelihood code; samplers add no noise at t = 0).
  const std::vector<double>& posterior_log_variance_clipped() const { return posterior_log_variance_clipped_; }
  // Posterior mean of q(x_{t−1} | x_t, x_0) = coef1 · x_0 + coef2 · x_t:
  // coef1 = β_t sqrt(ᾱ_{t−1}) / (1 − ᾱ_t), coef2 = (1 − ᾱ_{t−1}) sqrt(α_t) / (1 − ᾱ_t).
  const std::vector<double>& posterior_mean_coef1() const { return posterior_mean_coef1_; }
  const std::vector<double>& posterior_mean_coef2() const { return posterior_mean_coef2_; }

  // The reverse-process variance and its log, as HO-REPO's p_mean_variance:
  //   fixed_large: variance β_t and log β_t, except index 0, where both use β̃_1 ("better decoder
  //                log likelihood"; β_0 with T = 1);
  //   fixed_small: variance β̃_t (0 at index 0) and posterior_log_variance_clipped.
  // learned_range has no table (it depends on the model's output): both throw
  // std::invalid_argument; use learned_log_variance.
  const std::vector<double>& variance(Variance v) const;
  const std::vector<double>& log_variance(Variance v) const;
  // learned_range's log σ² at index t for the model's output v (not clamped: v outside [−1, 1]
  // extrapolates, as in IDDPM-REPO): ((v + 1)/2)·log β_t + ((1 − v)/2)·posterior_log_variance_clipped_t.
  double learned_log_variance(int64_t t, double v) const {
    const auto s = static_cast<size_t>(t);
    const double frac = 0.5 * (v + 1.0);  // d/dv = 0.5 (log β_t − posterior_log_variance_clipped_t)
    return frac * log_betas_[s] + (1.0 - frac) * posterior_log_variance_clipped_[s];
  }

  // Throws std::out_of_range naming `what` unless 0 <= t < T.
  void check_timestep(int64_t t, const char* what) const;

 private:
  NoiseSchedule() = default;
  void derive_coefficients();  // every vector below from betas_

  ScheduleKind kind_ = ScheduleKind::respaced;
  double beta_start_ = 0, beta_end_ = 0;
  std::vector<double> betas_, alphas_, alphas_cumprod_, alphas_cumprod_prev_, sqrt_alphas_cumprod_,
      sqrt_one_minus_alphas_cumprod_, sqrt_recip_alphas_cumprod_, sqrt_recipm1_alphas_cumprod_,
      posterior_variance_, posterior_log_variance_clipped_, posterior_mean_coef1_, posterior_mean_coef2_,
      large_variance_, large_log_variance_, log_betas_;
};

}  // namespace ddpm
