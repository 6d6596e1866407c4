// The feature space of the shipped Fashion-MNIST classifier (models/fmnist-classifier) behaves as a
// sample-quality yardstick must: a set against itself scores 0, two disjoint sets of real images
// score low and alike, and added noise raises the Fréchet distance monotonically. Confident,
// class-balanced predictions on real images give a classifier score near the number of classes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ddpm/data/dataset.h"
#include "ddpm/data/idx.h"
#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/eval/sample_quality.h"
#include "ddpm/image/png.h"
#include "ddpm/nn/classifier.h"

namespace ddpm {
namespace {

constexpr int64_t kImages = 2000;

struct Outputs {
  FeatureStats stats;
  std::vector<float> probabilities;
};

Outputs run(Classifier& net, const std::vector<float>& images) {
  const ClassifierConfig& c = net.config();
  const int64_t n = static_cast<int64_t>(images.size()) / (c.height * c.width * c.channels);
  std::vector<float> features(static_cast<size_t>(n * c.feature_dim));
  Outputs out;
  out.probabilities.resize(static_cast<size_t>(n * c.num_classes));
  classify(net, images.data(), n, features.data(), out.probabilities.data());
  out.stats = feature_stats(features.data(), n, c.feature_dim);
  return out;
}

std::vector<float> images_of(const Dataset& d, int64_t first) {
  std::vector<float> x(static_cast<size_t>(kImages * d.image_size()));
  images_to_float(d, first, kImages, x.data());
  return x;
}

std::vector<float> noisy(const std::vector<float>& x, float sigma) {
  std::vector<float> y(x.size());
  NoiseRng rng(7, 0);
  rng.fill_normal(y.data(), static_cast<int64_t>(y.size()));
  for (size_t i = 0; i < y.size(); ++i) y[i] = std::clamp(x[i] + sigma * y[i], -1.0f, 1.0f);
  const std::vector<uint8_t> pixels = to_uint8(y.data(), y.size());
  return to_float(pixels.data(), pixels.size());
}

TEST(ClassifierFeatures, ShippedClassifierRanksRealImagesAboveNoisyOnes) {
  const auto net = load_classifier(DDPM_SOURCE_DIR "/models/fmnist-classifier", 250);
  const Dataset test = load_fashion_mnist(kFashionMnistDir, Split::test);
  const Dataset train = load_fashion_mnist(kFashionMnistDir, Split::train);
  const std::vector<float> reference_images = images_of(test, 0);
  const Outputs reference = run(*net, reference_images);
  const Outputs other_test = run(*net, images_of(test, kImages));
  const Outputs train_set = run(*net, images_of(train, 0));

  EXPECT_NEAR(frechet_distance(reference.stats, reference.stats), 0.0, 1e-6);
  const double fd_test = frechet_distance(other_test.stats, reference.stats);
  const double fd_train = frechet_distance(train_set.stats, reference.stats);
  // Two draws of real images differ only by sampling noise: within a factor 3 of each other.
  EXPECT_LT(std::max(fd_test, fd_train), 3 * std::min(fd_test, fd_train)) << fd_test << " " << fd_train;
  double previous = std::max(fd_test, fd_train);
  for (const float sigma : {0.1f, 0.2f, 0.4f}) {
    const double fd = frechet_distance(run(*net, noisy(images_of(test, kImages), sigma)).stats, reference.stats);
    EXPECT_GT(fd, 2 * previous) << "sigma " << sigma;
    previous = fd;
  }

  const int64_t classes = net->config().num_classes;
  EXPECT_GT(classifier_score(reference.probabilities.data(), kImages, classes), 0.7 * static_cast<double>(classes));
  // Fashion-MNIST's test split is balanced: the predicted classes are spread nearly evenly.
  EXPECT_GT(histogram_entropy(class_histogram(reference.probabilities.data(), kImages, classes)),
            0.98 * std::log(static_cast<double>(classes)));
}

}  // namespace
}  // namespace ddpm
