// The device optimizer: four parameter-sized device buffers (Adam's m and v, the EMA) and the fused
// step's workspace. In a build without the CUDA backend the constructor says so.
#include "train/device_optimizer.h"

#include <stdexcept>

#include "ddpm/kernels/cuda/runtime.h"

#ifdef DDPM_HAVE_CUDA
#include "ddpm/kernels/cuda/ops.h"
#endif

namespace ddpm {

struct DeviceOptimizer::Impl {
  UNet2D* model = nullptr;
  int64_t n = 0;
  cuda::DeviceBuffer m, v, ema, workspace, norm;
};

DeviceOptimizer::DeviceOptimizer(UNet2D& model) : impl_(std::make_unique<Impl>()) {
  cuda::require_device("training with --device cuda");
  if (model.device() != Device::cuda || !model.training())
    throw std::logic_error("DeviceOptimizer: the model must be a training U-Net on Device::cuda");
  Impl& s = *impl_;
  s.model = &model;
  s.n = model.parameter_count();
  const size_t bytes = static_cast<size_t>(s.n) * sizeof(float);
  s.m = cuda::DeviceBuffer(bytes);
  s.v = cuda::DeviceBuffer(bytes);
  s.ema = cuda::DeviceBuffer(bytes);
#ifdef DDPM_HAVE_CUDA
  s.workspace = cuda::DeviceBuffer(cuda::optimizer_workspace_bytes(s.n));
#endif
  s.norm = cuda::DeviceBuffer(sizeof(float));
  model.keep_gradients_on_device(true);
}

DeviceOptimizer::~DeviceOptimizer() = default;

void DeviceOptimizer::upload(const float* adam_m, const float* adam_v, const float* ema) {
  const Impl& s = *impl_;
  const size_t bytes = static_cast<size_t>(s.n) * sizeof(float);
  cuda::upload(s.m.data(), adam_m, bytes);
  cuda::upload(s.v.data(), adam_v, bytes);
  cuda::upload(s.ema.data(), ema, bytes);
}

void DeviceOptimizer::download(float* adam_m, float* adam_v, float* ema) {
  const Impl& s = *impl_;
  const size_t bytes = static_cast<size_t>(s.n) * sizeof(float);
  cuda::download(adam_m, s.m.data(), bytes);
  cuda::download(adam_v, s.v.data(), bytes);
  cuda::download(ema, s.ema.data(), bytes);
  s.model->download_params();
}

#ifdef DDPM_HAVE_CUDA
float DeviceOptimizer::grad_norm() {
  return static_cast<float>(cuda::global_grad_norm(impl_->model->device_grads(), impl_->n));
}

void DeviceOptimizer::step(const cpu::AdamConfig& adam, int64_t step, float max_norm, float ema_decay) {
  Impl& s = *impl_;
  cuda::optimizer_step(s.model->device_params(), s.model->device_grads(), s.m.as<float>(), s.v.as<float>(),
                       s.ema.as<float>(), s.n, adam, step, max_norm, ema_decay, s.norm.as<float>(), s.workspace.data());
  s.model->set_weights_from_device();
}
#else
float DeviceOptimizer::grad_norm() { return 0.0f; }  // unreachable: the constructor threw
void DeviceOptimizer::step(const cpu::AdamConfig&, int64_t, float, float) {}
#endif

}  // namespace ddpm
