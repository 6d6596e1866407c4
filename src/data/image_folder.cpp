// Image-folder dataset: decode, convert channels, cover-resize and centre-crop every PNG/JPEG.
#include "ddpm/data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "ddpm/image/png.h"
#include "ddpm/image/resize.h"

namespace ddpm {

namespace {

bool is_image_name(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

}  // namespace

std::vector<std::filesystem::path> list_image_files(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(dir, ec)) throw std::runtime_error(dir + ": image folder not found");
  if (!fs::is_directory(dir, ec)) throw std::runtime_error(dir + ": not a directory");

  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) && is_image_name(it->path())) files.push_back(it->path());
  }
  if (ec) throw std::runtime_error(dir + ": cannot list the folder: " + ec.message());
  if (files.empty()) throw std::runtime_error(dir + ": no images (.png, .jpg, .jpeg) in the folder");
  std::sort(files.begin(), files.end());
  return files;
}

Dataset load_image_folder(const std::string& dir, int64_t height, int64_t width, int64_t channels) {
  if (channels != 1 && channels != 3)
    throw std::invalid_argument(dir + ": images can be loaded with 1 or 3 channels, not " + std::to_string(channels));
  if (height <= 0 || width <= 0 || height > 4096 || width > 4096)
    throw std::invalid_argument(dir + ": bad image size " + std::to_string(height) + "x" + std::to_string(width));
  const std::vector<std::filesystem::path> files = list_image_files(dir);

  Dataset d;
  d.name = "folder " + dir;
  d.n = static_cast<int64_t>(files.size());
  d.height = height;
  d.width = width;
  d.channels = channels;
  d.images.resize(static_cast<size_t>(d.n * d.image_size()));
  for (int64_t i = 0; i < d.n; ++i) {
    const std::string path = files[static_cast<size_t>(i)].string();
    const Image decoded = read_image(path, channels);  // names the file in its errors
    Image image;
    try {
      image = resize_cover_crop(decoded, height, width);
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(path + ": " + e.what());
    }
    std::memcpy(d.images.data() + i * d.image_size(), image.pixels.data(), image.pixels.size());
  }
  return d;
}

}  // namespace ddpm
