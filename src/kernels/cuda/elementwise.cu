// The CUDA backend's elementwise ops (SiLU, adds, x2 upsampling, channel concatenation, dropout,
// MSE, bf16 conversions): grid-stride loops over coalesced indices, each the twin of a CPU op of
// include/ddpm/kernels/*.h with the same arithmetic, so most results are bit-identical to the CPU's.
// The two sums (bias gradient, MSE) run in double in an order fixed by the shape alone, so they are
// deterministic run to run.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include "ddpm/kernels/cuda/ops.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/context.h"

namespace ddpm::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return static_cast<int64_t>(blockDim.x) * gridDim.x; }

// ---- SiLU ----

__global__ void silu_forward_kernel(float* y, const float* x, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const float v = x[i];
    y[i] = v / (1.0f + expf(-v));
  }
}

__global__ void silu_backward_kernel(float* dx, const float* dy, const float* x, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const float v = x[i];
    const float s = 1.0f / (1.0f + expf(-v));
    dx[i] = dy[i] * s * (1.0f + v * (1.0f - s));
  }
}

// ---- adds ----

__global__ void fill_kernel(float* y, float value, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    y[i] = value;
}

__global__ void add_kernel(float* y, const float* a, const float* b, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] = a[i] + b[i];
}

__global__ void add_channel_bias_kernel(float* y, const float* bias, int64_t per_image, int64_t channels,
                                        int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] += bias[(i / per_image) * channels + i % channels];
}

// Block (32, kBiasRows): x runs along 32 consecutive channels (one 128-byte row segment per warp),
// y along pixels; grid (channel tiles, batch). Each thread sums its pixels in double, then the
// kBiasRows partials of a channel are added in row order: the result depends only on the shape.
constexpr int kBiasRows = 16;

__global__ void add_channel_bias_backward_kernel(float* dbias, const float* dy, int64_t pixels, int64_t channels) {
  __shared__ double partial[kBiasRows][32];
  const int64_t n = blockIdx.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  double acc = 0.0;
  if (c < channels) {
    const float* src = dy + n * pixels * channels + c;
    for (int64_t p = threadIdx.y; p < pixels; p += kBiasRows) acc += src[p * channels];
  }
  partial[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < channels) {
    double total = 0.0;
    for (int r = 0; r < kBiasRows; ++r) total += partial[r][threadIdx.x];
    dbias[n * channels + c] = static_cast<float>(total);
  }
}

// ---- upsampling ----

// One thread per output value: consecutive threads write consecutive channels.
__global__ void upsample_forward_kernel(float* y, const float* x, int64_t height, int64_t width, int64_t channels,
                                        int64_t n) {
  const int64_t out_width = 2 * width, out_height = 2 * height;
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const int64_t c = i % channels;
    int64_t rest = i / channels;
    const int64_t ox = rest % out_width;
    rest /= out_width;
    const int64_t oy = rest % out_height;
    const int64_t b = rest / out_height;
    y[i] = x[((b * height + oy / 2) * width + ox / 2) * channels + c];
  }
}

// One thread per input value; the four children are added as the CPU does: (top pair) + (bottom pair).
__global__ void upsample_backward_kernel(float* dx, const float* dy, int64_t height, int64_t width, int64_t channels,
                                         int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const int64_t c = i % channels;
    int64_t rest = i / channels;
    const int64_t w = rest % width;
    const int64_t r = rest / width;  // b * height + h
    const float* d0 = dy + (2 * r * 2 * width + 2 * w) * channels + c;
    const float* d1 = d0 + 2 * width * channels;
    dx[i] = (d0[0] + d0[channels]) + (d1[0] + d1[channels]);
  }
}

// ---- concatenation ----

__global__ void concat_forward_kernel(float* y, const float* a, int64_t ca, const float* b, int64_t cb, int64_t n) {
  const int64_t c = ca + cb;
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const int64_t p = i / c, j = i % c;
    y[i] = j < ca ? a[p * ca + j] : b[p * cb + (j - ca)];
  }
}

__global__ void concat_backward_kernel(float* da, float* db, const float* dy, int64_t ca, int64_t cb, int64_t n) {
  const int64_t c = ca + cb;
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const int64_t p = i / c, j = i % c;
    if (j < ca)
      da[p * ca + j] = dy[i];
    else
      db[p * cb + (j - ca)] = dy[i];
  }
}

// ---- dropout: the CPU's mask (src/kernels/cpu/dropout.cpp), bit for bit ----

constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;

__host__ __device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

__global__ void dropout_kernel(float* out, const float* in, int64_t n, uint64_t base, uint64_t threshold,
                               float scale) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const uint64_t h = mix64(base + static_cast<uint64_t>(i + 1) * kGamma);
    const float v = in[i] * scale;
    out[i] = (h >> 32) >= threshold ? v : 0.0f;
  }
}

void check_probability(float p, const char* op) {
  if (!(p >= 0.0f && p <= 1.0f))
    throw std::invalid_argument(std::string(op) + ": dropout probability must be in [0, 1], got " +
                                std::to_string(p));
}

void dropout_apply(float* y, const float* x, int64_t n, float p, uint64_t seed, int64_t first) {
  if (n <= 0) return;
  const auto bytes = static_cast<size_t>(n) * sizeof(float);
  if (p == 0.0f) {
    if (y != x) DDPM_CUDA_CHECK(cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice, detail::stream()));
    return;
  }
  if (p == 1.0f) {
    DDPM_CUDA_CHECK(cudaMemsetAsync(y, 0, bytes, detail::stream()));
    return;
  }
  // As the CPU: the stream base of the seed, advanced to element `first`; P(drop) = threshold / 2^32;
  // the float32 value of 1 / (1 - p) (PyTorch's scale).
  const uint64_t base = mix64(seed ^ 0x6A09E667F3BCC909ull) + static_cast<uint64_t>(first) * kGamma;
  const auto threshold = static_cast<uint64_t>(std::llround(static_cast<double>(p) * 4294967296.0));
  const float scale = static_cast<float>(1.0 / (1.0 - static_cast<double>(p)));
  dropout_kernel<<<detail::grid_for(n), kThreads, 0, detail::stream()>>>(y, x, n, base, threshold, scale);
  DDPM_CUDA_LAUNCHED("dropout_kernel");
}

// ---- MSE ----

// The sum of (a - b)^2 in double: kReduceBlocks(n) blocks each sum a grid-stride share (a function
// of n alone), then one block adds the block sums; same order every run.
constexpr int kReduceMaxBlocks = 1024;

int reduce_blocks(int64_t n) {
  const int64_t per_block = int64_t{kThreads} * 8;
  const int64_t b = (n + per_block - 1) / per_block;
  return static_cast<int>(b < 1 ? 1 : (b > kReduceMaxBlocks ? kReduceMaxBlocks : b));
}

__global__ void squared_difference_partials(double* partial, const float* a, const float* b, int64_t n) {
  double acc = 0.0;
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    acc += d * d;
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Device scratch of the MSE reduction: kReduceMaxBlocks partials and the result. Made once and kept
// (freeing it at exit races with the driver's teardown); the mutex keeps two host threads from
// interleaving their use of it between the kernels and the read-back.
std::mutex& mse_mutex() {
  static std::mutex m;
  return m;
}
double* mse_scratch() {
  static DeviceBuffer* b = new DeviceBuffer((kReduceMaxBlocks + 1) * sizeof(double));
  return b->as<double>();
}

__global__ void mse_backward_kernel(float* dprediction, const float* prediction, const float* target, int64_t n,
                                    float coef) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) dprediction[i] = coef * (prediction[i] - target[i]);
}

// ---- bf16 (include/ddpm/kernels/convert.h) ----

__global__ void f32_to_bf16_kernel(uint16_t* y, const float* x, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    uint32_t u = __float_as_uint(x[i]);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      y[i] = static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
    } else {
      u += 0x7fffu + ((u >> 16) & 1u);
      y[i] = static_cast<uint16_t>(u >> 16);
    }
  }
}

__global__ void bf16_to_f32_kernel(float* y, const uint16_t* x, int64_t n) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] = __uint_as_float(static_cast<uint32_t>(x[i]) << 16);
}

}  // namespace

void silu_forward(float* y, const float* x, int64_t n) {
  if (n <= 0) return;
  silu_forward_kernel<<<detail::grid_for(n), kThreads, 0, detail::stream()>>>(y, x, n);
  DDPM_CUDA_LAUNCHED("silu_forward_kernel");
}

void silu_backward(float* dx, const float* dy, const float* x, int64_t n) {
  if (n <= 0) return;
  silu_backward_kernel<<<detail::grid_for(n), kThreads, 0, detail::stream()>>>(dx, dy, x, n);
  DDPM_CUDA_LAUNCHED("silu_backward_kernel");
}

void fill(float* y, float value, int64_t n) {
  if (n <= 0) return;
  fill_kernel<<<detail::grid_for(n), kThreads, 0, detail::stream()>>>(y, value, n);
  DDPM_CUDA_LAUNCHED("fill_kernel");
}

void add_forward(float* y, const float* a, const float* b, int64_t n) {
  if (n <= 0) return;
  add_kernel<<<detail::grid_for(n), kThreads, 0, detail::stream()>>>(y, a, b, n);
  DDPM_CUDA_LAUNCHED("add_kernel");
}

void add_inplace(float* y, const float* x, int64_t n) { add_forward(y, y, x, n); }

void add_channel_bias_forward(float* y, const float* bias, int64_t batch, int64_t pixels, int64_t channels) {
  const int64_t n = batch * pixels * channels;
  if (n <= 0) return;
  add_channel_bias_kernel<<<detail::grid_for(n), kThreads, 0, detail::stream()>>>(y, bias, pixels * channels,
                                                                                    channels, n);
  DDPM_CUDA_LAUNCHED("add_channel_bias_kernel");
}

void add_channel_bias_backward(float* dbias, const float* dy, int64_t batch, int64_t pixels, int64_t channels) {
  if (batch <= 0 || channels <= 0) return;
  if (batch > 65535) throw std::invalid_argument("cuda::add_channel_bias_backward: batch " + std::to_string(batch) +
                                                 " is over the grid's 65535");
  const dim3 grid(static_cast<unsigned>((channels + 31) / 32), static_cast<unsigned>(batch));
  add_channel_bias_backward_kernel<<<grid, dim3(32, kBiasRows), 0, detail::stream()>>>(dbias, dy, pixels, channels);
  DDPM_CUDA_LAUNCHED("add_channel_bias_backward_kernel");
}

void upsample_nearest2x_forward(float* y, const float* x, int64_t batch, int64_t height, int64_t width,
                                int64_t channels) {
  const int64_t n = batch * 4 * height * width * channels;
  if (n <= 0) return;
  upsample_forward_kernel<<<detail::grid_for(n), kThreads, 0, detail::stream()>>>(y, x, height, width, channels, n);
  DDPM_CUDA_LAUNCHED("upsample_forward_kernel");
}

void upsample_nearest2x_backward(float* dx, const float* dy, int64_t batch, int64_t height, int64_t width,
                                 int64_t channels) {
  const int64_t n = batch * height * width * channels;
  if (n <= 0) return;
  upsample_backward_kernel<<<detail::grid_for(n), kThreads, 0, detail::stream()>>>(dx, dy, height, width, channels,
                                                                                    n);
  DDPM_CUDA_LAUNCHED("upsample_backward_kernel");
}

void concat_channels_forward(float* y, const float* a, int64_t ca, const float* b, int64_t cb, int64_t positions) {
  const int64_t n = positions * (ca + cb);
  if (n <= 0) return;
  concat_forward_kernel<<<detail::grid_for(n), kThreads, 0, detail::stream()>>>(y, a, ca, b, cb, n);
  DDPM_CUDA_LAUNCHED("concat_forward_kernel");
}

void concat_channels_backward(float* da, float* db, const float* dy, int64_t ca, int64_t cb, int64_t positions) {
  const int64_t n = positions * (ca + cb);
  if (n <= 0) return;
  concat_backward_kernel<<<detail::grid_for(n), kThreads, 0, detail::stream()>>>(da, db, dy, ca, cb, n);
  DDPM_CUDA_LAUNCHED("concat_backward_kernel");
}

void dropout_forward(float* y, const float* x, int64_t n, float p, uint64_t seed, int64_t first) {
  check_probability(p, "cuda::dropout_forward");
  dropout_apply(y, x, n, p, seed, first);
}

void dropout_backward(float* dx, const float* dy, int64_t n, float p, uint64_t seed, int64_t first) {
  check_probability(p, "cuda::dropout_backward");
  dropout_apply(dx, dy, n, p, seed, first);
}

double mse_forward(const float* prediction, const float* target, int64_t n) {
  if (n <= 0)
    throw std::invalid_argument("cuda::mse_forward: need at least one element, got n = " + std::to_string(n));
  const std::lock_guard<std::mutex> lock(mse_mutex());
  double* partial = mse_scratch();
  double* result = partial + kReduceMaxBlocks;
  const int blocks = reduce_blocks(n);
  squared_difference_partials<<<blocks, kThreads, 0, detail::stream()>>>(partial, prediction, target, n);
  DDPM_CUDA_LAUNCHED("squared_difference_partials");
  sum_partials_kernel<<<1, kThreads, 0, detail::stream()>>>(result, partial, blocks);
  DDPM_CUDA_LAUNCHED("sum_partials_kernel");
  double sum = 0.0;
  download(&sum, result, sizeof sum);
  return sum / static_cast<double>(n);
}

void mse_backward(float* dprediction, const float* prediction, const float* target, int64_t n, float scale) {
  if (n <= 0)
    throw std::invalid_argument("cuda::mse_backward: need at least one element, got n = " + std::to_string(n));
  const float coef = static_cast<float>(2.0 * static_cast<double>(scale) / static_cast<double>(n));
  mse_backward_kernel<<<detail::grid_for(n), kThreads, 0, detail::stream()>>>(dprediction, prediction, target, n,
                                                                                coef);
  DDPM_CUDA_LAUNCHED("mse_backward_kernel");
}

void f32_to_bf16(uint16_t* y, const float* x, int64_t n) {
  if (n <= 0) return;
  f32_to_bf16_kernel<<<detail::grid_for(n), kThreads, 0, detail::stream()>>>(y, x, n);
  DDPM_CUDA_LAUNCHED("f32_to_bf16_kernel");
}

void bf16_to_f32(float* y, const uint16_t* x, int64_t n) {
  if (n <= 0) return;
  bf16_to_f32_kernel<<<detail::grid_for(n), kThreads, 0, detail::stream()>>>(y, x, n);
  DDPM_CUDA_LAUNCHED("bf16_to_f32_kernel");
}

}  // namespace ddpm::cuda
