// Tensor and Shape: sizes, names and checked typed access.
#include "ddpm/tensor.h"

#include <stdexcept>

namespace ddpm {

size_t dtype_size(DType dtype) { return dtype == DType::f32 ? 4 : 2; }

const char* dtype_name(DType dtype) { return dtype == DType::f32 ? "f32" : "bf16"; }

const char* device_name(Device device) { return device == Device::cpu ? "cpu" : "cuda"; }

Shape::Shape(std::initializer_list<int64_t> dims) {
  if (dims.size() > kMaxRank) throw std::invalid_argument("Shape: more than 4 dimensions");
  for (int64_t d : dims) {
    if (d < 0) throw std::invalid_argument("Shape: negative dimension");
    dims_[static_cast<size_t>(rank_++)] = d;
  }
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<size_t>(i)];
  return n;
}

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

std::string Shape::str() const {
  return dims_str(std::vector<int64_t>(dims_.begin(), dims_.begin() + rank_));
}

bool Shape::operator==(const Shape& other) const {
  if (rank_ != other.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[static_cast<size_t>(i)] != other.dims_[static_cast<size_t>(i)]) return false;
  return true;
}

float* Tensor::f32() const {
  if (dtype_ != DType::f32)
    throw std::logic_error(std::string("tensor is ") + dtype_name(dtype_) + ", expected f32");
  return static_cast<float*>(data_);
}

uint16_t* Tensor::bf16() const {
  if (dtype_ != DType::bf16)
    throw std::logic_error(std::string("tensor is ") + dtype_name(dtype_) + ", expected bf16");
  return static_cast<uint16_t*>(data_);
}

void check_shape(const Tensor& t, const Shape& expected, const char* what) {
  if (t.shape() != expected)
    throw std::invalid_argument(std::string(what) + " has shape " + t.shape().str() +
                                ", expected " + expected.str());
}

}  // namespace ddpm
