#include "ddpm/eval/sample_quality.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace ddpm {

namespace {

using Matrix = Eigen::MatrixXd;

Matrix as_matrix(const FeatureStats& s) {
  return Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
      s.covariance.data(), s.dim, s.dim);
}

// The square root of a symmetric positive semi-definite matrix, negative eigenvalues (rounding)
// clamped to zero.
Matrix symmetric_sqrt(const Matrix& m) {
  const Eigen::SelfAdjointEigenSolver<Matrix> eig(m);
  if (eig.info() != Eigen::Success) throw std::runtime_error("frechet_distance: eigendecomposition failed");
  const Eigen::VectorXd roots = eig.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  return eig.eigenvectors() * roots.asDiagonal() * eig.eigenvectors().transpose();
}

}  // namespace

FeatureStats feature_stats(const float* features, int64_t n, int64_t dim) {
  if (n < 2 || dim < 1)
    throw std::invalid_argument("feature_stats: needs at least 2 feature vectors of dimension >= 1, got " +
                                std::to_string(n) + " of " + std::to_string(dim));
  FeatureStats s;
  s.dim = dim;
  s.count = n;
  Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> f(features, n, dim);
  const Matrix x = f.cast<double>();
  const Eigen::RowVectorXd mean = x.colwise().mean();
  const Matrix centred = x.rowwise() - mean;
  const Matrix cov = (centred.transpose() * centred) / static_cast<double>(n - 1);
  s.mean.assign(mean.data(), mean.data() + dim);
  s.covariance.resize(static_cast<size_t>(dim * dim));
  Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(s.covariance.data(), dim, dim) = cov;
  return s;
}

double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  if (a.dim != b.dim || a.dim < 1)
    throw std::invalid_argument("frechet_distance: feature dimensions differ (" + std::to_string(a.dim) + " vs " +
                                std::to_string(b.dim) + ")");
  double mean_term = 0;
  for (int64_t i = 0; i < a.dim; ++i) mean_term += (a.mean[i] - b.mean[i]) * (a.mean[i] - b.mean[i]);
  const Matrix sa = as_matrix(a), sb = as_matrix(b);
  const Matrix root_a = symmetric_sqrt(sa);
  const Matrix middle = root_a * sb * root_a;
  // tr(sqrt(M)) for the symmetric PSD M = Σa^{1/2} Σb Σa^{1/2}: the sum of its eigenvalues' roots.
  const Eigen::SelfAdjointEigenSolver<Matrix> eig(0.5 * (middle + middle.transpose()), Eigen::EigenvaluesOnly);
  if (eig.info() != Eigen::Success) throw std::runtime_error("frechet_distance: eigendecomposition failed");
  const double trace_root = eig.eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();
  return std::max(0.0, mean_term + sa.trace() + sb.trace() - 2 * trace_root);
}

double classifier_score(const float* probabilities, int64_t n, int64_t classes) {
  if (n < 1 || classes < 1) throw std::invalid_argument("classifier_score: needs n >= 1 and classes >= 1");
  std::vector<double> marginal(static_cast<size_t>(classes), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < classes; ++c) marginal[c] += probabilities[i * classes + c];
  for (double& m : marginal) m /= static_cast<double>(n);
  double kl = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < classes; ++c) {
      const double p = probabilities[i * classes + c];
      if (p > 0) kl += p * (std::log(p) - std::log(marginal[c]));
    }
  return std::exp(kl / static_cast<double>(n));
}

std::vector<int64_t> class_histogram(const float* probabilities, int64_t n, int64_t classes) {
  std::vector<int64_t> histogram(static_cast<size_t>(classes), 0);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = probabilities + i * classes;
    ++histogram[std::max_element(row, row + classes) - row];
  }
  return histogram;
}

double histogram_entropy(const std::vector<int64_t>& histogram) {
  double total = 0, entropy = 0;
  for (int64_t h : histogram) total += static_cast<double>(h);
  if (total == 0) return 0;
  for (int64_t h : histogram)
    if (h > 0) entropy -= h / total * std::log(h / total);
  return entropy;
}

}  // namespace ddpm
