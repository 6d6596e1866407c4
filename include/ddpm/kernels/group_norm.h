// Group normalisation with a per-channel affine, optionally fused with SiLU, on NHWC activations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace ddpm::cpu {

struct GroupNormShape {
  int64_t batch;
  int64_t pixels;  // H*W
  int64_t channels;
  int64_t groups;  // must divide channels
  float eps;
};

// Floats of scratch memory that group_norm_forward/backward need for this shape (per-chunk
// partial sums and per-channel coefficients). It depends on the shape only, not on the number of
// threads: the work is split the same way for any thread count, so results are bit-identical
// whatever OMP_NUM_THREADS is. The workspace must be aligned for double (an Arena slot is).
size_t group_norm_workspace_floats(const GroupNormShape& s);

// Throws std::invalid_argument, prefixed with `fn`, unless every size is positive, groups divide
// channels and eps >= 0 (the checks the CPU and CUDA group norms share).
inline void check_group_norm_shape(const GroupNormShape& s, const char* fn) {
  const auto where = [fn] { return std::string(fn) + ": "; };
  if (s.batch <= 0 || s.pixels <= 0 || s.channels <= 0 || s.groups <= 0)
    throw std::invalid_argument(where() + "batch, pixels, channels and groups must be positive (got " +
                                std::to_string(s.batch) + ", " + std::to_string(s.pixels) + ", " +
                                std::to_string(s.channels) + ", " + std::to_string(s.groups) + ")");
  if (s.channels % s.groups != 0)
    throw std::invalid_argument(where() + "groups (" + std::to_string(s.groups) + ") must divide channels (" +
                                std::to_string(s.channels) + ")");
  if (!(s.eps >= 0.0f)) throw std::invalid_argument(where() + "eps must be >= 0");
}

// PyTorch semantics: per (sample, group) over pixels x channels-of-the-group, biased variance,
//   v = (x - mean) * rstd * gamma + beta,   rstd = 1 / sqrt(var + eps),
//   y = fuse_silu ? v * sigmoid(v) : v.
// x, y: [batch, pixels, channels]; gamma, beta: [channels]; mean, rstd: [batch, groups], written
// for the backward pass. Statistics use the two-pass method per chunk of pixels (fp32, shifted by the
// chunk's mean) and combine the chunks in double, so the variance stays accurate when the mean is
// large compared with the standard deviation.
// Throws std::invalid_argument for an invalid shape or a workspace smaller than
// group_norm_workspace_floats(s).
void group_norm_forward(float* y, float* mean, float* rstd, const float* x, const float* gamma,
                        const float* beta, const GroupNormShape& s, bool fuse_silu, float* workspace,
                        size_t workspace_floats);

// Gradients of the forward above. dx, dgamma, dbeta are overwritten (not accumulated). mean and
// rstd are the forward's outputs; with fuse_silu the pre-SiLU value is recomputed from x, mean,
// rstd, gamma and beta (nothing else needs saving); dx serves as scratch for it. dx may alias dy.
void group_norm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x,
                         const float* mean, const float* rstd, const float* gamma, const float* beta,
                         const GroupNormShape& s, bool fuse_silu, float* workspace,
                         size_t workspace_floats);

}  // namespace ddpm::cpu
