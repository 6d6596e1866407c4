// Sinusoidal timestep embedding, the CUDA twin of src/kernels/cpu/timestep_embedding.cpp: the
// float32 exponent, frequency and argument formed exactly as there (and as PyTorch), exp, sin and
// cos evaluated in double and rounded once. One thread per (sample, frequency); tiny.
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "ddpm/kernels/cuda/ops.h"
#include "kernels/cuda/context.h"

namespace ddpm::cuda {
namespace {

// The float32 steps use the _rn intrinsics so that no multiply-add is contracted into an FMA, which
// would round differently from the CPU.
__global__ void timestep_embedding_kernel(float* out, const float* timesteps, int64_t batch, int64_t dim,
                                          int64_t half, bool flip_sin_to_cos, float denominator,
                                          float neg_log_period, float scale) {
  const int64_t n = batch * half;
  const int64_t sin_offset = flip_sin_to_cos ? half : 0;
  const int64_t cos_offset = flip_sin_to_cos ? 0 : half;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t b = k / half, i = k % half;
    const float exponent = __fdiv_rn(__fmul_rn(neg_log_period, static_cast<float>(i)), denominator);
    const auto freq = static_cast<float>(exp(static_cast<double>(exponent)));
    const float arg = __fmul_rn(scale, __fmul_rn(timesteps[b], freq));
    double s, c;
    sincos(static_cast<double>(arg), &s, &c);
    float* row = out + b * dim;
    row[sin_offset + i] = static_cast<float>(s);
    row[cos_offset + i] = static_cast<float>(c);
  }
}

__global__ void zero_last_column_kernel(float* out, int64_t batch, int64_t dim) {
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; b < batch;
       b += static_cast<int64_t>(blockDim.x) * gridDim.x)
    out[b * dim + dim - 1] = 0.0f;
}

}  // namespace

void timestep_embedding_forward(float* out, const float* timesteps, int64_t batch, int64_t dim, bool flip_sin_to_cos,
                                float freq_shift, float scale, float max_period) {
  if (dim < 1 || batch < 0)
    throw std::invalid_argument("cuda::timestep_embedding_forward: need dim >= 1 and batch >= 0, got dim " +
                                std::to_string(dim) + ", batch " + std::to_string(batch));
  const int64_t half = dim / 2;
  const float denominator = static_cast<float>(half) - freq_shift;
  if (half > 0 && denominator == 0.0f)
    throw std::invalid_argument("cuda::timestep_embedding_forward: dim / 2 (" + std::to_string(half) +
                                ") equals freq_shift; the frequencies would divide by zero");
  if (batch == 0) return;
  const float neg_log_period = static_cast<float>(-std::log(static_cast<double>(max_period)));
  if (half > 0) {
    timestep_embedding_kernel<<<detail::grid_for(batch * half), 256, 0, detail::stream()>>>(
        out, timesteps, batch, dim, half, flip_sin_to_cos, denominator, neg_log_period, scale);
    DDPM_CUDA_LAUNCHED("timestep_embedding_kernel");
  }
  if (dim % 2 == 1) {
    zero_last_column_kernel<<<detail::grid_for(batch), 256, 0, detail::stream()>>>(out, batch, dim);
    DDPM_CUDA_LAUNCHED("zero_last_column_kernel");
  }
}

}  // namespace ddpm::cuda
