// AlignedBuffer and Arena: the only places where tensor memory is allocated.
#include "ddpm/memory.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

namespace ddpm {

namespace {
size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
}  // namespace

void AlignedBuffer::Free::operator()(void* p) const { std::free(p); }

AlignedBuffer::AlignedBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  void* p = std::aligned_alloc(kAlignment, round_up(bytes, kAlignment));
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  data_.reset(p);
}

Arena::Slot Arena::reserve(Shape shape, DType dtype) {
  if (allocated()) throw std::logic_error("Arena: reserve() after allocate()");
  const size_t bytes = static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  entries_.push_back({total_, shape, dtype});
  total_ += round_up(bytes, kAlignment);
  return entries_.size() - 1;
}

Arena::Slot Arena::reserve_bytes(size_t bytes) {
  // Raw workspace: stored as f32 words so the view keeps a valid dtype.
  return reserve(Shape{static_cast<int64_t>((bytes + 3) / 4)}, DType::f32);
}

void Arena::allocate(Device device) {
  if (allocated()) throw std::logic_error("Arena: allocate() called twice");
  device_ = device;
  if (device == Device::cuda)
    device_buffer_ = cuda::DeviceBuffer(total_ ? total_ : kAlignment);
  else
    buffer_ = AlignedBuffer(total_ ? total_ : kAlignment);
}

Tensor Arena::tensor(Slot slot) const {
  if (!allocated()) throw std::logic_error("Arena: tensor() before allocate()");
  const Entry& e = entries_.at(slot);
  return Tensor(base() + e.offset, e.shape, e.dtype, device_);
}

void* Arena::bytes_at(Slot slot) const { return tensor(slot).data(); }

}  // namespace ddpm
