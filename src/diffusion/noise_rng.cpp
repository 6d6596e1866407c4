// Philox4x32-10 and the Gaussian and integer draws built on it. Every output is a function of
// (seed, block index) alone, which is what makes chunks of a fill independent of each other.
#include "ddpm/diffusion/noise_rng.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

#include "kernels/cpu/parallel.h"

namespace ddpm {

namespace {

constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;  // Random123's multipliers
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;  // key schedule (golden ratio, sqrt 3)

inline std::array<uint32_t, 4> block(uint64_t seed, uint64_t index) {
  return philox4x32_10({static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32), 0u, 0u},
                       {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
}

// Two N(0, 1) values from two 32-bit words: u1 in (0, 1] so log(u1) is finite.
inline void box_muller(uint32_t a, uint32_t b, float* out0, float* out1) {
  constexpr double k2to32 = 1.0 / 4294967296.0;
  const double u1 = (static_cast<double>(a) + 1.0) * k2to32;
  const double angle = 2.0 * std::numbers::pi * (static_cast<double>(b) * k2to32);
  const double r = std::sqrt(-2.0 * std::log(u1));
  *out0 = static_cast<float>(r * std::cos(angle));
  *out1 = static_cast<float>(r * std::sin(angle));
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
  if (n == 0) return;
  const int64_t blocks = (n + 3) / 4;
  constexpr int64_t kChunk = 1024;  // blocks per parallel work item
  const uint64_t seed = seed_, first = offset_;
  cpu::parallel_for((blocks + kChunk - 1) / kChunk, n >= cpu::kParallelGrain, [&](int64_t c) {
    const int64_t end = std::min(blocks, (c + 1) * kChunk);
    for (int64_t b = c * kChunk; b < end; ++b) {
      const auto w = block(seed, first + static_cast<uint64_t>(b));
      float z[4];
      box_muller(w[0], w[1], &z[0], &z[1]);
      box_muller(w[2], w[3], &z[2], &z[3]);
      const int64_t base = 4 * b, count = std::min<int64_t>(4, n - base);
      for (int64_t j = 0; j < count; ++j) out[base + j] = z[j];
    }
  });
  offset_ += static_cast<uint64_t>(blocks);
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
