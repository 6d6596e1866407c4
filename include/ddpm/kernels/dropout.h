// Inverted dropout (PyTorch's F.dropout in training mode) with a counter-based mask: whether
// element i is kept depends only on (seed, i), so the backward regenerates the mask instead of
// storing it, and the result does not depend on the thread count or on how the work is split.
#pragma once

#include <cstdint>

namespace ddpm::cpu {

// y[i] = keep(seed, i) ? x[i] / (1 - p) : 0, where keep holds with probability 1 - p (to within
// 2^-32). p = 0 copies x; p = 1 writes zeros (as PyTorch). Throws std::invalid_argument unless
// 0 <= p <= 1. y may alias x. Use a fresh seed per call site and step (e.g. derived from the
// training RNG), since the same seed gives the same mask. first: x is elements [first, first + n)
// of a larger tensor (a data-parallel worker's shard of the batch), masked as in the whole.
void dropout_forward(float* y, const float* x, int64_t n, float p, uint64_t seed, int64_t first = 0);

// dx[i] = keep(seed, i) ? dy[i] / (1 - p) : 0 with the mask of the forward call that had the same
// (n, p, seed). dx may alias dy.
void dropout_backward(float* dx, const float* dy, int64_t n, float p, uint64_t seed, int64_t first = 0);

// The mask itself, for tests and diagnostics: true when element i is kept.
bool dropout_keeps(uint64_t seed, int64_t i, float p);

}  // namespace ddpm::cpu
