// The DDPM ancestral step on the device, the twin of ddpm::ddpm_step (src/diffusion/ddpm_sampler.cpp)
// with a fixed variance: float64 per element, coefficients of timestep t from the host.
#include <cstdint>
#include <stdexcept>

#include "ddpm/kernels/cuda/ops.h"
#include "kernels/cuda/context.h"

namespace ddpm::cuda {
namespace {

// Elementwise; each element's x_t is read before its x_prev is written, so x_prev may alias x_t.
__global__ void ddpm_step_kernel(float* x_prev, const float* x_t, const float* eps, const float* z, int64_t n,
                                 DdpmStepCoefficients c) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const double xt = x_t[i];
    double x0 = c.recip * xt - c.recipm1 * static_cast<double>(eps[i]);
    x0 = x0 < c.lo ? c.lo : (c.hi < x0 ? c.hi : x0);  // std::clamp: NaN passes through
    double mean = c.c1 * x0 + c.c2 * xt;
    if (z != nullptr) mean += c.sigma * static_cast<double>(z[i]);
    x_prev[i] = static_cast<float>(mean);
  }
}

}  // namespace

void ddpm_step(float* x_prev, const float* x_t, const float* eps, const float* z, int64_t n,
               const DdpmStepCoefficients& c) {
  if (n <= 0) return;
  if (c.sigma != 0.0 && z == nullptr) throw std::invalid_argument("cuda::ddpm_step: noise z is null with sigma > 0");
  // No noise term when sigma is 0 (the last step), as the CPU at t = 0: z is then not read.
  const float* noise = c.sigma != 0.0 ? z : nullptr;
  ddpm_step_kernel<<<detail::grid_for(n), 256, 0, detail::stream()>>>(x_prev, x_t, eps, noise, n, c);
  DDPM_CUDA_LAUNCHED("ddpm_step_kernel");
}

}  // namespace ddpm::cuda
