#include "translate_command.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ddpm/data/dataset.h"
#include "ddpm/data/pairs.h"
#include "ddpm/image/png.h"
#include "ddpm/io/npy.h"
#include "ddpm/train/trainer.h"
#include "ddpm/pipeline/diffusion_model.h"
#include "ddpm/pipeline/editing_pipeline.h"
#include "device_flag.h"
#include "progress.h"
#include "sampler_flags.h"
#include "provenance.h"

namespace ddpm::app {

namespace {

struct TranslateOptions {
  std::string model, image, data, split = "test", out = "translate.png", npy, baseline_npy, metric = "psnr",
              precision = "fp32";
  int64_t super_resolution = 0, first = 0, count = 100, n = 0, batch = 100;
  uint64_t seed = 0;
  bool json = false;
  SamplerFlags sampler;
} opt;

// Mean over images of 10 log10(255² / MSE) on 8-bit pixels (identical images count as 100 dB).
double mean_psnr(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, int64_t per_item) {
  const auto n = static_cast<int64_t>(a.size()) / per_item;
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    double se = 0;
    for (int64_t k = 0; k < per_item; ++k) {
      const double d = double(a[static_cast<size_t>(i * per_item + k)]) - b[static_cast<size_t>(i * per_item + k)];
      se += d * d;
    }
    const double mse = se / static_cast<double>(per_item);
    total += mse > 0 ? 10 * std::log10(255.0 * 255.0 / mse) : 100.0;
  }
  return total / static_cast<double>(n);
}

// Intersection over union of the masks (pixel >= 128 is foreground), over the whole set.
double iou(const std::vector<uint8_t>& predicted, const std::vector<uint8_t>& target) {
  int64_t both = 0, either = 0;
  for (size_t i = 0; i < target.size(); ++i) {
    const bool p = predicted[i] >= 128, t = target[i] >= 128;
    both += p && t, either += p || t;
  }
  return either ? static_cast<double>(both) / static_cast<double>(either) : 1.0;
}


}  // namespace

CLI::App* add_translate_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "translate", "Image-conditioned models: the target for a condition image (super-resolution, pairs, masks)");
  cmd->add_option("--model", opt.model, "an image-conditioned model directory (ddpm train --super-resolution or pairs:DIR)")
      ->required();
  auto* image = cmd->add_option("--image", opt.image, "one condition image (PNG/JPEG; resized to the model, "
                                                      "so a 7x7 input is enlarged as in --super-resolution 4 training)");
  auto* data = cmd->add_option("--data", opt.data, "or a dataset: fashion-mnist | cifar10:DIR | pairs:DIR; reports "
                                                   "--metric against its targets");
  image->excludes(data);
  cmd->add_option("--super-resolution", opt.super_resolution, "with --data: conditions made as in training (2 or 4)")
      ->check(CLI::IsMember({2, 4}));
  cmd->add_option("--split", opt.split, "train | test")->check(CLI::IsMember({"train", "test"}))->capture_default_str();
  cmd->add_option("--first", opt.first, "first image of the dataset")->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--count", opt.count, "images of the dataset")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--metric", opt.metric, "psnr (images) | iou (masks: pixel >= 128 is foreground)")
      ->check(CLI::IsMember({"psnr", "iou"}))
      ->capture_default_str();
  cmd->add_option("--n", opt.n, "with --image: outputs to draw (default 4)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", opt.batch, "images per U-Net call")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--seed", opt.seed, "seed of the noise")->capture_default_str();
  add_sampler_flags(cmd, opt.sampler);
  cmd->add_option("--out", opt.out, "PNG grid: each condition (when shown as an image) with its output(s)")
      ->capture_default_str();
  cmd->add_option("--npy", opt.npy, "also write the outputs as uint8 [N, H, W, C] NPY");
  cmd->add_option("--baseline-npy", opt.baseline_npy, "with --data: also write the baseline (the condition itself) as NPY");
  cmd->add_option("--precision", opt.precision, "fp32 | bf16")->check(CLI::IsMember({"fp32", "bf16"}))->capture_default_str();
  cmd->add_flag("--json", opt.json, "with --data: also print the report as one JSON object");
  return cmd;
}

int run_translate_command() {
  if (opt.image.empty() && opt.data.empty()) throw std::invalid_argument("translate: give --image IN.png or --data SPEC");
  const ModelDir dir = open_model_dir(opt.model);
  const UNet2DConfig& cfg = dir.unet;
  const int64_t C = dir.image_channels(), Cc = dir.condition_channels(), pixels = cfg.sample_height * cfg.sample_width;
  if (Cc == 0)
    throw std::invalid_argument(opt.model + " is not image-conditioned (in_channels = out_channels): use ddpm sample");
  std::vector<float> conditions;
  std::vector<uint8_t> targets;
  int64_t n = 0;
  std::string what;
  if (!opt.image.empty()) {
    UNet2DConfig as_condition = cfg;
    as_condition.in_channels = Cc;  // read_model_image converts to the condition's channels
    const Image picture = read_model_image(opt.image, as_condition);
    n = opt.n > 0 ? opt.n : 4;
    for (int64_t i = 0; i < n; ++i) {
      const std::vector<float> c = to_float(picture.pixels.data(), picture.pixels.size());
      conditions.insert(conditions.end(), c.begin(), c.end());
    }
    what = opt.image;
  } else {
    Dataset data = load_training_data(opt.data, cfg, opt.split == "train" ? Split::train : Split::test, C);
    if (opt.super_resolution) add_super_resolution_conditions(data, opt.super_resolution);
    if (data.condition_channels != Cc)
      throw std::invalid_argument(data.name + " has " + std::to_string(data.condition_channels) +
                                  " condition channels, the model takes " + std::to_string(Cc) +
                                  (opt.super_resolution || opt.data.rfind("pairs:", 0) == 0
                                       ? ""
                                       : " (give --super-resolution 2|4 as in training, or pairs:DIR data)"));
    if (opt.first >= data.n) throw std::invalid_argument("--first " + std::to_string(opt.first) + " is past " + data.name);
    n = std::min(opt.count, data.n - opt.first);
    const uint8_t* c = data.condition(opt.first);
    conditions = to_float(c, static_cast<size_t>(n * pixels * Cc));
    targets.assign(data.image(opt.first), data.image(opt.first) + n * pixels * C);
    what = data.name + " " + opt.split + " [" + std::to_string(opt.first) + ", " + std::to_string(opt.first + n) + ")";
  }
  DiffusionModel model = load_diffusion_model(opt.model, std::min(opt.batch, n), parse_precision(opt.precision),
                                              1.0, selected_device());
  const SamplerOptions sampler = sampler_options(opt.sampler, model.dir.scheduler);
  std::fprintf(stderr, "translating %lld condition(s) of %s: %s\n", static_cast<long long>(n), what.c_str(),
               describe_sampler(sampler, model.schedule.num_timesteps()).c_str());
  const int64_t steps = static_cast<int64_t>(sampler_timesteps(model.schedule, sampler).size());
  ProgressBar bar("translate", steps * ((n + model.batch() - 1) / model.batch()), "step");
  std::vector<float> outputs(static_cast<size_t>(n * model.per_item()));
  translate_images(model, conditions.data(), n, opt.seed, sampler, outputs.data(),
                   [&](int64_t done, int64_t) { bar.update(done); });
  bar.finish();
  const std::vector<uint8_t> out_pixels = to_uint8(outputs.data(), outputs.size());
  const std::vector<uint8_t> cond_pixels = to_uint8(conditions.data(), conditions.size());

  // Grid. One image: the condition (when it is an image of the model's channels), then the
  // outputs. A dataset: a row per image (up to 64) of condition, output, target.
  const int64_t per_item = pixels * C;
  const bool show_condition = Cc == C;
  const auto append = [](std::vector<uint8_t>& to, const std::vector<uint8_t>& from, int64_t i, int64_t size) {
    to.insert(to.end(), from.begin() + i * size, from.begin() + (i + 1) * size);
  };
  std::vector<uint8_t> grid;
  int64_t cols = 0;
  if (targets.empty()) {
    if (show_condition) append(grid, cond_pixels, 0, per_item);
    grid.insert(grid.end(), out_pixels.begin(), out_pixels.end());
    cols = n + (show_condition ? 1 : 0);
  } else {
    for (int64_t i = 0; i < std::min<int64_t>(n, 64); ++i) {
      if (show_condition) append(grid, cond_pixels, i, per_item);
      append(grid, out_pixels, i, per_item);
      append(grid, targets, i, per_item);
    }
    cols = show_condition ? 3 : 2;
  }
  write_png(opt.out,
            make_grid(grid.data(), static_cast<int64_t>(grid.size()) / per_item, cfg.sample_height, cfg.sample_width,
                      C, cols),
            provenance("translated with " + opt.model));
  std::fprintf(stderr, "wrote %s\n", opt.out.c_str());
  const auto save = [&](const std::string& path, const std::vector<uint8_t>& px, int64_t channels) {
    const std::vector<float> values(px.begin(), px.end());
    write_npy(path, values.data(), {n, cfg.sample_height, cfg.sample_width, channels});
    std::fprintf(stderr, "wrote %s\n", path.c_str());
  };
  if (!opt.npy.empty()) save(opt.npy, out_pixels, C);
  if (!opt.baseline_npy.empty() && show_condition) save(opt.baseline_npy, cond_pixels, Cc);

  if (!targets.empty()) {
    nlohmann::json j{{"model", opt.model}, {"data", what}, {"images", n},
                     {"sampler", describe_sampler(sampler, model.schedule.num_timesteps())}, {"metric", opt.metric}};
    std::printf("%s, %lld images, %s:\n", what.c_str(), static_cast<long long>(n),
                describe_sampler(sampler, model.schedule.num_timesteps()).c_str());
    if (opt.metric == "psnr") {
      j["model_psnr"] = mean_psnr(out_pixels, targets, per_item);
      std::printf("  PSNR (mean over images)  model %.2f dB", j["model_psnr"].get<double>());
      if (show_condition) {
        j["baseline_psnr"] = mean_psnr(cond_pixels, targets, per_item);
        std::printf(", baseline (the condition itself) %.2f dB", j["baseline_psnr"].get<double>());
      }
      std::printf("\n");
    } else {
      const std::vector<uint8_t> all(targets.size(), 255);
      j["model_iou"] = iou(out_pixels, targets);
      j["all_foreground_iou"] = iou(all, targets);
      std::printf("  IoU (pixel >= 128)  model %.3f, every pixel foreground %.3f\n", j["model_iou"].get<double>(),
                  j["all_foreground_iou"].get<double>());
    }
    if (opt.json) std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace ddpm::app
