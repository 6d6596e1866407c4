// Sinusoidal timestep embedding, as diffusers' get_timestep_embedding (the `Timesteps` module of
// UNet2DModel) computes it in float32.
#pragma once

#include <cstdint>

namespace ddpm::cpu {

// out[b, :] for b < batch, out row-major [batch, dim]. With half = dim / 2:
//   freq_i = exp(-ln(max_period) * i / (half - freq_shift)), i < half
//   arg_i  = scale * (timesteps[b] * freq_i)                  (float32 products, as PyTorch)
//   out    = [sin(arg), cos(arg)], or [cos(arg), sin(arg)] when flip_sin_to_cos, then one zero
//            column when dim is odd.
// freq_shift is diffusers' downscale_freq_shift (1 for DDPM: the /(half - 1) of the original code).
// The exponent is formed in float32 exactly as PyTorch does; exp is rounded correctly from double,
// where PyTorch's vectorised expf is sometimes one ulp off (see the test for the tolerance).
// There is no backward: timesteps are integers in practice and the op has nothing trainable.
// Throws std::invalid_argument when dim < 1, batch < 0, or half - freq_shift is zero.
void timestep_embedding_forward(float* out, const float* timesteps, int64_t batch, int64_t dim,
                                bool flip_sin_to_cos, float freq_shift, float scale = 1.0f,
                                float max_period = 10000.0f);

}  // namespace ddpm::cpu
