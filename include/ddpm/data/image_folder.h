// A folder of PNG/JPEG images as an unlabelled dataset of the model's size and channel count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "ddpm/data/dataset.h"

namespace ddpm {

// Every .png/.jpg/.jpeg file (case-insensitive) under DIR, recursively, in order of relative path.
// Each is decoded, converted to `channels` (1: ITU-R 601 luma; 3: grey replicated; alpha dropped),
// scaled so it covers height x width (box filter when shrinking) and centre-cropped. Labels are
// empty (num_classes 0). Errors: missing directory, no images, an undecodable file (named).
Dataset load_image_folder(const std::string& dir, int64_t height, int64_t width, int64_t channels);

// The image files load_image_folder reads, in its order; throws for a missing or empty folder.
std::vector<std::filesystem::path> list_image_files(const std::string& dir);

}  // namespace ddpm
