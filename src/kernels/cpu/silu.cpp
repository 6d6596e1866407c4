// SiLU forward and backward, vectorised (xsimd exp) and OpenMP-parallel.
#include "ddpm/kernels/silu.h"

#include <cmath>

#include "ddpm/bench/profiler.h"
#include "kernels/cpu/vec_math.h"

namespace ddpm::cpu {

void silu_forward(float* y, const float* x, int64_t n) {
  profile::Scope profile_scope(profile::Kind::op, "silu fwd");
  parallel_chunks(n, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
    for (; i + kVec <= end; i += kVec) {
      const VecF v = VecF::load_unaligned(x + i);
      (v * sigmoid(v)).store_unaligned(y + i);
    }
    for (; i < end; ++i) y[i] = x[i] / (1.0f + std::exp(-x[i]));
  });
}

void silu_backward(float* dx, const float* dy, const float* x, int64_t n) {
  profile::Scope profile_scope(profile::Kind::op, "silu bwd");
  parallel_chunks(n, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
    for (; i + kVec <= end; i += kVec) {
      const VecF v = VecF::load_unaligned(x + i);
      const VecF s = sigmoid(v);
      const VecF g = VecF::load_unaligned(dy + i) * s * (VecF(1.0f) + v * (VecF(1.0f) - s));
      g.store_unaligned(dx + i);
    }
    for (; i < end; ++i) {
      const float s = 1.0f / (1.0f + std::exp(-x[i]));
      dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
  });
}

}  // namespace ddpm::cpu
