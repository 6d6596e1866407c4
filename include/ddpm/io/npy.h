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
  std::string path;        // the file it was read from (named in conversion errors)

  int64_t numel() const;
  // The elements converted to float32 (from f4, f8, i4, i8, u1).
  std::vector<float> to_f32() const;
  // The elements as integers. Floating-point elements must hold integral values within int64's
  // range: NaN, infinities and fractions throw naming the file and the element.
  std::vector<int64_t> to_i64() const;
};

// Reads and validates an .npy file (header, dtype, C order, size); throws naming the file.
NpyArray read_npy(const std::string& path);

// Writes float32 data in C order; atomic (temp file + rename).
void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape);

}  // namespace ddpm
