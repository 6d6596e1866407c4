// Sampling on the device: the DDPM chain with x, ε and the noise on the GPU against the host
// sampler (same weights, same seed: the same images up to the U-Net's rounding, and the same
// stream position after), and the U-Net's forward replayed from a CUDA Graph against a direct call.
#include <gtest/gtest.h>

#include <vector>

#include "cuda_test_support.h"
#include "ddpm/diffusion/device_sampler.h"
#include "ddpm/diffusion/timesteps.h"
#include "ddpm/nn/graph_forward.h"
#include "ddpm/nn/unet.h"
#include "ddpm/nn/unet_config.h"

namespace ddpm {
namespace {

constexpr int64_t kBatch = 2, kPerItem = 28 * 28;

void random_weights(UNet2D& net) {
  const std::vector<float> w = test::random_normal(static_cast<size_t>(net.parameter_count()), 7, 0.05f);
  std::copy(w.begin(), w.end(), net.params());
  net.set_weights();
}

TEST(CudaSampler, WithoutADeviceItSaysSo) {
  if (cuda::device_info().usable) GTEST_SKIP() << "a device answers: nothing to refuse";
  std::vector<float> x(kBatch * kPerItem);
  NoiseRng rng(1);
  test::expect_error(
      [&] {
        sample_ddpm_respaced_on_device([](const float*, int64_t, float*) {}, x.data(), kBatch, kPerItem,
                                       NoiseSchedule(ScheduleKind::linear, 1000), {999, 500, 0}, Variance::fixed_large,
                                       true, rng);
      },
      "sampling on --device cuda", "needs a CUDA device");
}

// Six respaced DDPM steps (fixed_large, clipping) from the same x_T and seed: the images agree to
// 1e-4 of their norm (the U-Net's fp32 rounding, carried through six steps; the noise and the update
// are the CPU's to the last float bit) and the stream stands at the same place.
TEST(CudaSampler, DeviceChainMatchesTheHostSampler) {
  DDPM_REQUIRE_CUDA_DEVICE();
  const UNet2DConfig cfg = named_unet_config("fmnist-small");
  UNet2D cpu_net(cfg, kBatch, Precision::fp32, false, Device::cpu), gpu_net(cfg, kBatch, Precision::fp32, false,
                                                                            Device::cuda);
  random_weights(cpu_net);
  random_weights(gpu_net);
  const NoiseSchedule schedule(ScheduleKind::linear, 1000);
  const std::vector<int64_t> steps = sampling_timesteps(1000, 6, Spacing::trailing, 0);
  const std::vector<float> x_T = test::random_normal(kBatch * kPerItem, 21);

  std::vector<float> host = x_T, t_buffer(kBatch);
  NoiseRng host_rng(5);
  sample_ddpm_respaced(
      [&](const float* x, int64_t t, float* eps) {
        std::fill(t_buffer.begin(), t_buffer.end(), static_cast<float>(t));
        cpu_net.forward(x, t_buffer.data(), eps, 0);
      },
      host.data(), kBatch, kPerItem, schedule, steps, Variance::fixed_large, true, host_rng);

  std::vector<float> device = x_T;
  NoiseRng device_rng(5);
  GraphForward forward(gpu_net);
  sample_ddpm_respaced_on_device([&](const float* x, int64_t t, float* eps) { forward(x, t, eps); }, device.data(),
                                 kBatch, kPerItem, schedule, steps, Variance::fixed_large, true, device_rng);
  EXPECT_TRUE(forward.replaying()) << "steps 3-6 should have replayed a graph";
  EXPECT_LE(test::relative_norm_error(device, host), 1e-4);
  EXPECT_EQ(device_rng.offset(), host_rng.offset());
}

// A replayed graph computes what the direct call computes, bit for bit, at every timestep.
TEST(CudaSampler, GraphReplayEqualsTheDirectForward) {
  DDPM_REQUIRE_CUDA_DEVICE();
  const UNet2DConfig cfg = named_unet_config("fmnist-small");
  UNet2D net(cfg, kBatch, Precision::fp32, false, Device::cuda);
  random_weights(net);
  test::DeviceArray x(test::random_normal(kBatch * kPerItem, 3));
  test::DeviceArray graphed(kBatch * kPerItem), direct(kBatch * kPerItem);
  GraphForward forward(net);
  for (const int64_t step : {999, 998, 500, 3}) {
    forward(x.data(), step, graphed.data());
    const std::vector<float> steps(kBatch, static_cast<float>(step));
    test::DeviceArray steps_dev(steps);
    net.forward_device(x.data(), steps_dev.data(), direct.data());
    EXPECT_EQ(graphed.host(), direct.host()) << "t = " << step;
  }
  EXPECT_TRUE(forward.replaying());
}

}  // namespace
}  // namespace ddpm
