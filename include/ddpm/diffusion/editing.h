// Editing existing images with an unconditional (or class-conditional) DDPM, no retraining:
//   image-to-image (SDEdit, Meng et al. 2022): noise the image to an intermediate timestep, then
//     denoise with any sampler (SamplerOptions::strength picks the timestep);
//   inpainting (RePaint, Lugmayr et al. 2022): at every reverse step the known pixels are replaced
//     by the input noised to that step, and the chain jumps back up now and then (resampling) so
//     the generated region harmonises with the known one;
//   interpolation: spherical interpolation between two x_T, then a deterministic sampler.
#pragma once

#include <cstdint>
#include <vector>

#include "ddpm/diffusion/ddpm_sampler.h"
#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/diffusion/schedule.h"

namespace ddpm {

// x_t = sqrt(ᾱ_t) x0 + sqrt(1 − ᾱ_t) z for n values, z from rng (the forward process's marginal);
// x_t must not alias x0.
void noise_to_timestep(float* x_t, const float* x0, int64_t t, int64_t n, const NoiseSchedule& schedule,
                       NoiseRng& rng);

struct RepaintOptions {
  int64_t jump_length = 10;    // steps gone back up per resampling jump (RePaint's j)
  int64_t jump_n_sample = 10;  // times each jump is taken (RePaint's r; 1: no resampling)
  bool clip_x0 = true;
  Variance variance = Variance::fixed_large;
};

// RePaint's walk over the K respaced steps: indices into [0, K), starting at K (pure noise) and
// ending at 0 (x_0); a step down is a reverse step, a step up a forward one. Every
// jump_length-th index below K − jump_length is revisited jump_n_sample − 1 more times.
std::vector<int64_t> repaint_walk(int64_t K, int64_t jump_length, int64_t jump_n_sample);

// Inpainting: x holds x_T ~ N(0, I) on entry ([batch, per_item]) and the result on return.
// known: the images [batch, per_item] in [−1, 1]; keep: per value, 1 where the known image is
// kept and 0 where it is generated (values in between blend). Runs the respaced DDPM chain over
// `timesteps` (strictly decreasing) along repaint_walk. The kept pixels of the result equal
// `known` exactly. progress counts model calls (down steps).
void sample_repaint(const EpsModel& model, float* x, const float* known, const float* keep, int64_t batch,
                    int64_t per_item, const NoiseSchedule& schedule, const std::vector<int64_t>& timesteps,
                    const RepaintOptions& options, NoiseRng& rng, const SampleProgress& progress = {});

// U-Net calls sample_repaint makes for K timesteps.
int64_t repaint_model_calls(int64_t K, int64_t jump_length, int64_t jump_n_sample);

// Spherical interpolation between a and b (n values) at alpha in [0, 1], as for Gaussian latents
// (the norm of the path stays that of a typical x_T); linear when a and b are (anti)parallel.
void slerp(float* out, const float* a, const float* b, double alpha, int64_t n);

}  // namespace ddpm
