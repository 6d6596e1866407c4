// The small kernels around cuDNN and cuBLASLt (see layout.h): operand copies in the layouts and
// types the libraries want, the way back, the bias add and the bias gradient, and the shared
// library workspace. Grid-stride loops, one thread per element written.
#include "kernels/cuda/layout.h"

#include <algorithm>
#include <mutex>
#include <string>

#include "kernels/cuda/context.h"

namespace ddpm::cuda::detail {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return static_cast<int64_t>(blockDim.x) * gridDim.x; }

// Round to nearest even, NaN kept quiet: cpu::convert's rounding bit for bit.
__device__ __forceinline__ uint16_t bf16_bits(float v) {
  uint32_t u = __float_as_uint(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(uint16_t* p, float v) { *p = bf16_bits(v); }
__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const uint16_t* p) { return __uint_as_float(static_cast<uint32_t>(*p) << 16); }

template <class T>
__global__ void pad_nhwc_kernel(T* dst, Nhwc d, const float* src, Nhwc s, int64_t top, int64_t left) {
  const int64_t total = d.size();
  for (int64_t i = first_index(); i < total; i += grid_stride()) {
    const int64_t c = i % d.c;
    int64_t rest = i / d.c;
    const int64_t x = rest % d.w - left;
    rest /= d.w;
    const int64_t y = rest % d.h - top;
    const int64_t n = rest / d.h;
    float v = 0.0f;
    if (c < s.c && y >= 0 && y < s.h && x >= 0 && x < s.w) v = src[((n * s.h + y) * s.w + x) * s.c + c];
    store(dst + i, v);
  }
}

template <class T>
__global__ void crop_nhwc_kernel(float* dst, Nhwc d, const T* src, Nhwc s, int64_t top, int64_t left,
                                 const float* bias) {
  const int64_t total = d.size();
  for (int64_t i = first_index(); i < total; i += grid_stride()) {
    const int64_t c = i % d.c;
    int64_t rest = i / d.c;
    const int64_t x = rest % d.w + left;
    rest /= d.w;
    const int64_t y = rest % d.h + top;
    const int64_t n = rest / d.h;
    float v = load(src + ((n * s.h + y) * s.w + x) * s.c + c);
    if (bias != nullptr) v += bias[c];
    dst[i] = v;
  }
}

template <class T>
__global__ void oihw_to_ohwi_kernel(T* dst, const float* w, int64_t out, int64_t in, int64_t k, int64_t out_pad,
                                    int64_t in_pad) {
  const int64_t total = out_pad * k * k * in_pad;
  for (int64_t idx = first_index(); idx < total; idx += grid_stride()) {
    const int64_t i = idx % in_pad;
    int64_t rest = idx / in_pad;
    const int64_t kw = rest % k;
    rest /= k;
    const int64_t kh = rest % k;
    const int64_t o = rest / k;
    const float v = (o < out && i < in) ? w[((o * in + i) * k + kh) * k + kw] : 0.0f;
    store(dst + idx, v);
  }
}

template <class T>
__global__ void ohwi_to_oihw_kernel(float* dst, const T* src, int64_t out, int64_t in, int64_t k, int64_t in_pad) {
  const int64_t total = out * in * k * k;
  for (int64_t idx = first_index(); idx < total; idx += grid_stride()) {
    const int64_t kw = idx % k;
    int64_t rest = idx / k;
    const int64_t kh = rest % k;
    rest /= k;
    const int64_t i = rest % in;
    const int64_t o = rest / in;
    dst[idx] = load(src + ((o * k + kh) * k + kw) * in_pad + i);
  }
}

__global__ void round_to_bf16_kernel(uint16_t* dst, const float* src, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) dst[i] = bf16_bits(src[i]);
}

__global__ void add_row_bias_kernel(float* y, const float* bias, int64_t cols, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] += bias[i % cols];
}

// Column sums in two fixed-order passes. Pass 1: block (32, kSumRows), grid (column tiles, row
// chunks); x runs along 32 consecutive columns (one coalesced segment per warp row), each thread
// sums every kSumRows-th row of its chunk, then the kSumRows partials are added in row order.
// Pass 2: one thread per column adds the chunks in chunk order.
constexpr int kSumRows = 8;
constexpr int64_t kMaxChunks = 128;
constexpr int64_t kMinChunkRows = 256;

int64_t chunk_count(int64_t rows) {
  return std::clamp<int64_t>((rows + kMinChunkRows - 1) / kMinChunkRows, 1, kMaxChunks);
}

__global__ void column_partials_kernel(double* partials, const float* x, int64_t rows, int64_t cols,
                                       int64_t chunk_rows) {
  __shared__ double part[kSumRows][32];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t end = std::min(rows, begin + chunk_rows);
  double acc = 0.0;
  if (c < cols)
    for (int64_t r = begin + threadIdx.y; r < end; r += kSumRows) acc += x[r * cols + c];
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    double total = 0.0;
    for (int j = 0; j < kSumRows; ++j) total += part[j][threadIdx.x];
    partials[blockIdx.y * cols + c] = total;
  }
}

__global__ void column_totals_kernel(float* out, const double* partials, int64_t chunks, int64_t cols) {
  for (int64_t c = first_index(); c < cols; c += grid_stride()) {
    double total = 0.0;
    for (int64_t j = 0; j < chunks; ++j) total += partials[j * cols + c];
    out[c] = static_cast<float>(total);
  }
}

struct SharedWorkspace {
  std::mutex mutex;
  DeviceBuffer buffer;
};

// Kept for the life of the process, as the library handles (freeing at exit races the driver).
SharedWorkspace& shared_workspace() {
  static auto* w = new SharedWorkspace;
  return *w;
}

}  // namespace

void pad_nhwc(void* dst, Element e, Nhwc d, const float* src, Nhwc s, int64_t top, int64_t left) {
  const int64_t n = d.size();
  if (n <= 0) return;
  if (e == Element::f32) {
    pad_nhwc_kernel<<<grid_for(n), kThreads, 0, stream()>>>(static_cast<float*>(dst), d, src, s, top, left);
  } else {
    pad_nhwc_kernel<<<grid_for(n), kThreads, 0, stream()>>>(static_cast<uint16_t*>(dst), d, src, s, top, left);
  }
  DDPM_CUDA_LAUNCHED("pad_nhwc_kernel");
}

void crop_nhwc(float* dst, Nhwc d, const void* src, Element e, Nhwc s, int64_t top, int64_t left, const float* bias) {
  const int64_t n = d.size();
  if (n <= 0) return;
  if (e == Element::f32) {
    crop_nhwc_kernel<<<grid_for(n), kThreads, 0, stream()>>>(dst, d, static_cast<const float*>(src), s, top, left,
                                                             bias);
  } else {
    crop_nhwc_kernel<<<grid_for(n), kThreads, 0, stream()>>>(dst, d, static_cast<const uint16_t*>(src), s, top,
                                                             left, bias);
  }
  DDPM_CUDA_LAUNCHED("crop_nhwc_kernel");
}

void oihw_to_ohwi(void* dst, Element e, const float* w, int64_t out, int64_t in, int64_t k, int64_t out_pad,
                  int64_t in_pad) {
  const int64_t n = out_pad * k * k * in_pad;
  if (n <= 0) return;
  if (e == Element::f32) {
    oihw_to_ohwi_kernel<<<grid_for(n), kThreads, 0, stream()>>>(static_cast<float*>(dst), w, out, in, k, out_pad,
                                                                in_pad);
  } else {
    oihw_to_ohwi_kernel<<<grid_for(n), kThreads, 0, stream()>>>(static_cast<uint16_t*>(dst), w, out, in, k,
                                                                out_pad, in_pad);
  }
  DDPM_CUDA_LAUNCHED("oihw_to_ohwi_kernel");
}

void ohwi_to_oihw(float* dst, const void* src, Element e, int64_t out, int64_t in, int64_t k, int64_t out_pad,
                  int64_t in_pad) {
  const int64_t n = out * in * k * k;
  if (n <= 0) return;
  (void)out_pad;  // rows beyond `out` are simply not read
  if (e == Element::f32) {
    ohwi_to_oihw_kernel<<<grid_for(n), kThreads, 0, stream()>>>(dst, static_cast<const float*>(src), out, in, k,
                                                                in_pad);
  } else {
    ohwi_to_oihw_kernel<<<grid_for(n), kThreads, 0, stream()>>>(dst, static_cast<const uint16_t*>(src), out, in, k,
                                                                in_pad);
  }
  DDPM_CUDA_LAUNCHED("ohwi_to_oihw_kernel");
}

void round_to_bf16(uint16_t* dst, const float* src, int64_t n) {
  if (n <= 0) return;
  round_to_bf16_kernel<<<grid_for(n), kThreads, 0, stream()>>>(dst, src, n);
  DDPM_CUDA_LAUNCHED("round_to_bf16_kernel");
}

void add_row_bias(float* y, const float* bias, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  if (n <= 0) return;
  add_row_bias_kernel<<<grid_for(n), kThreads, 0, stream()>>>(y, bias, cols, n);
  DDPM_CUDA_LAUNCHED("add_row_bias_kernel");
}

int64_t column_sum_partials(int64_t rows, int64_t cols) { return chunk_count(rows) * std::max<int64_t>(cols, 1); }

void column_sums(float* out, const float* x, int64_t rows, int64_t cols, double* partials) {
  if (cols <= 0) return;
  const int64_t chunks = chunk_count(rows);
  const int64_t chunk_rows = (rows + chunks - 1) / chunks;
  const dim3 grid(static_cast<unsigned>((cols + 31) / 32), static_cast<unsigned>(chunks));
  column_partials_kernel<<<grid, dim3(32, kSumRows), 0, stream()>>>(partials, x, rows, cols, chunk_rows);
  DDPM_CUDA_LAUNCHED("column_partials_kernel");
  column_totals_kernel<<<grid_for(cols), kThreads, 0, stream()>>>(out, partials, chunks, cols);
  DDPM_CUDA_LAUNCHED("column_totals_kernel");
}

void reserve_workspace(size_t bytes) {
  SharedWorkspace& w = shared_workspace();
  const std::lock_guard<std::mutex> lock(w.mutex);
  if (bytes <= w.buffer.bytes()) return;
  // Queued work may still be using the old buffer.
  DDPM_CUDA_CHECK(cudaStreamSynchronize(stream()));
  w.buffer = DeviceBuffer();
  w.buffer = DeviceBuffer(bytes);
}

void* workspace() {
  SharedWorkspace& w = shared_workspace();
  const std::lock_guard<std::mutex> lock(w.mutex);
  return w.buffer.data();
}

size_t workspace_bytes() {
  SharedWorkspace& w = shared_workspace();
  const std::lock_guard<std::mutex> lock(w.mutex);
  return w.buffer.bytes();
}

}  // namespace ddpm::cuda::detail
