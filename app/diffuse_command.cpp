// `ddpm diffuse --model DIR --image x.png --out chain.png`: row 1 is q(x_t | x_0) at evenly spaced
// t (the image dissolving into noise), row 2 the model's reverse chain from that x_T, shown at the
// same t (noise turning into an image). The picture every diffusion explainer shows.
#include "diffuse_command.h"

#include <cstdio>
#include <string>
#include <vector>

#include "ddpm/diffusion/ddpm_sampler.h"
#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/diffusion/process.h"
#include "ddpm/diffusion/schedule.h"
#include "ddpm/image/png.h"
#include "ddpm/image/resize.h"
#include "ddpm/io/model_dir.h"
#include "ddpm/nn/unet.h"
#include "ddpm/pipeline/diffusion_model.h"
#include "device_flag.h"
#include "progress.h"
#include "provenance.h"

namespace ddpm::app {

namespace {

struct DiffuseOptions {
  std::string model, image, out = "chain.png";
  int64_t frames = 10;
  uint64_t seed = 0;
} opt;

}  // namespace

CLI::App* add_diffuse_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("diffuse", "Show the forward chain x0 -> xT and the reverse chain back, as strips");
  cmd->add_option("--model", opt.model, "diffusers model directory")->required();
  cmd->add_option("--image", opt.image, "PNG/JPEG image (resized and centre-cropped to the model)")->required();
  cmd->add_option("--out", opt.out, "PNG to write")->capture_default_str();
  cmd->add_option("--frames", opt.frames, "pictures per strip")->check(CLI::Range(2, 100))->capture_default_str();
  cmd->add_option("--seed", opt.seed, "seed of the noise")->capture_default_str();
  return cmd;
}

int run_diffuse_command() {
  const ModelDir dir = open_model_dir(opt.model);
  const UNet2DConfig& cfg = dir.unet;
  const Image picture = read_model_image(opt.image, cfg);
  const int64_t per_item = cfg.sample_height * cfg.sample_width * cfg.in_channels;
  const NoiseSchedule schedule(parse_schedule_kind(dir.scheduler.beta_schedule), dir.scheduler.num_train_timesteps,
                               dir.scheduler.beta_start, dir.scheduler.beta_end);
  const int64_t T = schedule.num_timesteps();
  // Shown timesteps: 0, ..., T-1 evenly spaced.
  std::vector<int64_t> shown(static_cast<size_t>(opt.frames));
  for (int64_t k = 0; k < opt.frames; ++k) shown[static_cast<size_t>(k)] = k * (T - 1) / (opt.frames - 1);

  std::vector<float> x0 = to_float(picture.pixels.data(), picture.pixels.size());
  std::vector<uint8_t> strip(static_cast<size_t>(2 * opt.frames * per_item));
  NoiseRng rng(opt.seed, 0);
  std::vector<float> noise(static_cast<size_t>(per_item)), x(noise.size());
  rng.fill_normal(noise.data(), per_item);
  // Row 1: closed-form q(x_t | x_0) with one noise draw, so the frames show one path.
  for (int64_t k = 0; k < opt.frames; ++k) {
    const int64_t t = shown[static_cast<size_t>(k)];
    q_sample(x.data(), x0.data(), noise.data(), &t, 1, per_item, schedule);
    to_uint8(x.data(), x.size(), strip.data() + k * per_item);
  }
  // Row 2: the reverse chain from that x_T (the last frame of row 1), shown from T-1 down to 0
  // and placed under the matching forward frame.
  DiffusionModel model = load_diffusion_model(opt.model, 1, Precision::fp32, 1.0, selected_device());
  const EpsVarianceModel eps_model = model.eps_variance_model();
  const Variance variance = model.variance;
  std::vector<float> eps(x.size()), v(x.size()), z(x.size());
  ProgressBar bar("diffuse", T, "step");
  int64_t next_shown = opt.frames - 1;
  for (int64_t t = T - 1; t >= 0; --t) {
    if (next_shown >= 0 && shown[static_cast<size_t>(next_shown)] == t) {
      to_uint8(x.data(), x.size(), strip.data() + (opt.frames + next_shown) * per_item);
      --next_shown;
    }
    eps_model(x.data(), t, eps.data(), v.data());
    if (t > 0) rng.fill_normal(z.data(), per_item);
    ddpm_step(x.data(), x.data(), eps.data(), t, t > 0 ? z.data() : nullptr, per_item, schedule, variance,
              dir.scheduler.clip_sample, v.data());
    bar.update(T - t);
  }
  bar.finish();
  // The last reverse frame is the final x_0 (after the t = 0 step), under the forward t = 0 frame.
  to_uint8(x.data(), x.size(), strip.data() + opt.frames * per_item);
  write_png(opt.out,
            make_grid(strip.data(), 2 * opt.frames, cfg.sample_height, cfg.sample_width, cfg.in_channels, opt.frames),
            provenance("forward and reverse chains of " + opt.model));
  std::fprintf(stderr, "wrote %s (top: x_0 -> x_T at t =", opt.out.c_str());
  for (int64_t t : shown) std::fprintf(stderr, " %lld", static_cast<long long>(t));
  std::fprintf(stderr, "; bottom: the model's reverse chain from that x_T, at the same t)\n");
  return 0;
}

}  // namespace ddpm::app
