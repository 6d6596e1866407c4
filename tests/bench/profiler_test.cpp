// The profiler behind `ddpm bench --profile`: nothing is recorded while it is off; an op's self
// time excludes the ops nested in it; a block's time is inclusive; calls are counted.
#include "ddpm/bench/profiler.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace ddpm {
namespace {

void busy(double ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double, std::milli>(ms);
  while (std::chrono::steady_clock::now() < end) {
  }
}

double seconds_of(const std::vector<profile::Total>& totals, const std::string& name, int64_t* calls = nullptr) {
  for (const auto& t : totals)
    if (t.name == name) {
      if (calls) *calls = t.calls;
      return t.seconds;
    }
  return -1;
}

TEST(Profiler, RecordsSelfTimeOfOpsAndInclusiveTimeOfBlocks) {
  profile::set_enabled(false);
  profile::reset();
  { profile::Scope off(profile::Kind::op, "off"); }
  EXPECT_TRUE(profile::totals(profile::Kind::op).empty());

  profile::set_enabled(true);
  {
    profile::Scope block(profile::Kind::block, "block");
    for (int i = 0; i < 2; ++i) {
      profile::Scope outer(profile::Kind::op, "outer");
      busy(5);
      profile::Scope inner(profile::Kind::op, "inner");
      busy(20);
    }
  }
  profile::set_enabled(false);
  int64_t outer_calls = 0, inner_calls = 0;
  const auto ops = profile::totals(profile::Kind::op);
  const double outer = seconds_of(ops, "outer", &outer_calls), inner = seconds_of(ops, "inner", &inner_calls);
  const double block = seconds_of(profile::totals(profile::Kind::block), "block");
  EXPECT_EQ(outer_calls, 2);
  EXPECT_EQ(inner_calls, 2);
  // Busy-waits only ever take longer than asked (the machine is shared): lower bounds, and the
  // nesting arithmetic exactly.
  EXPECT_GE(inner, 0.040);
  EXPECT_GE(outer, 0.010);
  EXPECT_LT(outer, inner) << "the inner op's time was charged to the outer one too";
  EXPECT_NEAR(block, outer + inner, 5e-3);
  EXPECT_EQ(ops.front().name, "inner");  // largest first
  profile::reset();
  EXPECT_TRUE(profile::totals(profile::Kind::block).empty());
}

}  // namespace
}  // namespace ddpm
