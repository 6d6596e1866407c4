// Channel concatenation forward (interleaving copies) and backward (the split), OpenMP-parallel
// over pixels.
#include "ddpm/kernels/concat.h"

#include <algorithm>

#include "ddpm/bench/profiler.h"
#include "kernels/cpu/vec_math.h"

namespace ddpm::cpu {

void concat_channels_forward(float* y, const float* a, int64_t ca, const float* b, int64_t cb, int64_t positions) {
  profile::Scope profile_scope(profile::Kind::op, "concat fwd");
  const int64_t c = ca + cb;
  parallel_for(positions, positions * c >= kParallelGrain, [&](int64_t p) {
    std::copy_n(a + p * ca, ca, y + p * c);
    std::copy_n(b + p * cb, cb, y + p * c + ca);
  });
}

void concat_channels_backward(float* da, float* db, const float* dy, int64_t ca, int64_t cb, int64_t positions) {
  profile::Scope profile_scope(profile::Kind::op, "concat bwd");
  const int64_t c = ca + cb;
  parallel_for(positions, positions * c >= kParallelGrain, [&](int64_t p) {
    std::copy_n(dy + p * c, ca, da + p * ca);
    std::copy_n(dy + p * c + ca, cb, db + p * cb);
  });
}

}  // namespace ddpm::cpu
