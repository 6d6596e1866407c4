// The CUDA runtime of the backend: device query, memory, copies, the stream and library handles.
#include "ddpm/kernels/cuda/runtime.h"

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <utility>

#include "kernels/cuda/context.h"

namespace ddpm::cuda {

namespace detail {

void fail(const char* expression, const char* error_name, const char* error_text, const char* file, int line) {
  throw Error(std::string(expression) + " failed: " + error_name + " (" + error_text + ") at " + file + ":" +
              std::to_string(line));
}

void check(cublasStatus_t s, const char* expression, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS) fail(expression, cublasLtGetStatusName(s), cublasLtGetStatusString(s), file, line);
}

void check(cudnnStatus_t s, const char* expression, const char* file, int line) {
  if (s == CUDNN_STATUS_SUCCESS) return;
  char detail[512] = "";
  cudnnGetLastErrorString(detail, sizeof detail);
  fail(expression, cudnnGetErrorString(s), detail, file, line);
}

namespace {

struct Handles {
  cudaStream_t stream = nullptr;
  cublasLtHandle_t blaslt = nullptr;
  cudnnHandle_t cudnn = nullptr;
};

// Created once, on first use, and kept for the life of the process (destroying them at exit races
// with the driver's own teardown).
Handles& handles() {
  static Handles* h = [] {
    require_device("the CUDA backend");
    auto* made = new Handles;
    DDPM_CUDA_CHECK(cudaStreamCreateWithFlags(&made->stream, cudaStreamNonBlocking));
    DDPM_CUDA_CHECK(cublasLtCreate(&made->blaslt));
    DDPM_CUDA_CHECK(cudnnCreate(&made->cudnn));
    DDPM_CUDA_CHECK(cudnnSetStream(made->cudnn, made->stream));
    return made;
  }();
  return *h;
}

}  // namespace

cudaStream_t stream() { return handles().stream; }
cublasLtHandle_t blaslt() { return handles().blaslt; }
cudnnHandle_t cudnn() { return handles().cudnn; }

}  // namespace detail

bool built() { return true; }

DeviceInfo device_info() {
  static const DeviceInfo info = [] {
    DeviceInfo d;
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      // Without a driver the runtime says "driver version is insufficient": say what is missing.
      void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD);
      if (driver == nullptr) driver = dlopen("libcuda.so.1", RTLD_LAZY);
      d.description = driver == nullptr ? std::string("no NVIDIA driver on this machine (libcuda.so.1 not found)")
                                        : std::string("no usable CUDA device (") + cudaGetErrorName(e) + ": " +
                                              cudaGetErrorString(e) + ")";
      if (driver != nullptr) dlclose(driver);
      cudaGetLastError();  // clear it, so later checks do not see it
      return d;
    }
    if (count == 0) {
      d.description = "no CUDA device found";
      return d;
    }
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
      d.description = "CUDA device 0 did not answer a properties query";
      return d;
    }
    d.usable = true;
    d.major = p.major;
    d.minor = p.minor;
    d.multiprocessors = p.multiProcessorCount;
    d.memory_bytes = p.totalGlobalMem;
    char text[512];
    std::snprintf(text, sizeof text, "%.256s (compute %d.%d, %d SMs, %.1f GiB)", p.name, p.major, p.minor,
                  p.multiProcessorCount, static_cast<double>(p.totalGlobalMem) / (1 << 30));
    d.description = text;
    return d;
  }();
  return info;
}

void require_device(const std::string& what) {
  const DeviceInfo d = device_info();
  if (!d.usable) throw Error(what + " needs a CUDA device: " + d.description);
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  require_device("device memory");
  const cudaError_t e = cudaMalloc(&data_, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_bytes = 0, total = 0;
    cudaMemGetInfo(&free_bytes, &total);
    throw Error("cudaMalloc of " + std::to_string(bytes >> 20) + " MiB failed (" + cudaGetErrorName(e) + "); " +
                std::to_string(free_bytes >> 20) + " MiB of " + std::to_string(total >> 20) +
                " MiB free: use a smaller --batch");
  }
}

DeviceBuffer::~DeviceBuffer() {
  if (data_ != nullptr) cudaFree(data_);  // cudaFree synchronises the device
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) cudaFree(data_);
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void DeviceBuffer::zero() {
  if (bytes_ > 0) DDPM_CUDA_CHECK(cudaMemsetAsync(data_, 0, bytes_, detail::stream()));
}

void upload(void* device_dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  DDPM_CUDA_CHECK(cudaMemcpyAsync(device_dst, host_src, bytes, cudaMemcpyHostToDevice, detail::stream()));
  synchronize();
}

void download(void* host_dst, const void* device_src, size_t bytes) {
  if (bytes == 0) return;
  DDPM_CUDA_CHECK(cudaMemcpyAsync(host_dst, device_src, bytes, cudaMemcpyDeviceToHost, detail::stream()));
  synchronize();
}

void zero(void* device_dst, size_t bytes) {
  if (bytes > 0) DDPM_CUDA_CHECK(cudaMemsetAsync(device_dst, 0, bytes, detail::stream()));
}

void copy_on_device(void* device_dst, const void* device_src, size_t bytes) {
  if (bytes > 0)
    DDPM_CUDA_CHECK(cudaMemcpyAsync(device_dst, device_src, bytes, cudaMemcpyDeviceToDevice, detail::stream()));
}

struct Graph::Impl {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
};

Graph::Graph() : impl_(new Impl) {}

Graph::~Graph() {
  if (impl_->exec != nullptr) cudaGraphExecDestroy(impl_->exec);
  if (impl_->graph != nullptr) cudaGraphDestroy(impl_->graph);
  delete impl_;
}

bool Graph::captured() const { return impl_->exec != nullptr; }

void Graph::begin_capture() {
  if (captured()) throw std::logic_error("cuda::Graph: captured already");
  // Relaxed: other threads may still call the runtime (nothing else runs on our stream).
  DDPM_CUDA_CHECK(cudaStreamBeginCapture(detail::stream(), cudaStreamCaptureModeRelaxed));
}

void Graph::end_capture() {
  DDPM_CUDA_CHECK(cudaStreamEndCapture(detail::stream(), &impl_->graph));
  DDPM_CUDA_CHECK(cudaGraphInstantiate(&impl_->exec, impl_->graph, 0));
}

void Graph::abort_capture() {
  cudaGraph_t partial = nullptr;
  cudaStreamEndCapture(detail::stream(), &partial);  // ends the (invalidated) capture
  if (partial != nullptr) cudaGraphDestroy(partial);
  cudaGetLastError();
}

void Graph::replay() {
  if (!captured()) throw std::logic_error("cuda::Graph: replay() before capture()");
  DDPM_CUDA_CHECK(cudaGraphLaunch(impl_->exec, detail::stream()));
}

void synchronize() { DDPM_CUDA_CHECK(cudaStreamSynchronize(detail::stream())); }

namespace {
std::atomic<bool> g_allow_tf32{false};
}

void set_allow_tf32(bool allow) { g_allow_tf32 = allow; }
bool allow_tf32() { return g_allow_tf32; }

}  // namespace ddpm::cuda
