// Fréchet distance and classifier statistics against closed forms: a set against itself, exact
// Gaussians (diagonal, and 2x2 non-commuting covariances via tr sqrt(M) = sqrt(tr M + 2 sqrt(det M))),
// samples of two Gaussians, and the classifier score and entropy at their extremes.
#include "ddpm/eval/sample_quality.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "test_support.h"

namespace ddpm {
namespace {

FeatureStats exact_stats(std::vector<double> mean, std::vector<double> covariance) {
  FeatureStats s;
  s.dim = static_cast<int64_t>(mean.size());
  s.count = 1000000;
  s.mean = std::move(mean);
  s.covariance = std::move(covariance);
  return s;
}

TEST(SampleQuality, SetAgainstItselfIsZero) {
  const int64_t n = 500, dim = 16;
  const auto features = test::random_normal(static_cast<size_t>(n * dim), 3, 2.0f);
  const FeatureStats s = feature_stats(features.data(), n, dim);
  EXPECT_NEAR(frechet_distance(s, s), 0.0, 1e-8);
  // Mean and covariance against a direct float64 computation.
  double mean0 = 0;
  for (int64_t i = 0; i < n; ++i) mean0 += features[i * dim];
  mean0 /= n;
  double cov01 = 0;
  double mean1 = 0;
  for (int64_t i = 0; i < n; ++i) mean1 += features[i * dim + 1];
  mean1 /= n;
  for (int64_t i = 0; i < n; ++i) cov01 += (features[i * dim] - mean0) * (features[i * dim + 1] - mean1);
  cov01 /= n - 1;
  EXPECT_NEAR(s.mean[0], mean0, 1e-12);
  EXPECT_NEAR(s.covariance[1], cov01, 1e-12);
  EXPECT_EQ(s.covariance[1], s.covariance[dim]);
}

TEST(SampleQuality, DiagonalGaussiansMatchClosedForm) {
  // FD = ‖μa − μb‖² + Σ (σa − σb)² for diagonal covariances.
  const FeatureStats a = exact_stats({0, 1, 2}, {4, 0, 0, 0, 1, 0, 0, 0, 0.25});
  const FeatureStats b = exact_stats({1, 1, 0}, {1, 0, 0, 0, 9, 0, 0, 0, 0.25});
  const double expected = (1 + 0 + 4) + (2 - 1) * (2 - 1) + (1 - 3) * (1 - 3) + 0;
  EXPECT_NEAR(frechet_distance(a, b), expected, 1e-12);
  EXPECT_NEAR(frechet_distance(b, a), expected, 1e-12);
}

TEST(SampleQuality, NonCommutingCovariancesMatchTwoByTwoClosedForm) {
  const std::vector<double> ca{2.0, 0.7, 0.7, 1.0}, cb{0.5, -0.3, -0.3, 3.0};
  const FeatureStats a = exact_stats({0.3, -0.2}, ca), b = exact_stats({-0.1, 0.4}, cb);
  // M = Σa Σb has positive eigenvalues; tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)).
  const double m00 = ca[0] * cb[0] + ca[1] * cb[2], m11 = ca[2] * cb[1] + ca[3] * cb[3];
  const double det = (ca[0] * ca[3] - ca[1] * ca[2]) * (cb[0] * cb[3] - cb[1] * cb[2]);
  const double trace_root = std::sqrt(m00 + m11 + 2 * std::sqrt(det));
  const double expected = 0.4 * 0.4 + 0.6 * 0.6 + (ca[0] + ca[3]) + (cb[0] + cb[3]) - 2 * trace_root;
  EXPECT_NEAR(frechet_distance(a, b), expected, 1e-12);
}

TEST(SampleQuality, SamplesOfTwoGaussiansApproachClosedForm) {
  // N(0, I) against N(m, s² I) in d dimensions: FD = d m² + d (1 − s)².
  const int64_t n = 40000, dim = 4;
  const double m = 0.5, s = 2.0;
  std::mt19937_64 gen(11);
  std::normal_distribution<float> normal;
  std::vector<float> fa(static_cast<size_t>(n * dim)), fb(fa.size());
  for (auto& v : fa) v = normal(gen);
  for (auto& v : fb) v = static_cast<float>(m + s * normal(gen));
  const double fd = frechet_distance(feature_stats(fa.data(), n, dim), feature_stats(fb.data(), n, dim));
  const double expected = dim * m * m + dim * (1 - s) * (1 - s);
  EXPECT_NEAR(fd, expected, 0.05 * expected);  // sampling error ~1% at n = 40000
}

TEST(SampleQuality, SingularCovarianceStaysFinite) {
  const FeatureStats a = exact_stats({0, 0}, {1, 1, 1, 1});  // rank one
  const FeatureStats b = exact_stats({0, 0}, {0, 0, 0, 0});
  EXPECT_NEAR(frechet_distance(a, b), 2.0, 1e-12);
  EXPECT_NEAR(frechet_distance(a, a), 0.0, 1e-7);
  EXPECT_THROW(frechet_distance(a, exact_stats({0}, {1})), std::invalid_argument);
  EXPECT_THROW(feature_stats(nullptr, 1, 3), std::invalid_argument);
}

TEST(SampleQuality, ClassifierScoreAndEntropyAtTheirExtremes) {
  const int64_t classes = 4, n = 8;
  std::vector<float> spread(static_cast<size_t>(n * classes), 0.0f), same(spread.size(), 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    spread[i * classes + i % classes] = 1.0f;  // confident, every class equally often
    same[i * classes + 2] = 1.0f;               // confident, always class 2
  }
  EXPECT_NEAR(classifier_score(spread.data(), n, classes), 4.0, 1e-12);
  EXPECT_NEAR(classifier_score(same.data(), n, classes), 1.0, 1e-12);
  EXPECT_NEAR(histogram_entropy(class_histogram(spread.data(), n, classes)), std::log(4.0), 1e-12);
  EXPECT_EQ(histogram_entropy(class_histogram(same.data(), n, classes)), 0.0);
  EXPECT_EQ(class_histogram(same.data(), n, classes), (std::vector<int64_t>{0, 0, 8, 0}));
  // Uniform predictions carry no information: score 1.
  std::vector<float> unsure(static_cast<size_t>(n * classes), 0.25f);
  EXPECT_NEAR(classifier_score(unsure.data(), n, classes), 1.0, 1e-7);
  // Half the mass on two classes: score 2 (= exp(log 2)).
  std::vector<float> two(static_cast<size_t>(n * classes), 0.0f);
  for (int64_t i = 0; i < n; ++i) two[i * classes + (i % 2)] = 1.0f;
  EXPECT_NEAR(classifier_score(two.data(), n, classes), 2.0, 1e-12);
}

}  // namespace
}  // namespace ddpm
