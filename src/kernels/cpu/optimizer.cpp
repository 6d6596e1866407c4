// Gradient norm and clipping, Adam and EMA over flat buffers: single vectorised passes.
#include "ddpm/kernels/optimizer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "ddpm/bench/profiler.h"
#include "kernels/cpu/sum_squares.h"
#include "kernels/cpu/vec_math.h"

// GCC 12 reports the _mm512_undefined_ps() inside _mm512_sqrt_ps as maybe-uninitialized once
// inlined here (a false positive: the masked sqrt uses an all-ones mask).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace ddpm::cpu {

double global_grad_norm(const float* grad, int64_t n) { return std::sqrt(detail::sum_squares(grad, n)); }

namespace {

void scale_inplace(float* x, int64_t n, float s) {
  parallel_chunks(n, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
    for (; i + kVec <= end; i += kVec) (VecF::load_unaligned(x + i) * VecF(s)).store_unaligned(x + i);
    for (; i < end; ++i) x[i] *= s;
  });
}

}  // namespace

float clip_grad_norm(float* grad, int64_t n, float max_norm) {
  profile::Scope profile_scope(profile::Kind::op, "gradient clip");
  if (!(max_norm > 0.0f))
    throw std::invalid_argument("clip_grad_norm: max_norm must be > 0, got " + std::to_string(max_norm));
  const float norm = static_cast<float>(global_grad_norm(grad, n));
  if (!std::isfinite(norm)) return norm;
  // PyTorch: clip_coef = max_norm / (total_norm + 1e-6) on a float32 tensor, where a Python
  // scalar divided by a tensor is reciprocal(tensor) * scalar.
  const float clip_coef = (1.0f / (norm + 1e-6f)) * max_norm;
  if (clip_coef < 1.0f) scale_inplace(grad, n, clip_coef);
  return norm;
}

namespace {

// Runs kernel(offset) over [begin, end) in steps of kVec; the last partial vector goes through the
// same vector code on zero-padded copies, so an element's result never depends on whether it
// falls in a vector body or a tail (a scalar tail would round differently wherever the compiler
// fuses multiply-adds). Only the first kOutputs arrays are written back.
template <int kOutputs, int kArrays, class Kernel>
void vector_loop(int64_t begin, int64_t end, float* const (&arrays)[kArrays], const Kernel& kernel) {
  int64_t i = begin;
  for (; i + kVec <= end; i += kVec) {
    float* views[kArrays];
    for (int a = 0; a < kArrays; ++a) views[a] = arrays[a] + i;
    kernel(views);
  }
  if (i == end) return;
  const int64_t rest = end - i;
  float pad[kArrays][kVec] = {};
  float* views[kArrays];
  for (int a = 0; a < kArrays; ++a) {
    std::copy(arrays[a] + i, arrays[a] + end, pad[a]);
    views[a] = pad[a];
  }
  kernel(views);
  for (int a = 0; a < kOutputs; ++a) std::copy(pad[a], pad[a] + rest, arrays[a] + i);
}

}  // namespace

void adam_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamConfig& config,
               int64_t step) {
  profile::Scope profile_scope(profile::Kind::op, "adam");
  if (step < 1) throw std::invalid_argument("adam_step: step counts from 1, got " + std::to_string(step));
  if (!(config.beta1 >= 0.0f && config.beta1 < 1.0f && config.beta2 >= 0.0f && config.beta2 < 1.0f))
    throw std::invalid_argument("adam_step: betas must be in [0, 1), got " + std::to_string(config.beta1) +
                                ", " + std::to_string(config.beta2));
  // As torch: Python-double bias corrections, step size and sqrt, then float32 elementwise math.
  const double b1 = config.beta1, b2 = config.beta2;
  const double bias_correction1 = 1.0 - std::pow(b1, static_cast<double>(step));
  const double bias_correction2 = 1.0 - std::pow(b2, static_cast<double>(step));
  const VecF neg_step_size(static_cast<float>(-static_cast<double>(config.lr) / bias_correction1));
  const VecF bc2_sqrt(static_cast<float>(std::sqrt(bias_correction2)));
  const VecF beta1(config.beta1), beta2(config.beta2), eps(config.eps), wd(config.weight_decay);
  const VecF one_minus_beta1(static_cast<float>(1.0 - b1)), one_minus_beta2(static_cast<float>(1.0 - b2));
  const bool decay = config.weight_decay != 0.0f;
  // grad is only read (not an output of vector_loop); the cast lets it share the helper.
  float* const arrays[4] = {param, m, v, const_cast<float*>(grad)};
  parallel_chunks(n, [&](int64_t begin, int64_t end) {
    vector_loop<3>(begin, end, arrays, [&](float* const (&x)[4]) {
      const VecF p = VecF::load_unaligned(x[0]);
      VecF g = VecF::load_unaligned(x[3]);
      if (decay) g = g + wd * p;
      const VecF mi = VecF::load_unaligned(x[1]) * beta1 + one_minus_beta1 * g;
      const VecF vi = VecF::load_unaligned(x[2]) * beta2 + one_minus_beta2 * g * g;
      const VecF denom = xsimd::sqrt(vi) / bc2_sqrt + eps;
      (p + neg_step_size * (mi / denom)).store_unaligned(x[0]);
      mi.store_unaligned(x[1]);
      vi.store_unaligned(x[2]);
    });
  });
}

void ema_update(float* ema, const float* param, int64_t n, float decay) {
  profile::Scope profile_scope(profile::Kind::op, "ema");
  // torch.lerp(ema, param, w) with w = 1 - decay: from the nearer end, so decay near 1 keeps
  // float32 precision and decay 0 gives param exactly.
  const float w = static_cast<float>(1.0 - static_cast<double>(decay));
  const bool from_ema = w < 0.5f;
  const VecF coef(from_ema ? w : -(1.0f - w));
  float* const arrays[2] = {ema, const_cast<float*>(param)};  // param is only read
  parallel_chunks(n, [&](int64_t begin, int64_t end) {
    vector_loop<1>(begin, end, arrays, [&](float* const (&x)[2]) {
      const VecF e = VecF::load_unaligned(x[0]), p = VecF::load_unaligned(x[1]);
      ((from_ema ? e : p) + coef * (p - e)).store_unaligned(x[0]);
    });
  });
}

}  // namespace ddpm::cpu
