// The ops the U-Net's blocks call, on the device the U-Net was planned for: each forwards to the
// CPU op (ddpm::cpu) or to its CUDA twin (ddpm::cuda, same meaning, device pointers). The blocks
// are written once against this; the choice is one branch per call (or one virtual call for the
// planned ops), nothing against the ops' own cost. In a build without CUDA, Device::cuda throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "ddpm/kernels/conv2d.h"
#include "ddpm/kernels/group_norm.h"
#include "ddpm/kernels/precision.h"
#include "ddpm/tensor.h"

namespace ddpm::nn::dev {

// ---- planned ops ----
class ConvOp {
 public:
  static std::unique_ptr<ConvOp> make(Device device, const cpu::Conv2dShape& s, Precision precision,
                                      bool with_backward);
  virtual ~ConvOp() = default;
  virtual void set_weights(const float* weight_oihw) = 0;
  virtual void forward(const float* x, const float* bias, float* y) = 0;
  virtual void backward(const float* x, const float* dy, float* dx, float* dweight, float* dbias) = 0;
  virtual double forward_flops() const = 0;
  virtual Shape output_shape() const = 0;
};

class LinearOp {
 public:
  static std::unique_ptr<LinearOp> make(Device device, int64_t rows, int64_t in, int64_t out, Precision precision);
  virtual ~LinearOp() = default;
  virtual void set_weights(const float* weight) = 0;
  virtual void forward(const float* x, const float* bias, float* y) = 0;
  virtual void backward(const float* x, const float* dy, float* dx, float* dweight, float* dbias) = 0;
  virtual double forward_flops() const = 0;
};

class AttentionOp {
 public:
  static std::unique_ptr<AttentionOp> make(Device device, int64_t batch, int64_t positions, int64_t channels,
                                           Precision precision, bool training);
  // Floats of caller workspace an inference attention needs (the CPU op's, shared by all of a
  // U-Net's attentions; 0 on CUDA, whose op owns its buffers).
  static int64_t inference_workspace_floats(Device device, int64_t batch, int64_t positions, int64_t channels);
  virtual ~AttentionOp() = default;
  virtual void set_weights(const float* params) = 0;
  virtual void set_inference_workspace(float* workspace) = 0;
  virtual void forward(const float* x, const float* residual, float* y) = 0;
  virtual void backward(const float* dy, float* dx, float* dparams) = 0;
  virtual double forward_flops() const = 0;
  virtual size_t owned_bytes() const = 0;  // memory outside the U-Net's planned arena
};

// ---- plain ops (the group norm workspace is the CPU op's; CUDA needs none) ----
void group_norm_forward(Device d, float* y, float* mean, float* rstd, const float* x, const float* gamma,
                        const float* beta, const cpu::GroupNormShape& s, bool fuse_silu, float* workspace,
                        size_t workspace_floats);
void group_norm_backward(Device d, float* dx, float* dgamma, float* dbeta, const float* dy, const float* x,
                         const float* mean, const float* rstd, const float* gamma, const float* beta,
                         const cpu::GroupNormShape& s, bool fuse_silu, float* workspace, size_t workspace_floats);
void silu_forward(Device d, float* y, const float* x, int64_t n);
void silu_backward(Device d, float* dx, const float* dy, const float* x, int64_t n);
void add_inplace(Device d, float* y, const float* x, int64_t n);
void add_channel_bias_forward(Device d, float* y, const float* bias, int64_t batch, int64_t pixels, int64_t channels);
void add_channel_bias_backward(Device d, float* dbias, const float* dy, int64_t batch, int64_t pixels,
                               int64_t channels);
void dropout_forward(Device d, float* y, const float* x, int64_t n, float p, uint64_t seed, int64_t first);
void dropout_backward(Device d, float* dx, const float* dy, int64_t n, float p, uint64_t seed, int64_t first);
void upsample_nearest2x_forward(Device d, float* y, const float* x, int64_t batch, int64_t height, int64_t width,
                                int64_t channels);
void upsample_nearest2x_backward(Device d, float* dx, const float* dy, int64_t batch, int64_t height, int64_t width,
                                 int64_t channels);
void concat_channels_forward(Device d, float* y, const float* a, int64_t ca, const float* b, int64_t cb,
                             int64_t positions);
void concat_channels_backward(Device d, float* da, float* db, const float* dy, int64_t ca, int64_t cb,
                              int64_t positions);
void timestep_embedding_forward(Device d, float* out, const float* timesteps, int64_t batch, int64_t dim,
                                bool flip_sin_to_cos, float freq_shift);
void fill_zero(Device d, float* y, int64_t n);
// Host memory -> the device's memory, and back (plain copies on the CPU).
void copy_in(Device d, float* dst, const float* host_src, int64_t n);
void copy_out(Device d, float* host_dst, const float* src, int64_t n);

}  // namespace ddpm::nn::dev
