// Image folders: order, channel conversion (grey, RGB, alpha), cover-resize, and errors.
#include "ddpm/data/image_folder.h"

#include <gtest/gtest.h>

#include "test_support.h"

#include <filesystem>
#include <fstream>

#include "ddpm/image/png.h"

// stb_image_write is compiled into libddpm (src/image/png.cpp); the test uses it directly for the
// formats write_png does not produce (RGBA, grey + alpha, JPEG).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STBI_WRITE_NO_STDIO
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace ddpm {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("ddpm_image_folder_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void append(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
}

// A solid w x h image of `channels` with the given per-channel values, as PNG or JPEG.
void write_solid(const fs::path& path, int h, int w, const std::vector<uint8_t>& value, bool jpeg = false) {
  const int c = static_cast<int>(value.size());
  std::vector<uint8_t> px(static_cast<size_t>(h * w * c));
  for (size_t i = 0; i < px.size(); ++i) px[i] = value[i % value.size()];
  std::string bytes;
  const int ok = jpeg ? stbi_write_jpg_to_func(append, &bytes, w, h, c, px.data(), 95)
                      : stbi_write_png_to_func(append, &bytes, w, h, c, px.data(), w * c);
  ASSERT_TRUE(ok);
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST(ImageFolder, LoadsEveryImageInNameOrderConvertedAndResized) {
  const fs::path dir = temp_dir("ok");
  fs::create_directories(dir / "sub");
  write_solid(dir / "b_rgba.png", 8, 8, {200, 100, 0, 17});  // alpha dropped
  write_solid(dir / "a_grey.PNG", 12, 8, {90});               // portrait: scaled to 6x4, cropped
  write_solid(dir / "sub" / "c.jpg", 4, 4, {10, 250, 10}, true);
  write_solid(dir / "d_grey_alpha.png", 2, 2, {60, 0});       // enlarged
  std::ofstream(dir / "notes.txt") << "not an image";

  const Dataset rgb = load_image_folder(dir.string(), 4, 4, 3);
  EXPECT_EQ(rgb.n, 4);
  EXPECT_EQ(rgb.height, 4);
  EXPECT_EQ(rgb.width, 4);
  EXPECT_EQ(rgb.channels, 3);
  EXPECT_EQ(rgb.num_classes, 0);
  EXPECT_TRUE(rgb.labels.empty());
  ASSERT_EQ(rgb.images.size(), size_t{4 * 48});
  auto px = [](const Dataset& d, int64_t i, int64_t p, int64_t k) { return d.image(i)[p * d.channels + k]; };
  // Order by path: a_grey.PNG, b_rgba.png, d_grey_alpha.png, sub/c.jpg.
  for (int64_t p = 0; p < 16; ++p) {
    for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(px(rgb, 0, p, k), 90);
    EXPECT_EQ(px(rgb, 1, p, 0), 200);
    EXPECT_EQ(px(rgb, 1, p, 1), 100);
    EXPECT_EQ(px(rgb, 1, p, 2), 0);
    for (int64_t k = 0; k < 3; ++k) EXPECT_EQ(px(rgb, 2, p, k), 60);
    EXPECT_NEAR(px(rgb, 3, p, 0), 10, 6);  // JPEG is lossy
    EXPECT_NEAR(px(rgb, 3, p, 1), 250, 6);
  }

  const Dataset grey = load_image_folder(dir.string(), 2, 2, 1);
  EXPECT_EQ(grey.channels, 1);
  EXPECT_EQ(grey.image(0)[0], 90);
  EXPECT_EQ(grey.image(1)[3], 118);  // 0.299 * 200 + 0.587 * 100 = 118.5 -> 118 (ties to even)
}

TEST(ImageFolder, ErrorsNameTheFolderOrFile) {
  const fs::path dir = temp_dir("errors");
  test::expect_error([&] { load_image_folder((dir / "nope").string(), 8, 8, 3); }, (dir / "nope").string(),
               "image folder not found");
  std::ofstream(dir / "file.txt") << "x";
  test::expect_error([&] { load_image_folder((dir / "file.txt").string(), 8, 8, 3); }, (dir / "file.txt").string(),
               "not a directory");
  test::expect_error([&] { load_image_folder(dir.string(), 8, 8, 3); }, dir.string(), "no images (.png, .jpg, .jpeg)");
  write_solid(dir / "good.png", 8, 8, {1, 2, 3});
  std::ofstream(dir / "bad.jpg", std::ios::binary) << "\xff\xd8\xff garbage that is no JPEG";
  test::expect_error([&] { load_image_folder(dir.string(), 8, 8, 3); }, (dir / "bad.jpg").string(), "cannot decode image");
  test::expect_error([&] { load_image_folder(dir.string(), 8, 8, 4); }, dir.string(), "1 or 3 channels, not 4");
  // A 1 x 4M line would be scaled to 32 x 134M pixels to cover 32x32: refused, naming the file.
  const fs::path line_dir = temp_dir("line");
  const std::vector<uint8_t> line(size_t{1} << 22, 9);
  write_png((line_dir / "line.png").string(), line.data(), 1, int64_t{1} << 22, 1);
  test::expect_error([&] { load_image_folder(line_dir.string(), 32, 32, 1); }, (line_dir / "line.png").string(),
                     "would have to be scaled to 32x134217728");
}

}  // namespace
}  // namespace ddpm
