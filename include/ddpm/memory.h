// Planned memory: everything a model needs (activations, gradients, workspaces) is reserved
// first and allocated once, so that a training or sampling step never touches the heap.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "ddpm/kernels/cuda/runtime.h"
#include "ddpm/tensor.h"

namespace ddpm {

inline constexpr size_t kAlignment = 64;  // one cache line; what AVX-512 loads like

// An owning, 64-byte aligned, zero-initialised block of bytes.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes);

  void* data() const { return data_.get(); }
  size_t bytes() const { return bytes_; }
  template <class T>
  T* as() const { return static_cast<T*>(data_.get()); }

 private:
  struct Free {
    void operator()(void* p) const;
  };
  std::unique_ptr<void, Free> data_;
  size_t bytes_ = 0;
};

// Two phases: reserve() hands out slots while a model is planned; allocate() makes one block, in
// host memory or on the CUDA device; tensor() then returns views into it. Reserving after
// allocate() is an error. Device memory is not zeroed.
class Arena {
 public:
  using Slot = size_t;

  Slot reserve(Shape shape, DType dtype = DType::f32);
  Slot reserve_bytes(size_t bytes);
  void allocate(Device device = Device::cpu);

  bool allocated() const { return base() != nullptr; }
  Device device() const { return device_; }
  size_t bytes() const { return total_; }
  Tensor tensor(Slot slot) const;
  void* bytes_at(Slot slot) const;

 private:
  struct Entry {
    size_t offset;
    Shape shape;
    DType dtype;
  };
  char* base() const { return device_ == Device::cuda ? device_buffer_.as<char>() : buffer_.as<char>(); }
  std::vector<Entry> entries_;
  size_t total_ = 0;
  Device device_ = Device::cpu;
  AlignedBuffer buffer_;
  cuda::DeviceBuffer device_buffer_;
};

}  // namespace ddpm
