// Internal to the CUDA backend: the stream, the library handles, error checks and launch sizes.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdint>

#include "ddpm/kernels/cuda/runtime.h"

namespace ddpm::cuda::detail {

// The stream every op is queued on (one per process; created on first use, after a device check).
cudaStream_t stream();
cublasLtHandle_t blaslt();  // bound to nothing: cuBLASLt takes the stream per call
cudnnHandle_t cudnn();      // bound to stream()

[[noreturn]] void fail(const char* expression, const char* error_name, const char* error_text, const char* file,
                       int line);
inline void check(cudaError_t e, const char* expression, const char* file, int line) {
  if (e != cudaSuccess) fail(expression, cudaGetErrorName(e), cudaGetErrorString(e), file, line);
}
void check(cublasStatus_t s, const char* expression, const char* file, int line);
void check(cudnnStatus_t s, const char* expression, const char* file, int line);

// Blocks of 256 threads covering n elements, capped at a grid the device fills several times over
// (kernels loop with a grid stride beyond it).
inline unsigned grid_for(int64_t n, int threads = 256) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

}  // namespace ddpm::cuda::detail

// Every CUDA, cuBLAS and cuDNN call goes through this: a failure throws cuda::Error naming the call.
#define DDPM_CUDA_CHECK(expr) ::ddpm::cuda::detail::check((expr), #expr, __FILE__, __LINE__)
// After each kernel launch: a bad launch configuration is reported where it happened.
#define DDPM_CUDA_LAUNCHED(kernel_name) \
  ::ddpm::cuda::detail::check(cudaGetLastError(), "launch of " kernel_name, __FILE__, __LINE__)
