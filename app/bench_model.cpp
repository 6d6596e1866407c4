// Training step = what `ddpm train` does per step (a batch from the batcher, the L_simple draw,
// forward, loss, backward, gradient clipping, Adam, EMA, weight reorder), through the Trainer
// itself on synthetic images. Sampling step = one U-Net forward plus the DDPM update and its noise.
// Both are timed step by step after a warm-up; the figures are medians (the machine is shared, and
// other tenants only ever add time), with the best step beside them.
#include "bench_model.h"

#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "ddpm/bench/ceiling.h"
#include "ddpm/bench/profiler.h"
#include "ddpm/diffusion/ddpm_sampler.h"
#include "ddpm/diffusion/device_sampler.h"
#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/io/model_config.h"
#include "ddpm/kernels/cuda/runtime.h"
#include "ddpm/kernels/dnnl_info.h"
#include "ddpm/nn/graph_forward.h"
#include "ddpm/nn/unet.h"
#include "ddpm/train/trainer.h"
#include "device_flag.h"

namespace ddpm::app {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct StepTimes {
  double median_s = 0, best_s = 0, total_s = 0;
  int64_t steps = 0;
};

// Runs step() `warmup` times untimed, then until `seconds` have passed (at least 5 steps). The
// profiler's totals cover the timed steps only.
StepTimes time_steps(const std::function<void()>& step, int warmup, double seconds) {
  for (int i = 0; i < warmup; ++i) step();
  profile::reset();
  std::vector<double> times;
  const auto start = Clock::now();
  while (times.size() < 5 || std::chrono::duration<double>(Clock::now() - start).count() < seconds) {
    const auto t0 = Clock::now();
    step();
    times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  double total = 0;
  for (double t : times) total += t;
  std::sort(times.begin(), times.end());
  return {times[times.size() / 2], times.front(), total, static_cast<int64_t>(times.size())};
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

UNet2DConfig config_named(const std::string& name_or_path) {
  return fs::is_regular_file(name_or_path) ? read_unet_config(name_or_path) : named_unet_config(name_or_path);
}

StepTimes bench_train(const BenchModelOptions& o, int64_t batch) {
  const fs::path run = fs::temp_directory_path() / ("ddpm_bench_" + std::to_string(::getpid()));
  fs::remove_all(run);
  TrainOptions t;
  t.data = "synthetic";
  t.config = o.config;
  t.out = run.string();
  t.batch = batch;
  t.precision = parse_precision(o.precision);
  t.device = selected_device();
  t.steps = 1000000;
  StepTimes times;
  try {
    Trainer trainer(t);
    times = time_steps([&] { trainer.train_step(); }, 3, o.seconds);
  } catch (...) {
    fs::remove_all(run);
    throw;
  }
  fs::remove_all(run);
  return times;
}

StepTimes bench_sample(const BenchModelOptions& o, int64_t batch) {
  const UNet2DConfig cfg = config_named(o.config);
  UNet2D net(cfg, batch, parse_precision(o.precision), false, selected_device());
  net.init_weights(1);
  const NoiseSchedule schedule(ScheduleKind::linear, 1000);
  const int64_t n = batch * cfg.sample_height * cfg.sample_width * cfg.in_channels;
  std::vector<float> x(static_cast<size_t>(n)), eps(static_cast<size_t>(n * cfg.out_channels / cfg.in_channels)),
      z(static_cast<size_t>(n)), timesteps(static_cast<size_t>(batch));
  NoiseRng rng(1, 0);
  rng.fill_normal(x.data(), n);
  int64_t t = schedule.num_timesteps() - 1;
  if (net.device() == Device::cuda) {  // x, eps and the noise stay on the device; the U-Net is a graph
    GraphForward model(net);
    cuda::DeviceBuffer x_dev(x.size() * sizeof(float)), eps_dev(eps.size() * sizeof(float)),
        z_dev(z.size() * sizeof(float));
    cuda::upload(x_dev.data(), x.data(), x.size() * sizeof(float));
    return time_steps(
        [&] {
          model(x_dev.as<float>(), t, eps_dev.as<float>());
          ddpm_step_on_device(x_dev.as<float>(), eps_dev.as<float>(), z_dev.as<float>(), t, n, schedule,
                              Variance::fixed_large, true, rng);
          cuda::synchronize();  // the step's time is the device's
          t = t > 1 ? t - 1 : schedule.num_timesteps() - 1;
        },
        3, o.seconds);
  }
  return time_steps(
      [&] {
        std::fill(timesteps.begin(), timesteps.end(), static_cast<float>(t));
        net.forward(x.data(), timesteps.data(), eps.data(), 0);
        profile::Scope scope(profile::Kind::block, "noise draw + DDPM update");
        rng.fill_normal(z.data(), n);
        ddpm_step(x.data(), x.data(), eps.data(), t, z.data(), n, schedule, Variance::fixed_large, true);
        t = t > 1 ? t - 1 : schedule.num_timesteps() - 1;  // stay on steps that add noise
      },
      3, o.seconds);
}

// Mean milliseconds per timed step and share of the mean step, largest first (means, so that the
// rows add up to the step).
void print_profile(const StepTimes& times, bool json, const std::string& mode) {
  const double step_ms = times.total_s * 1e3 / static_cast<double>(times.steps);
  for (const auto kind : {profile::Kind::op, profile::Kind::block}) {
    const char* what = kind == profile::Kind::op ? "op" : "block";
    if (!json)
      std::printf("    %s %s: ms per step (share of the mean step, %.1f ms), calls per step\n", mode.c_str(),
                  kind == profile::Kind::op ? "ops (self time)" : "blocks", step_ms);
    for (const profile::Total& t : profile::totals(kind)) {
      const double ms = t.seconds * 1e3 / static_cast<double>(times.steps);
      const double calls = static_cast<double>(t.calls) / static_cast<double>(times.steps);
      if (json) {
        std::printf("%s\n", nlohmann::json{{"profile", what}, {"mode", mode}, {"name", t.name}, {"ms_per_step", ms},
                                           {"calls_per_step", calls}}
                                 .dump()
                                 .c_str());
      } else {
        std::printf("      %-40s %9.2f ms %5.1f%% %6.0f\n", t.name.c_str(), ms, 100.0 * ms / step_ms, calls);
      }
    }
  }
}

}  // namespace

int run_bench_model(const BenchModelOptions& o) {
  const int threads = o.threads > 0 ? o.threads : omp_get_num_procs();
  omp_set_num_threads(threads);
  const UNet2DConfig cfg = config_named(o.config);
  const double forward_gflop = [&] {
    UNet2D probe(cfg, 1, Precision::fp32, false);
    return probe.forward_flops() * 1e-9;
  }();
  const double ceiling = bench::measure_fma_peak_gflops(threads);
  if (!o.json)
    std::printf("ddpm bench: %s, %s, %d thread%s; %.3f GFLOP per image forward; fp32 FMA-loop ceiling %.1f GFLOP/s"
                "%s\n",
                o.config.c_str(), o.precision.c_str(), threads, threads == 1 ? "" : "s", forward_gflop, ceiling,
                o.precision == "bf16" && !cpu::native_bf16() ? " (no native bf16 here: oneDNN emulates it)" : "");
  profile::set_enabled(o.profile);
  for (const std::string& mode : o.modes) {
    if (mode != "train" && mode != "sample") throw std::invalid_argument("--mode must be train or sample, got " + mode);
    const bool train = mode == "train";
    const int64_t batch = o.batch > 0 ? o.batch : (train ? 64 : 256);
    const StepTimes times = train ? bench_train(o, batch) : bench_sample(o, batch);
    // A training step costs about 3 forward passes (forward, and a backward of twice its work).
    const double flop_per_image = (train ? 3.0 : 1.0) * forward_gflop;
    const double img_per_s = static_cast<double>(batch) / times.median_s;
    const double gflops = flop_per_image * img_per_s;
    if (o.json) {
      const nlohmann::json j{{"config", o.config}, {"mode", mode}, {"batch", batch}, {"precision", o.precision},
                             {"device", device_name(selected_device())},
                             {"threads", threads}, {"img_per_s", img_per_s},
                             {"best_img_per_s", static_cast<double>(batch) / times.best_s}, {"gflops", gflops},
                             {"ceiling_gflops", ceiling}, {"percent_of_ceiling", 100.0 * gflops / ceiling},
                             {"median_step_ms", times.median_s * 1e3}, {"steps_timed", times.steps},
                             {"peak_rss_mb", peak_rss_mb()}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("  %-6s batch %4lld: %8.1f img/s (best step %.1f), %7.1f GFLOP/s = %4.1f%% of the ceiling; "
                  "median step %.1f ms over %lld steps; peak RSS %.0f MB\n",
                  mode.c_str(), static_cast<long long>(batch), img_per_s, static_cast<double>(batch) / times.best_s,
                  gflops, 100.0 * gflops / ceiling, times.median_s * 1e3, static_cast<long long>(times.steps),
                  peak_rss_mb());
    }
    if (o.profile) print_profile(times, o.json, mode);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace ddpm::app
