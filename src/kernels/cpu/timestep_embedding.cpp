// Sinusoidal timestep embedding. Tiny (batch x dim values per training step), so scalar code.
#include "ddpm/kernels/timestep_embedding.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include "ddpm/bench/profiler.h"

namespace ddpm::cpu {

void timestep_embedding_forward(float* out, const float* timesteps, int64_t batch, int64_t dim,
                                bool flip_sin_to_cos, float freq_shift, float scale, float max_period) {
  profile::Scope profile_scope(profile::Kind::op, "timestep embedding");
  if (dim < 1 || batch < 0)
    throw std::invalid_argument("timestep_embedding_forward: need dim >= 1 and batch >= 0, got dim " +
                                std::to_string(dim) + ", batch " + std::to_string(batch));
  const int64_t half = dim / 2;
  // PyTorch: -math.log(max_period) * arange(half, float32) / (half - shift): a double scalar
  // rounded to float32, float32 products, then a float32 division (not a reciprocal multiply).
  const float denominator = static_cast<float>(half) - freq_shift;
  if (half > 0 && denominator == 0.0f)
    throw std::invalid_argument("timestep_embedding_forward: dim / 2 (" + std::to_string(half) +
                                ") equals freq_shift; the frequencies would divide by zero");
  const float neg_log_period = static_cast<float>(-std::log(static_cast<double>(max_period)));
  const int64_t sin_offset = flip_sin_to_cos ? half : 0;
  const int64_t cos_offset = flip_sin_to_cos ? 0 : half;
  for (int64_t b = 0; b < batch; ++b) {
    float* row = out + b * dim;
    const float t = timesteps[b];
    for (int64_t i = 0; i < half; ++i) {
      const float exponent = (neg_log_period * static_cast<float>(i)) / denominator;
      const float freq = static_cast<float>(std::exp(static_cast<double>(exponent)));
      const float arg = scale * (t * freq);
      // Evaluated in double and rounded once: the float32 argument is the semantics, and this
      // keeps the sine itself within half an ulp.
      row[sin_offset + i] = static_cast<float>(std::sin(static_cast<double>(arg)));
      row[cos_offset + i] = static_cast<float>(std::cos(static_cast<double>(arg)));
    }
    if (dim % 2 == 1) row[dim - 1] = 0.0f;
  }
}

}  // namespace ddpm::cpu
