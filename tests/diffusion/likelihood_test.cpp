// The variational bound: each term against an independent computation (numerical integration of
// the Gaussian KL and of the decoder's bins), the prior term's size for the paper's schedule, and
// whole bounds that are known in closed form (a point-mass data distribution with its exact
// denoiser, where every KL reduces to a variance mismatch).
#include "ddpm/diffusion/likelihood.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <vector>

#include "test_support.h"

namespace ddpm {
namespace {

constexpr double kLn2 = std::numbers::ln2;

double gaussian_density(double x, double mean, double variance) {
  return std::exp(-0.5 * (x - mean) * (x - mean) / variance) / std::sqrt(2 * std::numbers::pi * variance);
}

// Composite Simpson rule with n (even) intervals.
template <typename F>
double simpson(F f, double a, double b, int n) {
  const double h = (b - a) / n;
  double sum = f(a) + f(b);
  for (int i = 1; i < n; ++i) sum += f(a + i * h) * (i % 2 == 1 ? 4 : 2);
  return sum * h / 3;
}

TEST(Likelihood, GaussianKlMatchesNumericalIntegral) {
  struct Case { double m1, lv1, m2, lv2; };
  for (const Case c : {Case{0, 0, 0, 0}, Case{0.3, -1.0, -0.2, 0.5}, Case{1.5, std::log(1e-4), 1.49, std::log(2e-4)},
                       Case{-2, 1.2, 0, -0.3}}) {
    const double v1 = std::exp(c.lv1), v2 = std::exp(c.lv2), sd1 = std::sqrt(v1);
    const double integral = simpson(
        [&](double x) {
          const double q = gaussian_density(x, c.m1, v1);
          const double log_ratio = std::log(q) - std::log(gaussian_density(x, c.m2, v2));
          return q * log_ratio;
        },
        c.m1 - 14 * sd1, c.m1 + 14 * sd1, 20000);
    EXPECT_NEAR(normal_kl(c.m1, c.lv1, c.m2, c.lv2), integral, 1e-9 + 1e-7 * std::abs(integral))
        << c.m1 << " " << c.lv1 << " " << c.m2 << " " << c.lv2;
  }
  EXPECT_EQ(normal_kl(0.25, -0.7, 0.25, -0.7), 0.0);
}

TEST(Likelihood, DecoderBinsMatchNumericalIntegralAndSumToOne) {
  for (const double sd : {0.002, 0.01, 0.1, 0.7}) {
    for (const double mean : {-1.02, -0.5, 0.0031, 0.9, 1.3}) {
      double total = 0;
      for (int k = 0; k <= 255; ++k) {
        const double x = k / 127.5 - 1;
        const double p = std::exp(discretized_gaussian_log_likelihood(x, mean, std::log(sd)));
        total += p;
        if (k % 17 != 0 && k != 255) continue;  // integrate a sample of bins, edges included
        const double lo = k == 0 ? mean - 12 * sd - 1 : x - 1 / 255.0;
        const double hi = k == 255 ? mean + 12 * sd + 1 : x + 1 / 255.0;
        const double integral = simpson([&](double v) { return gaussian_density(v, mean, sd * sd); }, lo, hi, 4000);
        // Below the 1e-12 floor the decoder reports the floor.
        EXPECT_NEAR(p, std::max(integral, 1e-12), 1e-9 + 1e-6 * integral) << "sd " << sd << " mean " << mean << " k " << k;
      }
      EXPECT_NEAR(total, 1.0, 1e-9) << "sd " << sd << " mean " << mean;
    }
  }
}

TEST(Likelihood, DecoderRightTailKeepsPrecision) {
  // 6.5 standard deviations out on the right, P ≈ 4e-11: Φ(upper) − Φ(lower) would lose ~6 digits
  // to cancellation near 1; the bin probability from the upper tail keeps them.
  const double x = 138 / 127.5 - 1;  // a grid value near 0.08
  const double sd = (x - 1 / 255.0) / 6.5, mean = 0.0;
  const double lower = (x - mean - 1 / 255.0) / sd, upper = (x - mean + 1 / 255.0) / sd;
  const double expected = std::log(0.5 * std::erfc(lower / std::sqrt(2.0)) - 0.5 * std::erfc(upper / std::sqrt(2.0)));
  EXPECT_GT(expected, std::log(1e-11));
  EXPECT_NEAR(discretized_gaussian_log_likelihood(x, mean, std::log(sd)), expected, 1e-9);
}

TEST(Likelihood, PriorTermOfThePaperScheduleIsAboutTenToTheMinusFive) {
  const NoiseSchedule s(ScheduleKind::linear, 1000, 1e-4, 0.02);
  // Data spread uniformly over the 8-bit grid (E[x0²] ≈ 1/3).
  std::vector<float> x0(256);
  for (int k = 0; k < 256; ++k) x0[k] = static_cast<float>(k / 127.5 - 1);
  const double prior = prior_bpd(x0.data(), 256, s);
  EXPECT_GT(prior, 5e-6);
  EXPECT_LT(prior, 2e-5);  // paper §4: L_T ≈ 1e-5 bits/dim
  // Closed form per value: 0.5 (−1 − log(1 − ᾱ) + (1 − ᾱ) + ᾱ x0²) nats.
  const double a = s.alphas_cumprod()[999];
  double expected = 0;
  for (float v : x0) expected += 0.5 * (-1 - std::log1p(-a) + (1 - a) + a * v * v);
  EXPECT_NEAR(prior, expected / 256 / kLn2, 1e-15);
}

// A data distribution that is a single point c: the exact denoiser is ε = (x_t − sqrt(ᾱ_t) c) /
// sqrt(1 − ᾱ_t), so x̂0 = c at every step and each KL is the variance mismatch alone.
struct PointMass {
  std::vector<float> c;  // one image
  const NoiseSchedule& s;
  double scale = 1.0;    // 1: exact; otherwise a deliberately wrong model
  int64_t batch = 1;
  BatchEpsModel model() const {
    return [this](const float* x_t, const int64_t* t, float* eps) {
      const int64_t n = static_cast<int64_t>(c.size());
      for (int64_t b = 0; b < batch; ++b) {
        const double sa = s.sqrt_alphas_cumprod()[t[b]], sm = s.sqrt_one_minus_alphas_cumprod()[t[b]];
        for (int64_t d = 0; d < n; ++d)
          eps[b * n + d] = static_cast<float>(scale * (x_t[b * n + d] - sa * c[d]) / sm);
      }
    };
  }
};

std::vector<float> grid_values(int64_t n, uint64_t seed, bool with_edges) {
  std::vector<float> v(static_cast<size_t>(n));
  const auto u = test::random_uniform(static_cast<size_t>(n), seed, 0.0f, 1.0f);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(std::floor(u[i] * 254.0 + 1) / 127.5 - 1);
  if (with_edges) {
    v[0] = -1;
    v[1] = 1;
  }
  return v;
}

double closed_form_decoder_bpd(const std::vector<float>& c, double sd) {
  double sum = 0;
  for (float x : c) {
    const double half = 1 / 255.0 / sd;
    const double p = (x == -1.0f || x == 1.0f) ? standard_normal_cdf(half) : standard_normal_cdf(half) - standard_normal_cdf(-half);
    sum -= std::log(p);
  }
  return sum / static_cast<double>(c.size()) / kLn2;
}

TEST(Likelihood, PointMassBoundEqualsItsClosedForm) {
  const NoiseSchedule s(ScheduleKind::linear, 1000, 1e-4, 0.02);
  const int64_t per_item = 24, batch = 3;
  PointMass data{grid_values(per_item, 5, true), s, 1.0, batch};
  std::vector<float> x0;
  for (int64_t b = 0; b < batch; ++b) x0.insert(x0.end(), data.c.begin(), data.c.end());
  const double prior = prior_bpd(data.c.data(), per_item, s);
  const double sd = std::exp(0.5 * s.posterior_log_variance_clipped()[1]);  // both variances use β̃_1 at index 0

  for (const Variance variance : {Variance::fixed_small, Variance::fixed_large}) {
    double kl_sum = 0;  // Σ_{i>=1} of the variance mismatch, bits/dim
    for (int64_t i = 1; i < 1000; ++i)
      kl_sum += normal_kl(0, s.posterior_log_variance_clipped()[i], 0, s.log_variance(variance)[i]) / kLn2;
    BoundOptions options;
    options.variance = variance;
    NoiseRng rng(3);
    std::vector<ImageBound> bounds(batch);
    BoundProfile profile;
    int64_t calls = 0;
    variational_bound(data.model(), x0.data(), batch, per_item, s, options, rng, bounds.data(), &profile,
                      [&](int64_t done, int64_t total) { calls = done; EXPECT_EQ(total, 1000); });
    EXPECT_EQ(calls, 1000);
    for (const ImageBound& b : bounds) {
      EXPECT_NEAR(b.prior, prior, 1e-15);
      // float32 x_t and ε leave x̂0 off c by ~1e-7·sqrt(1/ᾱ_t); the mean part of the KL stays tiny.
      EXPECT_NEAR(b.diffusion, kl_sum, 1e-6 + 1e-6 * kl_sum) << variance_name(variance);
      EXPECT_NEAR(b.decoder, closed_form_decoder_bpd(data.c, sd), 1e-4) << variance_name(variance);
    }
    if (variance == Variance::fixed_small) {
      EXPECT_LT(kl_sum, 1e-9);
    } else {
      EXPECT_GT(kl_sum, 0.01);
    }
    EXPECT_EQ(profile.images, batch);
    ASSERT_EQ(profile.term_bpd.size(), 1000u);
    EXPECT_NEAR(profile.term_bpd[0] / batch, bounds[0].decoder, 1e-9);
    EXPECT_LT(profile.x0_sq_error[500] / batch, 1e-9);
  }
}

TEST(Likelihood, WrongModelBoundMatchesItsExpectationAndStratifiedEstimateIsUnbiased) {
  // A wrong model (ε scaled by 0.8) makes every term depend on the noise: x̂0 − c =
  // 0.2 sqrt((1 − ᾱ_i)/ᾱ_i) z, so E[L_i] = variance mismatch + 0.5 coef1² · 0.04 (1 − ᾱ_i)/ᾱ_i / σ_i²
  // per value (unclipped). A short schedule keeps the exact bound cheap.
  const NoiseSchedule s(ScheduleKind::linear, 100, 1e-3, 0.2);
  const int64_t per_item = 8, batch = 400;
  PointMass data{grid_values(per_item, 9, false), s, 0.8, batch};
  std::vector<float> x0;
  for (int64_t b = 0; b < batch; ++b) x0.insert(x0.end(), data.c.begin(), data.c.end());

  auto mean_and_error = [&](int64_t timesteps, uint64_t seed) {
    BoundOptions options;
    options.timesteps = timesteps;
    options.clip_x0 = false;
    NoiseRng rng(seed);
    std::vector<ImageBound> bounds(batch);
    variational_bound(data.model(), x0.data(), batch, per_item, s, options, rng, bounds.data());
    double sum = 0, sq = 0;
    for (const ImageBound& b : bounds) {
      sum += b.diffusion;
      sq += b.diffusion * b.diffusion;
    }
    const double mean = sum / batch;
    return std::pair{mean, std::sqrt((sq / batch - mean * mean) / (batch - 1))};
  };
  const auto [exact, exact_error] = mean_and_error(0, 1);
  const auto [estimate, estimate_error] = mean_and_error(7, 2);
  const auto [all_strata, all_error] = mean_and_error(99, 3);  // strata of one step: the exact sum
  double expected = 0;
  for (int64_t i = 1; i < 100; ++i) {
    const double a = s.alphas_cumprod()[i], coef1 = s.posterior_mean_coef1()[i];
    const double log_variance = s.log_variance(Variance::fixed_large)[i];
    expected += (normal_kl(0, s.posterior_log_variance_clipped()[i], 0, log_variance) +
                 0.5 * coef1 * coef1 * 0.04 * (1 - a) / a * std::exp(-log_variance)) / kLn2;
  }
  EXPECT_GT(exact, 0.01);
  EXPECT_LT(std::abs(exact - expected), 4 * exact_error) << exact << " vs " << expected;
  EXPECT_LT(std::abs(estimate - exact), 4 * std::hypot(exact_error, estimate_error)) << estimate << " vs " << exact;
  EXPECT_LT(std::abs(all_strata - exact), 4 * std::hypot(exact_error, all_error));
}

TEST(Likelihood, RejectsBadOptions) {
  const NoiseSchedule s(ScheduleKind::linear, 10, 1e-3, 0.2);
  std::vector<float> x0(4, 0.0f);
  ImageBound bound;
  NoiseRng rng(0);
  const BatchEpsModel model = [](const float*, const int64_t*, float* eps) { std::fill(eps, eps + 4, 0.0f); };
  BoundOptions options;
  options.timesteps = 10;  // only 9 diffusion terms exist
  EXPECT_THROW(variational_bound(model, x0.data(), 1, 4, s, options, rng, &bound), std::invalid_argument);
  options.timesteps = -1;
  EXPECT_THROW(variational_bound(model, x0.data(), 1, 4, s, options, rng, &bound), std::invalid_argument);
  const NoiseSchedule one(ScheduleKind::linear, 1, 1e-3, 0.2);
  EXPECT_THROW(variational_bound(model, x0.data(), 1, 4, one, BoundOptions{}, rng, &bound), std::invalid_argument);
}

}  // namespace
}  // namespace ddpm
