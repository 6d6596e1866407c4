// The global gradient norm and the fused optimizer step (clip + Adam + EMA) over flat device
// buffers, the CUDA twin of src/kernels/cpu/optimizer.cpp.
//
// The norm is a sum of squares in double, in an order fixed by n alone (norm_blocks(n) blocks over a
// grid-stride share each, then one block over the block sums), so it is the same run to run. The
// step never returns to the host: a one-block kernel turns the sum into the norm and the clip
// decision in the workspace, and the elementwise kernel reads them there (a non-finite norm makes
// every thread return before touching anything).
#include <cmath>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>

#include "ddpm/kernels/cuda/ops.h"
#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/context.h"

namespace ddpm::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxNormBlocks = 1024;
constexpr size_t kStateBytes = 256;  // the StepState, padded so the partials stay aligned

int norm_blocks(int64_t n) {
  const int64_t per_block = int64_t{kThreads} * 8;
  const int64_t b = (n + per_block - 1) / per_block;
  return static_cast<int>(b < 1 ? 1 : (b > kMaxNormBlocks ? kMaxNormBlocks : b));
}

// What the elementwise step needs from the norm, written by finish_norm_kernel.
struct StepState {
  float norm;
  float clip_coef;
  int skip;   // the norm is not finite: leave everything untouched
  int scale;  // clip: multiply grad by clip_coef
};

__global__ void sum_squares_partials(double* partial, const float* a, int64_t n) {
  double acc = 0.0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const double v = a[i];
    acc += v * v;
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// The norm as float32 and cpu::clip_grad_norm's decision: clip_coef = (1 / (norm + 1e-6)) * max_norm
// in float32 (PyTorch's reciprocal-then-multiply), applied when below 1.
__global__ void finish_norm_kernel(StepState* state, float* norm_out, const double* partial, int count,
                                   float max_norm) {
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) {
    const auto norm = static_cast<float>(sqrt(acc));
    const bool finite = isfinite(norm);
    const float clip_coef = __fmul_rn(__frcp_rn(__fadd_rn(norm, 1e-6f)), max_norm);
    state->norm = norm;
    state->clip_coef = clip_coef;
    state->skip = finite ? 0 : 1;
    state->scale = finite && max_norm > 0.0f && clip_coef < 1.0f ? 1 : 0;
    if (norm_out != nullptr) *norm_out = norm;
  }
}

struct AdamArgs {
  float neg_step_size, bc2_sqrt, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay;
  bool decay;
  bool ema;
  bool ema_from_ema;  // torch.lerp from the nearer end, as cpu::ema_update
  float ema_coef;
};

__global__ void step_kernel(float* param, float* grad, float* m, float* v, float* ema, int64_t n,
                            const StepState* state, AdamArgs a) {
  const StepState st = *state;
  if (st.skip) return;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const float p = param[i];
    float g = grad[i];
    if (st.scale) {
      g = g * st.clip_coef;
      grad[i] = g;
    }
    if (a.decay) g = g + a.weight_decay * p;
    const float mi = m[i] * a.beta1 + a.one_minus_beta1 * g;
    const float vi = v[i] * a.beta2 + a.one_minus_beta2 * g * g;
    const float denom = sqrtf(vi) / a.bc2_sqrt + a.eps;
    const float pn = p + a.neg_step_size * (mi / denom);
    param[i] = pn;
    m[i] = mi;
    v[i] = vi;
    if (a.ema) {
      const float e = ema[i];
      ema[i] = (a.ema_from_ema ? e : pn) + a.ema_coef * (pn - e);
    }
  }
}

std::mutex g_norm_mutex;

// global_grad_norm's scratch: kMaxNormBlocks partials and the sum. Made once and kept (freeing it
// at exit races with the driver's teardown).
double* norm_scratch() {
  static DeviceBuffer* b = new DeviceBuffer((kMaxNormBlocks + 1) * sizeof(double));
  return b->as<double>();
}

}  // namespace

double global_grad_norm(const float* grad, int64_t n) {
  if (n <= 0) return 0.0;
  const std::lock_guard<std::mutex> lock(g_norm_mutex);
  double* partial = norm_scratch();
  double* result = partial + kMaxNormBlocks;
  const int blocks = norm_blocks(n);
  sum_squares_partials<<<blocks, kThreads, 0, detail::stream()>>>(partial, grad, n);
  DDPM_CUDA_LAUNCHED("sum_squares_partials");
  sum_partials_kernel<<<1, kThreads, 0, detail::stream()>>>(result, partial, blocks);
  DDPM_CUDA_LAUNCHED("sum_partials_kernel");
  double sum = 0.0;
  download(&sum, result, sizeof sum);
  return std::sqrt(sum);
}

size_t optimizer_workspace_bytes(int64_t n) {
  return kStateBytes + static_cast<size_t>(norm_blocks(n)) * sizeof(double);
}

void optimizer_step(float* param, float* grad, float* m, float* v, float* ema, int64_t n, const cpu::AdamConfig& config,
                    int64_t step, float max_norm, float ema_decay, float* norm_out, void* workspace) {
  if (step < 1) throw std::invalid_argument("cuda::optimizer_step: step counts from 1, got " + std::to_string(step));
  if (!(config.beta1 >= 0.0f && config.beta1 < 1.0f && config.beta2 >= 0.0f && config.beta2 < 1.0f))
    throw std::invalid_argument("cuda::optimizer_step: betas must be in [0, 1), got " + std::to_string(config.beta1) +
                                ", " + std::to_string(config.beta2));
  if (workspace == nullptr || reinterpret_cast<uintptr_t>(workspace) % alignof(double) != 0)
    throw std::invalid_argument("cuda::optimizer_step: workspace must be device memory of optimizer_workspace_bytes(n), "
                                "aligned to 8 bytes");
  if (n < 0) throw std::invalid_argument("cuda::optimizer_step: negative n " + std::to_string(n));

  auto* state = static_cast<StepState*>(workspace);
  auto* partial = reinterpret_cast<double*>(static_cast<char*>(workspace) + kStateBytes);
  const int blocks = norm_blocks(n);
  cudaStream_t stream = detail::stream();
  sum_squares_partials<<<blocks, kThreads, 0, stream>>>(partial, grad, n);
  DDPM_CUDA_LAUNCHED("sum_squares_partials");
  finish_norm_kernel<<<1, kThreads, 0, stream>>>(state, norm_out, partial, blocks, max_norm);
  DDPM_CUDA_LAUNCHED("finish_norm_kernel");
  if (n == 0) return;

  // As cpu::adam_step: bias corrections, step size and sqrt in double, then float32 per element.
  const double b1 = config.beta1, b2 = config.beta2;
  const double bias_correction1 = 1.0 - std::pow(b1, static_cast<double>(step));
  const double bias_correction2 = 1.0 - std::pow(b2, static_cast<double>(step));
  AdamArgs a{};
  a.neg_step_size = static_cast<float>(-static_cast<double>(config.lr) / bias_correction1);
  a.bc2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  a.beta1 = config.beta1;
  a.beta2 = config.beta2;
  a.one_minus_beta1 = static_cast<float>(1.0 - b1);
  a.one_minus_beta2 = static_cast<float>(1.0 - b2);
  a.eps = config.eps;
  a.weight_decay = config.weight_decay;
  a.decay = config.weight_decay != 0.0f;
  // As cpu::ema_update: torch.lerp(ema, param, w), w = 1 - decay, from the nearer end.
  a.ema = ema != nullptr;
  const float w = static_cast<float>(1.0 - static_cast<double>(ema_decay));
  a.ema_from_ema = w < 0.5f;
  a.ema_coef = a.ema_from_ema ? w : -(1.0f - w);
  step_kernel<<<detail::grid_for(n), kThreads, 0, stream>>>(param, grad, m, v, ema, n, state, a);
  DDPM_CUDA_LAUNCHED("optimizer step_kernel");
}

}  // namespace ddpm::cuda
