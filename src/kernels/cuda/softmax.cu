// Scaled row softmax forward and backward (attention probabilities), the CUDA twin of
// src/kernels/cpu/softmax.cpp: fp32, the row max subtracted before exp. Rows up to kWarpCols wide
// take one warp each (eight rows per block, shuffles only); wider rows take one block each.
// Each element is read and written by the same thread in every pass, so y may alias x and dx dy.
#include <cmath>
#include <cstdint>

#include "ddpm/kernels/cuda/ops.h"
#include "kernels/cuda/context.h"

namespace ddpm::cuda {
namespace {

constexpr int kWarpCols = 1024;    // widest row a single warp handles (32 values per lane)
constexpr int kWarpsPerBlock = 8;  // rows per block on the warp path
constexpr int kRowThreads = 256;   // threads per row on the block path

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Block-wide max and sum (blockDim.x a multiple of 32); every thread gets the result.
template <bool Max>
__device__ float block_reduce(float v) {
  __shared__ float warp_totals[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = Max ? warp_max(v) : warp_sum(v);
  __syncthreads();  // a previous call's readers are done with warp_totals
  if (lane == 0) warp_totals[warp] = v;
  __syncthreads();
  float r = warp_totals[0];
  for (int w = 1; w < warps; ++w) r = Max ? fmaxf(r, warp_totals[w]) : r + warp_totals[w];
  return r;
}

// One row, its values split over `lanes` threads (this one is `lane`): the reductions are warp or
// block ones.
template <bool Warp>
__device__ void softmax_row(float* y, const float* x, int cols, float scale, int lane, int lanes) {
  float m = -INFINITY;
  for (int j = lane; j < cols; j += lanes) m = fmaxf(m, x[j] * scale);
  m = Warp ? warp_max(m) : block_reduce<true>(m);
  float sum = 0.0f;
  for (int j = lane; j < cols; j += lanes) {
    const float e = expf(fmaf(x[j], scale, -m));
    y[j] = e;
    sum += e;
  }
  sum = Warp ? warp_sum(sum) : block_reduce<false>(sum);
  const float inv = 1.0f / sum;
  for (int j = lane; j < cols; j += lanes) y[j] *= inv;
}

template <bool Warp>
__device__ void softmax_backward_row(float* dx, const float* dy, const float* y, int cols, float scale, int lane,
                                     int lanes) {
  float dot = 0.0f;
  for (int j = lane; j < cols; j += lanes) dot = fmaf(dy[j], y[j], dot);
  dot = Warp ? warp_sum(dot) : block_reduce<false>(dot);
  for (int j = lane; j < cols; j += lanes) dx[j] = scale * y[j] * (dy[j] - dot);
}

__global__ void forward_warp_kernel(float* y, const float* x, int64_t rows, int cols, float scale) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; r < rows; r += stride)
    softmax_row<true>(y + r * cols, x + r * cols, cols, scale, threadIdx.x & 31, 32);
}

__global__ void forward_block_kernel(float* y, const float* x, int64_t rows, int cols, float scale) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x)
    softmax_row<false>(y + r * cols, x + r * cols, cols, scale, threadIdx.x, blockDim.x);
}

__global__ void backward_warp_kernel(float* dx, const float* dy, const float* y, int64_t rows, int cols,
                                     float scale) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kWarpsPerBlock;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; r < rows; r += stride)
    softmax_backward_row<true>(dx + r * cols, dy + r * cols, y + r * cols, cols, scale, threadIdx.x & 31, 32);
}

__global__ void backward_block_kernel(float* dx, const float* dy, const float* y, int64_t rows, int cols,
                                      float scale) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x)
    softmax_backward_row<false>(dx + r * cols, dy + r * cols, y + r * cols, cols, scale, threadIdx.x, blockDim.x);
}

}  // namespace

// The warp path's row loop is uniform within a warp (all lanes share r), so the shuffles see full
// warps; the block path's is uniform within a block, so its __syncthreads are reached by all.
void softmax_forward(float* y, const float* x, int64_t rows, int64_t cols, float scale) {
  if (rows <= 0 || cols <= 0) return;
  const auto c = static_cast<int>(cols);
  if (cols <= kWarpCols) {
    forward_warp_kernel<<<detail::grid_for(rows, kWarpsPerBlock), kWarpsPerBlock * 32, 0, detail::stream()>>>(
        y, x, rows, c, scale);
    DDPM_CUDA_LAUNCHED("softmax forward_warp_kernel");
  } else {
    forward_block_kernel<<<detail::grid_for(rows, 1), kRowThreads, 0, detail::stream()>>>(y, x, rows, c, scale);
    DDPM_CUDA_LAUNCHED("softmax forward_block_kernel");
  }
}

void softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols, float scale) {
  if (rows <= 0 || cols <= 0) return;
  const auto c = static_cast<int>(cols);
  if (cols <= kWarpCols) {
    backward_warp_kernel<<<detail::grid_for(rows, kWarpsPerBlock), kWarpsPerBlock * 32, 0, detail::stream()>>>(
        dx, dy, y, rows, c, scale);
    DDPM_CUDA_LAUNCHED("softmax backward_warp_kernel");
  } else {
    backward_block_kernel<<<detail::grid_for(rows, 1), kRowThreads, 0, detail::stream()>>>(dx, dy, y, rows, c,
                                                                                           scale);
    DDPM_CUDA_LAUNCHED("softmax backward_block_kernel");
  }
}

}  // namespace ddpm::cuda
