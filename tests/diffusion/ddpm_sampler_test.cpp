// DDPM ancestral sampling: the step against diffusers' DDPMScheduler.step (written out in NumPy,
// facts §5.2), and whole chains driven by the exact optimal denoiser E[ε | x_t] of a known data
// distribution, which must reproduce that distribution.
#include "ddpm/diffusion/ddpm_sampler.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "test_support.h"

namespace ddpm {
namespace {

TEST(DdpmSampler, StepMatchesDiffusersFormula) {
  int count = 0;
  for (const auto& c : test::reference_cases("diffusion")) {
    if (c.name.rfind("step_", 0) != 0) continue;
    const NoiseSchedule s(c.i64("kind")[0] == 0 ? ScheduleKind::linear : ScheduleKind::cosine, c.i64("T")[0],
                          std::bit_cast<double>(c.i64("beta_start_bits")[0]),
                          std::bit_cast<double>(c.i64("beta_end_bits")[0]));
    const auto x_t = c.f32("x_t"), eps = c.f32("eps"), z = c.f32("z");
    const int64_t t = c.i64("t")[0];
    const auto variance = c.scalar("large") != 0 ? Variance::fixed_large : Variance::fixed_small;
    std::vector<float> x_prev(x_t.size(), test::kNaN);
    ddpm_step(x_prev.data(), x_t.data(), eps.data(), t, z.data(), static_cast<int64_t>(x_t.size()), s, variance,
              c.scalar("clip") != 0);
    // Both sides compute in float64 from the same float32 inputs; ours rounds once on store. The
    // unclipped x̂0 at large t multiplies by sqrt(1/ᾱ) ≈ 157 (linear) or ~3e4 (cosine's last step),
    // so the absolute tolerance allows for the two formulas' different float64 rounding.
    test::expect_close(x_prev, c.f32("x_prev"), 2e-6, 1e-6, c.name);
    ++count;
  }
  EXPECT_EQ(count, 3 * 6 * 4);
}

TEST(DdpmSampler, LastStepAddsNoNoiseAndMayAlias) {
  const NoiseSchedule s(ScheduleKind::linear, 1000);
  const int64_t n = 200000;  // runs in parallel
  auto x = test::random_normal(n, 1);
  const auto eps = test::random_normal(n, 2), z = test::random_normal(n, 3);
  std::vector<float> a(n), b(n);
  ddpm_step(a.data(), x.data(), eps.data(), 0, nullptr, n, s, Variance::fixed_large, false);
  ddpm_step(b.data(), x.data(), eps.data(), 0, z.data(), n, s, Variance::fixed_small, false);
  EXPECT_EQ(a, b);
  // At t = 0 the posterior mean is x̂0 itself.
  for (int64_t i = 0; i < n; i += 997)
    EXPECT_NEAR(a[i], s.sqrt_recip_alphas_cumprod()[0] * x[i] - s.sqrt_recipm1_alphas_cumprod()[0] * eps[i], 1e-5);
  ddpm_step(b.data(), x.data(), eps.data(), 500, z.data(), n, s, Variance::fixed_large, true);
  ddpm_step(x.data(), x.data(), eps.data(), 500, z.data(), n, s, Variance::fixed_large, true);
  EXPECT_EQ(x, b);
  EXPECT_THROW(ddpm_step(b.data(), x.data(), eps.data(), 1000, z.data(), n, s, Variance::fixed_large, true),
               std::out_of_range);
  EXPECT_THROW(ddpm_step(b.data(), x.data(), eps.data(), 5, nullptr, n, s, Variance::fixed_large, true),
               std::invalid_argument);
}

struct Moments {
  double mean, var;
};

Moments moments(const std::vector<float>& x) {
  double m = 0, v = 0;
  for (float a : x) m += a;
  m /= static_cast<double>(x.size());
  for (float a : x) v += (a - m) * (a - m);
  return {m, v / static_cast<double>(x.size() - 1)};
}

// Data x0 ~ N(μ, σ²) per dimension: x_t ~ N(sqrt(ᾱ)μ, D) with D = ᾱσ² + 1 − ᾱ, and
// E[ε | x_t] = sqrt(1 − ᾱ)(x_t − sqrt(ᾱ)μ)/D. Every step is then affine in x_t plus Gaussian noise,
// so the sampler's output is exactly Gaussian with moments propagated below; its distance from
// (μ, σ²) is the sampler's own discretisation error, which the tolerance adds to the statistical one.
TEST(DdpmSampler, ExactDenoiserReproducesGaussian) {
  const double mu = 0.3, sigma2 = 0.25;
  const int64_t batch = 4, per_item = 5000, n = batch * per_item;
  for (const auto& s : {NoiseSchedule(ScheduleKind::linear, 1000), NoiseSchedule(ScheduleKind::cosine, 100)}) {
    const auto model = [&](const float* x_t, int64_t t, float* eps) {
      const double ab = s.alphas_cumprod()[t], k = std::sqrt(1 - ab) / (ab * sigma2 + 1 - ab), c = std::sqrt(ab) * mu;
      for (int64_t i = 0; i < n; ++i) eps[i] = static_cast<float>(k * (x_t[i] - c));
    };
    for (Variance v : {Variance::fixed_large, Variance::fixed_small}) {
      const std::string what = std::string(schedule_kind_name(s.kind())) + " T=" + std::to_string(s.num_timesteps()) +
                               " " + variance_name(v);
      // The exact output moments, starting from x_T ~ N(0, 1).
      double m = 0, var = 1;
      for (int64_t t = s.num_timesteps() - 1; t >= 0; --t) {
        const double ab = s.alphas_cumprod()[t], d = ab * sigma2 + 1 - ab, k = std::sqrt(1 - ab) / d;
        const double r = s.sqrt_recip_alphas_cumprod()[t], r1 = s.sqrt_recipm1_alphas_cumprod()[t];
        const double c1 = s.posterior_mean_coef1()[t], c2 = s.posterior_mean_coef2()[t];
        const double gain = c1 * (r - r1 * k) + c2, shift = c1 * r1 * k * std::sqrt(ab) * mu;
        m = gain * m + shift;
        var = gain * gain * var + (t > 0 ? s.variance(v)[t] : 0.0);
      }
      // The discretisation error of the fixed-variance reverse process is small: the variance is
      // off by 1.5% (linear T=1000) and up to 7% (cosine T=100, fixed_small), the mean by less.
      const double bias_limit = s.num_timesteps() >= 1000 ? 0.02 : 0.08;
      EXPECT_NEAR(m, mu, bias_limit * std::sqrt(sigma2)) << what;
      EXPECT_NEAR(var, sigma2, bias_limit * sigma2) << what;
      RecordProperty(what + " exact output mean/var", std::to_string(m) + " / " + std::to_string(var));

      NoiseRng rng(2024);
      std::vector<float> x(n);
      rng.fill_normal(x.data(), n);
      int64_t calls = 0;
      sample_ddpm(model, x.data(), batch, per_item, s, v, /*clip_x0=*/false, rng,
                  [&](int64_t done, int64_t total) { EXPECT_EQ(done, ++calls) << total; });
      EXPECT_EQ(calls, s.num_timesteps());
      const auto got = moments(x);
      // Standard errors over n = 20000 samples: σ/sqrt(n) = 0.0035 for the mean, σ² sqrt(2/(n−1)) =
      // 0.0025 for the variance; allow 4 of them plus the exact discretisation bias.
      const double se_mean = std::sqrt(sigma2 / n), se_var = sigma2 * std::sqrt(2.0 / (n - 1));
      EXPECT_NEAR(got.mean, mu, 4 * se_mean + std::abs(m - mu)) << what;
      EXPECT_NEAR(got.var, sigma2, 4 * se_var + std::abs(var - sigma2)) << what;
      EXPECT_NEAR(got.mean, m, 4 * se_mean) << what;
      EXPECT_NEAR(got.var, var, 4 * se_var) << what;
    }
  }
}

// Data on two points a = −0.6 (weight 0.7) and b = 0.9 (weight 0.3): E[x0 | x_t] is the posterior
// average of the points, with log-weights log w_i − (x_t − sqrt(ᾱ) p_i)²/(2(1 − ᾱ)), and
// E[ε | x_t] = (x_t − sqrt(ᾱ) E[x0 | x_t]) / sqrt(1 − ᾱ). The samples must land on the points, in
// proportion 0.7 : 0.3 (binomial standard error sqrt(0.21/n) = 0.0032; 4 allowed).
TEST(DdpmSampler, ExactDenoiserReproducesTwoPoints) {
  const double pa = -0.6, pb = 0.9, wb = 0.3;
  const int64_t batch = 2, per_item = 10000, n = batch * per_item;
  const NoiseSchedule s(ScheduleKind::linear, 1000);
  const auto model = [&](const float* x_t, int64_t t, float* eps) {
    const double ab = s.alphas_cumprod()[t], sa = std::sqrt(ab), var = 1 - ab, sd = std::sqrt(var);
    const double prior = std::log(wb / (1 - wb));
    for (int64_t i = 0; i < n; ++i) {
      const double x = x_t[i];
      // P(b | x_t) as a logistic function of the log-odds, stable for any x_t.
      const double logit = prior + ((x - sa * pa) * (x - sa * pa) - (x - sa * pb) * (x - sa * pb)) / (2 * var);
      const double p = 1 / (1 + std::exp(-logit));
      const double x0 = pa + p * (pb - pa);
      eps[i] = static_cast<float>((x - sa * x0) / sd);
    }
  };
  for (auto [v, clip] : {std::pair{Variance::fixed_large, false}, {Variance::fixed_small, true}}) {
    const std::string what = std::string(variance_name(v)) + (clip ? " clip" : " no clip");
    NoiseRng rng(77);
    std::vector<float> x(n);
    rng.fill_normal(x.data(), n);
    sample_ddpm(model, x.data(), batch, per_item, s, v, clip, rng);
    int64_t at_a = 0, at_b = 0;
    for (float a : x) at_a += std::abs(a - pa) < 1e-3, at_b += std::abs(a - pb) < 1e-3;
    // Off-point samples need x_1 within ~(1 − ᾱ_0)/1.5 ≈ 7e-5 of the decision boundary: rare.
    EXPECT_GE(at_a + at_b, n - n / 1000) << what;
    EXPECT_NEAR(at_b / static_cast<double>(n), wb, 4 * std::sqrt(wb * (1 - wb) / n)) << what;
  }
}

TEST(DdpmSampler, ReproducibleFromRngState) {
  const NoiseSchedule s(ScheduleKind::cosine, 50);
  const auto model = [](const float* x_t, int64_t, float* eps) {
    for (int i = 0; i < 300; ++i) eps[i] = 0.5f * x_t[i];
  };
  std::vector<float> a(300), b(300);
  NoiseRng r1(5, 10), r2(5, 10);
  r1.fill_normal(a.data(), 300);
  r2.fill_normal(b.data(), 300);
  sample_ddpm(model, a.data(), 3, 100, s, Variance::fixed_large, true, r1);
  sample_ddpm(model, b.data(), 3, 100, s, Variance::fixed_large, true, r2);
  EXPECT_EQ(a, b);
  EXPECT_EQ(r1.offset(), 10u + 75u * 50u);  // x_T, then 49 noisy steps of 300 values; none at t = 0
  EXPECT_THROW(sample_ddpm(EpsModel{}, a.data(), 3, 100, s, Variance::fixed_large, true, r1), std::invalid_argument);
}

}  // namespace
}  // namespace ddpm
