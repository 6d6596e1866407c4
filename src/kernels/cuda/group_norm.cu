// Group norm (+ affine, + optional fused SiLU) forward and backward on NHWC activations, the CUDA
// twin of src/kernels/cpu/group_norm.cpp.
//
// Forward: one block per (sample, group), three passes over the group's values (they stay in L2
// between passes): an fp32 mean used as a shift, then the sums of d = x - shift and d^2 (fp32 per
// thread, combined in double), which stay of the order of the standard deviation however large the
// mean is, then the normalised output.
//
// Backward: in NHWC a group's channels are a few floats every C, so the sums run per channel
// instead: blocks of 32 consecutive channels x a chunk of pixels of one sample give per-(chunk,
// sample, channel) partials of dv and dv * xhat (dv = dL/d(pre-activation)); small kernels add them
// into dgamma, dbeta (over samples and chunks) and into each (sample, group)'s two coefficients of
// dx; a last elementwise pass writes dx. Every sum runs in an order fixed by the shape, so results
// are the same run to run. The partials live in a device scratch buffer owned by this file.
#include <algorithm>
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

__device__ __forceinline__ float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

// dL/dv given dL/dy through SiLU: dy * s * (1 + v * (1 - s)), s = sigmoid(v).
__device__ __forceinline__ float pre_activation_grad(float dy, float v) {
  const float s = sigmoid(v);
  return dy * s * (1.0f + v * (1.0f - s));
}

// Element k of a (sample, group) is pixel k / cpg, channel k % cpg of the group. A thread visits
// k = first, first + stride, ...: the pixel and channel are stepped without a division per element.
struct GroupWalk {
  int p, j, dp, dj, cpg;
  __device__ GroupWalk(int first, int stride, int cpg_)
      : p(first / cpg_), j(first % cpg_), dp(stride / cpg_), dj(stride % cpg_), cpg(cpg_) {}
  __device__ void next() {
    p += dp;
    j += dj;
    if (j >= cpg) {
      j -= cpg;
      ++p;
    }
  }
};

template <bool Silu>
__global__ void forward_kernel(float* y, float* mean, float* rstd, const float* x,
                               const float* __restrict__ gamma, const float* __restrict__ beta, int pixels,
                               int channels, int groups, int cpg, float eps) {
  const int bg = blockIdx.x;
  const int b = bg / groups, g = bg % groups;
  const int64_t base = static_cast<int64_t>(b) * pixels * channels + static_cast<int64_t>(g) * cpg;
  const int count = pixels * cpg;
  const int tid = threadIdx.x, stride = blockDim.x;

  float s = 0.0f;
  {
    GroupWalk w(tid, stride, cpg);
    for (int k = tid; k < count; k += stride, w.next()) s += x[base + static_cast<int64_t>(w.p) * channels + w.j];
  }
  const float shift = block_sum(s) / static_cast<float>(count);

  float s1 = 0.0f, s2 = 0.0f;
  {
    GroupWalk w(tid, stride, cpg);
    for (int k = tid; k < count; k += stride, w.next()) {
      const float d = x[base + static_cast<int64_t>(w.p) * channels + w.j] - shift;
      s1 += d;
      s2 = fmaf(d, d, s2);
    }
  }
  const double sum1 = block_sum(static_cast<double>(s1));
  const double sum2 = block_sum(static_cast<double>(s2));
  const double n = count;
  const double m = static_cast<double>(shift) + sum1 / n;
  const double var = fmax(0.0, (sum2 - sum1 * sum1 / n) / n);
  const auto mf = static_cast<float>(m);
  const auto rf = static_cast<float>(1.0 / sqrt(var + static_cast<double>(eps)));
  if (tid == 0) {
    mean[bg] = mf;
    rstd[bg] = rf;
  }

  GroupWalk w(tid, stride, cpg);
  for (int k = tid; k < count; k += stride, w.next()) {
    const int64_t i = base + static_cast<int64_t>(w.p) * channels + w.j;
    const int c = g * cpg + w.j;
    float v = fmaf(x[i] - mf, rf * gamma[c], beta[c]);
    if constexpr (Silu) v = v * sigmoid(v);
    y[i] = v;
  }
}

// ---- backward ----

constexpr int kRows = 8;             // thread rows of a partials block (32 channels x kRows pixels)
constexpr int kChunkPixels = 256;    // pixels per partials block: <= 32 fp32 terms per thread

// part[((s * batch + b) * 2 + 0) * C + c] = sum over chunk s of sample b of dv[., c]; (... + 1) the
// same of dv * xhat. Grid (channel tiles, batch, chunks), block (32, kRows).
template <bool Silu>
__global__ void partials_kernel(double* part, const float* __restrict__ dy, const float* __restrict__ x,
                                const float* __restrict__ mean, const float* __restrict__ rstd,
                                const float* __restrict__ gamma, const float* __restrict__ beta, int pixels,
                                int channels, int groups, int cpg) {
  __shared__ float sum_dv[kRows][32], sum_dvx[kRows][32];
  const int c = blockIdx.x * 32 + threadIdx.x;
  const int b = blockIdx.y, s = blockIdx.z, batch = gridDim.y;
  const int p1 = min(pixels, (s + 1) * kChunkPixels);
  float a1 = 0.0f, a2 = 0.0f;
  if (c < channels) {
    const int i = b * groups + c / cpg;
    const float mu = mean[i], r = rstd[i], gm = gamma[c], bt = beta[c];
    for (int p = s * kChunkPixels + threadIdx.y; p < p1; p += kRows) {
      const int64_t off = (static_cast<int64_t>(b) * pixels + p) * channels + c;
      const float xh = (x[off] - mu) * r;
      float dv = dy[off];
      if constexpr (Silu) dv = pre_activation_grad(dv, fmaf(xh, gm, bt));
      a1 += dv;
      a2 = fmaf(dv, xh, a2);
    }
  }
  sum_dv[threadIdx.y][threadIdx.x] = a1;
  sum_dvx[threadIdx.y][threadIdx.x] = a2;
  __syncthreads();
  if (threadIdx.y == 0 && c < channels) {
    double t1 = 0.0, t2 = 0.0;
    for (int r = 0; r < kRows; ++r) {
      t1 += sum_dv[r][threadIdx.x];
      t2 += sum_dvx[r][threadIdx.x];
    }
    double* out = part + (static_cast<int64_t>(s) * batch + b) * 2 * channels + c;
    out[0] = t1;
    out[channels] = t2;
  }
}

// dbeta[c], dgamma[c]: the partials of channel c over every (chunk, sample). One block per channel.
__global__ void param_grads_kernel(float* dgamma, float* dbeta, const double* part, int slots, int channels) {
  const int c = blockIdx.x;
  double t1 = 0.0, t2 = 0.0;
  for (int q = threadIdx.x; q < slots; q += blockDim.x) {
    const double* pq = part + static_cast<int64_t>(q) * 2 * channels + c;
    t1 += pq[0];
    t2 += pq[channels];
  }
  t1 = block_sum(t1);
  t2 = block_sum(t2);
  if (threadIdx.x == 0) {
    dbeta[c] = static_cast<float>(t1);
    dgamma[c] = static_cast<float>(t2);
  }
}

// Per (sample, group): kb = -rstd^2 mean(dxhat * xhat), kc = -rstd mean(dxhat), dxhat = dv * gamma.
// One block per (sample, group); coef[2 * bg] = kb, coef[2 * bg + 1] = kc.
__global__ void coefficients_kernel(float* coef, const double* part, const float* __restrict__ rstd,
                                    const float* __restrict__ gamma, int batch, int pixels, int channels, int groups,
                                    int cpg, int chunks) {
  const int bg = blockIdx.x;
  const int b = bg / groups, g = bg % groups;
  double m1 = 0.0, m2 = 0.0;
  for (int q = threadIdx.x; q < chunks * cpg; q += blockDim.x) {
    const int s = q / cpg, c = g * cpg + q % cpg;
    const double* pq = part + (static_cast<int64_t>(s) * batch + b) * 2 * channels + c;
    const double gm = gamma[c];
    m1 += gm * pq[0];
    m2 += gm * pq[channels];
  }
  m1 = block_sum(m1);
  m2 = block_sum(m2);
  if (threadIdx.x == 0) {
    const double n = static_cast<double>(pixels) * cpg, r = rstd[bg];
    coef[2 * bg] = static_cast<float>(-r * r * m2 / n);
    coef[2 * bg + 1] = static_cast<float>(-r * m1 / n);
  }
}

// dx = dv * (rstd * gamma) + (x - mean) * kb + kc, elementwise; dv recomputed from dy (and, with
// SiLU, the pre-activation from x). Each element reads its own dy before writing dx: dx may alias dy.
template <bool Silu>
__global__ void dx_kernel(float* dx, const float* dy, const float* __restrict__ x, const float* __restrict__ mean,
                          const float* __restrict__ rstd, const float* __restrict__ gamma,
                          const float* __restrict__ beta, const float* __restrict__ coef, int64_t per_sample,
                          int channels, int groups, int cpg, int64_t n) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int c = static_cast<int>(i % channels);
    const int bg = static_cast<int>(i / per_sample) * groups + c / cpg;
    const float mu = mean[bg], r = rstd[bg], gm = gamma[c];
    const float d = x[i] - mu;
    float dv = dy[i];
    if constexpr (Silu) dv = pre_activation_grad(dv, fmaf(d * r, gm, beta[c]));
    dx[i] = fmaf(dv, r * gm, fmaf(d, coef[2 * bg], coef[2 * bg + 1]));
  }
}

void validate(const cpu::GroupNormShape& s, const char* fn) {
  cpu::check_group_norm_shape(s, fn);
  const auto where = [fn] { return std::string(fn) + ": "; };
  // Indices within a sample and counts of (sample, group) pairs are int; the batch is a grid dimension.
  constexpr int64_t kMaxInt = 0x7fffffff;
  if (s.pixels * s.channels > kMaxInt || s.batch * s.groups > kMaxInt || s.batch > 65535 ||
      s.pixels > int64_t{65535} * kChunkPixels)
    throw std::invalid_argument(where() + "shape too large for the CUDA kernels (batch " + std::to_string(s.batch) +
                                ", pixels x channels " + std::to_string(s.pixels * s.channels) + ")");
}

// The backward's partial sums: grown on demand, kept for the process (freeing at exit races with
// the driver's teardown). All use is ordered on the one stream, so a later call reuses it safely;
// the mutex covers the pointer's replacement by a concurrent caller.
std::mutex g_scratch_mutex;
DeviceBuffer* g_scratch = nullptr;

void* scratch(size_t bytes) {
  if (g_scratch == nullptr || g_scratch->bytes() < bytes) {
    if (g_scratch != nullptr) synchronize();  // queued kernels may still read the old buffer
    delete g_scratch;
    g_scratch = nullptr;
    g_scratch = new DeviceBuffer(bytes);
  }
  return g_scratch->data();
}

}  // namespace

void group_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma, const float* beta,
                        const cpu::GroupNormShape& s, bool fuse_silu) {
  validate(s, "cuda::group_norm_forward");
  const int cpg = static_cast<int>(s.channels / s.groups);
  const int64_t count = s.pixels * cpg;
  const int threads = count >= 8192 ? 512 : (count >= 1024 ? 256 : 128);
  const auto blocks = static_cast<unsigned>(s.batch * s.groups);
  const auto P = static_cast<int>(s.pixels), C = static_cast<int>(s.channels), G = static_cast<int>(s.groups);
  if (fuse_silu)
    forward_kernel<true><<<blocks, threads, 0, detail::stream()>>>(y, mean, rstd, x, gamma, beta, P, C, G, cpg, s.eps);
  else
    forward_kernel<false><<<blocks, threads, 0, detail::stream()>>>(y, mean, rstd, x, gamma, beta, P, C, G, cpg, s.eps);
  DDPM_CUDA_LAUNCHED("group_norm forward_kernel");
}

void group_norm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x, const float* mean,
                         const float* rstd, const float* gamma, const float* beta, const cpu::GroupNormShape& s,
                         bool fuse_silu) {
  validate(s, "cuda::group_norm_backward");
  const auto B = static_cast<int>(s.batch), P = static_cast<int>(s.pixels), C = static_cast<int>(s.channels),
             G = static_cast<int>(s.groups);
  const int cpg = C / G;
  const int chunks = (P + kChunkPixels - 1) / kChunkPixels;
  const size_t part_doubles = static_cast<size_t>(chunks) * B * 2 * C;
  const size_t coef_floats = static_cast<size_t>(B) * G * 2;

  const std::lock_guard<std::mutex> lock(g_scratch_mutex);
  auto* part = static_cast<double*>(scratch(part_doubles * sizeof(double) + coef_floats * sizeof(float)));
  auto* coef = reinterpret_cast<float*>(part + part_doubles);
  cudaStream_t stream = detail::stream();

  // The partials read dy before dx_kernel (later on the stream) writes dx over it.
  const dim3 grid((C + 31) / 32, B, chunks);
  if (fuse_silu)
    partials_kernel<true><<<grid, dim3(32, kRows), 0, stream>>>(part, dy, x, mean, rstd, gamma, beta, P, C, G, cpg);
  else
    partials_kernel<false><<<grid, dim3(32, kRows), 0, stream>>>(part, dy, x, mean, rstd, gamma, beta, P, C, G, cpg);
  DDPM_CUDA_LAUNCHED("group_norm partials_kernel");
  param_grads_kernel<<<C, 128, 0, stream>>>(dgamma, dbeta, part, chunks * B, C);
  DDPM_CUDA_LAUNCHED("group_norm param_grads_kernel");
  coefficients_kernel<<<B * G, 128, 0, stream>>>(coef, part, rstd, gamma, B, P, C, G, cpg, chunks);
  DDPM_CUDA_LAUNCHED("group_norm coefficients_kernel");
  const int64_t n = s.batch * s.pixels * s.channels;
  const int64_t per_sample = s.pixels * s.channels;
  if (fuse_silu)
    dx_kernel<true><<<detail::grid_for(n), 256, 0, stream>>>(dx, dy, x, mean, rstd, gamma, beta, coef, per_sample, C,
                                                              G, cpg, n);
  else
    dx_kernel<false><<<detail::grid_for(n), 256, 0, stream>>>(dx, dy, x, mean, rstd, gamma, beta, coef, per_sample,
                                                               C, G, cpg, n);
  DDPM_CUDA_LAUNCHED("group_norm dx_kernel");
}

}  // namespace ddpm::cuda
