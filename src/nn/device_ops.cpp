// The U-Net's ops on the CPU or on CUDA: one branch per call. The CUDA half exists only in a build
// with the CUDA backend (DDPM_HAVE_CUDA); without it, Device::cuda throws the backend's message.
#include "nn/device_ops.h"

#include <algorithm>
#include <cstring>

#include "ddpm/kernels/add.h"
#include "ddpm/kernels/attention.h"
#include "ddpm/kernels/concat.h"
#include "ddpm/kernels/cuda/runtime.h"
#include "ddpm/kernels/dropout.h"
#include "ddpm/kernels/linear.h"
#include "ddpm/kernels/silu.h"
#include "ddpm/kernels/timestep_embedding.h"
#include "ddpm/kernels/upsample.h"

#ifdef DDPM_HAVE_CUDA
#include "ddpm/kernels/cuda/attention.h"
#include "ddpm/kernels/cuda/conv2d.h"
#include "ddpm/kernels/cuda/matmul.h"
#include "ddpm/kernels/cuda/ops.h"
#define DDPM_ON_DEVICE(d, cpu_call, cuda_call) \
  do {                                         \
    if ((d) == Device::cuda) {                 \
      cuda_call;                               \
    } else {                                   \
      cpu_call;                                \
    }                                          \
  } while (0)
#else
#define DDPM_ON_DEVICE(d, cpu_call, cuda_call)                             \
  do {                                                                     \
    if ((d) == Device::cuda) cuda::require_device("the U-Net on --device cuda"); \
    cpu_call;                                                              \
  } while (0)
#endif

namespace ddpm::nn::dev {

namespace {

template <class Op>
class ConvOf final : public ConvOp {
 public:
  ConvOf(const cpu::Conv2dShape& s, Precision p, bool with_backward) : op_(s, p, with_backward) {}
  void set_weights(const float* w) override { op_.set_weights(w); }
  void forward(const float* x, const float* bias, float* y) override { op_.forward(x, bias, y); }
  void backward(const float* x, const float* dy, float* dx, float* dw, float* db) override {
    op_.backward(x, dy, dx, dw, db);
  }
  double forward_flops() const override { return op_.forward_flops(); }
  Shape output_shape() const override { return op_.output_shape(); }

 private:
  Op op_;
};

template <class Op>
class LinearOf final : public LinearOp {
 public:
  LinearOf(int64_t rows, int64_t in, int64_t out, Precision p) : op_(rows, in, out, p) {}
  void set_weights(const float* w) override { op_.set_weights(w); }
  void forward(const float* x, const float* bias, float* y) override { op_.forward(x, bias, y); }
  void backward(const float* x, const float* dy, float* dx, float* dw, float* db) override {
    op_.backward(x, dy, dx, dw, db);
  }
  double forward_flops() const override { return op_.forward_flops(); }

 private:
  Op op_;
};

class CpuAttention final : public AttentionOp {
 public:
  CpuAttention(int64_t batch, int64_t positions, int64_t channels, Precision p, bool training)
      : op_(batch, positions, channels, p, training) {}
  void set_weights(const float* params) override { op_.set_weights(params); }
  void set_inference_workspace(float* workspace) override { op_.set_inference_workspace(workspace); }
  void forward(const float* x, const float* residual, float* y) override { op_.forward(x, residual, y); }
  void backward(const float* dy, float* dx, float* dparams) override { op_.backward(dy, dx, dparams); }
  double forward_flops() const override { return op_.forward_flops(); }
  size_t owned_bytes() const override { return op_.owned_bytes(); }

 private:
  cpu::Attention op_;
};

#ifdef DDPM_HAVE_CUDA
class CudaAttention final : public AttentionOp {
 public:
  CudaAttention(int64_t batch, int64_t positions, int64_t channels, Precision p, bool training)
      : op_(batch, positions, channels, p, training),
        bytes_(static_cast<size_t>(batch * positions * (6 * channels + 2 * positions)) * sizeof(float)) {}
  void set_weights(const float* params) override { op_.set_weights(params); }
  void set_inference_workspace(float*) override {}
  void forward(const float* x, const float* residual, float* y) override { op_.forward(x, residual, y); }
  void backward(const float* dy, float* dx, float* dparams) override { op_.backward(dy, dx, dparams); }
  double forward_flops() const override { return op_.forward_flops(); }
  size_t owned_bytes() const override { return bytes_; }  // an estimate: q, k, v, outputs, probabilities

 private:
  cuda::Attention op_;
  size_t bytes_;
};
#endif

}  // namespace

std::unique_ptr<ConvOp> ConvOp::make(Device device, const cpu::Conv2dShape& s, Precision precision,
                                     bool with_backward) {
  std::unique_ptr<ConvOp> op;
  DDPM_ON_DEVICE(device, op = std::make_unique<ConvOf<cpu::Conv2d>>(s, precision, with_backward),
                 op = std::make_unique<ConvOf<cuda::Conv2d>>(s, precision, with_backward));
  return op;
}

std::unique_ptr<LinearOp> LinearOp::make(Device device, int64_t rows, int64_t in, int64_t out, Precision precision) {
  std::unique_ptr<LinearOp> op;
  DDPM_ON_DEVICE(device, op = std::make_unique<LinearOf<cpu::Linear>>(rows, in, out, precision),
                 op = std::make_unique<LinearOf<cuda::Linear>>(rows, in, out, precision));
  return op;
}

std::unique_ptr<AttentionOp> AttentionOp::make(Device device, int64_t batch, int64_t positions, int64_t channels,
                                               Precision precision, bool training) {
  std::unique_ptr<AttentionOp> op;
  DDPM_ON_DEVICE(device, op = std::make_unique<CpuAttention>(batch, positions, channels, precision, training),
                 op = std::make_unique<CudaAttention>(batch, positions, channels, precision, training));
  return op;
}

int64_t AttentionOp::inference_workspace_floats(Device device, int64_t batch, int64_t positions, int64_t channels) {
  return device == Device::cuda ? 0 : cpu::Attention::inference_workspace_floats(batch, positions, channels);
}

void group_norm_forward(Device d, float* y, float* mean, float* rstd, const float* x, const float* gamma,
                        const float* beta, const cpu::GroupNormShape& s, bool fuse_silu, float* workspace,
                        size_t workspace_floats) {
  DDPM_ON_DEVICE(d, cpu::group_norm_forward(y, mean, rstd, x, gamma, beta, s, fuse_silu, workspace, workspace_floats),
                 cuda::group_norm_forward(y, mean, rstd, x, gamma, beta, s, fuse_silu));
}

void group_norm_backward(Device d, float* dx, float* dgamma, float* dbeta, const float* dy, const float* x,
                         const float* mean, const float* rstd, const float* gamma, const float* beta,
                         const cpu::GroupNormShape& s, bool fuse_silu, float* workspace, size_t workspace_floats) {
  DDPM_ON_DEVICE(d,
                 cpu::group_norm_backward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta, s, fuse_silu, workspace,
                                          workspace_floats),
                 cuda::group_norm_backward(dx, dgamma, dbeta, dy, x, mean, rstd, gamma, beta, s, fuse_silu));
}

void silu_forward(Device d, float* y, const float* x, int64_t n) {
  DDPM_ON_DEVICE(d, cpu::silu_forward(y, x, n), cuda::silu_forward(y, x, n));
}

void silu_backward(Device d, float* dx, const float* dy, const float* x, int64_t n) {
  DDPM_ON_DEVICE(d, cpu::silu_backward(dx, dy, x, n), cuda::silu_backward(dx, dy, x, n));
}

void add_inplace(Device d, float* y, const float* x, int64_t n) {
  DDPM_ON_DEVICE(d, cpu::add_inplace(y, x, n), cuda::add_inplace(y, x, n));
}

void add_channel_bias_forward(Device d, float* y, const float* bias, int64_t batch, int64_t pixels, int64_t channels) {
  DDPM_ON_DEVICE(d, cpu::add_channel_bias_forward(y, bias, batch, pixels, channels),
                 cuda::add_channel_bias_forward(y, bias, batch, pixels, channels));
}

void add_channel_bias_backward(Device d, float* dbias, const float* dy, int64_t batch, int64_t pixels,
                               int64_t channels) {
  DDPM_ON_DEVICE(d, cpu::add_channel_bias_backward(dbias, dy, batch, pixels, channels),
                 cuda::add_channel_bias_backward(dbias, dy, batch, pixels, channels));
}

void dropout_forward(Device d, float* y, const float* x, int64_t n, float p, uint64_t seed, int64_t first) {
  DDPM_ON_DEVICE(d, cpu::dropout_forward(y, x, n, p, seed, first), cuda::dropout_forward(y, x, n, p, seed, first));
}

void dropout_backward(Device d, float* dx, const float* dy, int64_t n, float p, uint64_t seed, int64_t first) {
  DDPM_ON_DEVICE(d, cpu::dropout_backward(dx, dy, n, p, seed, first),
                 cuda::dropout_backward(dx, dy, n, p, seed, first));
}

void upsample_nearest2x_forward(Device d, float* y, const float* x, int64_t batch, int64_t height, int64_t width,
                                int64_t channels) {
  DDPM_ON_DEVICE(d, cpu::upsample_nearest2x_forward(y, x, batch, height, width, channels),
                 cuda::upsample_nearest2x_forward(y, x, batch, height, width, channels));
}

void upsample_nearest2x_backward(Device d, float* dx, const float* dy, int64_t batch, int64_t height, int64_t width,
                                 int64_t channels) {
  DDPM_ON_DEVICE(d, cpu::upsample_nearest2x_backward(dx, dy, batch, height, width, channels),
                 cuda::upsample_nearest2x_backward(dx, dy, batch, height, width, channels));
}

void concat_channels_forward(Device d, float* y, const float* a, int64_t ca, const float* b, int64_t cb,
                             int64_t positions) {
  DDPM_ON_DEVICE(d, cpu::concat_channels_forward(y, a, ca, b, cb, positions),
                 cuda::concat_channels_forward(y, a, ca, b, cb, positions));
}

void concat_channels_backward(Device d, float* da, float* db, const float* dy, int64_t ca, int64_t cb,
                              int64_t positions) {
  DDPM_ON_DEVICE(d, cpu::concat_channels_backward(da, db, dy, ca, cb, positions),
                 cuda::concat_channels_backward(da, db, dy, ca, cb, positions));
}

void timestep_embedding_forward(Device d, float* out, const float* timesteps, int64_t batch, int64_t dim,
                                bool flip_sin_to_cos, float freq_shift) {
  DDPM_ON_DEVICE(d, cpu::timestep_embedding_forward(out, timesteps, batch, dim, flip_sin_to_cos, freq_shift),
                 cuda::timestep_embedding_forward(out, timesteps, batch, dim, flip_sin_to_cos, freq_shift));
}

void fill_zero(Device d, float* y, int64_t n) {
  if (n <= 0) return;
  DDPM_ON_DEVICE(d, std::fill(y, y + n, 0.0f), cuda::zero(y, static_cast<size_t>(n) * sizeof(float)));
}

void copy_in(Device d, float* dst, const float* host_src, int64_t n) {
  if (n <= 0) return;
  const size_t bytes = static_cast<size_t>(n) * sizeof(float);
  DDPM_ON_DEVICE(d, std::memcpy(dst, host_src, bytes), cuda::upload(dst, host_src, bytes));
}

void copy_out(Device d, float* host_dst, const float* src, int64_t n) {
  if (n <= 0) return;
  const size_t bytes = static_cast<size_t>(n) * sizeof(float);
  DDPM_ON_DEVICE(d, std::memcpy(host_dst, src, bytes), cuda::download(host_dst, src, bytes));
}

}  // namespace ddpm::nn::dev
