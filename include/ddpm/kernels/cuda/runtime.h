// The CUDA backend's runtime: whether a device answers, device memory, copies, and the one stream
// that every CUDA op runs on. This header has no CUDA types, so any translation unit may include
// it; in a build without CUDA (no nvcc at configure time) built() is false, device_info() says so,
// and everything else throws cuda::Error naming what to do.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace ddpm::cuda {

// A CUDA call failed: the message names the call, CUDA's error name and text.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// True when this binary has the CUDA backend compiled in.
bool built();

struct DeviceInfo {
  bool usable = false;
  // "NVIDIA H200 (compute 9.0, 132 SMs, 139.8 GiB)" when usable, else why not, e.g. "no CUDA
  // driver (cudaErrorInsufficientDriver: ...)" or "built without the CUDA backend".
  std::string description;
  int major = 0, minor = 0, multiprocessors = 0;
  size_t memory_bytes = 0;
};
// Device 0, asked once and remembered. Never throws.
DeviceInfo device_info();
// Throws cuda::Error("<what> needs a CUDA device: <why not>") unless device_info().usable.
void require_device(const std::string& what);

// Owning device memory (cudaMalloc), 256-byte aligned. Allocation failure throws cuda::Error with
// the size asked for and the free memory. Contents are not initialised (zero() clears them).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  template <class T>
  T* as() const { return static_cast<T*>(data_); }
  void zero();  // on the stream

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Copies between host and device memory, ordered on the stream; both wait until the copy is done
// (host memory may be pageable).
void upload(void* device_dst, const void* host_src, size_t bytes);
void download(void* host_dst, const void* device_src, size_t bytes);
// Zeroes device memory, queued on the stream.
void zero(void* device_dst, size_t bytes);
// Device to device, queued on the stream (no waiting; may be captured in a Graph).
void copy_on_device(void* device_dst, const void* device_src, size_t bytes);
// Waits for all work on the stream; an error from an earlier kernel is thrown here.
void synchronize();

// A CUDA Graph of work queued on the stream: capture() runs `work` once in capture mode (nothing
// executes), replay() launches the recorded kernels again with one call, without the per-kernel
// launch cost. The work must queue only (no allocation, no waiting, no host copies) and use the
// same pointers every time. Capture failure throws cuda::Error and leaves the stream usable.
class Graph {
 public:
  Graph();
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  template <class Work>
  void capture(Work&& work) {
    begin_capture();
    try {
      work();
    } catch (...) {
      abort_capture();
      throw;
    }
    end_capture();
  }
  bool captured() const;
  void replay();

 private:
  void begin_capture();
  void end_capture();
  void abort_capture();
  struct Impl;
  Impl* impl_;
};

// fp32 convolutions and matrix products: exact fp32 (the default) or TF32 tensor-core math, which
// rounds operands to 10 mantissa bits (~1e-3 relative). An explicit opt-in, as PyTorch's
// torch.backends.cuda.matmul.allow_tf32. Ops read it when they are planned.
void set_allow_tf32(bool allow);
bool allow_tf32();

}  // namespace ddpm::cuda
