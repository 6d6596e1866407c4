// Improved DDPM's learned variance: the learned_range interpolation, the sampler step against
// diffusers' DDPMScheduler, the hybrid loss and its gradients against IDDPM's formulas in PyTorch
// (autograd, float64) and against finite differences, the stop-gradient on the mean, and the
// likelihood bound with a model-predicted variance.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "ddpm/diffusion/ddpm_sampler.h"
#include "ddpm/diffusion/hybrid_loss.h"
#include "ddpm/diffusion/likelihood.h"
#include "ddpm/diffusion/process.h"
#include "ddpm/diffusion/sampler.h"
#include "test_support.h"

namespace ddpm {
namespace {

double as_double(const test::ReferenceCase& c, const char* name) { return std::bit_cast<double>(c.i64(name).at(0)); }

NoiseSchedule reference_schedule(const test::ReferenceCase& c) {
  return NoiseSchedule(c.i64("kind")[0] == 0 ? ScheduleKind::linear : ScheduleKind::cosine, c.i64("T")[0],
                       as_double(c, "beta_start_bits"), as_double(c, "beta_end_bits"));
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

TEST(ImprovedDdpm, LearnedRangeInterpolatesBetweenTheFixedVariances) {
  for (const NoiseSchedule& s : {NoiseSchedule(ScheduleKind::linear, 1000), NoiseSchedule(ScheduleKind::cosine, 40)}) {
    for (int64_t t = 0; t < s.num_timesteps(); ++t) {
      const auto i = static_cast<size_t>(t);
      EXPECT_DOUBLE_EQ(s.learned_log_variance(t, -1.0), s.posterior_log_variance_clipped()[i]);
      EXPECT_DOUBLE_EQ(s.learned_log_variance(t, 1.0), std::log(s.betas()[i]));
      EXPECT_NEAR(s.learned_log_variance(t, 0.0),
                  0.5 * (std::log(s.betas()[i]) + s.posterior_log_variance_clipped()[i]), 1e-12);
    }
  }
  EXPECT_EQ(parse_variance("learned_range"), Variance::learned_range);
  EXPECT_STREQ(variance_name(Variance::learned_range), "learned_range");
  EXPECT_THROW(NoiseSchedule(ScheduleKind::linear, 10).log_variance(Variance::learned_range), std::invalid_argument);
}

TEST(ImprovedDdpm, StepMatchesDiffusersLearnedRange) {
  int count = 0;
  for (const auto& c : test::reference_cases("improved_ddpm")) {
    if (!starts_with(c.name, "step_")) continue;
    const NoiseSchedule s = reference_schedule(c);
    const std::vector<float> x = c.f32("x_t"), eps = c.f32("eps"), v = c.f32("v"), z = c.f32("z");
    std::vector<float> out(x.size(), test::kNaN);
    ddpm_step(out.data(), x.data(), eps.data(), c.i64("t")[0], z.data(), static_cast<int64_t>(x.size()), s,
              Variance::learned_range, true, v.data());
    test::expect_close(out, c.f32("x_prev"), 1e-5, 1e-6, c.name);
    ++count;
  }
  EXPECT_EQ(count, 8);
  // Without v, a learned variance cannot be sampled.
  const NoiseSchedule s(ScheduleKind::linear, 10);
  float x = 0.1f, eps = 0.2f, z = 0.3f;
  EXPECT_THROW(ddpm_step(&x, &x, &eps, 5, &z, 1, s, Variance::learned_range, true), std::invalid_argument);
}

TEST(ImprovedDdpm, HybridLossAndGradientsMatchIddpmInPyTorch) {
  int count = 0;
  for (const auto& c : test::reference_cases("improved_ddpm")) {
    if (!starts_with(c.name, "loss_")) continue;
    const NoiseSchedule s = reference_schedule(c);
    const std::vector<int64_t> t = c.i64("t");
    const auto batch = static_cast<int64_t>(t.size());
    const std::vector<float> x0 = c.f32("x0"), x_t = c.f32("x_t"), noise = c.f32("noise"), eps = c.f32("eps"),
                             v = c.f32("v");
    const int64_t per_item = static_cast<int64_t>(x0.size()) / batch;
    std::vector<float> d_eps(x0.size(), test::kNaN), d_v(x0.size(), test::kNaN);
    const HybridLoss loss = hybrid_loss(x0.data(), x_t.data(), noise.data(), eps.data(), v.data(), t.data(), batch,
                                        per_item, s, as_double(c, "weight_bits"), d_eps.data(), d_v.data());
    EXPECT_NEAR(loss.simple, as_double(c, "simple_bits"), 1e-9 * as_double(c, "simple_bits")) << c.name;
    EXPECT_NEAR(loss.vlb, as_double(c, "vlb_bits"), 1e-6 * as_double(c, "vlb_bits")) << c.name;
    EXPECT_NEAR(loss.total, as_double(c, "total_bits"), 1e-6 * as_double(c, "total_bits")) << c.name;
    test::expect_close(d_eps, c.f32("d_eps"), 1e-5, 1e-9, c.name + " d_eps");
    test::expect_close(d_v, c.f32("d_v"), 1e-4, 1e-9, c.name + " d_v");
    ++count;
  }
  EXPECT_EQ(count, 4);
}

// A batch at timesteps that cover the decoder (0), small, middle and last t.
struct Batch {
  NoiseSchedule schedule{ScheduleKind::linear, 1000};
  int64_t batch = 4, per_item = 12;
  std::vector<int64_t> t{0, 3, 500, 999};
  std::vector<float> x0, x_t, noise, eps, v;
  Batch() {
    const auto n = static_cast<size_t>(batch * per_item);
    x0 = test::random_uniform(n, 1, -1.0f, 1.0f);
    for (float& x : x0) x = std::round((x + 1.0f) * 127.5f) / 127.5f - 1.0f;  // the 8-bit grid
    noise = test::random_normal(n, 2);
    x_t.resize(n);
    q_sample(x_t.data(), x0.data(), noise.data(), t.data(), batch, per_item, schedule);
    eps = noise;
    const std::vector<float> wobble = test::random_normal(n, 3, 0.2f);
    for (size_t i = 0; i < n; ++i) eps[i] += wobble[i];
    v = test::random_uniform(n, 4, -0.9f, 0.9f);
  }
  HybridLoss loss(double weight, float* d_eps, float* d_v) const {
    return hybrid_loss(x0.data(), x_t.data(), noise.data(), eps.data(), v.data(), t.data(), batch, per_item, schedule,
                       weight, d_eps, d_v);
  }
};

TEST(ImprovedDdpm, VarianceGradientMatchesFiniteDifferences) {
  Batch b;
  std::vector<float> d_eps(b.v.size()), d_v(b.v.size()), scratch_e(b.v.size()), scratch_v(b.v.size());
  const double weight = 0.001;
  b.loss(weight, d_eps.data(), d_v.data());
  test::GradCheck check;
  check.eps = 1e-3;
  check.atol = 1e-6;
  check.rtol = 1e-2;
  test::expect_gradient(b.v, d_v, [&] { return b.loss(weight, scratch_e.data(), scratch_v.data()).total; }, check,
                        "d total / d v");
}

TEST(ImprovedDdpm, MeanIsStopGradientInTheVlbTerm) {
  Batch b;
  std::vector<float> d_eps_a(b.v.size()), d_v_a(b.v.size()), d_eps_b(b.v.size()), d_v_b(b.v.size());
  const HybridLoss a = b.loss(0.001, d_eps_a.data(), d_v_a.data());
  const HybridLoss heavy = b.loss(0.5, d_eps_b.data(), d_v_b.data());
  // ε's gradient is L_simple's alone, whatever the weight of L_vlb ...
  EXPECT_EQ(d_eps_a, d_eps_b);
  for (size_t i = 0; i < d_eps_a.size(); ++i)
    EXPECT_FLOAT_EQ(d_eps_a[i], static_cast<float>(2.0 * (b.eps[i] - b.noise[i]) / static_cast<double>(b.eps.size())));
  // ... even though L_vlb itself depends on ε through the mean.
  Batch moved = b;
  for (float& e : moved.eps) e += 0.05f;
  std::vector<float> scratch_e(b.v.size()), scratch_v(b.v.size());
  EXPECT_GT(std::abs(moved.loss(0.001, scratch_e.data(), scratch_v.data()).vlb - a.vlb), 1e-3);
  // v's gradient scales with the weight.
  for (size_t i = 0; i < d_v_a.size(); ++i) EXPECT_NEAR(d_v_b[i], 500.0f * d_v_a[i], 1e-3f * std::abs(d_v_b[i]) + 1e-12f);
  EXPECT_NEAR(heavy.total - heavy.simple, 500.0 * (a.total - a.simple), 1e-9 * heavy.total);
}

TEST(ImprovedDdpm, StepTermDerivativeMatchesFiniteDifferences) {
  const NoiseSchedule s(ScheduleKind::linear, 1000);
  for (const int64_t i : {0, 1, 250, 999}) {
    for (const double x0 : {-1.0, -0.2, 1.0}) {
      const double x_t = 0.3, x0_hat = x0 + 0.02;
      for (const double log_variance : {std::log(s.betas()[static_cast<size_t>(i)]), -9.0, -3.0}) {
        double analytic = 0;
        reverse_step_nats(s, i, x0, x_t, x0_hat, log_variance, &analytic);
        const double h = 1e-5;
        const double fd = (reverse_step_nats(s, i, x0, x_t, x0_hat, log_variance + h) -
                           reverse_step_nats(s, i, x0, x_t, x0_hat, log_variance - h)) /
                          (2 * h);
        EXPECT_NEAR(analytic, fd, 1e-6 + 1e-5 * std::abs(fd)) << "i " << i << " x0 " << x0 << " log var " << log_variance;
      }
    }
  }
}

TEST(ImprovedDdpm, SplitAndJoinFollowDiffusersChannelOrder) {
  // Two pixels, C = 3: [ε0 ε1 ε2 v0 v1 v2] per pixel.
  const std::vector<float> out{1, 2, 3, 10, 20, 30, 4, 5, 6, 40, 50, 60};
  std::vector<float> eps(6), v(6), back(12);
  split_eps_variance(out.data(), eps.data(), v.data(), 2, 3);
  EXPECT_EQ(eps, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(v, (std::vector<float>{10, 20, 30, 40, 50, 60}));
  join_eps_variance(back.data(), eps.data(), v.data(), 2, 3);
  EXPECT_EQ(back, out);
}

// The bound with v ≡ −1 is the fixed_small bound; with v ≡ +1 its KL terms are fixed_large's.
TEST(ImprovedDdpm, BoundWithLearnedVarianceAtItsEndsIsTheFixedBound) {
  const NoiseSchedule s(ScheduleKind::linear, 50, 1e-3, 0.2);
  const int64_t batch = 3, per_item = 20;
  std::vector<float> x0 = test::random_uniform(static_cast<size_t>(batch * per_item), 5, -1.0f, 1.0f);
  for (float& x : x0) x = std::round((x + 1.0f) * 127.5f) / 127.5f - 1.0f;
  const auto eps_of = [](const float* x_t, const int64_t* t, float* eps, int64_t n) {
    for (int64_t i = 0; i < n; ++i) eps[i] = std::tanh(0.7f * x_t[i] + 0.01f * static_cast<float>(t[i / 20]));
  };
  const int64_t n = batch * per_item;
  auto bound = [&](Variance variance, float v_value) {
    BoundOptions options;
    options.variance = variance;
    NoiseRng rng(9, 0);
    std::vector<ImageBound> bounds(static_cast<size_t>(batch));
    BoundProfile profile;
    const BatchEpsVarianceModel model = [&](const float* x_t, const int64_t* t, float* eps, float* v) {
      eps_of(x_t, t, eps, n);
      std::fill(v, v + n, v_value);
    };
    variational_bound(model, x0.data(), batch, per_item, s, options, rng, bounds.data(), &profile);
    return profile;
  };
  const BoundProfile small = bound(Variance::fixed_small, 0), learned_low = bound(Variance::learned_range, -1);
  const BoundProfile large = bound(Variance::fixed_large, 0), learned_high = bound(Variance::learned_range, 1);
  for (size_t i = 0; i < small.term_bpd.size(); ++i) {
    EXPECT_NEAR(learned_low.term_bpd[i], small.term_bpd[i], 1e-9 * std::abs(small.term_bpd[i]) + 1e-12) << "term " << i;
    if (i > 0) {
      EXPECT_NEAR(learned_high.term_bpd[i], large.term_bpd[i], 1e-9 * std::abs(large.term_bpd[i]) + 1e-12) << "term " << i;
    }
  }
  // An ε-only model cannot give a learned variance.
  BoundOptions options;
  options.variance = Variance::learned_range;
  NoiseRng rng(1, 0);
  ImageBound one;
  const BatchEpsModel eps_only = [](const float*, const int64_t*, float*) {};
  EXPECT_THROW(variational_bound(eps_only, x0.data(), 1, per_item, s, options, rng, &one), std::invalid_argument);
}

// ddim and dpm-solver++ see only ε of a variance-predicting model; ddpm uses v.
TEST(ImprovedDdpm, SamplersHonourTheLearnedVariance) {
  const NoiseSchedule s(ScheduleKind::linear, 100, 1e-3, 0.05);
  const int64_t batch = 2, per_item = 16, n = batch * per_item;
  const auto eps_fn = [](const float* x, float* eps, int64_t count) {
    for (int64_t i = 0; i < count; ++i) eps[i] = 0.5f * x[i];
  };
  const std::vector<float> x_T = test::random_normal(static_cast<size_t>(n), 6);
  auto run = [&](SamplerOptions o, float v_value, bool with_variance) {
    std::vector<float> x = x_T;
    NoiseRng rng(3, 0);
    if (with_variance) {
      const EpsVarianceModel m = [&](const float* x_t, int64_t, float* eps, float* v) {
        eps_fn(x_t, eps, n);
        std::fill(v, v + n, v_value);
      };
      run_sampler(m, x.data(), batch, per_item, s, o, rng);
    } else {
      const EpsModel m = [&](const float* x_t, int64_t, float* eps) { eps_fn(x_t, eps, n); };
      run_sampler(m, x.data(), batch, per_item, s, o, rng);
    }
    return x;
  };
  SamplerOptions o;
  o.steps = 10;
  o.spacing = Spacing::trailing;
  o.variance = Variance::fixed_small;
  SamplerOptions learned = o;
  learned.variance = Variance::learned_range;
  EXPECT_EQ(run(learned, -1.0f, true), run(o, 0, false));  // v = −1 is β̃ of the respaced schedule
  EXPECT_NE(run(learned, 1.0f, true), run(o, 0, false));
  for (SamplerKind kind : {SamplerKind::ddim, SamplerKind::dpm_solver_pp}) {
    o.kind = learned.kind = kind;
    EXPECT_EQ(run(learned, 0.3f, true), run(o, 0, false)) << sampler_kind_name(kind);
  }
  learned.kind = SamplerKind::ddpm;
  const EpsModel eps_only = [&](const float* x_t, int64_t, float* eps) { eps_fn(x_t, eps, n); };
  std::vector<float> x = x_T;
  NoiseRng rng(3, 0);
  EXPECT_THROW(run_sampler(eps_only, x.data(), batch, per_item, s, learned, rng), std::invalid_argument);
}

}  // namespace
}  // namespace ddpm
