// Dropout with a stateless mask: element i is kept when a 64-bit hash of (seed, i) clears a
// threshold, so forward and backward agree without storing the mask.
#include "ddpm/kernels/dropout.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "ddpm/bench/profiler.h"
#include "kernels/cpu/vec_math.h"

namespace ddpm::cpu {

namespace {

constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;

// The splitmix64 finaliser (Stafford's mix13): a bijection with full avalanche. splitmix64's
// stream mix(base + k * gamma) passes BigCrush, and this is that stream read at k = i + 1.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Hashing the seed first makes nearby seeds (step, step + 1, ...) start at unrelated places of
// the stream rather than one gamma apart.
inline uint64_t stream_base(uint64_t seed) { return mix64(seed ^ 0x6A09E667F3BCC909ull); }

// Drop when the top 32 bits of the hash are below this: P(drop) = threshold / 2^32.
uint64_t drop_threshold(float p) {
  return static_cast<uint64_t>(std::llround(static_cast<double>(p) * 4294967296.0));
}

void check_probability(float p, const char* op) {
  if (!(p >= 0.0f && p <= 1.0f))
    throw std::invalid_argument(std::string(op) + ": dropout probability must be in [0, 1], got " +
                                std::to_string(p));
}

// out[i] = keep ? in[i] * scale : 0. Plain integer code that GCC vectorises (vpmullq with
// AVX-512DQ); each element's mask is computed independently of its neighbours.
void apply_mask(float* out, const float* in, int64_t n, float p, uint64_t seed, int64_t first) {
  // Element i here is element first + i of the mask (mod 2^64 the same as starting first later).
  const uint64_t base = stream_base(seed) + static_cast<uint64_t>(first) * kGamma;
  const uint64_t threshold = drop_threshold(p);
  // PyTorch multiplies by the float32 value of 1 / (1 - p).
  const float scale = static_cast<float>(1.0 / (1.0 - static_cast<double>(p)));
  parallel_chunks(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t h = mix64(base + static_cast<uint64_t>(i + 1) * kGamma);
      const float v = in[i] * scale;  // loaded unconditionally, so the select vectorises
      out[i] = (h >> 32) >= threshold ? v : 0.0f;
    }
  });
}

}  // namespace

bool dropout_keeps(uint64_t seed, int64_t i, float p) {
  check_probability(p, "dropout_keeps");
  return (mix64(stream_base(seed) + static_cast<uint64_t>(i + 1) * kGamma) >> 32) >= drop_threshold(p);
}

void dropout_forward(float* y, const float* x, int64_t n, float p, uint64_t seed, int64_t first) {
  profile::Scope profile_scope(profile::Kind::op, "dropout fwd");
  check_probability(p, "dropout_forward");
  if (p == 0.0f) {
    if (y != x && n > 0) std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
  } else if (p == 1.0f) {
    if (n > 0) std::memset(y, 0, static_cast<size_t>(n) * sizeof(float));
  } else {
    apply_mask(y, x, n, p, seed, first);
  }
}

void dropout_backward(float* dx, const float* dy, int64_t n, float p, uint64_t seed, int64_t first) {
  profile::Scope profile_scope(profile::Kind::op, "dropout bwd");
  check_probability(p, "dropout_backward");
  dropout_forward(dx, dy, n, p, seed, first);
}

}  // namespace ddpm::cpu
