// Cover-resize and centre-crop: sizes, the cropped region, box-filter averages.
#include "ddpm/image/resize.h"

#include <gtest/gtest.h>

namespace ddpm {
namespace {

Image bands(int64_t h, int64_t w) {
  // Rows: the top quarter 0, the middle half 128, the bottom quarter 255.
  Image img{h, w, 1, std::vector<uint8_t>(static_cast<size_t>(h * w))};
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      img.pixels[static_cast<size_t>(y * w + x)] = y < h / 4 ? 0 : y < 3 * h / 4 ? 128 : 255;
  return img;
}

TEST(Resize, TallImageIsScaledByItsWidthAndCroppedToTheMiddle) {
  // 40x20 -> scale 0.5 -> 20x10 -> rows 5..15, which come from source rows 10..30: all 128.
  const Image out = resize_cover_crop(bands(40, 20), 10, 10);
  EXPECT_EQ(out.height, 10);
  EXPECT_EQ(out.width, 10);
  EXPECT_EQ(out.pixels, std::vector<uint8_t>(100, 128));
}

TEST(Resize, BoxFilterAveragesWhenShrinking) {
  // A 2x2 checkerboard of 0/200 blocks shrunk 4x: every output pixel averages to 100.
  Image img{8, 8, 3, std::vector<uint8_t>(8 * 8 * 3)};
  for (int64_t y = 0; y < 8; ++y)
    for (int64_t x = 0; x < 8; ++x)
      for (int64_t k = 0; k < 3; ++k) img.pixels[static_cast<size_t>((y * 8 + x) * 3 + k)] = ((x + y) % 2) ? 200 : 0;
  const Image out = resize_cover_crop(img, 2, 2);
  EXPECT_EQ(out.channels, 3);
  for (uint8_t v : out.pixels) EXPECT_NEAR(v, 100, 1);
}

TEST(Resize, SameSizeIsACopyAndEnlargingWorks) {
  const Image in = bands(8, 8);
  EXPECT_EQ(resize_cover_crop(in, 8, 8).pixels, in.pixels);
  const Image big = resize_cover_crop(in, 16, 32);  // wide target: scale 4 -> 32x32, rows 8..24
  EXPECT_EQ(big.height, 16);
  EXPECT_EQ(big.width, 32);
  EXPECT_EQ(big.pixels[static_cast<size_t>(8 * 32 + 16)], 128);
  EXPECT_THROW(resize_cover_crop(in, 0, 8), std::invalid_argument);
}

// Found by review while fuzzing (docs/RELIABILITY.md): a 1 x 4M image is within read_image's
// limits, but covering 32x32 would scale it to 32 x 134M pixels before the crop.
TEST(Resize, ExtremeAspectRatioIsRefusedNotAllocated) {
  const Image line{1, int64_t{1} << 22, 1, std::vector<uint8_t>(size_t{1} << 22, 7)};
  try {
    resize_cover_crop(line, 32, 32);
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("1x4194304 pixels would have to be scaled to 32x134217728"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(resize_cover_crop(line, 1, 64).pixels, std::vector<uint8_t>(64, 7));  // shrinking it is fine
}

}  // namespace
}  // namespace ddpm
