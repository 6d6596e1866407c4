// ddpm: the command-line program. Each subcommand parses and validates its flags here and
// calls the library; errors are printed as one message and give a non-zero exit status.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>

#include "ddpm/parallel/communicator.h"

#include "bench_cuda_ops.h"
#include "bench_model.h"
#include "bench_ops.h"
#include "device_flag.h"
#include "diffuse_command.h"
#include "edit_commands.h"
#include "eval_command.h"
#include "invert_command.h"
#include "predict_command.h"
#include "provenance.h"
#include "sample_command.h"
#include "train_classifier_command.h"
#include "train_command.h"
#include "translate_command.h"

int main(int argc, char** argv) {
  CLI::App app{"ddpm.cpp: Denoising Diffusion Probabilistic Models in C++"};
  app.require_subcommand(1);

  CLI::App* bench = app.add_subcommand("bench", "Speed figures: whole training/sampling steps, or `bench ops`");
  bench->require_subcommand(0, 1);
  ddpm::app::BenchModelOptions model_options;
  bench->add_option("--config", model_options.config, "fmnist-small | fmnist-64 | cifar10-ddpm | config.json")
      ->capture_default_str();
  bench->add_option("--mode", model_options.modes, "train, sample (default: both)")
      ->check(CLI::IsMember({"train", "sample"}));
  bench->add_option("--batch", model_options.batch, "images per step (default: 64 train, 256 sample)")
      ->check(CLI::NonNegativeNumber);
  bench->add_option("--precision", model_options.precision, "fp32 | bf16")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  bench->add_option("--threads", model_options.threads, "OpenMP threads (default: all cores)")->check(CLI::NonNegativeNumber);
  bench->add_option("--seconds", model_options.seconds, "timing window per mode after 3 warm-up steps")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  bench->add_flag("--json", model_options.json, "one JSON object per result");
  bench->add_flag("--profile", model_options.profile, "also time every op type and every block of the step");
  ddpm::app::BenchOpsOptions ops_options;
  CLI::App* ops = bench->add_subcommand("ops", "Time every U-Net op (forward and backward) at the models' shapes");
  ops->add_option("--config", ops_options.configs, "fmnist-small, cifar10-ddpm (default: both)")
      ->check(CLI::IsMember({"fmnist-small", "cifar10-ddpm"}));
  ops->add_option("--precision", ops_options.precisions, "fp32, bf16 (default: both)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  ops->add_option("--threads", ops_options.threads, "OpenMP threads (default: all cores)")->check(CLI::NonNegativeNumber);
  ops->add_option("--seconds", ops_options.seconds, "minimum timing window per measurement")->check(CLI::PositiveNumber);
  ops->add_option("--filter", ops_options.filter, "only ops whose name contains this text");
  ops->add_flag("--json", ops_options.json, "print one JSON object per measurement");

  CLI::App* train = ddpm::app::add_train_command(app);
  CLI::App* train_classifier = ddpm::app::add_train_classifier_command(app);
  CLI::App* sample = ddpm::app::add_sample_command(app);
  CLI::App* info = ddpm::app::add_info_command(app);
  CLI::App* predict = ddpm::app::add_predict_command(app);
  CLI::App* diffuse = ddpm::app::add_diffuse_command(app);
  CLI::App* eval = ddpm::app::add_eval_command(app);
  CLI::App* invert = ddpm::app::add_invert_command(app);
  CLI::App* img2img = ddpm::app::add_img2img_command(app);
  CLI::App* inpaint = ddpm::app::add_inpaint_command(app);
  CLI::App* interpolate = ddpm::app::add_interpolate_command(app);
  CLI::App* translate = ddpm::app::add_translate_command(app);
  CLI::App* devices = ddpm::app::add_devices_command(app);
  std::string device = "cpu";
  ddpm::app::add_device_flag(app, device);

  try {
    app.parse(argc, argv);
    ddpm::app::remember_command_line(argc, argv);
    // Under mpirun: the commands that spread their work over the processes; any other would
    // run P times over and write the same files at once.
    if (ddpm::world().size() > 1 && !(train->parsed() || sample->parsed() || eval->parsed()))
      throw std::invalid_argument("this command runs in one process; launch it without mpirun (train, sample and eval "
                                  "spread their work over mpirun's processes)");
    if (ops->parsed() && device == "cuda") {
      ddpm::app::BenchCudaOpsOptions cuda_options;
      if (ops->count("--precision") > 0) cuda_options.precisions = ops_options.precisions;
      cuda_options.filter = ops_options.filter;
      cuda_options.json = ops_options.json;
      return ddpm::app::run_bench_cuda_ops(cuda_options);
    }
    if (ops->parsed()) return ddpm::app::run_bench_ops(ops_options);
    if (devices->parsed()) return ddpm::app::run_devices_command();
    for (const CLI::App* command : app.get_subcommands())
      ddpm::app::check_device(device, command->get_name(), ddpm::world().size());
    ddpm::app::select_device(device);
    if (bench->parsed()) return ddpm::app::run_bench_model(model_options);
    if (train->parsed()) return ddpm::app::run_train_command();
    if (train_classifier->parsed()) return ddpm::app::run_train_classifier_command();
    if (sample->parsed()) return ddpm::app::run_sample_command();
    if (info->parsed()) return ddpm::app::run_info_command();
    if (predict->parsed()) return ddpm::app::run_predict_command();
    if (diffuse->parsed()) return ddpm::app::run_diffuse_command();
    if (eval->parsed()) return ddpm::app::run_eval_command();
    if (invert->parsed()) return ddpm::app::run_invert_command();
    if (img2img->parsed()) return ddpm::app::run_img2img_command();
    if (inpaint->parsed()) return ddpm::app::run_inpaint_command();
    if (interpolate->parsed()) return ddpm::app::run_interpolate_command();
    if (translate->parsed()) return ddpm::app::run_translate_command();
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    const ddpm::Communicator* comm = nullptr;
    try {
      comm = &ddpm::world();
    } catch (const std::exception&) {  // the error was world()'s own
    }
    if (comm == nullptr || comm->size() == 1) {
      std::fprintf(stderr, "ddpm: error: %s\n", e.what());
      return 1;
    }
    // Data-parallel: the other processes may be waiting for this one in a collective, so end
    // them all (mpirun reports the abort) rather than leave them hanging.
    std::fprintf(stderr, "ddpm (rank %d of %d): error: %s\n", comm->rank(), comm->size(), e.what());
    std::fflush(stderr);
    ddpm::world().abort(1);
  }
  return 0;
}
