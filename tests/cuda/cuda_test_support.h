// Helpers of the CUDA tests: skip with the reason when no device answers, and device arrays that
// upload host vectors and download results (outputs start as NaN, so an element a kernel fails to
// write shows up).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "ddpm/kernels/cuda/runtime.h"
#include "test_support.h"

// Skips the test, printing why, when this machine has no usable CUDA device (CI has none).
#define DDPM_REQUIRE_CUDA_DEVICE()                                                          \
  do {                                                                                      \
    const ::ddpm::cuda::DeviceInfo info_ = ::ddpm::cuda::device_info();                     \
    if (!info_.usable) GTEST_SKIP() << "no CUDA device here: " << info_.description;        \
  } while (0)

namespace ddpm::test {

class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<float>& host) : n_(host.size()), buffer_(host.size() * sizeof(float)) {
    cuda::upload(buffer_.data(), host.data(), host.size() * sizeof(float));
  }
  // n floats, every one NaN.
  explicit DeviceArray(size_t n) : DeviceArray(std::vector<float>(n, kNaN)) {}

  float* data() const { return buffer_.as<float>(); }
  size_t size() const { return n_; }
  std::vector<float> host() const {
    std::vector<float> out(n_);
    cuda::download(out.data(), buffer_.data(), n_ * sizeof(float));
    return out;
  }

 private:
  size_t n_;
  cuda::DeviceBuffer buffer_;
};

}  // namespace ddpm::test
