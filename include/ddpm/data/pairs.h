// Image-conditioned data (SR3 / Palette style): each training image comes with a condition image
// of the same size that the U-Net sees beside the noisy image.
#pragma once

#include <cstdint>
#include <string>

#include "ddpm/data/dataset.h"

namespace ddpm {

// DIR/input/NAME and DIR/target/NAME (PNG/JPEG, matching relative paths): targets with
// `target_channels` (1 or 3), inputs with as many channels as the first input image has (1 or 3:
// grey or colour; a mask is grey), both resized (cover, centre crop) to height x width. Errors name
// the folder and a file without its partner.
Dataset load_image_pairs(const std::string& dir, int64_t height, int64_t width, int64_t target_channels);

// Super-resolution pairs from any dataset: each image's condition is the image shrunk by `factor`
// (box filter; 28x28 -> 7x7 for factor 4) and enlarged back (Catmull-Rom), as `ddpm translate`
// enlarges a low-resolution input. Height and width must be divisible by factor.
void add_super_resolution_conditions(Dataset& data, int64_t factor);

// The condition alone, for one image (pixels [height, width, channels] -> same size, blurred).
std::vector<uint8_t> super_resolution_condition(const uint8_t* image, int64_t height, int64_t width, int64_t channels,
                                                int64_t factor);

}  // namespace ddpm
