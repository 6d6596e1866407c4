// Dataset helpers shared by every reader.
#include "ddpm/data/dataset.h"

#include <stdexcept>

#include "ddpm/image/png.h"

namespace ddpm {

const char* split_name(Split split) { return split == Split::train ? "train" : "test"; }

void images_to_float(const Dataset& data, int64_t first, int64_t count, float* out) {
  if (first < 0 || count < 0 || first + count > data.n)
    throw std::out_of_range(data.name + ": images [" + std::to_string(first) + ", " +
                            std::to_string(first + count) + ") out of range (n = " + std::to_string(data.n) + ")");
  to_float(data.image(first), static_cast<size_t>(count * data.image_size()), out);
}

}  // namespace ddpm
