// Dataset: images as uint8 NHWC [n, height, width, channels] with integer class labels, as every
// reader (idx, cifar10, image_folder) produces them; training maps pixels to [-1, 1] per batch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm {

enum class Split { train, test };

const char* split_name(Split split);  // "train", "test"

struct Dataset {
  std::string name;  // for messages, e.g. "fashion-mnist train"
  int64_t n = 0;
  int64_t height = 0;
  int64_t width = 0;
  int64_t channels = 0;
  int num_classes = 0;          // 0 when unlabelled (image folders)
  std::vector<uint8_t> images;  // [n, height, width, channels]
  std::vector<int32_t> labels;  // [n] in [0, num_classes); empty when unlabelled
  // Image-conditioned data (pairs, super-resolution): per image a condition of the same height and
  // width, condition_channels deep, that the U-Net sees beside the noisy image. Empty otherwise.
  int64_t condition_channels = 0;
  std::vector<uint8_t> conditions;  // [n, height, width, condition_channels]

  int64_t image_size() const { return height * width * channels; }
  int64_t condition_size() const { return height * width * condition_channels; }
  const uint8_t* image(int64_t i) const { return images.data() + i * image_size(); }
  const uint8_t* condition(int64_t i) const { return conditions.data() + i * condition_size(); }
};

// Images [first, first + count) as float NHWC in [-1, 1] (x / 127.5 - 1); throws when out of range.
void images_to_float(const Dataset& data, int64_t first, int64_t count, float* out);

}  // namespace ddpm
