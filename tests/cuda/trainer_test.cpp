// Training on the GPU (--device cuda: the U-Net on CUDA, Adam and the EMA on the device) against
// the same run on the CPU: the same losses step by step, the same weights after a checkpoint, and a
// checkpoint written on one device resumes on the other. Skipped, with the reason, without a device.
#include "ddpm/train/trainer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "cuda_test_support.h"

namespace ddpm {
namespace {

namespace fs = std::filesystem;

struct Runs {
  fs::path root = fs::temp_directory_path() / ("ddpm_cuda_trainer_test_" + std::to_string(::getpid()));
  Runs() { fs::remove_all(root); }
  ~Runs() { fs::remove_all(root); }

  TrainOptions options(const std::string& name, Device device) const {
    TrainOptions o;
    o.data = "synthetic";
    o.config = "fmnist-small";
    o.out = (root / name).string();
    o.batch = 4;
    o.steps = 6;
    o.lr = 1e-3;
    o.warmup_steps = 2;
    o.ema_warmup = true;
    o.device = device;
    return o;
  }
};

double max_relative_difference(const float* a, const float* b, int64_t n) {
  double worst = 0, scale = 0;
  for (int64_t i = 0; i < n; ++i) {
    worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::abs(b[i])));
  }
  return worst / scale;
}

TEST(CudaTrainer, WithoutADeviceTheRunIsRefusedBeforeAnythingIsWritten) {
  if (cuda::device_info().usable) GTEST_SKIP() << "a device answers: nothing to refuse";
  Runs runs;
  try {
    Trainer trainer(runs.options("refused", Device::cuda));
    FAIL() << "a --device cuda run started without a device";
  } catch (const cuda::Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs a CUDA device"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(runs.root / "refused"));
}

// Six steps with warm-up, clipping, Adam and the EMA: the losses agree to 1e-4 relative (the U-Net
// test's bound; Adam divides by sqrt(v), which magnifies rounding in near-zero gradients, so the
// weights get 1e-3 of their largest value, as the data-parallel test allows).
TEST(CudaTrainer, SixStepsMatchTheCpuRun) {
  DDPM_REQUIRE_CUDA_DEVICE();
  Runs runs;
  Trainer on_cpu(runs.options("cpu", Device::cpu)), on_gpu(runs.options("gpu", Device::cuda));
  for (int step = 1; step <= 6; ++step) {
    const double a = on_cpu.train_step(), b = on_gpu.train_step();
    EXPECT_NEAR(b, a, 1e-4 * a) << "step " << step;
  }
  const int64_t n = on_cpu.parameter_count();
  EXPECT_LE(max_relative_difference(on_gpu.params(), on_cpu.params(), n), 1e-3);
  EXPECT_LE(max_relative_difference(on_gpu.ema(), on_cpu.ema(), n), 1e-3);
}

// A checkpoint carries the device state (Adam moments, EMA) through the host: GPU -> checkpoint ->
// CPU resume continues as the GPU run does, and a CPU checkpoint resumes on the GPU.
TEST(CudaTrainer, CheckpointsMoveBetweenDevices) {
  DDPM_REQUIRE_CUDA_DEVICE();
  Runs runs;
  for (const auto& [first, second] : {std::pair{Device::cuda, Device::cpu}, std::pair{Device::cpu, Device::cuda}}) {
    const std::string name = std::string(device_name(first)) + "_then_" + device_name(second);
    double expected = 0;
    {
      Trainer trainer(runs.options(name, first));
      for (int i = 0; i < 3; ++i) trainer.train_step();
      trainer.save_checkpoint();
      expected = trainer.train_step();  // the 4th step on the first device
    }
    ResumeChanges changes;
    changes.device = second;
    auto resumed = Trainer::resume((runs.root / name).string(), changes);
    EXPECT_EQ(resumed->step(), 3);
    EXPECT_NEAR(resumed->train_step(), expected, 1e-4 * expected) << name;
  }
}

}  // namespace
}  // namespace ddpm
