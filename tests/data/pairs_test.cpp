// Image-conditioned data: pairs:DIR (matching names, channels of each side, errors naming the lone
// file), super-resolution conditions, and the batcher keeping condition and image together.
#include "ddpm/data/pairs.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "ddpm/data/batcher.h"
#include "ddpm/image/png.h"
#include "test_support.h"

namespace ddpm {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("ddpm_pairs_test_" + name + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "input");
  fs::create_directories(dir / "target");
  return dir;
}

std::vector<uint8_t> random_pixels(size_t n, uint64_t seed) {
  const auto v = test::random_uniform(n, seed, 0.0f, 255.0f);
  return {v.begin(), v.end()};
}

TEST(Pairs, LoadsMatchingFilesWithEachSidesChannels) {
  const fs::path dir = temp_dir("ok");
  for (int i = 0; i < 3; ++i) {
    const std::string name = "img" + std::to_string(i) + ".png";
    write_png((dir / "input" / name).string(), random_pixels(8 * 8 * 3, 10 + i).data(), 8, 8, 3);  // RGB photo
    write_png((dir / "target" / name).string(), random_pixels(8 * 8, 20 + i).data(), 8, 8, 1);     // grey mask
  }
  const Dataset d = load_image_pairs(dir.string(), 8, 8, 1);
  EXPECT_EQ(d.n, 3);
  EXPECT_EQ(d.channels, 1);
  EXPECT_EQ(d.condition_channels, 3);
  EXPECT_EQ(d.conditions.size(), size_t{3 * 8 * 8 * 3});
  const std::vector<uint8_t> second = random_pixels(8 * 8 * 3, 11);
  EXPECT_TRUE(std::equal(second.begin(), second.end(), d.condition(1)));
  fs::remove(dir / "target" / "img1.png");
  test::expect_error([&] { load_image_pairs(dir.string(), 8, 8, 1); }, (dir / "input" / "img1.png").string(),
                     "has no target");
  fs::remove_all(dir / "target");
  test::expect_error([&] { load_image_pairs(dir.string(), 8, 8, 1); }, (dir / "target").string(), "missing");
  fs::remove_all(dir);
}

TEST(Pairs, SuperResolutionConditionsAreTheImageShrunkAndEnlarged) {
  const std::vector<uint8_t> flat(28 * 28, 77);
  EXPECT_EQ(super_resolution_condition(flat.data(), 28, 28, 1, 4), flat);
  EXPECT_THROW(super_resolution_condition(flat.data(), 28, 28, 1, 3), std::invalid_argument);
  // Fine detail (a checkerboard) is gone from a x4 condition: every pixel is near the mean.
  std::vector<uint8_t> board(28 * 28);
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x) board[static_cast<size_t>(y * 28 + x)] = (x + y) % 2 ? 200 : 0;
  for (uint8_t v : super_resolution_condition(board.data(), 28, 28, 1, 4)) ASSERT_NEAR(v, 100, 2);
  Dataset d;
  d.name = "board";
  d.n = 1, d.height = d.width = 28, d.channels = 1;
  d.images = board;
  add_super_resolution_conditions(d, 2);
  EXPECT_EQ(d.condition_channels, 1);
  EXPECT_EQ(d.conditions, super_resolution_condition(board.data(), 28, 28, 1, 2));
}

// A condition is flipped with its image: with the condition equal to the image, every batch's
// conditions equal its images, flips included.
TEST(Pairs, BatcherKeepsConditionsWithTheirImages) {
  Dataset d;
  d.name = "self";
  d.n = 10, d.height = 4, d.width = 5, d.channels = 1, d.condition_channels = 1;
  d.images = random_pixels(10 * 20, 3);
  d.conditions = d.images;
  Batcher batcher(d, 4, 7, true);
  std::vector<float> images(4 * 20), conditions(4 * 20);
  for (int step = 0; step < 5; ++step) {
    batcher.next(images.data(), nullptr, conditions.data());
    ASSERT_EQ(images, conditions) << "step " << step;
  }
  d.conditions.pop_back();
  EXPECT_THROW(Batcher(d, 4, 7, true), std::invalid_argument);
}

}  // namespace
}  // namespace ddpm
