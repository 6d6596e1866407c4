// DPM-Solver++(2M) (Lu et al. 2022, arXiv:2211.01095, Alg. 2) as diffusers'
// DPMSolverMultistepScheduler with its defaults (algorithm_type "dpmsolver++", solver_order 2,
// solver_type "midpoint", final_sigmas_type "zero"): a deterministic multistep solver of the
// diffusion ODE in data prediction, x̂0 = (x_t − σ_t ε)/α_t with α_t = sqrt(ᾱ_t), σ_t = sqrt(1 − ᾱ_t),
// λ_t = log(α_t/σ_t). With h = λ_s − λ_t for a step from t to s:
//   first order (the first step):  x_s = (σ_s/σ_t) x_t − α_s (e^{−h} − 1) x̂0_t
//   second order (the others):     the same with x̂0_t replaced by D = x̂0_t + (x̂0_t − x̂0_prev)/(2 r),
//                                   r = h_prev/h, where x̂0_prev and h_prev belong to the previous step;
// the last step goes to ᾱ = 1 (σ = 0) in first order and so returns x̂0 of the last model call.
#pragma once

#include <cstdint>
#include <vector>

#include "ddpm/diffusion/ddpm_sampler.h"
#include "ddpm/diffusion/schedule.h"

namespace ddpm {

// The chain over `timesteps` (strictly decreasing), one model call per timestep. x holds x_T on
// entry and x_0 on return. clip_x0 clips every x̂0 to [−1, 1] (diffusers' "thresholding" is a
// different, dynamic rule). Allocates two batch-sized buffers.
void sample_dpm_solver_pp(const EpsModel& model, float* x, int64_t batch, int64_t per_item,
                          const NoiseSchedule& schedule, const std::vector<int64_t>& timesteps, bool clip_x0,
                          const SampleProgress& progress = {});

}  // namespace ddpm
