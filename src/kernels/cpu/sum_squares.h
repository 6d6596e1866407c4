// Sums of squares in double whose result does not depend on the thread count: the array is cut
// into blocks that depend only on n, each block is summed in a fixed order, and the block sums are
// added in index order. Used by the MSE loss and the global gradient norm.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/parallel.h"

namespace ddpm::cpu::detail {

inline constexpr int64_t kSumLanes = 16;         // independent double accumulators per block
inline constexpr int64_t kSumMaxBlocks = 128;    // block sums live on the stack
inline constexpr int64_t kSumMinBlock = 1 << 14;  // below this a block is not worth a thread

// sum over [begin, end) of term(i), term returning double, in a fixed order (GCC vectorises the
// lane loop: 16 lanes of float -> double conversions and FMAs).
template <class Term>
double block_sum(int64_t begin, int64_t end, const Term& term) {
  double acc[kSumLanes] = {};
  int64_t i = begin;
  for (; i + kSumLanes <= end; i += kSumLanes)
    for (int64_t j = 0; j < kSumLanes; ++j) acc[j] += term(i + j);
  double tail = 0.0;
  for (; i < end; ++i) tail += term(i);
  for (int64_t width = kSumLanes / 2; width > 0; width /= 2)
    for (int64_t j = 0; j < width; ++j) acc[j] += acc[j + width];
  return acc[0] + tail;
}

template <class Term>
double deterministic_sum(int64_t n, const Term& term) {
  if (n <= 0) return 0.0;
  int64_t block = std::max(kSumMinBlock, (n + kSumMaxBlocks - 1) / kSumMaxBlocks);
  block = (block + kSumLanes - 1) / kSumLanes * kSumLanes;
  const int64_t blocks = (n + block - 1) / block;  // <= kSumMaxBlocks
  double partial[kSumMaxBlocks];
  parallel_for(blocks, blocks > 1,
               [&](int64_t b) { partial[b] = block_sum(b * block, std::min(n, (b + 1) * block), term); });
  double sum = 0.0;
  for (int64_t b = 0; b < blocks; ++b) sum += partial[b];
  return sum;
}

// sum of a[i]^2
inline double sum_squares(const float* a, int64_t n) {
  return deterministic_sum(n, [a](int64_t i) {
    const double v = a[i];
    return v * v;
  });
}

// sum of (a[i] - b[i])^2, each difference formed exactly in double
inline double sum_squared_differences(const float* a, const float* b, int64_t n) {
  return deterministic_sum(n, [a, b](int64_t i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    return d * d;
  });
}

}  // namespace ddpm::cpu::detail
