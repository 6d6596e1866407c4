// NPY files (NumPy's array format): the exchange format for tensors with Python tools.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddpm {

struct NpyArray {
  std::vector<int64_t> shape;
  std::string dtype;       // NumPy descr, e.g. "<f4", "<i8", "|u1"
  std::vector<char> data;  // raw little-endian elements, C order

  int64_t numel() const;
  // The elements converted to float32 (from f4, f8, i4, i8, u1).
  std::vector<float> to_f32() const;
  std::vector<int64_t> to_i64() const;
};

// Reads and validates an .npy file (header, dtype, C order, size); throws naming the file.
NpyArray read_npy(const std::string& path);

// Writes float32 data in C order; atomic (temp file + rename).
void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape);

}  // namespace ddpm
