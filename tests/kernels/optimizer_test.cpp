// Gradient norm and clipping, Adam and EMA against PyTorch (torch.nn.utils.clip_grad_norm_,
// torch.optim.Adam); determinism of the norm across thread counts.
#include "ddpm/kernels/optimizer.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "test_support.h"

namespace ddpm {
namespace {

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// The norm sums in double; the float64 reference comes as two float32 parts (~1e-14 relative).
TEST(GradNorm, MatchesPyTorchFloat64) {
  int count = 0;
  for (const auto& c : test::reference_cases("optimizer")) {
    if (!starts_with(c.name, "norm_")) continue;
    const auto grad = c.f32("grad");
    const double expected = c.scalar("norm_hi") + c.scalar("norm_lo");
    EXPECT_NEAR(cpu::global_grad_norm(grad.data(), static_cast<int64_t>(grad.size())), expected, 1e-12 * expected)
        << c.name;
    ++count;
  }
  EXPECT_EQ(count, 2);
}

TEST(GradNorm, IndependentOfThreadCount) {
  const auto grad = test::random_normal(3000017, 8);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = cpu::global_grad_norm(grad.data(), static_cast<int64_t>(grad.size()));
  omp_set_num_threads(3);
  const double many = cpu::global_grad_norm(grad.data(), static_cast<int64_t>(grad.size()));
  omp_set_num_threads(saved);
  EXPECT_EQ(one, many);
}

// clip_grad_norm_ works in float32 on both sides; the norms differ by float32 summation order.
TEST(ClipGradNorm, MatchesPyTorch) {
  int count = 0;
  for (const auto& c : test::reference_cases("optimizer")) {
    if (!starts_with(c.name, "clip_")) continue;
    auto grad = c.f32("grad");
    const float norm = cpu::clip_grad_norm(grad.data(), static_cast<int64_t>(grad.size()),
                                           static_cast<float>(c.scalar("max_norm")));
    EXPECT_NEAR(norm, c.scalar("norm"), 1e-6 * c.scalar("norm")) << c.name;
    test::expect_close(grad, c.f32("clipped"), 1e-6, 1e-9, c.name + " clipped grad");
    ++count;
  }
  EXPECT_EQ(count, 2);
}

TEST(ClipGradNorm, LeavesNonFiniteGradientsForTheCaller) {
  std::vector<float> grad = {1.0f, std::numeric_limits<float>::infinity(), 2.0f};
  const auto before = grad;
  EXPECT_TRUE(std::isinf(cpu::clip_grad_norm(grad.data(), 3, 1.0f)));
  EXPECT_EQ(grad, before);
  EXPECT_THROW(cpu::clip_grad_norm(grad.data(), 3, 0.0f), std::invalid_argument);
}

// Five steps of clip + Adam: params after every step at 1e-6 relative (float32 update math on both
// sides; measured: at most 1 ulp apart). The moments are sums of gradient terms, so their absolute
// error scales with the largest gradient: two float32 ulps of it (2^-22 max|g|, and max|g|^2 for
// v). Identical in a -O3 build; -O2 contracts the multiply-adds differently.
TEST(Adam, FiveStepsWithClippingMatchPyTorch) {
  int count = 0;
  for (const auto& c : test::reference_cases("optimizer")) {
    if (!starts_with(c.name, "adam_")) continue;
    const auto cfg = c.f32("config"), grads = c.f32("grads"), history = c.f32("params");
    const auto norms = c.f32("norms");
    cpu::AdamConfig config;
    config.lr = cfg[0];
    config.beta1 = cfg[1];
    config.beta2 = cfg[2];
    config.eps = cfg[3];
    config.weight_decay = cfg[4];
    const float max_norm = cfg[5];
    auto param = c.f32("param0");
    const size_t n = param.size();
    std::vector<float> m(n, 0.0f), v(n, 0.0f), grad(n);
    int clipped = 0;
    for (size_t k = 0; k < norms.size(); ++k) {
      grad.assign(grads.begin() + static_cast<std::ptrdiff_t>(k * n), grads.begin() + static_cast<std::ptrdiff_t>((k + 1) * n));
      const float norm = cpu::clip_grad_norm(grad.data(), static_cast<int64_t>(n), max_norm);
      EXPECT_NEAR(norm, norms[k], 1e-6 * norms[k]) << c.name << " step " << k + 1;
      clipped += norm > max_norm;
      cpu::adam_step(param.data(), grad.data(), m.data(), v.data(), static_cast<int64_t>(n), config,
                     static_cast<int64_t>(k + 1));
      test::expect_close(param.data(), history.data() + k * n, n, 1e-6, 1e-7,
                         c.name + " params after step " + std::to_string(k + 1));
    }
    EXPECT_GT(clipped, 0) << c.name;
    EXPECT_LT(clipped, static_cast<int>(norms.size())) << c.name;
    double gmax = 0;
    for (float g : grads) gmax = std::max(gmax, std::fabs(static_cast<double>(g)));
    test::expect_close(m, c.f32("m"), 1e-6, std::ldexp(gmax, -22), c.name + " exp_avg");
    test::expect_close(v, c.f32("v"), 1e-6, std::ldexp(gmax * gmax, -22), c.name + " exp_avg_sq");
    ++count;
  }
  EXPECT_EQ(count, 2);
}

// An element's update must not depend on its position (vector body or tail): n = 1 calls element
// by element give bit-identical results to one call over the buffer.
TEST(Adam, TailMatchesVectorBody) {
  const size_t n = 103;
  auto param = test::random_normal(n, 1);
  const auto grad = test::random_normal(n, 2);
  std::vector<float> m(n, 0.1f), v(n, 0.2f);
  auto p1 = param, m1 = m, v1 = v;
  const cpu::AdamConfig config{1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f};
  cpu::adam_step(param.data(), grad.data(), m.data(), v.data(), static_cast<int64_t>(n), config, 3);
  for (size_t i = 0; i < n; ++i) cpu::adam_step(&p1[i], &grad[i], &m1[i], &v1[i], 1, config, 3);
  EXPECT_EQ(p1, param);
  EXPECT_EQ(m1, m);
  EXPECT_EQ(v1, v);
  EXPECT_THROW(cpu::adam_step(param.data(), grad.data(), m.data(), v.data(), 1, config, 0), std::invalid_argument);
}

TEST(Ema, MatchesFormula) {
  int count = 0;
  for (const auto& c : test::reference_cases("optimizer")) {
    if (!starts_with(c.name, "ema_")) continue;
    auto ema = c.f32("ema");
    const auto param = c.f32("param");
    cpu::ema_update(ema.data(), param.data(), static_cast<int64_t>(ema.size()), static_cast<float>(c.scalar("decay")));
    test::expect_close(ema, c.f32("expected"), 1e-6, 1e-7, c.name);
    ++count;
  }
  EXPECT_EQ(count, 3);
  // decay 0: the EMA becomes the parameters (the DDPM code starts its EMA that way).
  std::vector<float> ema(50, 3.0f);
  const auto param = test::random_normal(50, 6);
  cpu::ema_update(ema.data(), param.data(), 50, 0.0f);
  EXPECT_EQ(ema, param);
  // position independence, as for Adam
  auto e1 = test::random_normal(37, 7), e2 = e1;
  const auto p = test::random_normal(37, 8);
  cpu::ema_update(e1.data(), p.data(), 37, 0.9999f);
  for (size_t i = 0; i < 37; ++i) cpu::ema_update(&e2[i], &p[i], 1, 0.9999f);
  EXPECT_EQ(e1, e2);
}

}  // namespace
}  // namespace ddpm
