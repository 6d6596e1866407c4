// Cover-and-crop resizing with stb_image_resize.
#include "ddpm/image/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb_image_resize.h>

namespace ddpm {

Image resize_cover_crop(const Image& image, int64_t height, int64_t width) {
  if (height <= 0 || width <= 0 || image.height <= 0 || image.width <= 0 || image.channels <= 0 ||
      image.pixels.size() != static_cast<size_t>(image.height * image.width * image.channels))
    throw std::invalid_argument("resize_cover_crop: bad image " + std::to_string(image.height) + "x" +
                                std::to_string(image.width) + "x" + std::to_string(image.channels) +
                                " or target " + std::to_string(height) + "x" + std::to_string(width));
  const int64_t c = image.channels;
  const double scale = std::max(static_cast<double>(height) / static_cast<double>(image.height),
                                static_cast<double>(width) / static_cast<double>(image.width));
  // The covering side is exact; the other rounds, and never below the target.
  const int64_t sh = std::max(height, static_cast<int64_t>(std::llround(static_cast<double>(image.height) * scale)));
  const int64_t sw = std::max(width, static_cast<int64_t>(std::llround(static_cast<double>(image.width) * scale)));

  // An image of extreme aspect ratio (1 x 16M pixels, within read_image's limits) would scale to
  // billions of pixels before the crop: refuse it rather than allocate them.
  if (static_cast<double>(sh) * static_cast<double>(sw) > static_cast<double>(kMaxImagePixels))
    throw std::invalid_argument("resize_cover_crop: an image of " + std::to_string(image.height) + "x" +
                                std::to_string(image.width) + " pixels would have to be scaled to " + std::to_string(sh) +
                                "x" + std::to_string(sw) + " (over " + std::to_string(kMaxImagePixels) +
                                " pixels) to cover " + std::to_string(height) + "x" + std::to_string(width));
  std::vector<uint8_t> scaled_pixels;
  const std::vector<uint8_t>* scaled = &image.pixels;
  if (sh != image.height || sw != image.width) {
    scaled_pixels.resize(static_cast<size_t>(sh * sw * c));
    const stbir_filter filter = scale < 1.0 ? STBIR_FILTER_BOX : STBIR_FILTER_CATMULLROM;
    if (!stbir_resize_uint8_generic(image.pixels.data(), static_cast<int>(image.width), static_cast<int>(image.height),
                                    0, scaled_pixels.data(), static_cast<int>(sw), static_cast<int>(sh), 0,
                                    static_cast<int>(c), STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP, filter,
                                    STBIR_COLORSPACE_LINEAR, nullptr))
      throw std::runtime_error("resize_cover_crop: stb_image_resize failed");
    scaled = &scaled_pixels;
  }
  Image out;
  out.height = height;
  out.width = width;
  out.channels = c;
  out.pixels.resize(static_cast<size_t>(height * width * c));
  const int64_t y0 = (sh - height) / 2;
  const int64_t x0 = (sw - width) / 2;
  for (int64_t y = 0; y < height; ++y)
    std::memcpy(&out.pixels[static_cast<size_t>(y * width * c)], scaled->data() + ((y0 + y) * sw + x0) * c,
                static_cast<size_t>(width * c));
  return out;
}

}  // namespace ddpm
