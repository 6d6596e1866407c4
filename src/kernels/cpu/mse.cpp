// MSE loss and its gradient.
#include "ddpm/kernels/mse.h"

#include <stdexcept>
#include <string>

#include "ddpm/bench/profiler.h"
#include "kernels/cpu/sum_squares.h"
#include "kernels/cpu/vec_math.h"

namespace ddpm::cpu {

double mse_forward(const float* prediction, const float* target, int64_t n) {
  profile::Scope profile_scope(profile::Kind::op, "mse fwd");
  if (n <= 0) throw std::invalid_argument("mse_forward: need at least one element, got n = " + std::to_string(n));
  return detail::sum_squared_differences(prediction, target, n) / static_cast<double>(n);
}

void mse_backward(float* dprediction, const float* prediction, const float* target, int64_t n, float scale) {
  profile::Scope profile_scope(profile::Kind::op, "mse bwd");
  if (n <= 0) throw std::invalid_argument("mse_backward: need at least one element, got n = " + std::to_string(n));
  const float coef = static_cast<float>(2.0 * static_cast<double>(scale) / static_cast<double>(n));
  parallel_chunks(n, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
    const VecF c(coef);
    for (; i + kVec <= end; i += kVec)
      (c * (VecF::load_unaligned(prediction + i) - VecF::load_unaligned(target + i))).store_unaligned(dprediction + i);
    for (; i < end; ++i) dprediction[i] = coef * (prediction[i] - target[i]);
  });
}

}  // namespace ddpm::cpu
