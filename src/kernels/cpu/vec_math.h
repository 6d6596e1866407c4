// Vector math shared by our CPU kernels: xsimd batches (AVX-512 with -march=native) and a real
// vector exp; std::exp does not vectorise and is ~8x slower on these loops.
#pragma once

#include <xsimd/xsimd.hpp>

#include <cstdint>

#include "kernels/cpu/parallel.h"

namespace ddpm::cpu {

using VecF = xsimd::batch<float>;
inline constexpr int64_t kVec = static_cast<int64_t>(VecF::size);

inline VecF sigmoid(VecF x) { return VecF(1.0f) / (VecF(1.0f) + xsimd::exp(-x)); }

// Runs body(begin, end) over [0, n) in cache-sized chunks, in parallel when n is large. Chunk
// boundaries are multiples of the vector width, so only the final chunk has a scalar tail.
template <class Body>
void parallel_chunks(int64_t n, Body body) {
  constexpr int64_t chunk = 1 << 13;
  parallel_for((n + chunk - 1) / chunk, n >= kParallelGrain, [&](int64_t c) {
    const int64_t begin = c * chunk;
    const int64_t end = begin + chunk < n ? begin + chunk : n;
    body(begin, end);
  });
}

}  // namespace ddpm::cpu
