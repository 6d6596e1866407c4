// The diffusers UNet2DModel (facts §5.3), assembled from a UNet2DConfig, with explicit forward and
// backward. Parameters and gradients live in two flat buffers in diffusers' state-dict order, each
// tensor in PyTorch layout, so a checkpoint maps onto params() one to one. All memory (activations
// kept for the backward, gradients, workspaces, oneDNN primitives) is planned in the constructor;
// forward() and backward() do not touch the heap.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ddpm/kernels/precision.h"
#include "ddpm/nn/unet_config.h"
#include "ddpm/tensor.h"

namespace ddpm {

// One parameter tensor: its diffusers state-dict name, its PyTorch shape, and where it starts in
// the flat params()/grads() buffers (in floats).
struct ParamInfo {
  std::string name;
  Shape shape;
  int64_t offset;
};

class UNet2D {
 public:
  // Validates the config (std::invalid_argument naming the key) and that the sample size survives
  // the downsampling (height and width divisible by 2^(levels-1)), then plans all memory.
  // training = false plans for inference: dropout is off, backward() throws std::logic_error, and
  // each block's intermediate buffers are overlaid with the next block's (less memory, warmer
  // caches); the output is bit-identical to a training U-Net's with dropout 0.
  //
  // device = Device::cuda plans the activations and runs every op on the GPU (the CUDA backend;
  // cuda::Error when there is none). The interface stays the same: params(), grads() and the
  // pointers given to forward()/backward() are host memory; set_weights() uploads the parameters,
  // forward() uploads x and the timesteps and downloads eps, backward() downloads the gradients.
  UNet2D(const UNet2DConfig& config, int64_t batch, Precision precision, bool training,
         Device device = Device::cpu);
  ~UNet2D();
  UNet2D(const UNet2D&) = delete;
  UNet2D& operator=(const UNet2D&) = delete;

  const UNet2DConfig& config() const;
  int64_t batch() const;
  Precision precision() const;
  bool training() const;
  Device device() const;

  // diffusers registration order (facts §5.4): conv_in, time_embedding, down_blocks, up_blocks,
  // mid_block, conv_norm_out, conv_out; Attn* blocks list their attentions before their resnets.
  const std::vector<ParamInfo>& parameters() const;
  int64_t parameter_count() const;
  const ParamInfo& parameter(const std::string& name) const;  // throws std::out_of_range naming it

  float* params();
  const float* params() const;
  float* grads();  // nullptr for an inference U-Net
  const float* grads() const;

  // Hands the current params() to the ops (reorders convolution weights, copies linear ones).
  // Call after every change of params() (loading, init, each optimizer step), before forward().
  void set_weights();

  // Device::cuda only (nullptr on the CPU): the parameters and gradients in device memory, for an
  // optimizer that runs there (train/device_optimizer.h). With keep_gradients_on_device(true),
  // backward() leaves the gradients in device_grads() and grads() is not updated;
  // set_weights_from_device() hands device_params() to the ops after the device changed them, and
  // download_params() refreshes params() from them.
  float* device_params();
  float* device_grads();
  void keep_gradients_on_device(bool keep);
  void set_weights_from_device();
  void download_params();

  // DDPM's initialisation (HO-REPO nn.py default_init): every conv/linear weight uniform with
  // variance scaling fan_avg, scale 1 (limit sqrt(3 / ((fan_in + fan_out) / 2)), fans including
  // the kernel area); the resblocks' conv2, the attentions' to_out.0 and conv_out with scale 1e-10;
  // all biases 0; group-norm weights 1. Deterministic in seed; calls set_weights().
  void init_weights(uint64_t seed);

  // x: [batch, H, W, in_channels] NHWC fp32; timesteps: [batch] (float, integer-valued in DDPM);
  // eps: [batch, H, W, out_channels]. Dropout (config.dropout, only when training) draws its mask
  // from dropout_seed, a different stream per resnet block. class_labels: [batch] in
  // [0, num_class_embeds) for a class-conditional U-Net (std::invalid_argument when missing or out
  // of range), ignored otherwise.
  void forward(const float* x, const float* timesteps, float* eps, uint64_t dropout_seed,
               const int32_t* class_labels = nullptr);
  // Device::cuda: forward() over device pointers (x, timesteps, eps in device memory; class_labels
  // stay host memory), with no copy over PCIe and no waiting, so a sampler can keep its state on the
  // device and the call can be captured in a cuda::Graph. std::logic_error on the CPU.
  void forward_device(const float* x, const float* timesteps, float* eps, uint64_t dropout_seed = 0,
                      const int32_t* class_labels = nullptr);
  // Data-parallel: this U-Net's batch is images [first_image, first_image + batch) of a larger
  // batch, and its dropout masks are that batch's (so P workers compute what one process would).
  void set_shard(int64_t first_image);
  // Gradients of sum(d_eps * eps) for the last forward() with respect to every parameter, written
  // (not accumulated) into grads().
  void backward(const float* d_eps);

  double forward_flops() const;  // convolutions, linear layers and attention products
  size_t activation_bytes() const;  // the planned activation, gradient and workspace memory

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddpm
