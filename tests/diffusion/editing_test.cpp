// Editing: img2img's timestep cut, RePaint's walk and inpainting, x_t noising, slerp. The chains
// are driven by the exact optimal denoiser of a one-image data set, which makes the right answer
// known: a chain that works must end at that image.
#include "ddpm/diffusion/editing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ddpm/diffusion/sampler.h"
#include "test_support.h"

namespace ddpm {
namespace {

// ε*(x_t, t) = (x_t − sqrt(ᾱ_t) x*) / sqrt(1 − ᾱ_t): the optimal ε-model when the data is x* alone.
EpsModel point_mass_model(const std::vector<float>& target, const NoiseSchedule& s, int64_t batch) {
  return [&target, &s, batch](const float* x, int64_t t, float* eps) {
    const double a = s.sqrt_alphas_cumprod()[static_cast<size_t>(t)];
    const double b = s.sqrt_one_minus_alphas_cumprod()[static_cast<size_t>(t)];
    const auto n = static_cast<int64_t>(target.size());
    for (int64_t k = 0; k < batch; ++k)
      for (int64_t i = 0; i < n; ++i) eps[k * n + i] = static_cast<float>((x[k * n + i] - a * target[static_cast<size_t>(i)]) / b);
  };
}

TEST(Editing, StrengthKeepsTheLastTimesteps) {
  const NoiseSchedule s(ScheduleKind::linear, 1000);
  SamplerOptions o;
  o.kind = SamplerKind::ddim;
  o.steps = 10;
  o.spacing = Spacing::trailing;
  const std::vector<int64_t> all = sampler_timesteps(s, o);
  o.strength = 0.35;  // floor(10 · 0.35) = 3 steps
  EXPECT_EQ(sampler_timesteps(s, o), std::vector<int64_t>(all.end() - 3, all.end()));
  o.strength = 0.01;  // at least one step
  EXPECT_EQ(sampler_timesteps(s, o), std::vector<int64_t>{all.back()});
  o.strength = 0;
  EXPECT_THROW(sampler_timesteps(s, o), std::invalid_argument);
}

TEST(Editing, RepaintWalkFollowsTheJumpSchedule) {
  // K = 6, jumps of 2, each taken once more (r = 2), from levels 0 and 2 (RePaint's get_schedule_jump).
  EXPECT_EQ(repaint_walk(6, 2, 2), (std::vector<int64_t>{6, 5, 4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0}));
  EXPECT_EQ(repaint_walk(4, 10, 10), (std::vector<int64_t>{4, 3, 2, 1, 0}));  // nothing to jump
  EXPECT_EQ(repaint_model_calls(6, 2, 2), 10);
  // Paper setting: 250 steps, j = 10, r = 10: every step below 240 is taken 10 times.
  const std::vector<int64_t> w = repaint_walk(250, 10, 10);
  for (size_t i = 1; i < w.size(); ++i) ASSERT_EQ(std::abs(w[i] - w[i - 1]), 1);
  EXPECT_EQ(w.front(), 250);
  EXPECT_EQ(w.back(), 0);
  EXPECT_EQ(repaint_model_calls(250, 10, 10), 250 + 24 * 9 * 10);
}

TEST(Editing, NoiseToTimestepHasTheForwardMarginal) {
  const NoiseSchedule s(ScheduleKind::linear, 1000);
  const int64_t n = 200000, t = 300;
  const std::vector<float> x0(static_cast<size_t>(n), 0.5f);
  std::vector<float> x(static_cast<size_t>(n));
  NoiseRng rng(1, 0);
  noise_to_timestep(x.data(), x0.data(), t, n, s, rng);
  double mean = 0, var = 0;
  for (float v : x) mean += v;
  mean /= n;
  for (float v : x) var += (v - mean) * (v - mean);
  var /= n - 1;
  EXPECT_NEAR(mean, 0.5 * s.sqrt_alphas_cumprod()[t], 4 * std::sqrt(var / n));
  EXPECT_NEAR(var, 1 - s.alphas_cumprod()[t], 0.01 * (1 - s.alphas_cumprod()[t]));
  EXPECT_THROW(noise_to_timestep(x.data(), x0.data(), 1000, n, s, rng), std::out_of_range);
}

// Inpainting with the exact model of a one-image data set: the kept half is the input exactly,
// the generated half converges to the data image (not to the input's other half).
TEST(Editing, RepaintKeepsTheKnownPixelsAndFillsTheRest) {
  const NoiseSchedule s(ScheduleKind::linear, 1000);
  const int64_t n = 64, batch = 2;
  const std::vector<float> data = test::random_uniform(n, 3, -0.9f, 0.9f);
  std::vector<float> known(static_cast<size_t>(batch * n)), keep(static_cast<size_t>(batch * n));
  const std::vector<float> other = test::random_uniform(static_cast<size_t>(batch * n), 4, -1.0f, 1.0f);
  for (int64_t i = 0; i < batch * n; ++i) {
    const bool kept = (i % n) < n / 2;
    keep[static_cast<size_t>(i)] = kept ? 1.0f : 0.0f;
    known[static_cast<size_t>(i)] = kept ? data[static_cast<size_t>(i % n)] : other[static_cast<size_t>(i)];
  }
  NoiseRng rng(5, 0);
  std::vector<float> x(static_cast<size_t>(batch * n));
  rng.fill_normal(x.data(), batch * n);
  const std::vector<int64_t> ts = sampling_timesteps(1000, 50, Spacing::trailing, 0);
  RepaintOptions o;
  o.jump_length = 5;
  o.jump_n_sample = 3;
  int64_t calls = 0;
  sample_repaint(point_mass_model(data, s, batch), x.data(), known.data(), keep.data(), batch, n, s, ts, o, rng,
                 [&](int64_t done, int64_t total) {
                   calls = done;
                   EXPECT_EQ(total, repaint_model_calls(50, 5, 3));
                 });
  EXPECT_EQ(calls, repaint_model_calls(50, 5, 3));
  for (int64_t i = 0; i < batch * n; ++i) {
    if (keep[static_cast<size_t>(i)] == 1.0f)
      ASSERT_EQ(x[static_cast<size_t>(i)], known[static_cast<size_t>(i)]) << "kept value " << i << " changed";
    else
      ASSERT_NEAR(x[static_cast<size_t>(i)], data[static_cast<size_t>(i % n)], 2e-3) << "generated value " << i;
  }
}

// Gaussian data N(μ, σ²) per value, with its exact ε-model: the generated values of an inpainting
// must have the data's law (up to the 1000-step chain's own discretisation: variance 0.0404
// without jumps), which needs the forward jumps to noise by the right amount. Measured mutants:
// jumps without noise give variance 0.022, with twice the noise 0.055; without the sqrt(1 − β)
// shrink the mean moves to 0.306.
TEST(Editing, RepaintJumpsKeepTheDataLaw) {
  const double mu = 0.3, sigma2 = 0.04;
  const NoiseSchedule s(ScheduleKind::linear, 1000);
  const int64_t n = 20000;
  const EpsModel model = [&](const float* x, int64_t t, float* eps) {
    const double ab = s.alphas_cumprod()[static_cast<size_t>(t)];
    const double k = std::sqrt(1 - ab) / (ab * sigma2 + 1 - ab), c = std::sqrt(ab) * mu;
    for (int64_t i = 0; i < n; ++i) eps[i] = static_cast<float>(k * (x[i] - c));
  };
  std::vector<float> known(static_cast<size_t>(n), 0.9f), keep(static_cast<size_t>(n), 0.0f);
  for (int64_t i = 0; i < n; i += 2) keep[static_cast<size_t>(i)] = 1.0f;  // every other value known
  NoiseRng rng(9, 0);
  std::vector<float> x(static_cast<size_t>(n));
  rng.fill_normal(x.data(), n);
  RepaintOptions o;
  o.jump_length = 4;
  o.jump_n_sample = 4;
  o.clip_x0 = false;
  sample_repaint(model, x.data(), known.data(), keep.data(), 1, n, s, sampling_timesteps(1000, 1000, Spacing::trailing, 0),
                 o, rng);
  double mean = 0, var = 0;
  for (int64_t i = 1; i < n; i += 2) mean += x[static_cast<size_t>(i)];
  mean /= n / 2;
  for (int64_t i = 1; i < n; i += 2) var += (x[static_cast<size_t>(i)] - mean) * (x[static_cast<size_t>(i)] - mean);
  var /= n / 2 - 1;
  EXPECT_NEAR(mean, mu, 0.004);
  EXPECT_NEAR(var, sigma2, 0.003) << "generated values have variance " << var << ", the data " << sigma2;
}

TEST(Editing, SlerpEndsAtTheInputsAndKeepsTheNorm) {
  const int64_t n = 4096;
  const auto a = test::random_normal(n, 1), b = test::random_normal(n, 2);
  std::vector<float> out(static_cast<size_t>(n));
  slerp(out.data(), a.data(), b.data(), 0.0, n);
  test::expect_close(out.data(), a.data(), n, 1e-5, 1e-6, "alpha 0");
  slerp(out.data(), a.data(), b.data(), 1.0, n);
  test::expect_close(out.data(), b.data(), n, 1e-5, 1e-6, "alpha 1");
  slerp(out.data(), a.data(), b.data(), 0.5, n);
  double na = 0, nm = 0;
  for (int64_t i = 0; i < n; ++i) na += double(a[i]) * a[i], nm += double(out[i]) * out[i];
  EXPECT_NEAR(std::sqrt(nm / na), 1.0, 0.03);  // a lerp would shrink it to ~0.71
}

}  // namespace
}  // namespace ddpm
