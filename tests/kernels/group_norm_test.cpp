// Group norm (+ affine, + fused SiLU): finite differences, PyTorch, thread-count invariance.
#include "ddpm/kernels/group_norm.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_support.h"

namespace ddpm {
namespace {

using cpu::GroupNormShape;

// Owns a double-aligned workspace of the size the shape needs.
struct Workspace {
  explicit Workspace(const GroupNormShape& s)
      : floats(cpu::group_norm_workspace_floats(s)), storage((floats + 1) / 2) {}
  float* data() { return reinterpret_cast<float*>(storage.data()); }
  size_t floats;
  std::vector<double> storage;
};

struct Result {
  std::vector<float> y, mean, rstd;
};

Result forward(const std::vector<float>& x, const std::vector<float>& gamma, const std::vector<float>& beta,
               const GroupNormShape& s, bool silu) {
  Result r{std::vector<float>(x.size()), std::vector<float>(s.batch * s.groups),
           std::vector<float>(s.batch * s.groups)};
  Workspace ws(s);
  cpu::group_norm_forward(r.y.data(), r.mean.data(), r.rstd.data(), x.data(), gamma.data(), beta.data(), s, silu,
                          ws.data(), ws.floats);
  return r;
}

struct Grads {
  std::vector<float> dx, dgamma, dbeta;
};

Grads backward(const std::vector<float>& dy, const std::vector<float>& x, const Result& fwd,
               const std::vector<float>& gamma, const std::vector<float>& beta, const GroupNormShape& s, bool silu) {
  Grads g{std::vector<float>(x.size()), std::vector<float>(gamma.size()), std::vector<float>(beta.size())};
  Workspace ws(s);
  cpu::group_norm_backward(g.dx.data(), g.dgamma.data(), g.dbeta.data(), dy.data(), x.data(), fwd.mean.data(),
                           fwd.rstd.data(), gamma.data(), beta.data(), s, silu, ws.data(), ws.floats);
  return g;
}

std::string describe(const GroupNormShape& s, bool silu) {
  std::ostringstream out;  // (not operator+: GCC 12 raises a false -Wrestrict on "B" + std::string)
  out << "B" << s.batch << " P" << s.pixels << " C" << s.channels << " G" << s.groups << (silu ? " +silu" : "");
  return out.str();
}

// Batch 1 and 3, 5x7 images, 3 or 6 channels, groups of 1 and of several channels.
TEST(GroupNorm, GradientMatchesFiniteDifferences) {
  const GroupNormShape shapes[] = {
      {1, 35, 3, 1, 1e-5f}, {1, 35, 3, 3, 1e-5f}, {3, 35, 6, 3, 1e-5f}, {3, 35, 6, 6, 1e-5f}, {3, 35, 3, 1, 1e-5f}};
  uint64_t seed = 1;
  for (const auto& s : shapes) {
    for (bool silu : {false, true}) {
      const size_t n = s.batch * s.pixels * s.channels, c = s.channels;
      auto x = test::random_normal(n, seed++, 1.5f);
      for (auto& v : x) v += 0.3f;
      auto gamma = test::random_normal(c, seed++, 0.5f);
      for (auto& v : gamma) v += 1.0f;
      auto beta = test::random_normal(c, seed++, 0.5f);
      const auto w = test::random_normal(n, seed++);
      const Result fwd = forward(x, gamma, beta, s, silu);
      const Grads g = backward(w, x, fwd, gamma, beta, s, silu);
      const auto loss = [&] { return test::weighted_sum(forward(x, gamma, beta, s, silu).y.data(), w.data(), n); };
      const std::string what = describe(s, silu);
      test::expect_gradient(x, g.dx, loss, {}, what + " dx");
      test::expect_gradient(gamma, g.dgamma, loss, {}, what + " dgamma");
      test::expect_gradient(beta, g.dbeta, loss, {}, what + " dbeta");
    }
  }
}

// fp32 tolerance: 1e-5 relative, plus 1e-5 absolute for activations and statistics (values of order
// 1; with inputs offset by 100 the saved fp32 mean alone carries a rounding error of 3.8e-6). dgamma
// and dbeta are sums over batch x pixels, so their absolute tolerance is 1e-5 times the RMS of the
// expected values. rstd is checked to 1e-5 relative even with the offset-100 inputs, where fp32
// E[x^2] - E[x]^2 would lose almost all of its digits.
TEST(GroupNorm, MatchesPyTorch) {
  for (const auto& c : test::reference_cases("group_norm")) {
    const auto shape = c.shape("x");
    ASSERT_EQ(shape.size(), 4u) << c.name;
    const GroupNormShape s{shape[0], shape[1] * shape[2], shape[3], c.i64("groups").at(0),
                           static_cast<float>(c.scalar("eps"))};
    const bool silu = c.i64("silu").at(0) != 0;
    const auto x = c.f32("x"), gamma = c.f32("gamma"), beta = c.f32("beta"), dy = c.f32("dy");
    const Result fwd = forward(x, gamma, beta, s, silu);
    const Grads g = backward(dy, x, fwd, gamma, beta, s, silu);

    const auto rms = [](const std::vector<float>& v) {
      double sq = 0.0;
      for (float e : v) sq += static_cast<double>(e) * e;
      return std::sqrt(sq / static_cast<double>(v.size()));
    };
    const auto dgamma = c.f32("dgamma"), dbeta = c.f32("dbeta");
    test::expect_close(fwd.y, c.f32("y"), 1e-5, 1e-5, c.name + " y");
    test::expect_close(fwd.mean, c.f32("mean"), 1e-6, 1e-5, c.name + " mean");
    test::expect_close(fwd.rstd, c.f32("rstd"), 1e-5, 0.0, c.name + " rstd");
    test::expect_close(g.dx, c.f32("dx"), 1e-5, 1e-5, c.name + " dx");
    test::expect_close(g.dgamma, dgamma, 1e-5, 1e-5 * rms(dgamma), c.name + " dgamma");
    test::expect_close(g.dbeta, dbeta, 1e-5, 1e-5 * rms(dbeta), c.name + " dbeta");
  }
}

// The work split depends on the shape only, so any thread count gives bit-identical results.
TEST(GroupNorm, ResultsDoNotDependOnThreadCount) {
  const GroupNormShape s{3, 20 * 20, 128, 32, 1e-5f};
  const size_t n = s.batch * s.pixels * s.channels;
  const auto x = test::random_normal(n, 5, 2.0f), dy = test::random_normal(n, 6);
  const auto gamma = test::random_normal(s.channels, 7), beta = test::random_normal(s.channels, 8);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const Result f1 = forward(x, gamma, beta, s, true);
  const Grads g1 = backward(dy, x, f1, gamma, beta, s, true);
  omp_set_num_threads(3);
  const Result f3 = forward(x, gamma, beta, s, true);
  const Grads g3 = backward(dy, x, f3, gamma, beta, s, true);
  omp_set_num_threads(saved);
  EXPECT_EQ(f1.y, f3.y);
  EXPECT_EQ(f1.mean, f3.mean);
  EXPECT_EQ(f1.rstd, f3.rstd);
  EXPECT_EQ(g1.dx, g3.dx);
  EXPECT_EQ(g1.dgamma, g3.dgamma);
  EXPECT_EQ(g1.dbeta, g3.dbeta);
}

TEST(GroupNorm, BackwardMayAliasGradient) {
  const GroupNormShape s{2, 9 * 9, 40, 8, 1e-5f};
  const size_t n = s.batch * s.pixels * s.channels;
  const auto x = test::random_normal(n, 15), gamma = test::random_normal(s.channels, 16),
             beta = test::random_normal(s.channels, 17);
  auto g = test::random_normal(n, 18);
  const Result fwd = forward(x, gamma, beta, s, true);
  const Grads expected = backward(g, x, fwd, gamma, beta, s, true);
  std::vector<float> dgamma(s.channels), dbeta(s.channels);
  Workspace ws(s);
  cpu::group_norm_backward(g.data(), dgamma.data(), dbeta.data(), g.data(), x.data(), fwd.mean.data(),
                           fwd.rstd.data(), gamma.data(), beta.data(), s, true, ws.data(), ws.floats);
  EXPECT_EQ(g, expected.dx);
  EXPECT_EQ(dgamma, expected.dgamma);
  EXPECT_EQ(dbeta, expected.dbeta);
}

TEST(GroupNorm, RejectsBadShapesAndSmallWorkspaces) {
  const GroupNormShape s{1, 4, 6, 4, 1e-5f};  // 4 groups do not divide 6 channels
  std::vector<float> x(24, 1.0f), y(24), stats(4), gamma(6, 1.0f), beta(6);
  std::vector<double> ws(1024);
  EXPECT_THROW(cpu::group_norm_forward(y.data(), stats.data(), stats.data(), x.data(), gamma.data(), beta.data(), s,
                                       false, reinterpret_cast<float*>(ws.data()), 2048),
               std::invalid_argument);
  const GroupNormShape ok{1, 4, 6, 3, 1e-5f};
  const size_t need = cpu::group_norm_workspace_floats(ok);
  EXPECT_THROW(cpu::group_norm_forward(y.data(), stats.data(), stats.data(), x.data(), gamma.data(), beta.data(), ok,
                                       false, reinterpret_cast<float*>(ws.data()), need - 1),
               std::invalid_argument);
  EXPECT_NO_THROW(cpu::group_norm_forward(y.data(), stats.data(), stats.data(), x.data(), gamma.data(), beta.data(),
                                          ok, false, reinterpret_cast<float*>(ws.data()), need));
}

}  // namespace
}  // namespace ddpm
