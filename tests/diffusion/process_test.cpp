// The forward process: q_sample against its formula and, in distribution, against t single
// noising steps; the posterior against Bayes' rule; x̂0 inverting q_sample; the training draw.
#include "ddpm/diffusion/process.h"

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "test_support.h"

namespace ddpm {
namespace {

const NoiseSchedule& linear1000() {
  static const NoiseSchedule s(ScheduleKind::linear, 1000, 1e-4, 0.02);
  return s;
}

TEST(Process, QSampleMatchesFormulaPerItem) {
  const auto& s = linear1000();
  const int64_t batch = 5, per_item = 1031;
  const auto x0 = test::random_normal(batch * per_item, 1), noise = test::random_normal(batch * per_item, 2);
  const std::vector<int64_t> t = {0, 999, 500, 1, 0};
  std::vector<float> x_t(x0.size(), test::kNaN);
  q_sample(x_t.data(), x0.data(), noise.data(), t.data(), batch, per_item, s);
  std::vector<float> expected(x0.size());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t i = 0; i < per_item; ++i) {
      const double ab = s.alphas_cumprod()[t[b]];
      const int64_t k = b * per_item + i;
      expected[k] = static_cast<float>(std::sqrt(ab) * x0[k] + std::sqrt(1 - ab) * noise[k]);
    }
  test::expect_close(x_t, expected, 1e-6, 1e-7, "q_sample");
  // In place over x0, and large enough to run in parallel.
  const int64_t big = 3 * 100000;
  auto y = test::random_normal(big, 3);
  const auto n2 = test::random_normal(big, 4);
  std::vector<float> out(big);
  const std::vector<int64_t> t3 = {10, 20, 30};
  q_sample(out.data(), y.data(), n2.data(), t3.data(), 3, big / 3, s);
  q_sample(y.data(), y.data(), n2.data(), t3.data(), 3, big / 3, s);
  EXPECT_EQ(y, out);
}

// Closed form against the chain x_s = sqrt(1 − β_s) x_{s−1} + sqrt(β_s) z_s, s = 0..t, from fixed x0
// values. M = 20000 samples per x0: means must agree with sqrt(ᾱ_t) x0 within 5 standard errors
// sqrt((1 − ᾱ_t)/M), variances with 1 − ᾱ_t within 5·(1 − ᾱ_t)·sqrt(2/M) (≈ 5%); the two sample
// sets are also compared with each other (standard errors combined).
TEST(Process, ClosedFormAgreesWithStepwiseNoising) {
  const auto& s = linear1000();
  const std::vector<float> values = {-1.0f, 0.8f};
  const int64_t M = 20000, per_item = static_cast<int64_t>(values.size());
  std::vector<float> x0(M * per_item);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t i = 0; i < per_item; ++i) x0[m * per_item + i] = values[i];
  NoiseRng rng(11);
  std::vector<float> chain = x0, z(x0.size()), closed(x0.size());
  int64_t step = 0;
  for (int64_t t : {0, 9, 99, 499, 999}) {
    for (; step <= t; ++step) {  // one chain, examined at each t in turn
      rng.fill_normal(z.data(), static_cast<int64_t>(z.size()));
      const double beta = s.betas()[step];
      for (size_t k = 0; k < chain.size(); ++k)
        chain[k] = static_cast<float>(std::sqrt(1 - beta) * chain[k] + std::sqrt(beta) * z[k]);
    }
    rng.fill_normal(z.data(), static_cast<int64_t>(z.size()));
    const std::vector<int64_t> ts(M, t);
    q_sample(closed.data(), x0.data(), z.data(), ts.data(), M, per_item, s);
    const double ab = s.alphas_cumprod()[t], var = 1 - ab;
    for (int64_t i = 0; i < per_item; ++i) {
      double m_chain = 0, m_closed = 0, v_chain = 0, v_closed = 0;
      for (int64_t m = 0; m < M; ++m) m_chain += chain[m * per_item + i], m_closed += closed[m * per_item + i];
      m_chain /= M, m_closed /= M;
      for (int64_t m = 0; m < M; ++m) {
        v_chain += std::pow(chain[m * per_item + i] - m_chain, 2);
        v_closed += std::pow(closed[m * per_item + i] - m_closed, 2);
      }
      v_chain /= M - 1, v_closed /= M - 1;
      const double mean = std::sqrt(ab) * values[i], se_mean = std::sqrt(var / M), se_var = var * std::sqrt(2.0 / (M - 1));
      const std::string what = "t=" + std::to_string(t) + " x0=" + std::to_string(values[i]);
      EXPECT_NEAR(m_chain, mean, 5 * se_mean) << what;
      EXPECT_NEAR(m_closed, mean, 5 * se_mean) << what;
      EXPECT_NEAR(m_chain, m_closed, 5 * std::sqrt(2.0) * se_mean) << what;
      EXPECT_NEAR(v_chain, var, 5 * se_var) << what;
      EXPECT_NEAR(v_closed, var, 5 * se_var) << what;
      EXPECT_NEAR(v_chain, v_closed, 5 * std::sqrt(2.0) * se_var) << what;
    }
  }
}

// q(x_{t−1} | x_t, x0) ∝ N(x_t; sqrt(α_t) x_{t−1}, β_t) · N(x_{t−1}; sqrt(ᾱ_{t−1}) x0, 1 − ᾱ_{t−1}):
// precision α_t/β_t + 1/(1 − ᾱ_{t−1}), mean = variance · (sqrt(α_t) x_t/β_t + sqrt(ᾱ_{t−1}) x0/(1 − ᾱ_{t−1})).
TEST(Process, PosteriorMatchesBayesRule) {
  for (const auto& s : {linear1000(), NoiseSchedule(ScheduleKind::cosine, 100)}) {
    const int64_t batch = 4, per_item = 257;
    const auto x0 = test::random_normal(batch * per_item, 5), x_t = test::random_normal(batch * per_item, 6, 1.5f);
    const std::vector<int64_t> t = {1, 2, s.num_timesteps() / 2, s.num_timesteps() - 1};
    std::vector<float> mean(x0.size(), test::kNaN);
    std::vector<double> variance(batch), log_variance(batch);
    q_posterior_mean_variance(mean.data(), variance.data(), log_variance.data(), x0.data(), x_t.data(), t.data(), batch,
                              per_item, s);
    std::vector<float> expected(x0.size());
    for (int64_t b = 0; b < batch; ++b) {
      const double beta = s.betas()[t[b]], alpha = 1 - beta, abp = s.alphas_cumprod_prev()[t[b]];
      const double v = 1 / (alpha / beta + 1 / (1 - abp));
      EXPECT_NEAR(variance[b], v, 1e-12 * v) << b;
      EXPECT_NEAR(log_variance[b], std::log(v), 1e-11) << b;
      for (int64_t i = 0; i < per_item; ++i) {
        const int64_t k = b * per_item + i;
        expected[k] = static_cast<float>(v * (std::sqrt(alpha) * x_t[k] / beta + std::sqrt(abp) * x0[k] / (1 - abp)));
      }
    }
    test::expect_close(mean, expected, 1e-6, 1e-6, "posterior mean");
    // At t = 0 the posterior is x0 itself; variance and log-variance pointers may be null.
    const std::vector<int64_t> zero(batch, 0);
    q_posterior_mean_variance(mean.data(), nullptr, nullptr, x0.data(), x_t.data(), zero.data(), batch, per_item, s);
    test::expect_close(mean, x0, 1e-6, 0, "posterior mean at t=0");
  }
}

TEST(Process, PredictX0InvertsQSample) {
  const auto& s = linear1000();
  const int64_t batch = 4, per_item = 5000;
  const auto x0 = test::random_uniform(batch * per_item, 7, -1, 1), eps = test::random_normal(batch * per_item, 8);
  const std::vector<int64_t> t = {0, 10, 500, 999};
  std::vector<float> x_t(x0.size()), back(x0.size(), test::kNaN);
  q_sample(x_t.data(), x0.data(), eps.data(), t.data(), batch, per_item, s);
  predict_x0_from_eps(back.data(), x_t.data(), eps.data(), t.data(), batch, per_item, s);
  // x_t is rounded to float32 (2^-24 relative) and then multiplied by sqrt(1/ᾱ_T) ≈ 157: up to ~3e-5.
  test::expect_close(back, x0, 0, 4e-5, "x0 from eps");
}

TEST(Process, TrainingDrawIsReproducibleAndConsistent) {
  const auto& s = linear1000();
  const int64_t batch = 64, per_item = 300;
  const auto x0 = test::random_uniform(batch * per_item, 9, -1, 1);
  std::vector<float> x_t(x0.size()), noise(x0.size()), check(x0.size());
  std::vector<int64_t> t(batch);
  NoiseRng rng(42, 1000);
  draw_training_batch(x_t.data(), noise.data(), t.data(), x0.data(), batch, per_item, s, rng);
  EXPECT_EQ(rng.offset(), 1000u + batch + (batch * per_item + 3) / 4);
  q_sample(check.data(), x0.data(), noise.data(), t.data(), batch, per_item, s);
  EXPECT_EQ(x_t, check);
  int64_t distinct_nonzero = 0;
  for (int64_t v : t) {
    EXPECT_GE(v, 0);
    EXPECT_LT(v, 1000);
    distinct_nonzero += v != t[0];
  }
  EXPECT_GT(distinct_nonzero, 0);
  // The same state gives the same batch: t first, then the noise.
  NoiseRng again(42, 1000);
  std::vector<int64_t> t2(batch);
  again.fill_uniform_int(t2.data(), batch, 1000);
  std::vector<float> noise2(x0.size());
  again.fill_normal(noise2.data(), batch * per_item);
  EXPECT_EQ(t, t2);
  EXPECT_EQ(noise, noise2);
}

TEST(Process, RejectsBadTimestepsAndSizes) {
  const auto& s = linear1000();
  std::vector<float> a(8), b(8), c(8);
  const std::vector<int64_t> bad = {0, 1000};
  EXPECT_THROW(q_sample(a.data(), b.data(), c.data(), bad.data(), 2, 4, s), std::out_of_range);
  EXPECT_THROW(predict_x0_from_eps(a.data(), b.data(), c.data(), bad.data(), 2, 4, s), std::out_of_range);
  EXPECT_THROW(q_posterior_mean_variance(a.data(), nullptr, nullptr, b.data(), c.data(), bad.data(), 2, 4, s),
               std::out_of_range);
  const std::vector<int64_t> neg = {-1};
  EXPECT_THROW(q_sample(a.data(), b.data(), c.data(), neg.data(), 1, 4, s), std::out_of_range);
  EXPECT_THROW(q_sample(a.data(), b.data(), c.data(), bad.data(), 1, -4, s), std::invalid_argument);
  try {
    q_sample(a.data(), b.data(), c.data(), bad.data(), 2, 4, s);
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "q_sample: t[1] = 1000 is outside [0, 1000)");
  }
}

}  // namespace
}  // namespace ddpm
