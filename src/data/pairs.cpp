// Image pairs from two folders, and super-resolution conditions made from the images themselves.
#include "ddpm/data/pairs.h"

#include <filesystem>
#include <stdexcept>
#include <vector>

#include "ddpm/data/image_folder.h"
#include "ddpm/image/png.h"
#include "ddpm/image/resize.h"

namespace ddpm {

namespace fs = std::filesystem;

Dataset load_image_pairs(const std::string& dir, int64_t height, int64_t width, int64_t target_channels) {
  const std::string inputs = (fs::path(dir) / "input").string(), targets = (fs::path(dir) / "target").string();
  for (const std::string& d : {inputs, targets})
    if (!fs::is_directory(d))
      throw std::runtime_error(d + ": missing (--data pairs:DIR needs DIR/input and DIR/target with matching file names)");
  const std::vector<fs::path> in_files = list_image_files(inputs), target_files = list_image_files(targets);
  // Matching relative paths, in the same sorted order: the first difference names the lone file.
  for (size_t i = 0; i < std::max(in_files.size(), target_files.size()); ++i) {
    const fs::path a = i < in_files.size() ? fs::relative(in_files[i], inputs) : fs::path();
    const fs::path b = i < target_files.size() ? fs::relative(target_files[i], targets) : fs::path();
    if (a != b) {
      const bool input_alone = !a.empty() && (b.empty() || a < b);
      throw std::runtime_error(dir + ": " + (input_alone ? (fs::path(inputs) / a).string() + " has no target"
                                                         : (fs::path(targets) / b).string() + " has no input") +
                               " (input/ and target/ must hold the same file names)");
    }
  }
  const int64_t condition_channels = read_image(in_files.front().string()).channels;
  Dataset data = load_image_folder(targets, height, width, target_channels);
  const Dataset conditions = load_image_folder(inputs, height, width, condition_channels);
  data.name = "pairs " + dir;
  data.condition_channels = condition_channels;
  data.conditions = conditions.images;
  return data;
}

std::vector<uint8_t> super_resolution_condition(const uint8_t* image, int64_t height, int64_t width, int64_t channels,
                                                int64_t factor) {
  if (factor < 2 || height % factor != 0 || width % factor != 0)
    throw std::invalid_argument("super-resolution factor " + std::to_string(factor) + " must be at least 2 and divide " +
                                std::to_string(height) + "x" + std::to_string(width));
  const Image full{height, width, channels, std::vector<uint8_t>(image, image + height * width * channels)};
  return resize_cover_crop(resize_cover_crop(full, height / factor, width / factor), height, width).pixels;
}

void add_super_resolution_conditions(Dataset& data, int64_t factor) {
  data.condition_channels = data.channels;
  data.conditions.resize(static_cast<size_t>(data.n * data.condition_size()));
  for (int64_t i = 0; i < data.n; ++i) {
    const std::vector<uint8_t> c = super_resolution_condition(data.image(i), data.height, data.width, data.channels, factor);
    std::copy(c.begin(), c.end(), data.conditions.begin() + i * data.condition_size());
  }
  data.name += " (super-resolution x" + std::to_string(factor) + ")";
}

}  // namespace ddpm
