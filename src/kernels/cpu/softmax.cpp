// Scaled row softmax forward and backward (attention probabilities), vectorised (xsimd exp) and
// OpenMP-parallel over rows.
#include "ddpm/kernels/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ddpm/bench/profiler.h"
#include "kernels/cpu/vec_math.h"

namespace ddpm::cpu {
namespace {

float horizontal_max(VecF v) {
  alignas(64) float lanes[kVec];
  v.store_aligned(lanes);
  return *std::max_element(lanes, lanes + kVec);
}

// Subtracting the row max keeps exp() in range; y may alias x (each element is read before it is
// written).
void softmax_row(float* y, const float* x, int64_t cols, float scale) {
  const VecF vs(scale);
  float m = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
  if (cols >= kVec) {
    VecF vm(m);
    for (; j + kVec <= cols; j += kVec) vm = xsimd::max(vm, VecF::load_unaligned(x + j) * vs);
    m = horizontal_max(vm);
  }
  for (; j < cols; ++j) m = std::max(m, x[j] * scale);

  const VecF vneg(-m);
  VecF vsum(0.0f);
  for (j = 0; j + kVec <= cols; j += kVec) {
    const VecF e = exp(xsimd::fma(VecF::load_unaligned(x + j), vs, vneg));
    e.store_unaligned(y + j);
    vsum += e;
  }
  float sum = xsimd::hadd(vsum);
  for (; j < cols; ++j) {
    y[j] = std::exp(std::fma(x[j], scale, -m));
    sum += y[j];
  }

  const float inv = 1.0f / sum;
  const VecF vinv(inv);
  for (j = 0; j + kVec <= cols; j += kVec) (VecF::load_unaligned(y + j) * vinv).store_unaligned(y + j);
  for (; j < cols; ++j) y[j] *= inv;
}

void softmax_backward_row(float* dx, const float* dy, const float* y, int64_t cols, float scale) {
  VecF vdot(0.0f);
  int64_t j = 0;
  for (; j + kVec <= cols; j += kVec) vdot = xsimd::fma(VecF::load_unaligned(dy + j), VecF::load_unaligned(y + j), vdot);
  float dot = xsimd::hadd(vdot);
  for (; j < cols; ++j) dot += dy[j] * y[j];

  const VecF vdotv(dot), vs(scale);
  for (j = 0; j + kVec <= cols; j += kVec) {
    const VecF yv = VecF::load_unaligned(y + j);
    (vs * yv * (VecF::load_unaligned(dy + j) - vdotv)).store_unaligned(dx + j);
  }
  for (; j < cols; ++j) dx[j] = scale * y[j] * (dy[j] - dot);
}

}  // namespace

void softmax_forward(float* y, const float* x, int64_t rows, int64_t cols, float scale) {
  profile::Scope profile_scope(profile::Kind::op, "softmax fwd");
  parallel_for(rows, rows * cols >= kParallelGrain,
               [&](int64_t r) { softmax_row(y + r * cols, x + r * cols, cols, scale); });
}

void softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t cols, float scale) {
  profile::Scope profile_scope(profile::Kind::op, "softmax bwd");
  parallel_for(rows, rows * cols >= kParallelGrain,
               [&](int64_t r) { softmax_backward_row(dx + r * cols, dy + r * cols, y + r * cols, cols, scale); });
}

}  // namespace ddpm::cpu
