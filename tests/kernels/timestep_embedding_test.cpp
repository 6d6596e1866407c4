// Sinusoidal timestep embedding against diffusers' float32 formula (reproduced in PyTorch).
#include "ddpm/kernels/timestep_embedding.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "test_support.h"

namespace ddpm {
namespace {

// Tolerance 1e-4 absolute. We form the same float32 exponent and float32 product t * freq as
// PyTorch, but PyTorch's vectorised expf is off by one ulp for a few frequencies (we round exp
// correctly); at t = 999 one ulp of freq (<= 6e-8) moves the argument, and so sin/cos, by up to
// 999 * 6e-8 = 6e-5. Against the float64 formula the float32 rounding of t * freq adds up to half
// an ulp of the argument (3e-5 at 999), so the same 1e-4 bounds that comparison too.
TEST(TimestepEmbedding, MatchesDiffusersFloat32) {
  int count = 0;
  for (const auto& c : test::reference_cases("timestep_embedding")) {
    const auto t = c.f32("t"), params = c.f32("params"), expected = c.f32("out"), exact = c.f32("out64");
    const auto dim = static_cast<int64_t>(params[0]);
    const bool flip = params[1] != 0.0f;
    const auto batch = static_cast<int64_t>(t.size());
    std::vector<float> out(static_cast<size_t>(batch * dim), -7.0f);
    cpu::timestep_embedding_forward(out.data(), t.data(), batch, dim, flip, params[2], params[3], params[4]);
    test::expect_close(out, expected, 0, 1e-4, c.name + " vs PyTorch float32");
    test::expect_close(out, exact, 0, 1e-4, c.name + " vs float64");
    double worst = 0;
    for (size_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::fabs(double(out[i]) - expected[i]));
    RecordProperty(c.name + "_max_abs_error_vs_float32", std::to_string(worst));
    std::printf("%s: max |ours - diffusers float32| = %.3g\n", c.name.c_str(), worst);
    if (dim % 2 == 1) {
      for (int64_t b = 0; b < batch; ++b) EXPECT_EQ(out[static_cast<size_t>(b * dim + dim - 1)], 0.0f);
    }
    ++count;
  }
  EXPECT_EQ(count, 13);
}

// t = 0 gives sin = 0 and cos = 1 exactly; the first frequency is exactly 1.
TEST(TimestepEmbedding, KnownValues) {
  const float t[2] = {0.0f, 3.0f};
  float out[2 * 8];
  cpu::timestep_embedding_forward(out, t, 2, 8, false, 1.0f);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(out[i], 0.0f);
    EXPECT_EQ(out[4 + i], 1.0f);
  }
  EXPECT_FLOAT_EQ(out[8], std::sin(3.0f));
  EXPECT_FLOAT_EQ(out[12], std::cos(3.0f));
  // half = 4, shift 1: freq_3 = exp(-ln(1e4) * 3 / 3) = 1e-4.
  EXPECT_NEAR(out[11], std::sin(3e-4), 1e-9);
  float flipped[2 * 8];
  cpu::timestep_embedding_forward(flipped, t, 2, 8, true, 1.0f);
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(flipped[b * 8 + i], out[b * 8 + 4 + i]);
      EXPECT_EQ(flipped[b * 8 + 4 + i], out[b * 8 + i]);
    }
}

TEST(TimestepEmbedding, RejectsBadShapes) {
  float t = 1.0f, out[4];
  EXPECT_THROW(cpu::timestep_embedding_forward(out, &t, 1, 0, false, 1.0f), std::invalid_argument);
  EXPECT_THROW(cpu::timestep_embedding_forward(out, &t, 1, 2, false, 1.0f), std::invalid_argument);
  cpu::timestep_embedding_forward(out, &t, 1, 1, false, 1.0f);  // dim 1: only the zero pad
  EXPECT_EQ(out[0], 0.0f);
}

}  // namespace
}  // namespace ddpm
