// Philox4x32-10 and the Gaussian and integer draws built on it. Every output is a function of
// (seed, block index) alone, which is what makes chunks of a fill independent of each other.
#include "ddpm/diffusion/noise_rng.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

// GCC 12 reports the `__Y` of _mm512_undefined_* inside avx512fintrin.h as uninitialized when
// xsimd's float64 log and sincos are inlined (the same false positive CMakeLists.txt silences in
// its maybe- form).
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <xsimd/xsimd.hpp>

#include "kernels/cpu/parallel.h"

namespace ddpm {

namespace {

constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;  // Random123's multipliers
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;  // key schedule (golden ratio, sqrt 3)

inline std::array<uint32_t, 4> block(uint64_t seed, uint64_t index) {
  return philox4x32_10({static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), 0u, 0u},
                       {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
}

// ~28 ns per normal: a parallel region pays from a few times 10^4 of them.
constexpr int64_t kNormalGrain = int64_t{1} << 16;
constexpr int64_t kLanes = 16;  // blocks per SoA group: one AVX-512 register of each word

// Blocks first .. first + kLanes − 1 in structure-of-arrays form (w[j][lane] = word j), written so
// that GCC vectorises the rounds (vpmuludq); the same bijection as philox4x32_10.
inline void philox_lanes(uint64_t seed, uint64_t first, uint32_t (&w)[4][kLanes]) {
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int64_t l = 0; l < kLanes; ++l) {
    const uint64_t index = first + static_cast<uint64_t>(l);
    w[0][l] = static_cast<uint32_t>(index);
    w[1][l] = static_cast<uint32_t>(index >> 32);
    w[2][l] = 0;
    w[3][l] = 0;
  }
  for (int round = 0; round < 10; ++round) {
    if (round > 0) k0 += kWeyl0, k1 += kWeyl1;
    for (int64_t l = 0; l < kLanes; ++l) {
      const uint64_t p0 = static_cast<uint64_t>(kMul0) * w[0][l];
      const uint64_t p1 = static_cast<uint64_t>(kMul1) * w[2][l];
      const uint32_t c1 = w[1][l], c3 = w[3][l];
      w[0][l] = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
      w[1][l] = static_cast<uint32_t>(p1);
      w[2][l] = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
      w[3][l] = static_cast<uint32_t>(p0);
    }
  }
}

// The 4·kLanes normals of a group, in stream order (block b gives out[4b .. 4b+3]): Box-Muller on
// the word pairs (w0, w1) and (w2, w3) of each block, u1 = (a + 1)/2^32 in (0, 1] so log(u1) is
// finite, angle 2π·b/2^32; float64 throughout, with xsimd's vector log and sincos.
inline void box_muller_lanes(const uint32_t (&w)[4][kLanes], float* out) {
  using VecD = xsimd::batch<double>;
  constexpr int64_t kD = static_cast<int64_t>(VecD::size);
  constexpr double k2to32 = 1.0 / 4294967296.0;
  alignas(64) double u1[2][kLanes], u2[2][kLanes], re[2][kLanes], im[2][kLanes];
  for (int pair = 0; pair < 2; ++pair)
    for (int64_t l = 0; l < kLanes; ++l) {
      u1[pair][l] = (static_cast<double>(w[2 * pair][l]) + 1.0) * k2to32;
      u2[pair][l] = static_cast<double>(w[2 * pair + 1][l]) * (2.0 * std::numbers::pi * k2to32);
    }
  for (int pair = 0; pair < 2; ++pair)
    for (int64_t l = 0; l < kLanes; l += kD) {
      const VecD r = xsimd::sqrt(VecD(-2.0) * xsimd::log(VecD::load_aligned(&u1[pair][l])));
      const auto [sine, cosine] = xsimd::sincos(VecD::load_aligned(&u2[pair][l]));
      (r * cosine).store_aligned(&re[pair][l]);
      (r * sine).store_aligned(&im[pair][l]);
    }
  for (int64_t l = 0; l < kLanes; ++l) {
    out[4 * l + 0] = static_cast<float>(re[0][l]);
    out[4 * l + 1] = static_cast<float>(im[0][l]);
    out[4 * l + 2] = static_cast<float>(re[1][l]);
    out[4 * l + 3] = static_cast<float>(im[1][l]);
  }
}

}  // namespace

std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += kWeyl0;
      k[1] += kWeyl1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * c[2];
    c = {static_cast<uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<uint32_t>(p1),
         static_cast<uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<uint32_t>(p0)};
  }
  return c;
}

void NoiseRng::fill_normal(float* out, int64_t n) {
  if (n < 0) throw std::invalid_argument("NoiseRng::fill_normal: negative count " + std::to_string(n));
  fill_normal_part(out, n, 0, n);
}

void NoiseRng::fill_normal_part(float* out, int64_t n, int64_t begin, int64_t count) {
  if (n < 0 || begin < 0 || count < 0 || begin + count > n)
    throw std::invalid_argument("NoiseRng::fill_normal_part: values [" + std::to_string(begin) + ", " +
                                std::to_string(begin + count) + ") of " + std::to_string(n));
  constexpr int64_t kGroupValues = 4 * kLanes;
  constexpr int64_t kGroupsPerTask = 64;
  if (count > 0) {
    const int64_t end_value = begin + count;
    const int64_t g0 = begin / kGroupValues, g1 = (end_value - 1) / kGroupValues + 1;  // the groups [g0, g1)
    const uint64_t seed = seed_, first = offset_;
    cpu::parallel_for((g1 - g0 + kGroupsPerTask - 1) / kGroupsPerTask, count >= kNormalGrain, [&](int64_t task) {
      const int64_t end = std::min(g1, g0 + (task + 1) * kGroupsPerTask);
      for (int64_t g = g0 + task * kGroupsPerTask; g < end; ++g) {
        uint32_t w[4][kLanes];
        philox_lanes(seed, first + static_cast<uint64_t>(g * kLanes), w);
        const int64_t lo = kGroupValues * g, hi = lo + kGroupValues;
        if (lo >= begin && hi <= end_value) {
          box_muller_lanes(w, out + (lo - begin));
        } else {  // a group cut by either end of the part
          float z[kGroupValues];
          box_muller_lanes(w, z);
          const int64_t a = std::max(lo, begin), b = std::min(hi, end_value);
          std::copy(z + (a - lo), z + (b - lo), out + (a - begin));
        }
      }
    });
  }
  offset_ += static_cast<uint64_t>((n + 3) / 4);
}

int64_t NoiseRng::uniform_int(int64_t n) {
  if (n < 1) throw std::invalid_argument("NoiseRng::uniform_int: the range must be >= 1, got " + std::to_string(n));
  const auto w = block(seed_, offset_++);
  const uint64_t bits = (static_cast<uint64_t>(w[1]) << 32) | w[0];
  __extension__ typedef unsigned __int128 u128;  // the high word of a 64x64 product (Lemire's scaling)
  return static_cast<int64_t>((static_cast<u128>(bits) * static_cast<uint64_t>(n)) >> 64);
}

void NoiseRng::fill_uniform_int(int64_t* out, int64_t count, int64_t n) {
  if (n < 1) throw std::invalid_argument("NoiseRng::fill_uniform_int: the range must be >= 1, got " + std::to_string(n));
  for (int64_t i = 0; i < count; ++i) out[i] = uniform_int(n);
}

}  // namespace ddpm
