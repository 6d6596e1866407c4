// Resizing for data loading: scale to cover a target size, then centre-crop.
#pragma once

#include <cstdint>

#include "ddpm/image/png.h"

namespace ddpm {

// Scales `image` by the smallest factor that makes it at least height x width (the shorter side,
// relative to the target, lands on the target), then crops the centre. Shrinking uses a box (area)
// filter, enlarging Catmull-Rom; both on the stored byte values, as PIL does. Same size: a copy.
// Throws std::invalid_argument when the scaled image would exceed kMaxImagePixels (an extreme
// aspect ratio).
Image resize_cover_crop(const Image& image, int64_t height, int64_t width);

}  // namespace ddpm
