// Classifier training: the learning-rate schedule, a short run on a Fashion-MNIST subset that
// learns and is deterministic, and the errors for data that does not fit the classifier.
#include "ddpm/train/classifier_training.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <stdexcept>

#include "ddpm/data/idx.h"
#include "test_support.h"

namespace ddpm {
namespace {

Dataset first_images(const Dataset& data, int64_t n) {
  Dataset d = data;
  d.n = n;
  d.images.resize(static_cast<size_t>(n * data.image_size()));
  d.labels.resize(static_cast<size_t>(n));
  return d;
}

TEST(ClassifierTraining, WarmupThenCosineDecay) {
  EXPECT_DOUBLE_EQ(warmup_cosine_lr(1.0, 1, 10, 110), 0.1);
  EXPECT_DOUBLE_EQ(warmup_cosine_lr(1.0, 10, 10, 110), 1.0);
  EXPECT_NEAR(warmup_cosine_lr(1.0, 60, 10, 110), 0.5, 1e-12);  // half way through the decay
  EXPECT_NEAR(warmup_cosine_lr(1.0, 35, 10, 110), 0.5 * (1 + std::cos(std::numbers::pi / 4)), 1e-12);
  EXPECT_NEAR(warmup_cosine_lr(1.0, 110, 10, 110), 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(warmup_cosine_lr(2.0, 1, 0, 100), 2.0 * 0.5 * (1 + std::cos(std::numbers::pi / 100)));
}

TEST(ClassifierTraining, LearnsASubsetAndIsDeterministic) {
  const Dataset train = first_images(load_fashion_mnist(kFashionMnistDir, Split::train), 1024);
  const Dataset test = first_images(load_fashion_mnist(kFashionMnistDir, Split::test), 500);
  ClassifierTrainOptions o;
  o.epochs = 2;
  o.batch = 64;
  o.warmup_steps = 4;
  o.seed = 3;
  int64_t steps = 0, last_total = 0;
  std::vector<ClassifierEpochRecord> seen;
  const ClassifierTrainResult r = train_classifier(
      o, train, test, [&](int64_t step, int64_t total, double) { steps = step, last_total = total; },
      [&](const ClassifierEpochRecord& e) { seen.push_back(e); });
  EXPECT_EQ(steps, 32);
  EXPECT_EQ(last_total, 32);
  ASSERT_EQ(r.epochs.size(), 2u);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].epoch, 2);
  EXPECT_LT(r.epochs[1].train_loss, r.epochs[0].train_loss);
  std::printf("test accuracy after 32 steps on 1024 images: %.1f%%, %.1f%%\n", 100 * r.epochs[0].test_accuracy,
              100 * r.epochs[1].test_accuracy);
  EXPECT_GT(r.epochs[1].test_accuracy, 0.4);  // chance is 0.1
  EXPECT_DOUBLE_EQ(classifier_accuracy(*r.net, test), r.epochs[1].test_accuracy);

  // Same seed, same weights: the data order, flips and initialisation all come from it.
  o.epochs = 1;
  const ClassifierTrainResult a = train_classifier(o, train, test);
  const ClassifierTrainResult b = train_classifier(o, train, test);
  EXPECT_TRUE(std::equal(a.net->params(), a.net->params() + a.net->num_params(), b.net->params()));
}

TEST(ClassifierTraining, RejectsDataThatDoesNotFit) {
  const Dataset test = first_images(load_fashion_mnist(kFashionMnistDir, Split::test), 64);
  ClassifierTrainOptions o;
  o.model.height = 32;
  test::expect_error([&] { train_classifier(o, test, test); }, "fashion-mnist test", "expects 32x28x1");
  o = ClassifierTrainOptions{};
  o.model.num_classes = 5;
  test::expect_error([&] { train_classifier(o, test, test); }, "fashion-mnist test", "outside [0, 5)");
  Dataset unlabelled = test;
  unlabelled.labels.clear();
  test::expect_error([&] { train_classifier(ClassifierTrainOptions{}, unlabelled, test); }, "fashion-mnist test",
                     "one label per image");
  o = ClassifierTrainOptions{};
  o.epochs = 0;
  test::expect_error([&] { train_classifier(o, test, test); }, "train-classifier", "--epochs");
}

}  // namespace
}  // namespace ddpm
