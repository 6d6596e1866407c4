// The shipped classifier models/fmnist-classifier (trained by `ddpm train-classifier`, the feature
// network of `ddpm eval fd`): it loads, stays small, has its model card, and still classifies the
// Fashion-MNIST test set (inference only, first 2000 images).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "ddpm/data/idx.h"
#include "ddpm/nn/classifier.h"
#include "ddpm/train/classifier_training.h"

namespace ddpm {
namespace {

namespace fs = std::filesystem;

const fs::path kModel = fs::path(DDPM_SOURCE_DIR) / "models" / "fmnist-classifier";

TEST(ShippedClassifier, FilesAreCompleteAndSmall) {
  uintmax_t total = 0;
  for (const char* f : {"config.json", "model.safetensors", "README.md"}) {
    ASSERT_TRUE(fs::exists(kModel / f)) << (kModel / f);
    total += fs::file_size(kModel / f);
  }
  EXPECT_LT(total, 5u << 20);
  std::ifstream in(kModel / "README.md");
  std::stringstream card;
  card << in.rdbuf();
  for (const char* needed : {"Test accuracy", "ddpm train-classifier", "parameters", "epochs"})
    EXPECT_NE(card.str().find(needed), std::string::npos) << "model card lacks '" << needed << "'";
}

TEST(ShippedClassifier, AtLeast90PercentOnTheFirst2000TestImages) {
  const auto net = load_classifier(kModel.string(), 250);
  EXPECT_EQ(net->config().feature_dim, 128);
  const Dataset test = load_fashion_mnist(kFashionMnistDir, Split::test);
  const double accuracy = classifier_accuracy(*net, test, 2000);
  std::printf("%s: %.2f%% of the first 2000 test images\n", kModel.c_str(), 100 * accuracy);
  EXPECT_GE(accuracy, 0.90);
}

}  // namespace
}  // namespace ddpm
