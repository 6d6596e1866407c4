// Respaced DDPM, DDIM and DPM-Solver++(2M): chains against diffusers' formulas written out in
// NumPy, the identities that tie the samplers together, and convergence to the data distribution
// when driven by the exact optimal denoiser of a Gaussian.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "ddpm/diffusion/ddim_sampler.h"
#include "ddpm/diffusion/dpm_solver.h"
#include "ddpm/diffusion/sampler.h"
#include "test_support.h"

namespace ddpm {
namespace {

NoiseSchedule reference_schedule(const test::ReferenceCase& c) {
  return NoiseSchedule(c.i64("kind")[0] == 0 ? ScheduleKind::linear : ScheduleKind::cosine, c.i64("T")[0]);
}

// The toy ε-model of tests/reference/ops/samplers.py, in the same float64 arithmetic.
EpsModel toy_model(int64_t n, int64_t T) {
  return [n, T](const float* x, int64_t t, float* eps) {
    for (int64_t i = 0; i < n; ++i)
      eps[i] = static_cast<float>(std::tanh(0.9 * static_cast<double>(x[i]) +
                                            0.4 * std::sin(7.0 * static_cast<double>(t) / static_cast<double>(T) +
                                                           0.01 * static_cast<double>(i))));
  };
}

TEST(Samplers, DdimMatchesDiffusersPipeline) {
  int count = 0;
  for (const auto& c : test::reference_cases("samplers")) {
    if (c.name.rfind("ddim_", 0) != 0) continue;
    const NoiseSchedule s = reference_schedule(c);
    const int64_t T = s.num_timesteps(), K = c.i64("K")[0];
    const auto ts = sampling_timesteps(T, K, Spacing::leading, c.i64("offset")[0]);
    const DdimOptions opt{c.scalar("eta"), c.i64("clip")[0] != 0, c.i64("rederive")[0] != 0,
                          c.i64("alpha_to_one")[0] != 0};
    std::vector<float> x = c.f32("x_T");
    const auto n = static_cast<int64_t>(x.size());
    const EpsModel model = toy_model(n, T);
    if (opt.eta == 0) {
      NoiseRng rng(0);
      sample_ddim(model, x.data(), 1, n, s, ts, opt, rng);
      EXPECT_EQ(rng.offset(), 0u) << c.name << ": a deterministic chain drew noise";
    } else {  // the reference's noise, step by step, from each timestep to the next in the list
      const auto noise = c.f32("noise");
      std::vector<float> eps(n);
      for (int64_t i = 0; i < K; ++i) {
        model(x.data(), ts[i], eps.data());
        const double prev = i + 1 < K ? s.alphas_cumprod()[ts[i + 1]] : (opt.final_alpha_one ? 1.0 : s.alphas_cumprod()[0]);
        ddim_step(x.data(), x.data(), eps.data(), s.alphas_cumprod()[ts[i]], prev, noise.data() + i * n, n, opt);
      }
    }
    test::expect_close(x, c.f32("x_0"), 1e-4, 1e-4, c.name);
    ++count;
  }
  EXPECT_EQ(count, 2 * 3 * 4);
}

TEST(Samplers, DpmSolverMatchesDiffusersFormulas) {
  int count = 0;
  for (const auto& c : test::reference_cases("samplers")) {
    if (c.name.rfind("dpm_", 0) != 0) continue;
    const NoiseSchedule s = reference_schedule(c);
    std::vector<float> x = c.f32("x_T");
    const auto n = static_cast<int64_t>(x.size());
    sample_dpm_solver_pp(toy_model(n, s.num_timesteps()), x.data(), 1, n, s, c.i64("timesteps"), c.i64("clip")[0] != 0);
    test::expect_close(x, c.f32("x_0"), 1e-4, 1e-4, c.name);
    ++count;
  }
  EXPECT_EQ(count, 2 * 3 * 2);
}

// With ε ≡ 0 a deterministic step from t to s scales x by sqrt(ᾱ_s/ᾱ_t), so a chain that steps
// from each listed timestep to the next and from the last to ᾱ = 1 returns x_T / sqrt(ᾱ_{t_0})
// exactly; skipping or repeating a pair (e.g. stepping to t − T/K) breaks the product.
TEST(Samplers, EveryStepGoesToTheNextListedTimestep) {
  const NoiseSchedule s(ScheduleKind::linear, 1000);
  const EpsModel zero = [](const float*, int64_t, float* eps) { std::fill(eps, eps + 3, 0.0f); };
  for (Spacing spacing : {Spacing::leading, Spacing::trailing, Spacing::linspace}) {
    for (int64_t K : {1, 2, 7, 10, 50, 999, 1000}) {
      const auto ts = sampling_timesteps(1000, K, spacing);
      const std::string what = std::string(spacing_name(spacing)) + " K=" + std::to_string(K);
      const double expected = 1.0 / std::sqrt(s.alphas_cumprod()[ts.front()]);
      std::vector<int64_t> called;
      const EpsModel recording = [&](const float* x, int64_t t, float* eps) {
        called.push_back(t);
        zero(x, t, eps);
      };
      std::vector<float> a = {1.0f, -2.0f, 0.5f}, b = a;
      NoiseRng rng(0);
      sample_ddim(recording, a.data(), 1, 3, s, ts, DdimOptions{}, rng);
      EXPECT_EQ(called, ts) << what;
      sample_dpm_solver_pp(zero, b.data(), 1, 3, s, ts, false);
      for (int i = 0; i < 3; ++i) {
        const double want = expected * std::vector<double>{1.0, -2.0, 0.5}[i];
        EXPECT_NEAR(a[i], want, 1e-5 * std::abs(want)) << what << " ddim";
        EXPECT_NEAR(b[i], want, 1e-5 * std::abs(want)) << what << " dpm-solver++";
      }
    }
  }
}

TEST(Samplers, RespacedScheduleKeepsTheCumulativeAlphas) {
  const NoiseSchedule s(ScheduleKind::cosine, 1000);
  for (int64_t K : {1, 7, 50, 1000}) {
    const auto ts = sampling_timesteps(1000, K, Spacing::trailing);
    const NoiseSchedule r = s.respaced(ts);
    ASSERT_EQ(r.num_timesteps(), K);
    for (int64_t i = 0; i < K; ++i)
      EXPECT_NEAR(r.alphas_cumprod()[K - 1 - i], s.alphas_cumprod()[ts[i]], 1e-13) << "K=" << K << " i=" << i;
    if (K == 1000) {  // β'_t = 1 − ᾱ_t/ᾱ_{t−1} is β_t up to rounding
      for (int64_t t = 0; t < K; ++t) EXPECT_NEAR(r.betas()[t], s.betas()[t], 1e-15) << t;
    }
  }
  EXPECT_THROW(s.respaced({5, 5}), std::invalid_argument);
  EXPECT_THROW(s.respaced({1000}), std::out_of_range);
  EXPECT_THROW(s.respaced({}), std::invalid_argument);
}

TEST(Samplers, RespacedDdpmWithAllStepsIsDdpm) {
  const NoiseSchedule s(ScheduleKind::linear, 200);
  const EpsModel model = toy_model(400, 200);
  std::vector<float> a = test::random_normal(400, 3), b = a;
  NoiseRng r1(9), r2(9);
  sample_ddpm(model, a.data(), 2, 200, s, Variance::fixed_large, true, r1);
  SamplerOptions opt;
  opt.kind = SamplerKind::ddpm;
  run_sampler(model, b.data(), 2, 200, s, opt, r2);
  EXPECT_EQ(a, b);
  EXPECT_EQ(r1.offset(), r2.offset());
}

// η = 1 gives σ² = β̃_t, and with all T steps DDIM's mean equals the DDPM posterior mean: the two
// samplers agree given the same noise (fixed_small variance). With clipping they agree when DDIM
// re-derives ε from the clipped x̂0.
TEST(Samplers, DdimWithEtaOneIsDdpm) {
  const NoiseSchedule s(ScheduleKind::linear, 1000);
  const int64_t n = 300;
  const EpsModel model = toy_model(n, 1000);
  for (bool clip : {false, true}) {
    std::vector<float> a = test::random_normal(n, 4, 1.5f), b = a;
    NoiseRng r1(21), r2(21);
    sample_ddpm(model, a.data(), 3, 100, s, Variance::fixed_small, clip, r1);
    sample_ddim(model, b.data(), 3, 100, s, sampling_timesteps(1000, 1000, Spacing::leading),
                DdimOptions{1.0, clip, true, true}, r2);
    test::expect_close(b, a, 1e-4, 1e-4, clip ? "clip" : "no clip");
    EXPECT_EQ(r1.offset(), r2.offset());
  }
}

// Data x0 ~ N(μ, σ²) with its exact denoiser E[ε | x_t] = sqrt(1 − ᾱ)(x_t − sqrt(ᾱ)μ)/(ᾱσ² + 1 − ᾱ).
struct GaussianData {
  double mu = 0.3, sigma2 = 0.25;
  EpsModel model(const NoiseSchedule& s, int64_t n) const {
    return [this, &s, n](const float* x, int64_t t, float* eps) {
      const double ab = s.alphas_cumprod()[t], k = std::sqrt(1 - ab) / (ab * sigma2 + 1 - ab), c = std::sqrt(ab) * mu;
      for (int64_t i = 0; i < n; ++i) eps[i] = static_cast<float>(k * (x[i] - c));
    };
  }
};

// A deterministic sampler on Gaussian data is affine in its start, out = g·x + m. Started from
// the exact marginal of the first timestep visited, x ~ N(c, d²) with c = sqrt(ᾱ)μ and
// d² = ᾱσ² + 1 − ᾱ (so that the prior's mismatch does not hide the solver's), its output law is
// N(g·c + m, g²d²) exactly; the error is the distance of those moments from (μ, σ²).
double deterministic_error(const GaussianData& data, const NoiseSchedule& s, SamplerOptions opt) {
  std::vector<float> x = {0.0f, 1.0f};
  NoiseRng rng(0);
  run_sampler(data.model(s, 2), x.data(), 1, 2, s, opt, rng);
  const double m = x[0], g = static_cast<double>(x[1]) - x[0];
  const double ab = s.alphas_cumprod()[sampler_timesteps(s, opt).front()];
  const double c = std::sqrt(ab) * data.mu, d2 = ab * data.sigma2 + 1 - ab;
  return std::abs(g * c + m - data.mu) + std::abs(g * g * d2 - data.sigma2);
}

TEST(Samplers, DeterministicSamplersConvergeToTheData) {
  const GaussianData data;
  const NoiseSchedule s(ScheduleKind::linear, 1000);
  SamplerOptions ddim, dpm;
  ddim.kind = SamplerKind::ddim, dpm.kind = SamplerKind::dpm_solver_pp;
  ddim.clip_x0 = dpm.clip_x0 = false;
  ddim.spacing = dpm.spacing = Spacing::trailing;
  std::vector<double> e_ddim, e_dpm;
  for (int64_t K : {10, 20, 50, 100, 250, 1000}) {
    ddim.steps = dpm.steps = K;
    e_ddim.push_back(deterministic_error(data, s, ddim));
    e_dpm.push_back(deterministic_error(data, s, dpm));
    RecordProperty("K=" + std::to_string(K) + " ddim/dpm-solver++ error",
                   std::to_string(e_ddim.back()) + " / " + std::to_string(e_dpm.back()));
  }
  // Measured: DDIM 0.113, 0.064, 0.028, 0.014, 0.0059, 0.0015; DPM-Solver++ 0.086, 0.021, 0.0005,
  // 0.0008, 0.0001, 0.00004 (the mean is exact by symmetry; the error is in the variance).
  for (size_t i = 1; i < e_ddim.size(); ++i) {
    EXPECT_LT(e_ddim[i], e_ddim[i - 1]) << "DDIM's error must fall as K grows, step " << i;
    EXPECT_LT(e_dpm[i], e_dpm[0] / 4) << "DPM-Solver++ beyond 10 steps, step " << i;
  }
  // DDIM is a first-order solver of the probability-flow ODE, DPM-Solver++(2M) a second-order one.
  EXPECT_GT(e_ddim[0] / e_ddim[1], 1.5) << "DDIM's error roughly halves when K doubles";
  EXPECT_GT(e_dpm[0] / e_dpm[1], 3.0) << "DPM-Solver++'s error roughly quarters when K doubles";
  EXPECT_LT(e_dpm[1], e_ddim[1] / 2.5) << "at 20 steps DPM-Solver++ must beat DDIM clearly";
  EXPECT_LT(e_dpm[2], 2e-3) << "DPM-Solver++ at 50 steps";
  EXPECT_LT(e_ddim.back(), 3e-3) << "DDIM at K = T keeps the T = 1000 chain's own first-order error";
  EXPECT_LT(e_dpm.back(), 2e-4);
}

// Stochastic samplers: empirical moments of 20,000 samples within 4 standard errors plus a
// discretisation allowance (a fraction of the data's mean/variance scale) that shrinks with K.
// Measured variances (data 0.25): DDPM 0.264 at K = 50, 0.251 at 250, 0.248 at 1000; DDIM η = 1
// 0.234 at 250; η = 0.5 0.229 at 100 and 0.246 at 1000.
TEST(Samplers, StochasticSamplersConvergeToTheData) {
  const GaussianData data;
  const NoiseSchedule s(ScheduleKind::linear, 1000);
  const int64_t batch = 4, per_item = 5000, n = batch * per_item;
  const double se_mean = std::sqrt(data.sigma2 / n), se_var = data.sigma2 * std::sqrt(2.0 / (n - 1));
  for (auto [kind, eta, K, allowance] : {std::tuple{SamplerKind::ddpm, 0.0, 50, 0.08},
                                         std::tuple{SamplerKind::ddpm, 0.0, 250, 0.03},
                                         std::tuple{SamplerKind::ddpm, 0.0, 1000, 0.02},
                                         std::tuple{SamplerKind::ddim, 1.0, 250, 0.08},
                                         std::tuple{SamplerKind::ddim, 0.5, 100, 0.1},
                                         std::tuple{SamplerKind::ddim, 0.5, 1000, 0.03}}) {
    SamplerOptions opt;
    opt.kind = kind, opt.eta = eta, opt.steps = K, opt.clip_x0 = false, opt.spacing = Spacing::trailing;
    const std::string what = std::string(sampler_kind_name(kind)) + " eta=" + std::to_string(eta) + " K=" + std::to_string(K);
    NoiseRng rng(5);
    std::vector<float> x(n);
    rng.fill_normal(x.data(), n);
    run_sampler(data.model(s, n), x.data(), batch, per_item, s, opt, rng);
    double m = 0, v = 0;
    for (float a : x) m += a;
    m /= n;
    for (float a : x) v += (a - m) * (a - m);
    v /= n - 1;
    EXPECT_NEAR(m, data.mu, 4 * se_mean + allowance * std::sqrt(data.sigma2)) << what;
    EXPECT_NEAR(v, data.sigma2, 4 * se_var + allowance * data.sigma2) << what;
  }
}

// DDIM inversion then DDIM decoding returns the data point; the round trip error vanishes as the
// steps shrink.
TEST(Samplers, DdimInversionRoundTrip) {
  const GaussianData data;
  const NoiseSchedule s(ScheduleKind::linear, 1000);
  const int64_t n = 1000;
  std::vector<float> x0 = test::random_normal(n, 8, 0.5f);
  for (float& v : x0) v += 0.3f;  // points of the data distribution N(0.3, 0.25)
  std::vector<double> errors;
  for (int64_t K : {50, 200, 1000}) {
    const auto ts = sampling_timesteps(1000, K, Spacing::trailing);
    std::vector<float> x = x0;
    invert_ddim(data.model(s, n), x.data(), 1, n, s, ts);
    double norm2 = 0;
    for (float a : x) norm2 += a * a;
    EXPECT_NEAR(norm2 / n, 1.0, 0.2) << "the encoding of data-like points is roughly standard normal, K=" << K;
    NoiseRng rng(0);
    sample_ddim(data.model(s, n), x.data(), 1, n, s, ts, DdimOptions{}, rng);
    double err = 0;
    for (int64_t i = 0; i < n; ++i) err = std::max(err, std::abs(static_cast<double>(x[i]) - x0[i]));
    errors.push_back(err);
    RecordProperty("K=" + std::to_string(K) + " max round-trip error", std::to_string(err));
  }
  // Measured 0.094, 0.024, 0.0048: first order in the step size.
  EXPECT_GT(errors[0] / errors[1], 3.0);
  EXPECT_GT(errors[1] / errors[2], 3.5);
  EXPECT_LT(errors[2], 1e-2);
}

TEST(Samplers, BadInputIsRefused) {
  const NoiseSchedule s(ScheduleKind::linear, 100);
  std::vector<float> x(4);
  NoiseRng rng(0);
  const EpsModel model = toy_model(4, 100);
  EXPECT_THROW(sample_ddim(model, x.data(), 1, 4, s, {10, 20}, DdimOptions{}, rng), std::invalid_argument);
  EXPECT_THROW(sample_ddim(model, x.data(), 1, 4, s, {100}, DdimOptions{}, rng), std::out_of_range);
  EXPECT_THROW(sample_dpm_solver_pp(EpsModel{}, x.data(), 1, 4, s, {10}, false), std::invalid_argument);
  EXPECT_THROW(ddim_step(x.data(), x.data(), x.data(), 0.5, 0.9, nullptr, 4, DdimOptions{0.5}), std::invalid_argument);
  EXPECT_THROW(parse_sampler_kind("euler"), std::invalid_argument);
  EXPECT_EQ(parse_sampler_kind("dpm-solver++"), SamplerKind::dpm_solver_pp);
}

}  // namespace
}  // namespace ddpm
