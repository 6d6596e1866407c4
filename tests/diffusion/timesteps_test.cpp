// Timestep lists against diffusers' DDIMScheduler.set_timesteps and DDIM's quadratic sequence
// (written out in NumPy), and the properties every sampler relies on.
#include "ddpm/diffusion/timesteps.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

#include "test_support.h"

namespace ddpm {
namespace {

constexpr Spacing kSpacings[] = {Spacing::leading, Spacing::trailing, Spacing::linspace, Spacing::quadratic};

TEST(Timesteps, MatchDiffusersAndDdim) {
  int valid = 0, invalid = 0;
  for (const auto& c : test::reference_cases("samplers")) {
    if (c.name.rfind("timesteps_", 0) != 0) continue;
    const int64_t T = c.i64("T")[0], K = c.i64("K")[0], offset = c.i64("offset")[0];
    const Spacing spacing = kSpacings[c.i64("spacing")[0]];
    if (c.i64("valid")[0] != 0) {
      EXPECT_EQ(sampling_timesteps(T, K, spacing, offset), c.i64("timesteps")) << c.name;
      ++valid;
    } else {
      // The reference repeats a timestep (quadratic spacing with many steps) or, with
      // steps_offset 1 and K = T, goes past T − 1: we refuse (the message is tested below).
      EXPECT_THROW(sampling_timesteps(T, K, spacing, offset), std::invalid_argument) << c.name;
      ++invalid;
    }
  }
  EXPECT_GE(valid, 40);
  EXPECT_GE(invalid, 3);  // quadratic with 50, 999, 1000 steps of T = 1000
}

TEST(Timesteps, StrictlyDecreasingWithTheRightEnds) {
  for (int64_t T : {1000, 37, 1}) {
    for (int64_t K : {1, 2, 7, 10, 50, 999, 1000}) {
      if (K > T) continue;
      for (Spacing s : {Spacing::leading, Spacing::trailing, Spacing::linspace}) {
        const auto ts = sampling_timesteps(T, K, s);
        const std::string what = std::string(spacing_name(s)) + " T=" + std::to_string(T) + " K=" + std::to_string(K);
        ASSERT_EQ(static_cast<int64_t>(ts.size()), K) << what;
        for (size_t i = 1; i < ts.size(); ++i) EXPECT_LT(ts[i], ts[i - 1]) << what;
        EXPECT_LT(ts.front(), T) << what;
        EXPECT_GE(ts.back(), 0) << what;
        if (s == Spacing::leading) {
          EXPECT_EQ(ts.back(), 0) << what;
        }
        if (s == Spacing::trailing) {
          EXPECT_EQ(ts.front(), T - 1) << what;
        }
        if (s == Spacing::linspace && K > 1) {
          EXPECT_EQ(ts.front(), T - 1) << what;
        }
        if (s == Spacing::linspace) {
          EXPECT_EQ(ts.back(), 0) << what;
        }
        if (K == T) {
          for (int64_t i = 0; i < K; ++i) EXPECT_EQ(ts[i], T - 1 - i) << what;
        }
      }
    }
  }
}

TEST(Timesteps, BadRequestsAreRefusedWithTheReason) {
  EXPECT_THROW(sampling_timesteps(1000, 0, Spacing::leading), std::invalid_argument);
  EXPECT_THROW(sampling_timesteps(1000, 1001, Spacing::trailing), std::invalid_argument);
  // steps_offset 1 with K = T would visit timestep T.
  EXPECT_THROW(sampling_timesteps(1000, 1000, Spacing::leading, 1), std::invalid_argument);
  try {
    sampling_timesteps(1000, 50, Spacing::quadratic);
    ADD_FAILURE() << "quadratic spacing with 50 of 1000 steps repeats timestep 0";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("use at most 29 steps"), std::string::npos) << e.what();
  }
  EXPECT_EQ(sampling_timesteps(1000, 29, Spacing::quadratic).size(), 29u);
  EXPECT_EQ(parse_spacing("trailing"), Spacing::trailing);
  EXPECT_THROW(parse_spacing("uniform"), std::invalid_argument);
}

}  // namespace
}  // namespace ddpm
