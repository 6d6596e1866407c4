// The CUDA backend's stand-in for a build without nvcc: it reports why there is no device, and any
// use of device memory throws with what to do (rebuild on a machine with the CUDA toolkit).
#include "ddpm/kernels/cuda/runtime.h"

namespace ddpm::cuda {

namespace {
constexpr const char* kNotBuilt =
    "this ddpm was built without the CUDA backend (configured without nvcc and cuDNN, or with -DDDPM_CUDA=OFF): "
    "rebuild on a machine with the "
    "CUDA toolkit and cuDNN (cmake -DDDPM_CUDA=ON; nvcc on PATH or in /usr/local/cuda)";
}

bool built() { return false; }

DeviceInfo device_info() {
  DeviceInfo d;
  d.description = kNotBuilt;
  return d;
}

void require_device(const std::string& what) { throw Error(what + " needs a CUDA device: " + kNotBuilt); }

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes > 0) require_device("device memory");
}
DeviceBuffer::~DeviceBuffer() = default;
DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept : data_(other.data_), bytes_(other.bytes_) {
  other.data_ = nullptr;
  other.bytes_ = 0;
}
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  data_ = other.data_;
  bytes_ = other.bytes_;
  other.data_ = nullptr;
  other.bytes_ = 0;
  return *this;
}
void DeviceBuffer::zero() {}

void upload(void*, const void*, size_t bytes) {
  if (bytes > 0) require_device("upload");
}
void download(void*, const void*, size_t bytes) {
  if (bytes > 0) require_device("download");
}
void zero(void*, size_t bytes) {
  if (bytes > 0) require_device("zero");
}
void copy_on_device(void*, const void*, size_t bytes) {
  if (bytes > 0) require_device("copy_on_device");
}
struct Graph::Impl {};
Graph::Graph() : impl_(nullptr) {}
Graph::~Graph() = default;
bool Graph::captured() const { return false; }
void Graph::begin_capture() { require_device("cuda::Graph"); }
void Graph::end_capture() {}
void Graph::abort_capture() {}
void Graph::replay() { require_device("cuda::Graph"); }
void synchronize() {}
void set_allow_tf32(bool) {}
bool allow_tf32() { return false; }

}  // namespace ddpm::cuda
