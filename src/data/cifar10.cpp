// CIFAR-10 binary reader: label byte + R, G, B planes per record, transposed to NHWC.
#include "ddpm/data/cifar10.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace ddpm {

namespace {

constexpr int64_t kSide = 32;
constexpr int64_t kPlane = kSide * kSide;
constexpr int64_t kRecord = 1 + 3 * kPlane;  // 3073

}  // namespace

Dataset load_cifar10(const std::string& dir, Split split) {
  std::vector<std::string> files;
  if (split == Split::train) {
    for (int i = 1; i <= 5; ++i) files.push_back(dir + "/data_batch_" + std::to_string(i) + ".bin");
  } else {
    files.push_back(dir + "/test_batch.bin");
  }

  // Sizes of every file first, so nothing is allocated for a set that is incomplete or damaged.
  std::vector<int64_t> records;
  int64_t total = 0;
  for (const std::string& path : files) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
      throw std::runtime_error(path + ": CIFAR-10 file not found (expected the binary version, the folder "
                               "cifar-10-batches-bin from https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz)");
    const auto size = static_cast<int64_t>(std::filesystem::file_size(path, ec));
    if (ec) throw std::runtime_error(path + ": cannot read its size: " + ec.message());
    if (size == 0 || size % kRecord != 0)
      throw std::runtime_error(path + ": not a CIFAR-10 binary batch: size " + std::to_string(size) +
                               " bytes is not a non-zero multiple of the 3073-byte record (1 label + 3x32x32)");
    records.push_back(size / kRecord);
    total += size / kRecord;
  }

  Dataset d;
  d.name = "cifar10 " + std::string(split_name(split));
  d.n = total;
  d.height = kSide;
  d.width = kSide;
  d.channels = 3;
  d.num_classes = 10;
  d.images.resize(static_cast<size_t>(total * kPlane * 3));
  d.labels.resize(static_cast<size_t>(total));

  std::vector<unsigned char> buf;
  int64_t index = 0;
  for (size_t f = 0; f < files.size(); ++f) {
    const std::string& path = files[f];
    std::ifstream in(path, std::ios::binary);
    buf.resize(static_cast<size_t>(records[f] * kRecord));
    if (!in || !in.read(reinterpret_cast<char*>(buf.data()), static_cast<std::streamsize>(buf.size())))
      throw std::runtime_error(path + ": read failed");
    for (int64_t r = 0; r < records[f]; ++r, ++index) {
      const unsigned char* rec = buf.data() + r * kRecord;
      if (rec[0] > 9)
        throw std::runtime_error(path + ": record " + std::to_string(r) + " has label " + std::to_string(rec[0]) +
                                 " (expected 0..9; is this CIFAR-100, whose records differ?)");
      d.labels[static_cast<size_t>(index)] = rec[0];
      uint8_t* out = d.images.data() + index * kPlane * 3;
      for (int64_t p = 0; p < kPlane; ++p)
        for (int64_t c = 0; c < 3; ++c) out[p * 3 + c] = rec[1 + c * kPlane + p];
    }
  }
  return d;
}

}  // namespace ddpm
