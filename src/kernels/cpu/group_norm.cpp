// Group norm (+ affine, + optional fused SiLU) forward and backward on NHWC activations.
//
// In NHWC a group's values are strided (cpg floats every C), so the work is split along pixels, not
// groups: every work item is a chunk of whole pixel rows, whose channels are contiguous and
// vectorise. Per-chunk, per-channel partial sums go to the caller's workspace and are reduced per
// group in a fixed order, so results do not depend on the thread count. Samples are processed in
// steps of about kStepElems values, so that the second pass over a step (normalise / dx) finds its
// data still in cache. With SiLU the backward stores dv = dL/d(pre-activation) in dx between its two
// passes, so each element costs one exp, not two.
#include "ddpm/kernels/group_norm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "ddpm/bench/profiler.h"
#include "kernels/cpu/vec_math.h"

namespace ddpm::cpu {
namespace {

constexpr int64_t kChunkElems = 8192;     // one work item: 32 KiB of one tensor
constexpr int64_t kMaxChunkPixels = 64;   // bounds the length of the backward's fp32 partial sums
constexpr int64_t kStepElems = 1 << 17;   // 512 KiB per tensor between a step's two passes

struct Plan {
  int64_t chunk_pixels;  // pixels per work item
  int64_t chunks;        // work items per sample
  int64_t step_samples;  // samples whose statistics are computed together
  int64_t slots() const { return chunks * step_samples; }
};

Plan make_plan(const GroupNormShape& s) {
  Plan p{};
  p.chunk_pixels = std::clamp<int64_t>(kChunkElems / s.channels, 1, kMaxChunkPixels);
  p.chunks = (s.pixels + p.chunk_pixels - 1) / p.chunk_pixels;
  p.step_samples = std::clamp<int64_t>(kStepElems / (s.pixels * s.channels), 1, s.batch);
  return p;
}

// Workspace layout, in floats: [2C doubles: the backward's dbeta, dgamma accumulators]
// [slots x 4C floats: per-chunk partial sums (forward 3C, backward 2C)]
// [step_samples x 5C floats: per-channel coefficients (forward 2C, backward 5C)].
size_t workspace_floats_for(const GroupNormShape& s, const Plan& p) {
  const auto c = static_cast<size_t>(s.channels);
  return 4 * c + static_cast<size_t>(p.slots()) * 4 * c + static_cast<size_t>(p.step_samples) * 5 * c;
}

void validate(const GroupNormShape& s, const float* workspace, size_t workspace_floats, const char* fn) {
  // The message is built only on failure: a valid call must not allocate.
  const auto where = [fn] { return std::string(fn) + ": "; };
  check_group_norm_shape(s, fn);
  const size_t need = group_norm_workspace_floats(s);
  if (workspace == nullptr || workspace_floats < need)
    throw std::invalid_argument(where() + "workspace has " + std::to_string(workspace_floats) + " floats, needs " +
                                std::to_string(need) + " (group_norm_workspace_floats)");
  if (reinterpret_cast<uintptr_t>(workspace) % alignof(double) != 0)
    throw std::invalid_argument(where() + "workspace must be aligned to " + std::to_string(alignof(double)) +
                                " bytes");
}

inline float sigmoid1(float v) { return 1.0f / (1.0f + std::exp(-v)); }

// Per-channel statistics of one chunk (at most kMaxChunkPixels rows), by the two-pass method on
// data that is still in L1: shift = the chunk's fp32 mean (approximate is enough), then the sum and
// the sum of squares of x - shift, which are of the order of the standard deviation however large
// the mean is. The group statistics combine chunks in double (group_stats). Converting to double
// here instead costs 3x in this memory-bound loop.
void chunk_stats(float* stats, const float* x, int64_t rows, int64_t channels) {
  float* shift = stats;
  float* sum = stats + channels;
  float* sq = stats + 2 * channels;
  std::fill(stats, stats + 3 * channels, 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * channels;
    int64_t c = 0;
    for (; c + kVec <= channels; c += kVec)
      (VecF::load_unaligned(shift + c) + VecF::load_unaligned(xr + c)).store_unaligned(shift + c);
    for (; c < channels; ++c) shift[c] += xr[c];
  }
  const float inv_rows = 1.0f / static_cast<float>(rows);
  for (int64_t c = 0; c < channels; ++c) shift[c] *= inv_rows;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * channels;
    int64_t c = 0;
    for (; c + kVec <= channels; c += kVec) {
      const VecF d = VecF::load_unaligned(xr + c) - VecF::load_unaligned(shift + c);
      (VecF::load_unaligned(sum + c) + d).store_unaligned(sum + c);
      xsimd::fma(d, d, VecF::load_unaligned(sq + c)).store_unaligned(sq + c);
    }
    for (; c < channels; ++c) {
      const float d = xr[c] - shift[c];
      sum[c] += d;
      sq[c] += d * d;
    }
  }
}

// y = f((x - mu) * a + beta) over rows, with per-channel mu (the group mean) and a (rstd * gamma).
template <bool Silu>
void normalize_rows(float* y, const float* x, const float* mu, const float* a, const float* beta, int64_t rows,
                    int64_t channels) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * channels;
    float* yr = y + r * channels;
    int64_t c = 0;
    for (; c + kVec <= channels; c += kVec) {
      const VecF d = VecF::load_unaligned(xr + c) - VecF::load_unaligned(mu + c);
      VecF v = xsimd::fma(d, VecF::load_unaligned(a + c), VecF::load_unaligned(beta + c));
      if constexpr (Silu) v = v * sigmoid(v);
      v.store_unaligned(yr + c);
    }
    for (; c < channels; ++c) {
      float v = (xr[c] - mu[c]) * a[c] + beta[c];
      if constexpr (Silu) v = v * sigmoid1(v);
      yr[c] = v;
    }
  }
}

// dL/dv given dL/dy through SiLU: dy * s * (1 + v * (1 - s)), s = sigmoid(v).
inline VecF pre_activation_grad(VecF dy, VecF v) {
  const VecF s = sigmoid(v);
  return dy * s * (VecF(1.0f) + v * (VecF(1.0f) - s));
}
inline float pre_activation_grad(float dy, float v) {
  const float s = sigmoid1(v);
  return dy * s * (1.0f + v * (1.0f - s));
}

// Per-channel sums of dv and dv * xhat over `rows` rows (fp32 over at most kMaxChunkPixels terms;
// the chunks are combined in double). With SiLU, dv (one exp per element) is also stored in dv_out,
// for backward_rows to read instead of recomputing it.
template <bool Silu>
void backward_partials(float* s1, float* dv_out, const float* dy, const float* x, const float* mu,
                       const float* sig, const float* gamma, const float* beta, int64_t rows, int64_t channels) {
  float* s2 = s1 + channels;
  std::fill(s1, s1 + 2 * channels, 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * channels;
    const float* dyr = dy + r * channels;
    float* dvr = dv_out + r * channels;
    int64_t c = 0;
    for (; c + kVec <= channels; c += kVec) {
      const VecF xh = (VecF::load_unaligned(xr + c) - VecF::load_unaligned(mu + c)) * VecF::load_unaligned(sig + c);
      VecF dv = VecF::load_unaligned(dyr + c);
      if constexpr (Silu) {
        dv = pre_activation_grad(dv, xsimd::fma(xh, VecF::load_unaligned(gamma + c), VecF::load_unaligned(beta + c)));
        dv.store_unaligned(dvr + c);
      }
      (VecF::load_unaligned(s1 + c) + dv).store_unaligned(s1 + c);
      xsimd::fma(dv, xh, VecF::load_unaligned(s2 + c)).store_unaligned(s2 + c);
    }
    for (; c < channels; ++c) {
      const float xh = (xr[c] - mu[c]) * sig[c];
      float dv = dyr[c];
      if constexpr (Silu) {
        dv = pre_activation_grad(dv, xh * gamma[c] + beta[c]);
        dvr[c] = dv;
      }
      s1[c] += dv;
      s2[c] += dv * xh;
    }
  }
}

// dx = dv * (rstd * gamma) + (x - mean) * kb + kc, with per-(sample, group) kb = -rstd^2 * mean(dxhat
// * xhat) and kc = -rstd * mean(dxhat), dxhat = dv * gamma. dv may alias dx.
void backward_rows(float* dx, const float* dv, const float* x, const float* mu, const float* ka, const float* kb,
                   const float* kc, int64_t rows, int64_t channels) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * channels;
    const float* dvr = dv + r * channels;
    float* dxr = dx + r * channels;
    int64_t c = 0;
    for (; c + kVec <= channels; c += kVec) {
      const VecF d = VecF::load_unaligned(xr + c) - VecF::load_unaligned(mu + c);
      const VecF g = xsimd::fma(VecF::load_unaligned(dvr + c), VecF::load_unaligned(ka + c),
                                xsimd::fma(d, VecF::load_unaligned(kb + c), VecF::load_unaligned(kc + c)));
      g.store_unaligned(dxr + c);
    }
    for (; c < channels; ++c) dxr[c] = dvr[c] * ka[c] + ((xr[c] - mu[c]) * kb[c] + kc[c]);
  }
}

template <bool Silu>
void forward_impl(float* y, float* mean, float* rstd, const float* x, const float* gamma, const float* beta,
                  const GroupNormShape& s, float* workspace) {
  const Plan pl = make_plan(s);
  const int64_t B = s.batch, P = s.pixels, C = s.channels, G = s.groups, cpg = C / G;
  float* part = workspace + 4 * C;
  float* coef = workspace + 4 * C + pl.slots() * 4 * C;
  const double n = static_cast<double>(P * cpg);

  parallel_team(B * P * C >= kParallelGrain, [&] {
  for (int64_t b0 = 0; b0 < B; b0 += pl.step_samples) {
    const int64_t nb = std::min(pl.step_samples, B - b0);
    const int64_t items = nb * pl.chunks;

#pragma omp for schedule(static)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t b = b0 + it / pl.chunks, p0 = (it % pl.chunks) * pl.chunk_pixels;
      const int64_t rows = std::min(pl.chunk_pixels, P - p0);
      chunk_stats(part + it * 4 * C, x + (b * P + p0) * C, rows, C);
    }

#pragma omp for schedule(static)
    for (int64_t bg = 0; bg < nb * G; ++bg) {
      const int64_t bl = bg / G, c0 = (bg % G) * cpg;
      // Chan et al.'s pairwise combination of per-(chunk, channel) means and centred sums of squares.
      double total = 0.0;
      for (int64_t k = 0; k < pl.chunks; ++k) {
        const float* pk = part + (bl * pl.chunks + k) * 4 * C;
        const double rows = static_cast<double>(std::min(pl.chunk_pixels, P - k * pl.chunk_pixels));
        for (int64_t c = c0; c < c0 + cpg; ++c) total += rows * pk[c] + pk[C + c];
      }
      const double m = total / n;
      double m2 = 0.0;
      for (int64_t k = 0; k < pl.chunks; ++k) {
        const float* pk = part + (bl * pl.chunks + k) * 4 * C;
        const double rows = static_cast<double>(std::min(pl.chunk_pixels, P - k * pl.chunk_pixels));
        for (int64_t c = c0; c < c0 + cpg; ++c) {
          const double s1 = pk[C + c], dm = pk[c] + s1 / rows - m;
          m2 += (pk[2 * C + c] - s1 * s1 / rows) + rows * dm * dm;
        }
      }
      const double var = std::max(0.0, m2 / n);
      const auto mf = static_cast<float>(m);
      const auto rf = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(s.eps)));
      mean[(b0 + bl) * G + bg % G] = mf;
      rstd[(b0 + bl) * G + bg % G] = rf;
      float* mu = coef + bl * 2 * C;
      float* a = mu + C;
      for (int64_t c = c0; c < c0 + cpg; ++c) {
        mu[c] = mf;
        a[c] = rf * gamma[c];
      }
    }

#pragma omp for schedule(static)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t bl = it / pl.chunks, b = b0 + bl, p0 = (it % pl.chunks) * pl.chunk_pixels;
      const int64_t rows = std::min(pl.chunk_pixels, P - p0);
      const float* mu = coef + bl * 2 * C;
      normalize_rows<Silu>(y + (b * P + p0) * C, x + (b * P + p0) * C, mu, mu + C, beta, rows, C);
    }
  }
  });
}

template <bool Silu>
void backward_impl(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x, const float* mean,
                   const float* rstd, const float* gamma, const float* beta, const GroupNormShape& s,
                   float* workspace) {
  const Plan pl = make_plan(s);
  const int64_t B = s.batch, P = s.pixels, C = s.channels, G = s.groups, cpg = C / G;
  double* acc_db = reinterpret_cast<double*>(workspace);
  double* acc_dg = acc_db + C;
  float* part = workspace + 4 * C;
  float* coef = workspace + 4 * C + pl.slots() * 4 * C;
  const double n = static_cast<double>(P * cpg);

  parallel_team(B * P * C >= kParallelGrain, [&] {
#pragma omp for schedule(static)
    for (int64_t c = 0; c < 2 * C; ++c) acc_db[c] = 0.0;

    for (int64_t b0 = 0; b0 < B; b0 += pl.step_samples) {
      const int64_t nb = std::min(pl.step_samples, B - b0);
      const int64_t items = nb * pl.chunks;

      // Per-channel coefficients of each sample: mu, rstd, rstd * gamma (then kb, kc below).
#pragma omp for schedule(static)
      for (int64_t bc = 0; bc < nb * C; ++bc) {
        const int64_t bl = bc / C, c = bc % C, i = (b0 + bl) * G + c / cpg;
        float* mu = coef + bl * 5 * C;
        mu[c] = mean[i];
        mu[C + c] = rstd[i];
        mu[2 * C + c] = rstd[i] * gamma[c];
      }

#pragma omp for schedule(static)
      for (int64_t it = 0; it < items; ++it) {
        const int64_t bl = it / pl.chunks, b = b0 + bl, p0 = (it % pl.chunks) * pl.chunk_pixels;
        const int64_t rows = std::min(pl.chunk_pixels, P - p0);
        const float* mu = coef + bl * 5 * C;
        const int64_t off = (b * P + p0) * C;
        backward_partials<Silu>(part + it * 2 * C, dx + off, dy + off, x + off, mu, mu + C, gamma, beta, rows, C);
      }

      // One group per iteration, samples in order: the dgamma/dbeta sums are race-free and
      // deterministic.
#pragma omp for schedule(static)
      for (int64_t g = 0; g < G; ++g) {
        const int64_t c0 = g * cpg;
        for (int64_t bl = 0; bl < nb; ++bl) {
          double m1 = 0.0, m2 = 0.0;
          for (int64_t c = c0; c < c0 + cpg; ++c) {
            double t1 = 0.0, t2 = 0.0;
            for (int64_t k = 0; k < pl.chunks; ++k) {
              const float* pk = part + (bl * pl.chunks + k) * 2 * C;
              t1 += pk[c];
              t2 += pk[C + c];
            }
            acc_db[c] += t1;
            acc_dg[c] += t2;
            m1 += gamma[c] * t1;
            m2 += gamma[c] * t2;
          }
          const double r = rstd[(b0 + bl) * G + g];
          const auto kb = static_cast<float>(-r * r * m2 / n);
          const auto kc = static_cast<float>(-r * m1 / n);
          float* mu = coef + bl * 5 * C;
          for (int64_t c = c0; c < c0 + cpg; ++c) {
            mu[3 * C + c] = kb;
            mu[4 * C + c] = kc;
          }
        }
      }

#pragma omp for schedule(static)
      for (int64_t it = 0; it < items; ++it) {
        const int64_t bl = it / pl.chunks, b = b0 + bl, p0 = (it % pl.chunks) * pl.chunk_pixels;
        const int64_t rows = std::min(pl.chunk_pixels, P - p0);
        const float* mu = coef + bl * 5 * C;
        const int64_t off = (b * P + p0) * C;
        backward_rows(dx + off, Silu ? dx + off : dy + off, x + off, mu, mu + 2 * C, mu + 3 * C, mu + 4 * C, rows, C);
      }
    }

#pragma omp for schedule(static)
    for (int64_t c = 0; c < C; ++c) {
      dbeta[c] = static_cast<float>(acc_db[c]);
      dgamma[c] = static_cast<float>(acc_dg[c]);
    }
  });
}

}  // namespace

size_t group_norm_workspace_floats(const GroupNormShape& s) {
  if (s.batch <= 0 || s.pixels <= 0 || s.channels <= 0) return 0;
  return workspace_floats_for(s, make_plan(s));
}

void group_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma, const float* beta,
                        const GroupNormShape& s, bool fuse_silu, float* workspace, size_t workspace_floats) {
  profile::Scope profile_scope(profile::Kind::op, "group norm fwd");
  validate(s, workspace, workspace_floats, "group_norm_forward");
  if (fuse_silu)
    forward_impl<true>(y, mean, rstd, x, gamma, beta, s, workspace);
  else
    forward_impl<false>(y, mean, rstd, x, gamma, beta, s, workspace);
}

void group_norm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x, const float* mean,
                         const float* rstd, const float* gamma, const float* beta, const GroupNormShape& s,
                         bool fuse_silu, float* workspace, size_t workspace_floats) {
  profile::Scope profile_scope(profile::Kind::op, "group norm bwd");
  validate(s, workspace, workspace_floats, "group_norm_backward");
  if (fuse_silu)
    backward_impl<true>(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta, s, workspace);
  else
    backward_impl<false>(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta, s, workspace);
}

}  // namespace ddpm::cpu
