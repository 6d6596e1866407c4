// NoiseRng: Philox4x32-10 known answers (Random123's kat_vectors), the moments, tails and
// independence of its normals, uniform timesteps, and exact restarts from (seed, offset).
#include "ddpm/diffusion/noise_rng.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <stdexcept>
#include <vector>

namespace ddpm {
namespace {

TEST(NoiseRng, PhiloxKnownAnswers) {
  using A4 = std::array<uint32_t, 4>;
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}), (A4{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}),
            (A4{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}),
            (A4{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

// n = 2^21 draws: the sample mean has standard error 1/sqrt(n) = 6.9e-4, the variance
// sqrt(2/n) = 9.8e-4, the fourth moment sqrt(96/n) = 6.8e-3; each check allows 5 standard errors.
TEST(NoiseRng, NormalMomentsAndTails) {
  const int64_t n = int64_t{1} << 21;
  std::vector<float> z(n);
  NoiseRng rng(1234);
  rng.fill_normal(z.data(), n);
  double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
  int64_t beyond196 = 0, beyond3 = 0;
  for (float v : z) {
    ASSERT_TRUE(std::isfinite(v));
    const double d = v;
    s1 += d, s2 += d * d, s3 += d * d * d, s4 += d * d * d * d;
    beyond196 += std::abs(d) > 1.959963985;
    beyond3 += std::abs(d) > 3.0;
  }
  const double se = 1 / std::sqrt(static_cast<double>(n));
  EXPECT_NEAR(s1 / n, 0.0, 5 * se);
  EXPECT_NEAR(s2 / n, 1.0, 5 * std::sqrt(2.0) * se);
  EXPECT_NEAR(s3 / n, 0.0, 5 * std::sqrt(15.0) * se);
  EXPECT_NEAR(s4 / n, 3.0, 5 * std::sqrt(96.0) * se);
  // P(|z| > 1.96) = 0.05, P(|z| > 3) = 0.0026998: binomial standard errors.
  EXPECT_NEAR(beyond196 / double(n), 0.05, 5 * std::sqrt(0.05 * 0.95) * se);
  EXPECT_NEAR(beyond3 / double(n), 0.0026998, 5 * std::sqrt(0.0027 * 0.9973) * se);
}

// Correlations between neighbours (the two values of one Box-Muller pair, the pairs of one block,
// adjacent blocks) and between two seeds, each within 5/sqrt(pairs).
TEST(NoiseRng, NormalsAreUncorrelated) {
  const int64_t n = int64_t{1} << 20;
  std::vector<float> a(n), b(n);
  NoiseRng(7).fill_normal(a.data(), n);
  NoiseRng(8).fill_normal(b.data(), n);
  const auto corr = [&](const std::vector<float>& x, const std::vector<float>& y, int64_t lag, int64_t stride,
                        int64_t phase) {
    double sxy = 0, sxx = 0, syy = 0;
    int64_t count = 0;
    for (int64_t i = phase; i + lag < n; i += stride, ++count) {
      sxy += double(x[i]) * y[i + lag];
      sxx += double(x[i]) * x[i];
      syy += double(y[i + lag]) * y[i + lag];
    }
    return std::pair{sxy / std::sqrt(sxx * syy), 5 / std::sqrt(double(count))};
  };
  for (auto [lag, stride, phase] : {std::tuple{1, 1, 0}, {1, 4, 0}, {1, 4, 2}, {2, 4, 0}, {3, 4, 0}, {4, 1, 0}, {7, 1, 0}}) {
    const auto [r, tol] = corr(a, a, lag, stride, phase);
    EXPECT_NEAR(r, 0.0, tol) << "lag " << lag << " stride " << stride << " phase " << phase;
  }
  const auto [r, tol] = corr(a, b, 0, 1, 0);
  EXPECT_NEAR(r, 0.0, tol) << "seeds 7 and 8";
  // Squares too: Box-Muller pairs share a radius, which would show up here if the two uniforms
  // were dependent.
  std::vector<float> sq(n);
  for (int64_t i = 0; i < n; ++i) sq[i] = a[i] * a[i] - 1.0f;
  const auto [rs, tols] = corr(sq, sq, 1, 2, 0);
  EXPECT_NEAR(rs, 0.0, tols) << "squares within a pair";
}

TEST(NoiseRng, RestartsFromSeedAndOffset) {
  NoiseRng rng(99, 5);
  std::vector<float> first(10), second(7), all(4 * 3 + 8);
  rng.fill_normal(first.data(), 10);  // 3 blocks, the last half used
  EXPECT_EQ(rng.offset(), 5u + 3u);
  const NoiseRng saved(rng.seed(), rng.offset());
  rng.fill_normal(second.data(), 7);
  EXPECT_EQ(rng.offset(), 10u);
  NoiseRng resumed(saved.seed(), saved.offset());
  std::vector<float> again(7);
  resumed.fill_normal(again.data(), 7);
  EXPECT_EQ(again, second);
  // A single fill from the same start gives the same values, block by block.
  NoiseRng whole(99, 5);
  whole.fill_normal(all.data(), static_cast<int64_t>(all.size()));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(all[i], first[i]) << i;
  for (int i = 0; i < 7; ++i) EXPECT_EQ(all[12 + i], second[i]) << i;
  // Another seed gives another stream.
  std::vector<float> other(10);
  NoiseRng(100, 5).fill_normal(other.data(), 10);
  EXPECT_NE(other, first);
  NoiseRng none(1);
  none.fill_normal(nullptr, 0);
  EXPECT_EQ(none.offset(), 0u);
  EXPECT_THROW(none.fill_normal(nullptr, -1), std::invalid_argument);
}

TEST(NoiseRng, IndependentOfThreadCount) {
  const int64_t n = 3 * 100003;
  std::vector<float> one(n), many(n);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  NoiseRng(5, 77).fill_normal(one.data(), n);
  omp_set_num_threads(3);
  NoiseRng(5, 77).fill_normal(many.data(), n);
  omp_set_num_threads(saved);
  EXPECT_EQ(one, many);
}

// Chi-square over 10 bins with 200000 draws: 9 degrees of freedom, P(X² > 33.7) ≈ 1e-4.
TEST(NoiseRng, UniformIntIsUniform) {
  NoiseRng rng(3);
  const int64_t n = 200000, bins = 10;
  std::vector<int64_t> t(n), counts(bins, 0);
  rng.fill_uniform_int(t.data(), n, bins);
  EXPECT_EQ(rng.offset(), static_cast<uint64_t>(n));
  for (int64_t v : t) {
    ASSERT_GE(v, 0);
    ASSERT_LT(v, bins);
    ++counts[v];
  }
  double chi2 = 0;
  for (int64_t c : counts) chi2 += std::pow(c - n / double(bins), 2) / (n / double(bins));
  EXPECT_LT(chi2, 33.7);
  // The full range of a large n is reached, and n = 1 always gives 0.
  NoiseRng big(4);
  int64_t top = 0;
  for (int i = 0; i < 1000; ++i) top = std::max(top, big.uniform_int(1000));
  EXPECT_GE(top, 990);
  EXPECT_EQ(big.uniform_int(1), 0);
  EXPECT_THROW(big.uniform_int(0), std::invalid_argument);
  // Restart reproduces the draws.
  NoiseRng again(3);
  std::vector<int64_t> t2(n);
  again.fill_uniform_int(t2.data(), n, bins);
  EXPECT_EQ(t, t2);
}

}  // namespace
}  // namespace ddpm
