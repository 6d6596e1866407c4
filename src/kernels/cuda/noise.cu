// Gaussian noise on the device, the same numbers as ddpm::NoiseRng::fill_normal_part
// (src/diffusion/noise_rng.cpp): Philox4x32-10 block `offset + k` under key `seed` gives values
// 4k .. 4k+3 of the draw by two float64 Box-Muller transforms. The integer words are identical; the
// floats can differ from the CPU's only where CUDA's and xsimd's float64 log/sincos round a value
// to different sides of a float32 rounding boundary (about one value in 10^8). One thread per block.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "ddpm/kernels/cuda/ops.h"
#include "kernels/cuda/context.h"

namespace ddpm::cuda {
namespace {

constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;    // Random123's multipliers
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;  // key schedule (golden ratio, sqrt 3)

__device__ __forceinline__ uint4 philox4x32_10(uint64_t index, uint64_t seed) {
  uint32_t c0 = static_cast<uint32_t>(index), c1 = static_cast<uint32_t>(index >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    const uint32_t hi0 = __umulhi(kMul0, c0), lo0 = kMul0 * c0;
    const uint32_t hi1 = __umulhi(kMul1, c2), lo1 = kMul1 * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
  }
  return make_uint4(c0, c1, c2, c3);
}

// The pair of normals of words (a, b): u1 = (a + 1) / 2^32 in (0, 1], angle 2π b / 2^32, float64.
__device__ __forceinline__ void box_muller(uint32_t a, uint32_t b, float& re, float& im) {
  constexpr double k2to32 = 1.0 / 4294967296.0;
  constexpr double kAngle = 2.0 * 3.141592653589793238462643383279502884 * k2to32;  // as 2.0 * std::numbers::pi * k2to32
  const double u1 = (static_cast<double>(a) + 1.0) * k2to32;
  const double u2 = static_cast<double>(b) * kAngle;
  const double r = sqrt(-2.0 * log(u1));
  double s, c;
  sincos(u2, &s, &c);
  re = static_cast<float>(r * c);
  im = static_cast<float>(r * s);
}

// out[v - begin] for values v of [begin, end): block k covers values 4k .. 4k+3.
__global__ void fill_normal_kernel(float* out, uint64_t seed, uint64_t offset, int64_t begin, int64_t end,
                                   int64_t first_block, int64_t blocks) {
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < blocks;
       t += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t k = first_block + t;
    const uint4 w = philox4x32_10(offset + static_cast<uint64_t>(k), seed);
    float z[4];
    box_muller(w.x, w.y, z[0], z[1]);
    box_muller(w.z, w.w, z[2], z[3]);
    const int64_t v0 = 4 * k;
#pragma unroll
    for (int j = 0; j < 4; ++j)
      if (v0 + j >= begin && v0 + j < end) out[v0 + j - begin] = z[j];
  }
}

}  // namespace

void fill_normal(float* out, uint64_t seed, uint64_t offset, int64_t n, int64_t begin, int64_t count) {
  if (n < 0 || begin < 0 || count < 0 || begin + count > n)
    throw std::invalid_argument("cuda::fill_normal: values [" + std::to_string(begin) + ", " +
                                std::to_string(begin + count) + ") of " + std::to_string(n));
  if (count == 0) return;
  const int64_t end = begin + count;
  const int64_t first_block = begin / 4, blocks = (end - 1) / 4 + 1 - first_block;
  fill_normal_kernel<<<detail::grid_for(blocks), 256, 0, detail::stream()>>>(out, seed, offset, begin, end,
                                                                              first_block, blocks);
  DDPM_CUDA_LAUNCHED("fill_normal_kernel");
}

}  // namespace ddpm::cuda
