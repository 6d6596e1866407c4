// The variational bound on the negative log-likelihood of 8-bit images (paper §3.3, Eq. 5;
// HO-REPO's calc_bpd_loop; facts §1.5), in bits per dimension:
//   L = L_T + Σ_{t=2..T} L_{t−1} + L_0,
//   L_T     = KL(q(x_T | x0) ‖ N(0, I))                      (the prior term),
//   L_{t−1} = KL(q(x_{t−1} | x_t, x0) ‖ p_θ(x_{t−1} | x_t))   (Gaussian KLs, x_t ~ q(x_t | x0)),
//   L_0     = −log p_θ(x0 | x1)                               (discretized Gaussian decoder).
// p_θ's mean is the posterior mean at x̂0 (optionally clipped to [−1, 1]); its variance is the
// schedule's fixed variance, or the model's own (Variance::learned_range). Code indices: term i (0..T−1) is L_i, i.e. L_0 is the decoder and
// L_i for i >= 1 is the KL of the step from code timestep i.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/diffusion/schedule.h"

namespace ddpm {

// KL(N(mean1, exp(logvar1)) ‖ N(mean2, exp(logvar2))) in nats, per dimension.
double normal_kl(double mean1, double logvar1, double mean2, double logvar2);

// Standard normal CDF Φ(x), from erfc (accurate in both tails).
double standard_normal_cdf(double x);

// log P(x) for x on the 8-bit grid of [−1, 1] (x = k / 127.5 − 1) under a Gaussian with `mean` and
// log standard deviation `log_scale`, integrated over the pixel's bin [x − 1/255, x + 1/255]; the
// bins of −1 and 1 extend to −∞ and +∞. Uses the exact Φ where HO-REPO uses a tanh approximation
// (differences of order 1e-4 in Φ), and floors the probability at 1e-12 as HO-REPO does.
double discretized_gaussian_log_likelihood(double x, double mean, double log_scale);
// The same, and its derivative with respect to log_scale (0 where the probability is floored).
double discretized_gaussian_log_likelihood(double x, double mean, double log_scale, double* d_log_scale);

// L_i of one value, in nats, for a reverse step from code timestep i whose mean is the posterior
// mean at x0_hat and whose log variance is log_variance: KL(q(x_{i−1} | x_i, x0) ‖ p_θ) for i >= 1,
// −log p_θ(x0 | x_1) (the discretized decoder) for i = 0. When d_log_variance is not null it
// receives the derivative with respect to log_variance (what improved DDPM's L_vlb trains).
double reverse_step_nats(const NoiseSchedule& schedule, int64_t i, double x0, double x_t, double x0_hat,
                         double log_variance, double* d_log_variance = nullptr);

// ε_θ(x_t, t) for a batch where each item has its own code timestep: eps[b·per_item ..] for
// x_t[b·per_item ..] at t[b].
using BatchEpsModel = std::function<void(const float* x_t, const int64_t* t, float* eps)>;
// The same with the model's variance output v (as EpsVarianceModel), for Variance::learned_range.
using BatchEpsVarianceModel = std::function<void(const float* x_t, const int64_t* t, float* eps, float* v)>;

struct BoundOptions {
  Variance variance = Variance::fixed_large;  // learned_range needs a BatchEpsVarianceModel
  bool clip_x0 = true;  // clip x̂0 to [−1, 1] (HO-REPO's evaluation does)
  // 0: every term L_1..L_{T−1} (T − 1 model calls per image, plus one for L_0).
  // K > 0: a stratified estimate of Σ_{i=1..T−1} L_i: the range 1..T−1 is cut into K strata of
  // near-equal size, one i is drawn uniformly in each (independently per image), and its term is
  // weighted by the stratum's size. Unbiased; K model calls plus one for L_0 per image.
  int64_t timesteps = 0;
};

// One image's bound, in bits/dim.
struct ImageBound {
  double prior = 0;      // L_T
  double diffusion = 0;  // Σ_{i=1..T−1} L_i (exact or estimated)
  double decoder = 0;    // L_0
  double total() const { return prior + diffusion + decoder; }
};

// Per-timestep sums over images (exact mode only: both stay empty in estimator mode).
struct BoundProfile {
  std::vector<double> term_bpd;    // [T]: Σ over images of L_i (i = 0: the decoder)
  std::vector<double> x0_sq_error; // [T]: Σ over images of the mean squared error of x̂0 at i
  int64_t images = 0;
};

// Evaluates the bound of `batch` images x0 (values on the 8-bit grid of [−1, 1], [batch, per_item])
// into bounds[0 .. batch). Every model call draws fresh noise for x_t from rng (fill_normal of
// batch·per_item values, then, in estimator mode, one uniform_int per image per stratum, drawn
// before the stratum's noise). When profile is not null, adds to its sums (sized on first use).
// progress(done, total) counts model calls. Throws std::invalid_argument for bad sizes or options.
void variational_bound(const BatchEpsModel& model, const float* x0, int64_t batch, int64_t per_item,
                       const NoiseSchedule& schedule, const BoundOptions& options, NoiseRng& rng,
                       ImageBound* bounds, BoundProfile* profile = nullptr,
                       const std::function<void(int64_t done, int64_t total)>& progress = {});
void variational_bound(const BatchEpsVarianceModel& model, const float* x0, int64_t batch, int64_t per_item,
                       const NoiseSchedule& schedule, const BoundOptions& options, NoiseRng& rng,
                       ImageBound* bounds, BoundProfile* profile = nullptr,
                       const std::function<void(int64_t done, int64_t total)>& progress = {});

// The prior term L_T of one image in bits/dim: KL(N(sqrt(ᾱ_{T−1}) x0, 1 − ᾱ_{T−1}) ‖ N(0, 1)),
// averaged over its dimensions.
double prior_bpd(const float* x0, int64_t per_item, const NoiseSchedule& schedule);

}  // namespace ddpm
