// DDPM ancestral sampling with x_t, ε and the noise kept on the CUDA device: the same sampler as
// sample_ddpm_respaced (fixed variances), the same Philox draws in the same order (drawn on the
// device: cuda::fill_normal gives NoiseRng's numbers), the same float64 update per value, so it
// makes the CPU's images up to the model's own rounding. Only x_T comes in and x_0 goes out.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "ddpm/diffusion/ddpm_sampler.h"
#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/diffusion/schedule.h"

namespace ddpm {

// ε = f(x_t, t) over device pointers ([batch, per_item] each).
using DeviceEpsModel = std::function<void(const float* x_t, int64_t t, float* eps)>;

// One step of it on device buffers of n values: x ← the DDPM update of x with eps at `index` of
// `schedule` (already respaced), drawing z (scratch, n values) from rng when index > 0.
void ddpm_step_on_device(float* x, const float* eps, float* z, int64_t index, int64_t n, const NoiseSchedule& schedule,
                         Variance variance, bool clip_x0, NoiseRng& rng);

// x: host [batch, per_item], x_T on entry and x_0 on return. variance: fixed_large or fixed_small
// (std::invalid_argument otherwise). Throws cuda::Error without the CUDA backend or a device.
void sample_ddpm_respaced_on_device(const DeviceEpsModel& model, float* x, int64_t batch, int64_t per_item,
                                    const NoiseSchedule& schedule, const std::vector<int64_t>& timesteps,
                                    Variance variance, bool clip_x0, NoiseRng& rng, const SampleProgress& progress = {});

}  // namespace ddpm
