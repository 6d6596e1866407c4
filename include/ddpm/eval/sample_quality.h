// Sample-quality statistics on a classifier's outputs: the Fréchet distance between two sets of
// feature vectors (FID's formula; here in the features of the project's own classifier), the
// classifier score (the Inception score's formula) and the class-histogram entropy, which falls
// when a generator collapses onto a few classes.
#pragma once

#include <cstdint>
#include <vector>

namespace ddpm {

// Mean and unbiased covariance (divided by n − 1) of n feature vectors, in float64.
struct FeatureStats {
  int64_t dim = 0, count = 0;
  std::vector<double> mean;        // [dim]
  std::vector<double> covariance;  // [dim, dim], row-major, symmetric
};

// Throws std::invalid_argument unless n >= 2 and dim >= 1.
FeatureStats feature_stats(const float* features, int64_t n, int64_t dim);

// ‖μa − μb‖² + tr(Σa) + tr(Σb) − 2 tr((Σa^{1/2} Σb Σa^{1/2})^{1/2}). The square roots come from
// symmetric eigendecompositions (Eigen, float64), with eigenvalues below zero (rounding) taken
// as zero, so the result is real and stable even for singular covariances. Throws
// std::invalid_argument when the dimensions differ.
double frechet_distance(const FeatureStats& a, const FeatureStats& b);

// exp(mean_i KL(p(y | x_i) ‖ p̂(y))), p̂ the mean prediction: 1 for a generator whose every image
// gets the same prediction; up to `classes` for confident predictions spread evenly over classes.
// probabilities: [n, classes], rows summing to 1.
double classifier_score(const float* probabilities, int64_t n, int64_t classes);

// How many images have each class as their most probable one.
std::vector<int64_t> class_histogram(const float* probabilities, int64_t n, int64_t classes);

// Entropy in nats of a histogram's relative frequencies (log(classes) for an even spread).
double histogram_entropy(const std::vector<int64_t>& histogram);

}  // namespace ddpm
