// Tensor: a typed, shaped, non-owning view of memory. Activations are NHWC; parameters keep
// PyTorch's layout (conv [O,I,kh,kw], linear [out,in]) so checkpoints map one to one.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace ddpm {

enum class DType : uint8_t { f32, bf16 };
enum class Device : uint8_t { cpu, cuda };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
const char* device_name(Device device);

// Up to four dimensions, row-major (the last dimension is contiguous).
class Shape {
 public:
  static constexpr int kMaxRank = 4;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);

  int rank() const { return rank_; }
  int64_t operator[](int axis) const { return dims_[static_cast<size_t>(axis)]; }
  int64_t numel() const;
  std::string str() const;  // "[2,5,7,3]"
  bool operator==(const Shape& other) const;
  bool operator!=(const Shape& other) const { return !(*this == other); }

 private:
  std::array<int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

class Tensor {
 public:
  Tensor() = default;
  Tensor(void* data, Shape shape, DType dtype = DType::f32, Device device = Device::cpu)
      : data_(data), shape_(shape), dtype_(dtype), device_(device) {}

  void* data() const { return data_; }
  const Shape& shape() const { return shape_; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  int64_t numel() const { return shape_.numel(); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool empty() const { return data_ == nullptr; }

  // Typed access; throws when the dtype does not match.
  float* f32() const;
  uint16_t* bf16() const;

 private:
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::f32;
  Device device_ = Device::cpu;
};

// "[2,5,7,3]" for a list of dimensions of any length (Shape::str() for a Shape).
std::string dims_str(const std::vector<int64_t>& dims);

// Throws std::invalid_argument naming `what` when `t` does not have `expected` shape.
void check_shape(const Tensor& t, const Shape& expected, const char* what);

}  // namespace ddpm
