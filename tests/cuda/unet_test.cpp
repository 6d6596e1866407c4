// The whole U-Net on the GPU against the same U-Net on the CPU: forward, backward (every
// parameter's gradient), fp32 and bf16, and five training steps (MSE on fresh noise, Adam) that
// must log the same losses. Random weights (not init_weights, whose near-zero output layers would
// make eps ~0 and the comparison empty). Skipped, with the reason, where no CUDA device answers.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cuda_test_support.h"
#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/kernels/mse.h"
#include "ddpm/kernels/optimizer.h"
#include "ddpm/nn/unet.h"
#include "ddpm/nn/unet_config.h"

namespace ddpm {
namespace {

constexpr int64_t kBatch = 3;

struct Pair {
  UNet2D cpu, gpu;
  Pair(const UNet2DConfig& cfg, Precision p, bool training)
      : cpu(cfg, kBatch, p, training, Device::cpu), gpu(cfg, kBatch, p, training, Device::cuda) {
    const std::vector<float> w = test::random_normal(static_cast<size_t>(cpu.parameter_count()), 7, 0.05f);
    std::copy(w.begin(), w.end(), cpu.params());
    std::copy(w.begin(), w.end(), gpu.params());
    cpu.set_weights();
    gpu.set_weights();
  }
};

std::vector<float> run_forward(UNet2D& net, const std::vector<float>& x, const std::vector<float>& t, uint64_t seed) {
  const UNet2DConfig& c = net.config();
  std::vector<float> eps(static_cast<size_t>(kBatch * c.sample_height * c.sample_width * c.out_channels), test::kNaN);
  net.forward(x.data(), t.data(), eps.data(), seed);
  return eps;
}

void compare(const UNet2DConfig& cfg, Precision p, double forward_tol, double grad_tol) {
  Pair nets(cfg, p, true);
  const auto x = test::random_normal(static_cast<size_t>(kBatch * cfg.sample_height * cfg.sample_width *
                                                         cfg.in_channels), 11);
  const std::vector<float> t = {0.0f, 417.0f, 999.0f};
  const auto eps_cpu = run_forward(nets.cpu, x, t, 5);
  const auto eps_gpu = run_forward(nets.gpu, x, t, 5);
  EXPECT_LE(test::relative_norm_error(eps_gpu, eps_cpu), forward_tol) << "eps, " << precision_name(p);

  const auto d_eps = test::random_normal(eps_cpu.size(), 13);
  nets.cpu.backward(d_eps.data());
  nets.gpu.backward(d_eps.data());
  const int64_t n = nets.cpu.parameter_count();
  const std::vector<float> g_cpu(nets.cpu.grads(), nets.cpu.grads() + n), g_gpu(nets.gpu.grads(), nets.gpu.grads() + n);
  EXPECT_LE(test::relative_norm_error(g_gpu, g_cpu), grad_tol) << "all gradients, " << precision_name(p);
  // Per tensor too, so one wrong block cannot hide in the total (tiny tensors get 10x the room).
  for (const ParamInfo& info : nets.cpu.parameters()) {
    const auto begin = static_cast<size_t>(info.offset), end = begin + static_cast<size_t>(info.shape.numel());
    const std::vector<float> a(g_gpu.begin() + begin, g_gpu.begin() + end), b(g_cpu.begin() + begin, g_cpu.begin() + end);
    EXPECT_LE(test::relative_norm_error(a, b), 10 * grad_tol) << info.name << ", " << precision_name(p);
  }
}

// fp32 (TF32 off): cuDNN and cuBLASLt sum in other orders than oneDNN, and 30-odd layers compound
// it: 1e-4 of the norm for eps and the gradients (each op alone is checked to 1e-5 in the op tests).
TEST(CudaUNet, Fp32ForwardAndBackwardMatchTheCpu) {
  DDPM_REQUIRE_CUDA_DEVICE();
  compare(named_unet_config("fmnist-small"), Precision::fp32, 1e-4, 1e-4);
}

// bf16: both round the same operands to bf16 but accumulate differently: 2e-2 of the norm.
TEST(CudaUNet, Bf16ForwardAndBackwardMatchTheCpu) {
  DDPM_REQUIRE_CUDA_DEVICE();
  compare(named_unet_config("fmnist-small"), Precision::bf16, 2e-2, 3e-2);
}

TEST(CudaUNet, InferenceUNetMatchesTheTrainingOne) {
  DDPM_REQUIRE_CUDA_DEVICE();
  UNet2DConfig cfg = named_unet_config("fmnist-small");
  cfg.dropout = 0.0f;
  Pair train(cfg, Precision::fp32, true), infer(cfg, Precision::fp32, false);
  const auto x = test::random_normal(static_cast<size_t>(kBatch * 28 * 28), 3);
  const std::vector<float> t = {5.0f, 50.0f, 500.0f};
  const auto a = run_forward(train.gpu, x, t, 0);
  const auto b = run_forward(infer.gpu, x, t, 0);
  EXPECT_LE(test::relative_norm_error(b, a), 1e-6);  // the same kernels over other buffers
}

// Five DDPM training steps on each device from the same weights, data and noise: L_simple, the
// gradients (downloaded by backward()), Adam on the host. The losses must agree to fp32 rounding.
TEST(CudaUNet, FiveTrainingStepsLogTheCpuLosses) {
  DDPM_REQUIRE_CUDA_DEVICE();
  const UNet2DConfig cfg = named_unet_config("fmnist-small");
  Pair nets(cfg, Precision::fp32, true);
  const int64_t n = nets.cpu.parameter_count(), per = kBatch * 28 * 28;
  std::vector<float> m_cpu(static_cast<size_t>(n)), v_cpu(m_cpu.size()), m_gpu(m_cpu.size()), v_gpu(m_cpu.size());
  NoiseRng rng(3);
  for (int step = 1; step <= 5; ++step) {
    std::vector<float> x0 = test::random_uniform(static_cast<size_t>(per), 100 + step, -1.0f, 1.0f), noise(x0.size());
    rng.fill_normal(noise.data(), per);
    std::vector<float> x_t(x0.size());
    const float a = 0.7f;  // one fixed alpha-bar: the model, not the schedule, is under test
    for (size_t i = 0; i < x0.size(); ++i) x_t[i] = std::sqrt(a) * x0[i] + std::sqrt(1 - a) * noise[i];
    const std::vector<float> t = {100.0f, 200.0f, 300.0f};
    double loss[2];
    int k = 0;
    for (auto [net, m, v] : {std::tuple{&nets.cpu, &m_cpu, &v_cpu}, std::tuple{&nets.gpu, &m_gpu, &v_gpu}}) {
      const auto eps = run_forward(*net, x_t, t, static_cast<uint64_t>(step));
      loss[k++] = cpu::mse_forward(eps.data(), noise.data(), per);
      std::vector<float> d_eps(eps.size());
      cpu::mse_backward(d_eps.data(), eps.data(), noise.data(), per);
      net->backward(d_eps.data());
      cpu::clip_grad_norm(net->grads(), n, 1.0f);
      cpu::adam_step(net->params(), net->grads(), m->data(), v->data(), n, cpu::AdamConfig{2e-4f}, step);
      net->set_weights();
    }
    EXPECT_NEAR(loss[1], loss[0], 1e-4 * loss[0]) << "step " << step;
  }
}

}  // namespace
}  // namespace ddpm
