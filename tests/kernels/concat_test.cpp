// Channel concatenation: finite differences and PyTorch (torch.cat along channels).
#include "ddpm/kernels/concat.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "test_support.h"

namespace ddpm {
namespace {

TEST(ConcatChannels, GradientMatchesFiniteDifferences) {
  struct Shape {
    int64_t positions, ca, cb;
  };
  uint64_t seed = 1;
  for (const Shape s : {Shape{35, 3, 5}, Shape{105, 3, 1}, Shape{6, 17, 16}}) {
    auto a = test::random_normal(s.positions * s.ca, seed++);
    auto b = test::random_normal(s.positions * s.cb, seed++);
    const auto w = test::random_normal(s.positions * (s.ca + s.cb), seed++);
    std::vector<float> y(w.size()), da(a.size()), db(b.size());
    cpu::concat_channels_backward(da.data(), db.data(), w.data(), s.ca, s.cb, s.positions);
    const auto loss = [&] {
      cpu::concat_channels_forward(y.data(), a.data(), s.ca, b.data(), s.cb, s.positions);
      return test::weighted_sum(y.data(), w.data(), y.size());
    };
    const std::string what = "concat ca=" + std::to_string(s.ca) + " cb=" + std::to_string(s.cb);
    test::expect_gradient(a, da, loss, {}, what + " da");
    test::expect_gradient(b, db, loss, {}, what + " db");
  }
}

// Exact: forward and backward only copy.
TEST(ConcatChannels, MatchesPyTorch) {
  for (const auto& c : test::reference_cases("concat")) {
    const auto sa = c.shape("a"), sb = c.shape("b");
    ASSERT_EQ(sa.size(), 4u) << c.name;
    const int64_t positions = sa[0] * sa[1] * sa[2], ca = sa[3], cb = sb[3];
    const auto a = c.f32("a"), b = c.f32("b"), dy = c.f32("dy");
    std::vector<float> y(dy.size()), da(a.size()), db(b.size());
    cpu::concat_channels_forward(y.data(), a.data(), ca, b.data(), cb, positions);
    cpu::concat_channels_backward(da.data(), db.data(), dy.data(), ca, cb, positions);
    test::expect_close(y, c.f32("y"), 0.0, 0.0, c.name + " y");
    test::expect_close(da, c.f32("da"), 0.0, 0.0, c.name + " da");
    test::expect_close(db, c.f32("db"), 0.0, 0.0, c.name + " db");
  }
}

}  // namespace
}  // namespace ddpm
