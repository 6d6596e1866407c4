// `ddpm predict --model DIR --input x.npy (--timesteps t.npy | --timestep K) --output eps.npy`:
// eps = UNet(x, t) for a batch, so another implementation can be compared with ours tensor by
// tensor. Arrays are NCHW like PyTorch's; ddpm.cpp computes in NHWC and converts at the edges.
#include "predict_command.h"

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "ddpm/io/model_dir.h"
#include "ddpm/io/npy.h"
#include "ddpm/nn/unet.h"
#include "ddpm/pipeline/diffusion_model.h"
#include "device_flag.h"

namespace ddpm::app {

namespace {

struct PredictOptions {
  std::string model, input, timesteps, output, precision = "fp32";
  int64_t timestep = -1;
} opt;

}  // namespace

CLI::App* add_predict_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("predict", "One U-Net evaluation: eps = model(x, t), NPY in and out (NCHW)");
  cmd->add_option("--model", opt.model, "diffusers model directory")->required();
  cmd->add_option("--input", opt.input, "x_t as float32 NPY [N, C, H, W]")->required();
  auto* ts = cmd->add_option("--timesteps", opt.timesteps, "timesteps as integer NPY [N]");
  auto* t = cmd->add_option("--timestep", opt.timestep, "one timestep for the whole batch");
  ts->excludes(t);
  cmd->add_option("--output", opt.output, "eps as float32 NPY [N, C, H, W]")->required();
  cmd->add_option("--precision", opt.precision, "fp32 | bf16")->check(CLI::IsMember({"fp32", "bf16"}));
  return cmd;
}

int run_predict_command() {
  const ModelDir dir = open_model_dir(opt.model);
  const UNet2DConfig& cfg = dir.unet;
  const NpyArray input = read_npy(opt.input);
  const std::vector<int64_t> want{-1, cfg.in_channels, cfg.sample_height, cfg.sample_width};
  if (input.shape.size() != 4 || input.shape[1] != cfg.in_channels || input.shape[2] != cfg.sample_height ||
      input.shape[3] != cfg.sample_width || input.shape[0] < 1)
    throw std::invalid_argument(opt.input + ": shape " + dims_str(input.shape) + ", but " + opt.model +
                                "/unet/config.json needs [N," + std::to_string(cfg.in_channels) + "," +
                                std::to_string(cfg.sample_height) + "," + std::to_string(cfg.sample_width) + "]");
  const int64_t n = input.shape[0], c = cfg.in_channels, h = cfg.sample_height, w = cfg.sample_width;
  const int64_t oc = cfg.out_channels;

  std::vector<float> t(static_cast<size_t>(n));
  if (!opt.timesteps.empty()) {
    const NpyArray ta = read_npy(opt.timesteps);
    if (ta.shape.size() != 1 || ta.shape[0] != n)
      throw std::invalid_argument(opt.timesteps + ": shape " + dims_str(ta.shape) + ", but the input has " +
                                  std::to_string(n) + " images: need [" + std::to_string(n) + "]");
    const std::vector<int64_t> values = ta.to_i64();
    for (int64_t i = 0; i < n; ++i) t[static_cast<size_t>(i)] = static_cast<float>(values[static_cast<size_t>(i)]);
  } else if (opt.timestep >= 0) {
    std::fill(t.begin(), t.end(), static_cast<float>(opt.timestep));
  } else {
    throw std::invalid_argument("predict: give --timesteps t.npy or --timestep K");
  }
  for (float v : t)
    if (v < 0 || v >= static_cast<float>(dir.scheduler.num_train_timesteps))
      throw std::invalid_argument("predict: timestep " + std::to_string(static_cast<int64_t>(v)) +
                                  " outside [0, " + std::to_string(dir.scheduler.num_train_timesteps) + ")");

  DiffusionModel model = load_diffusion_model(opt.model, n, parse_precision(opt.precision), 1.0, selected_device());
  UNet2D& net = *model.net;

  const std::vector<float> nchw = input.to_f32();
  std::vector<float> nhwc(nchw.size()), eps(static_cast<size_t>(n * h * w * oc));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < h * w; ++p)
        nhwc[static_cast<size_t>((i * h * w + p) * c + ch)] = nchw[static_cast<size_t>((i * c + ch) * h * w + p)];
  net.forward(nhwc.data(), t.data(), eps.data(), 0);
  std::vector<float> out(eps.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < oc; ++ch)
      for (int64_t p = 0; p < h * w; ++p)
        out[static_cast<size_t>((i * oc + ch) * h * w + p)] = eps[static_cast<size_t>((i * h * w + p) * oc + ch)];
  write_npy(opt.output, out.data(), {n, oc, h, w});
  std::fprintf(stderr, "wrote %s [%lld,%lld,%lld,%lld]\n", opt.output.c_str(), static_cast<long long>(n),
               static_cast<long long>(oc), static_cast<long long>(h), static_cast<long long>(w));
  return 0;
}

}  // namespace ddpm::app
