// Noise schedules: known values (facts §1.1, §2), identities the coefficients must satisfy, a
// float64 NumPy recomputation (HO-REPO / IDDPM-REPO formulas) to 1e-12, and input validation.
#include "ddpm/diffusion/schedule.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>

#include "test_support.h"

namespace ddpm {
namespace {

std::vector<double> as_doubles(const std::vector<int64_t>& bits) {
  std::vector<double> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) out[i] = std::bit_cast<double>(bits[i]);
  return out;
}

TEST(NoiseSchedule, LinearT1000KnownValues) {
  const NoiseSchedule s(ScheduleKind::linear, 1000, 1e-4, 0.02);
  ASSERT_EQ(s.num_timesteps(), 1000);
  EXPECT_EQ(s.betas().front(), 1e-4);
  EXPECT_EQ(s.betas().back(), 0.02);
  // facts §1.1: ᾱ_T ≈ 4.04e-5, sqrt ≈ 0.00635 (NumPy: 4.035829765375676e-05).
  EXPECT_NEAR(s.alphas_cumprod().back(), 4.035829765375676e-05, 1e-16);
  EXPECT_NEAR(s.sqrt_alphas_cumprod().back(), 0.00635, 5e-6);
  EXPECT_EQ(s.alphas_cumprod_prev().front(), 1.0);
  EXPECT_NEAR(s.betas()[1] - s.betas()[0], (0.02 - 1e-4) / 999, 1e-18);
}

TEST(NoiseSchedule, CosineT1000KnownValues) {
  const NoiseSchedule s(ScheduleKind::cosine, 1000);
  // facts §2: first β ≈ 4.13e-5, and only the last β reaches the 0.999 cap.
  EXPECT_NEAR(s.betas().front(), 4.13e-5, 5e-8);
  EXPECT_EQ(s.betas().back(), 0.999);
  for (int64_t t = 0; t + 1 < s.num_timesteps(); ++t) EXPECT_LT(s.betas()[t], 0.999) << t;
  EXPECT_NEAR(s.betas()[998], 0.7499993929011166, 1e-12);
  // ᾱ follows f(t)/f(0) until the cap: ᾱ_t = cos²(((t+1)/T + s)/(1 + s)·π/2) / cos²(s/(1 + s)·π/2).
  const auto f = [](double u) { return std::pow(std::cos((u + 0.008) / 1.008 * M_PI / 2), 2); };
  for (int64_t t : {0, 1, 100, 500, 900, 998})
    EXPECT_NEAR(s.alphas_cumprod()[t], f((t + 1) / 1000.0) / f(0.0), 1e-12) << t;
}

// Identities from the Gaussian algebra, each derived independently of the code's formulas:
//  E[x_{t−1} | x0] = sqrt(ᾱ_{t−1}) x0 = coef1 x0 + coef2 E[x_t | x0]  =>  coef1 + coef2 sqrt(ᾱ_t) = sqrt(ᾱ_{t−1});
//  Var[x_{t−1} | x0] = 1 − ᾱ_{t−1} = coef2² (1 − ᾱ_t) + β̃_t               (law of total variance);
//  the posterior is the product of q(x_t | x_{t−1}) and q(x_{t−1} | x0):
//  1/β̃_t = α_t/β_t + 1/(1 − ᾱ_{t−1}) and coef2 = β̃_t sqrt(α_t)/β_t, coef1 = β̃_t sqrt(ᾱ_{t−1})/(1 − ᾱ_{t−1}).
TEST(NoiseSchedule, CoefficientsSatisfyGaussianIdentities) {
  for (const auto& s : {NoiseSchedule(ScheduleKind::linear, 1000, 1e-4, 0.02), NoiseSchedule(ScheduleKind::cosine, 1000),
                        NoiseSchedule(ScheduleKind::linear, 10, 0.05, 0.5)}) {
    const std::string name = std::string(schedule_kind_name(s.kind())) + " T=" + std::to_string(s.num_timesteps());
    double prod = 1.0;
    for (int64_t t = 0; t < s.num_timesteps(); ++t) {
      const double beta = s.betas()[t], alpha = 1 - beta;
      prod *= alpha;
      EXPECT_NEAR(s.alphas_cumprod()[t], prod, 1e-15 * prod) << name << " t=" << t;
      const double ab = s.alphas_cumprod()[t], abp = s.alphas_cumprod_prev()[t];
      EXPECT_NEAR(s.sqrt_alphas_cumprod()[t] * s.sqrt_alphas_cumprod()[t], ab, 1e-15) << name << " t=" << t;
      EXPECT_NEAR(std::pow(s.sqrt_one_minus_alphas_cumprod()[t], 2), 1 - ab, 1e-15) << name;
      EXPECT_NEAR(s.sqrt_recip_alphas_cumprod()[t] * s.sqrt_alphas_cumprod()[t], 1.0, 1e-14) << name;
      EXPECT_NEAR(std::pow(s.sqrt_recipm1_alphas_cumprod()[t], 2), (1 - ab) / ab, 1e-12 * (1 - ab) / ab) << name;
      const double c1 = s.posterior_mean_coef1()[t], c2 = s.posterior_mean_coef2()[t], pv = s.posterior_variance()[t];
      // The coefficients divide by 1 − ᾱ_t (4e-5 at the cosine schedule's t = 0), which the
      // subtraction knows only to ~1e-16 absolute: the tolerance follows that conditioning.
      const double tol = 1e-14 / (1 - ab);
      EXPECT_NEAR(c1 + c2 * std::sqrt(ab), std::sqrt(abp), tol) << name << " t=" << t;
      EXPECT_NEAR(c2 * c2 * (1 - ab) + pv, 1 - abp, tol) << name << " t=" << t;
      if (t == 0) {
        EXPECT_EQ(pv, 0.0) << name;
        EXPECT_NEAR(c1, 1.0, tol) << name;  // β_0 / (1 − (1 − β_0)) rounds
        EXPECT_EQ(c2, 0.0) << name;
      } else {
        EXPECT_NEAR(pv * (alpha / beta + 1 / (1 - abp)), 1.0, tol) << name << " t=" << t;
        EXPECT_NEAR(c2, pv * std::sqrt(alpha) / beta, tol) << name << " t=" << t;
        EXPECT_NEAR(c1, pv * std::sqrt(abp) / (1 - abp), tol) << name << " t=" << t;
        EXPECT_LE(pv, beta) << name << " t=" << t;  // β̃_t <= β_t: fixed_small is the smaller choice
        EXPECT_DOUBLE_EQ(s.log_variance(Variance::fixed_large)[t], std::log(beta)) << name;
        EXPECT_DOUBLE_EQ(s.log_variance(Variance::fixed_small)[t], std::log(pv)) << name;
        EXPECT_EQ(s.variance(Variance::fixed_large)[t], beta) << name;
        EXPECT_EQ(s.variance(Variance::fixed_small)[t], pv) << name;
      }
    }
    // Index 0: both choices borrow β̃ at index 1 for the log-variance (facts §1.4).
    const double pv1 = s.posterior_variance()[1];
    EXPECT_EQ(s.log_variance(Variance::fixed_large)[0], std::log(pv1)) << name;
    EXPECT_EQ(s.log_variance(Variance::fixed_small)[0], std::log(pv1)) << name;
    EXPECT_EQ(s.posterior_log_variance_clipped()[0], std::log(pv1)) << name;
  }
}

TEST(NoiseSchedule, MatchesNumPyFloat64) {
  int count = 0;
  for (const auto& c : test::reference_cases("diffusion")) {
    if (c.name.rfind("schedule_", 0) != 0) continue;
    const auto kind = c.i64("kind")[0] == 0 ? ScheduleKind::linear : ScheduleKind::cosine;
    const NoiseSchedule s(kind, c.i64("T")[0], as_doubles(c.i64("beta_start_bits"))[0],
                          as_doubles(c.i64("beta_end_bits"))[0]);
    const std::map<std::string, const std::vector<double>*> ours = {
        {"betas", &s.betas()},
        {"alphas", &s.alphas()},
        {"alphas_cumprod", &s.alphas_cumprod()},
        {"alphas_cumprod_prev", &s.alphas_cumprod_prev()},
        {"sqrt_alphas_cumprod", &s.sqrt_alphas_cumprod()},
        {"sqrt_one_minus_alphas_cumprod", &s.sqrt_one_minus_alphas_cumprod()},
        {"sqrt_recip_alphas_cumprod", &s.sqrt_recip_alphas_cumprod()},
        {"sqrt_recipm1_alphas_cumprod", &s.sqrt_recipm1_alphas_cumprod()},
        {"posterior_variance", &s.posterior_variance()},
        {"posterior_log_variance_clipped", &s.posterior_log_variance_clipped()},
        {"posterior_mean_coef1", &s.posterior_mean_coef1()},
        {"posterior_mean_coef2", &s.posterior_mean_coef2()},
        {"large_variance", &s.variance(Variance::fixed_large)},
        {"large_log_variance", &s.log_variance(Variance::fixed_large)},
    };
    for (const auto& [name, values] : ours) {
      const auto expected = as_doubles(c.i64(name + "_bits"));
      ASSERT_EQ(values->size(), expected.size()) << c.name << " " << name;
      double worst = 0;
      for (size_t i = 0; i < expected.size(); ++i) {
        const double err = std::abs((*values)[i] - expected[i]) / std::max(std::abs(expected[i]), 1e-300);
        worst = std::max(worst, err);
        EXPECT_LE(err, 1e-12) << c.name << " " << name << "[" << i << "]: " << (*values)[i] << " vs " << expected[i];
      }
      RecordProperty(c.name + "." + name, std::to_string(worst));
    }
    EXPECT_EQ(s.variance(Variance::fixed_small), s.posterior_variance()) << c.name;
    ++count;
  }
  EXPECT_EQ(count, 6);
}

TEST(NoiseSchedule, SingleStep) {
  const NoiseSchedule s(ScheduleKind::linear, 1, 0.05, 0.05);
  EXPECT_EQ(s.betas()[0], 0.05);
  EXPECT_NEAR(s.posterior_mean_coef1()[0], 1.0, 1e-14);
  EXPECT_EQ(s.log_variance(Variance::fixed_large)[0], std::log(0.05));
  EXPECT_EQ(s.log_variance(Variance::fixed_small)[0], std::log(0.05));
  const NoiseSchedule c(ScheduleKind::cosine, 1);
  EXPECT_EQ(c.betas()[0], 0.999);
}

TEST(NoiseSchedule, RejectsBadInputs) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(NoiseSchedule(ScheduleKind::linear, 0), std::invalid_argument);
  EXPECT_THROW(NoiseSchedule(ScheduleKind::cosine, -5), std::invalid_argument);
  EXPECT_THROW(NoiseSchedule(ScheduleKind::linear, 10, 0.0, 0.02), std::invalid_argument);
  EXPECT_THROW(NoiseSchedule(ScheduleKind::linear, 10, 1e-4, 1.0), std::invalid_argument);
  EXPECT_THROW(NoiseSchedule(ScheduleKind::linear, 10, -1e-4, 0.02), std::invalid_argument);
  EXPECT_THROW(NoiseSchedule(ScheduleKind::linear, 10, nan, 0.02), std::invalid_argument);
  try {
    NoiseSchedule(ScheduleKind::linear, 10, 1e-4, 1.5);
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("beta_end must be in (0, 1), got 1.5"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(NoiseSchedule(ScheduleKind::cosine, 10, 0.0, 5.0));  // cosine ignores the linear range
  const NoiseSchedule s(ScheduleKind::linear, 10);
  EXPECT_THROW(s.check_timestep(10, "test"), std::out_of_range);
  EXPECT_THROW(s.check_timestep(-1, "test"), std::out_of_range);
  EXPECT_NO_THROW(s.check_timestep(9, "test"));
}

TEST(NoiseSchedule, ParsesNames) {
  EXPECT_EQ(parse_schedule_kind("linear"), ScheduleKind::linear);
  EXPECT_EQ(parse_schedule_kind("cosine"), ScheduleKind::cosine);
  EXPECT_EQ(parse_schedule_kind("squaredcos_cap_v2"), ScheduleKind::cosine);
  EXPECT_THROW(parse_schedule_kind("quad"), std::invalid_argument);
  EXPECT_EQ(parse_variance("fixed_large"), Variance::fixed_large);
  EXPECT_EQ(parse_variance("fixedsmall"), Variance::fixed_small);
  EXPECT_THROW(parse_variance("learned"), std::invalid_argument);
  EXPECT_STREQ(variance_name(Variance::fixed_small), "fixed_small");
  EXPECT_STREQ(schedule_kind_name(ScheduleKind::cosine), "cosine");
}

}  // namespace
}  // namespace ddpm
