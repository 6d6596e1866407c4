// Learning-rate warm-up and EMA decay warm-up.
#include "ddpm/train/schedules.h"

#include <gtest/gtest.h>

namespace ddpm {
namespace {

TEST(WarmedUpLr, RisesLinearlyThenStays) {
  EXPECT_DOUBLE_EQ(warmed_up_lr(2e-4, 1, 5000), 2e-4 / 5000);
  EXPECT_DOUBLE_EQ(warmed_up_lr(2e-4, 2500, 5000), 1e-4);
  EXPECT_DOUBLE_EQ(warmed_up_lr(2e-4, 5000, 5000), 2e-4);
  EXPECT_DOUBLE_EQ(warmed_up_lr(2e-4, 800000, 5000), 2e-4);
  EXPECT_DOUBLE_EQ(warmed_up_lr(2e-4, 3, 0), 2e-4);
  EXPECT_THROW(warmed_up_lr(2e-4, 0, 10), std::invalid_argument);
}

TEST(EmaDecay, FixedOrWarmedUp) {
  EXPECT_DOUBLE_EQ(ema_decay_at(0.9999, 1, false), 0.9999);
  EXPECT_DOUBLE_EQ(ema_decay_at(0.9999, 1, true), 2.0 / 11.0);
  EXPECT_DOUBLE_EQ(ema_decay_at(0.9999, 90, true), 91.0 / 100.0);
  EXPECT_DOUBLE_EQ(ema_decay_at(0.9999, 10000000, true), 0.9999);
}

}  // namespace
}  // namespace ddpm
