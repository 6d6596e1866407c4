// `ddpm invert --model DIR [--data fashion-mnist --n 16 | --image x.png] --steps 50,200,1000`:
// encodes each image to x_T by running DDIM's deterministic ODE forwards (invert_ddim), decodes it
// back with DDIM η = 0 over the same timesteps, and prints how far x_T is from N(0, I) and how
// close the round trip comes, per step count. x̂0 is not clipped in either direction (clipping
// makes the decoder a different map from the encoder's inverse).
#include "invert_command.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "ddpm/data/dataset.h"
#include "ddpm/diffusion/ddim_sampler.h"
#include "ddpm/diffusion/timesteps.h"
#include "ddpm/image/png.h"
#include "ddpm/image/resize.h"
#include "ddpm/train/trainer.h"
#include "ddpm/pipeline/diffusion_model.h"
#include "device_flag.h"
#include "progress.h"
#include "provenance.h"

namespace ddpm::app {

namespace {

struct InvertOptions {
  std::string model, data = "fashion-mnist", image, out, spacing = "trailing";
  int64_t n = 16, first = 0;
  std::vector<int64_t> steps = {50, 200, 1000};
} opt;

std::vector<float> input_images(const UNet2DConfig& cfg, int64_t& n) {
  if (!opt.image.empty()) {
    n = 1;
    const Image picture = read_model_image(opt.image, cfg);
    return to_float(picture.pixels.data(), picture.pixels.size());
  }
  const Dataset data = load_training_data(opt.data, cfg, Split::test);
  if (opt.first >= data.n)
    throw std::invalid_argument("--first " + std::to_string(opt.first) + " is past the end of " + data.name);
  n = std::min(opt.n, data.n - opt.first);
  std::vector<float> images(static_cast<size_t>(n * data.image_size()));
  images_to_float(data, opt.first, n, images.data());
  return images;
}

}  // namespace

CLI::App* add_invert_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("invert", "DDIM inversion: encode images to x_T, decode back, report the error");
  cmd->add_option("--model", opt.model, "diffusers model directory")->required();
  auto* data = cmd->add_option("--data", opt.data, "test images of this dataset")->capture_default_str();
  auto* image = cmd->add_option("--image", opt.image, "one PNG/JPEG image instead");
  image->excludes(data);
  cmd->add_option("--n", opt.n, "test images")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--first", opt.first, "index of the first test image")->check(CLI::NonNegativeNumber);
  cmd->add_option("--steps", opt.steps, "step counts to try")->delimiter(',')->check(CLI::PositiveNumber);
  cmd->add_option("--spacing", opt.spacing, "leading | trailing | linspace")
      ->check(CLI::IsMember({"leading", "trailing", "linspace"}))
      ->capture_default_str();
  cmd->add_option("--out", opt.out, "PNG: rows of originals, x_T and reconstructions (the last step count)");
  return cmd;
}

int run_invert_command() {
  const UNet2DConfig cfg = open_model_dir(opt.model).unet;
  int64_t n = 0;
  const std::vector<float> originals = input_images(cfg, n);
  DiffusionModel model = load_diffusion_model(opt.model, n, Precision::fp32, 1.0, selected_device());
  const int64_t per_item = model.per_item(), T = model.schedule.num_timesteps();
  const EpsModel eps = model.eps_model();
  std::printf("DDIM inversion of %lld image(s), %s spacing, no x0 clipping\n", static_cast<long long>(n),
              opt.spacing.c_str());
  std::printf("  %6s %10s %10s %14s %14s %10s\n", "steps", "x_T mean", "x_T std", "RMSE [-1,1]", "max |err| px", "PSNR dB");
  std::vector<float> latent, decoded;
  for (const int64_t K : opt.steps) {
    if (K > T) throw std::invalid_argument("--steps " + std::to_string(K) + " exceeds T = " + std::to_string(T));
    const std::vector<int64_t> ts = sampling_timesteps(T, K, parse_spacing(opt.spacing));
    latent = originals;
    ProgressBar bar("invert " + std::to_string(K), 2 * K, "step");
    invert_ddim(eps, latent.data(), n, per_item, model.schedule, ts, [&](int64_t d, int64_t) { bar.update(d); });
    decoded = latent;
    NoiseRng unused(0);
    sample_ddim(eps, decoded.data(), n, per_item, model.schedule, ts, DdimOptions{}, unused,
                [&](int64_t d, int64_t) { bar.update(K + d); });
    bar.finish();
    double mean = 0, sq = 0, err2 = 0, worst = 0;
    for (size_t i = 0; i < latent.size(); ++i) {
      mean += latent[i], sq += static_cast<double>(latent[i]) * latent[i];
      const double e = static_cast<double>(decoded[i]) - originals[i];
      err2 += e * e, worst = std::max(worst, std::abs(e));
    }
    const auto count = static_cast<double>(latent.size());
    mean /= count;
    const double std_dev = std::sqrt(std::max(sq / count - mean * mean, 0.0)), rmse = std::sqrt(err2 / count);
    std::printf("  %6lld %10.4f %10.4f %14.6f %14.3f %10.2f\n", static_cast<long long>(K), mean, std_dev, rmse,
                worst * 127.5, 20 * std::log10(2.0 / std::max(rmse, 1e-12)));
  }
  if (!opt.out.empty()) {
    std::vector<uint8_t> grid(static_cast<size_t>(3 * n * per_item));
    to_uint8(originals.data(), originals.size(), grid.data());
    // x_T is roughly N(0, 1): shown at a third of its scale so that it fits [−1, 1].
    std::vector<float> shown(latent.size());
    std::transform(latent.begin(), latent.end(), shown.begin(), [](float v) { return v / 3; });
    to_uint8(shown.data(), shown.size(), grid.data() + n * per_item);
    to_uint8(decoded.data(), decoded.size(), grid.data() + 2 * n * per_item);
    write_png(opt.out, make_grid(grid.data(), 3 * n, cfg.sample_height, cfg.sample_width, cfg.in_channels, n),
              provenance("DDIM inversion with " + opt.model));
    std::fprintf(stderr, "wrote %s (rows: originals, x_T / 3, reconstructions after %lld steps)\n", opt.out.c_str(),
                 static_cast<long long>(opt.steps.back()));
  }
  return 0;
}

}  // namespace ddpm::app
