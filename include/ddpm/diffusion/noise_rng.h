// The seeded random source of the diffusion process (training noise and timesteps, sampler noise):
// counter-based Philox4x32-10 (Salmon et al. 2011, Random123), so the whole state is two integers
// (seed, offset) that a checkpoint saves, a stream restarts exactly from them, and a fill gives the
// same numbers whatever the thread count.
#pragma once

#include <array>
#include <cstdint>

namespace ddpm {

// One Philox4x32-10 block: the bijection of counter under key (Random123's philox4x32_R(10, ...)).
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

class NoiseRng {
 public:
  // The stream of `seed`, positioned at block `offset`.
  explicit NoiseRng(uint64_t seed = 0, uint64_t offset = 0) : seed_(seed), offset_(offset) {}

  // The state a checkpoint saves; NoiseRng(seed(), offset()) continues the stream exactly.
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }  // Philox blocks consumed so far (128 bits each)
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }

  // n independent N(0, 1) values. Block offset + k (key = seed, counter = (offset + k, 0)) gives
  // out[4k .. 4k+3] by two Box-Muller transforms in float64 (so the tails reach ±6.66); the offset
  // then advances by ceil(n / 4), dropping any unused values of the last block. Parallel over
  // large n; the result does not depend on the thread count. n = 0 draws nothing.
  void fill_normal(float* out, int64_t n);
  // Values [begin, begin + count) of what fill_normal(·, n) would give, and the same advance: a
  // data-parallel worker draws its shard of a batch's noise, bit-identical to the whole draw.
  void fill_normal_part(float* out, int64_t n, int64_t begin, int64_t count);

  // Uniform on {0, ..., n − 1} from one block (a 64-bit word scaled by n; bias below n / 2^64).
  // Throws std::invalid_argument unless n >= 1.
  int64_t uniform_int(int64_t n);
  // out[i] = uniform_int(n) for i < count, in order.
  void fill_uniform_int(int64_t* out, int64_t count, int64_t n);

 private:
  uint64_t seed_, offset_;
};

}  // namespace ddpm
