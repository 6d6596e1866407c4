// IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or plain, and the Fashion-MNIST loader.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ddpm/data/dataset.h"

namespace ddpm {

struct IdxArray {
  std::vector<int64_t> dims;  // big-endian in the file, e.g. [60000, 28, 28]
  std::vector<uint8_t> data;  // C order

  int64_t numel() const;
};

// Reads an unsigned-byte IDX file with `ndims` dimensions (magic 0x0000080N: 0x00000803 for images,
// 0x00000801 for labels), through zlib so .gz and plain files both work. The header is validated
// (magic, dimension limits) before any allocation, and the data must be exactly what the dimensions
// claim: a truncated gzip stream, missing or extra bytes are errors that name the file.
IdxArray read_idx(const std::string& path, int ndims);

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Fashion-MNIST from DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz: 60000 (train) or 10000
// (test) images [n, 28, 28, 1] with labels 0..9. Missing files name the Debian package to install.
Dataset load_fashion_mnist(const std::string& dir = kFashionMnistDir, Split split = Split::train);

}  // namespace ddpm
