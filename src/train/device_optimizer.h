// The optimizer of a U-Net trained on CUDA, on the device: the Adam moments and the EMA live in
// device memory beside the model's parameters and gradients, and one fused kernel pass clips,
// steps and averages them (cuda::optimizer_step), so a training step sends nothing over PCIe but
// x_t, eps and the loss. The host copies are refreshed only for a checkpoint. Internal to src/train.
#pragma once

#include <cstdint>
#include <memory>

#include "ddpm/kernels/optimizer.h"
#include "ddpm/nn/unet.h"

namespace ddpm {

class DeviceOptimizer {
 public:
  // model: a training U-Net on Device::cuda; its gradients stay on the device from now on.
  // Throws cuda::Error in a build without CUDA or where no device answers.
  explicit DeviceOptimizer(UNet2D& model);
  ~DeviceOptimizer();
  DeviceOptimizer(const DeviceOptimizer&) = delete;
  DeviceOptimizer& operator=(const DeviceOptimizer&) = delete;

  void upload(const float* adam_m, const float* adam_v, const float* ema);
  // The device state into the host buffers, and the model's parameters into model.params().
  void download(float* adam_m, float* adam_v, float* ema);
  // The global L2 norm of the device gradients (before clipping), as cpu::clip_grad_norm returns it.
  float grad_norm();
  // Clip to max_norm, one Adam step (step counts from 1), then the EMA with ema_decay; the model's
  // ops get the new weights. The caller has checked that the loss and grad_norm() are finite.
  void step(const cpu::AdamConfig& adam, int64_t step, float max_norm, float ema_decay);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ddpm
