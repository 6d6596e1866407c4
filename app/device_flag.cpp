// --device on every command, and `ddpm devices`.
#include "device_flag.h"

#include <omp.h>

#include <cstdio>
#include <stdexcept>

#include "ddpm/kernels/cuda/runtime.h"
#include "ddpm/kernels/dnnl_info.h"

namespace ddpm::app {

namespace {

void add_recursively(CLI::App& command, std::string& device) {
  for (CLI::App* sub : command.get_subcommands([](CLI::App*) { return true; })) {
    sub->add_option("--device", device, "cpu | cuda (the CUDA backend: `ddpm devices` says whether one is here)")
        ->check(CLI::IsMember({"cpu", "cuda"}));
    add_recursively(*sub, device);
  }
}

}  // namespace

namespace {
Device g_device = Device::cpu;
}

void select_device(const std::string& name) { g_device = name == "cuda" ? Device::cuda : Device::cpu; }
Device selected_device() { return g_device; }

void add_device_flag(CLI::App& app, std::string& device) { add_recursively(app, device); }

void check_device(const std::string& device, const std::string& command, int processes) {
  if (device != "cuda") return;
  cuda::require_device("--device cuda");  // throws when not built or no device answers
  if (command == "train-classifier")
    throw std::invalid_argument("--device cuda: train-classifier runs on the CPU only (drop --device cuda)");
  if (processes > 1)
    throw std::invalid_argument("--device cuda under mpirun: data-parallel training over several GPUs (NCCL) is not "
                                "built yet; run one process per machine, or drop --device cuda");
}

CLI::App* add_devices_command(CLI::App& app) {
  return app.add_subcommand("devices", "Which devices ddpm can run on here (CPU, and CUDA or why not)");
}

int run_devices_command() {
  std::printf("cpu   %d OpenMP threads, oneDNN %s\n", omp_get_max_threads(), cpu::cpu_isa_name().c_str());
  const cuda::DeviceInfo info = cuda::device_info();
  std::printf("cuda  %s%s\n", info.usable ? "" : "none: ", info.description.c_str());
  return 0;
}

}  // namespace ddpm::app
