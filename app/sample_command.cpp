// `ddpm sample`: images from a model directory with any sampler (DDPM, DDIM, DPM-Solver++) into a
// PNG grid (and optionally one PNG per image and an NPY of uint8 [N, H, W, C]). `ddpm info`: what a model or config is.
#include "sample_command.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "ddpm/image/png.h"
#include "ddpm/io/model_config.h"
#include "ddpm/io/model_dir.h"
#include "ddpm/io/npy.h"
#include "ddpm/nn/unet.h"
#include "ddpm/parallel/communicator.h"
#include "class_flags.h"
#include "ddpm/pipeline/diffusion_model.h"
#include "device_flag.h"
#include "progress.h"
#include "provenance.h"
#include "sampler_flags.h"

namespace ddpm::app {

namespace fs = std::filesystem;

namespace {

struct SampleOptions {
  std::string model, out = "samples.png", out_dir, npy, precision = "fp32", init_noise;
  int64_t n = 16, batch = 0, cols = 0;
  uint64_t seed = 0;
  SamplerFlags sampler;
  ClassFlags classes;
  CLI::Option* n_option = nullptr;
} sample;

// x_T from an NPY float32 [N, C, H, W] file (PyTorch's layout), as NHWC for the U-Net.
std::vector<float> read_init_noise(const std::string& path, int64_t n, const UNet2DConfig& cfg) {
  const NpyArray a = read_npy(path);
  const int64_t c = cfg.in_channels, h = cfg.sample_height, w = cfg.sample_width;
  if (a.shape.size() != 4 || a.shape[0] != n || a.shape[1] != c || a.shape[2] != h || a.shape[3] != w)
    throw std::invalid_argument(path + ": --init-noise must have shape [" + std::to_string(n) + ", " +
                                std::to_string(c) + ", " + std::to_string(h) + ", " + std::to_string(w) +
                                "] (N, C, H, W) for " + std::to_string(n) + " images of this model");
  const std::vector<float> nchw = a.to_f32();
  std::vector<float> nhwc(nchw.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < h * w; ++p)
      for (int64_t k = 0; k < c; ++k) {
        const float v = nchw[static_cast<size_t>((i * c + k) * h * w + p)];
        if (!std::isfinite(v)) throw std::invalid_argument(path + ": --init-noise holds a non-finite value");
        nhwc[static_cast<size_t>((i * h * w + p) * c + k)] = v;
      }
  return nhwc;
}

struct InfoOptions {
  std::string model, config, save_config, image;
} info;

// `ddpm info --image FILE`: the picture's size and what made it (its PNG text chunks).
int print_image_info(const std::string& path) {
  const Image image = read_image(path);
  std::printf("%s\n  %lldx%lld, %s\n", path.c_str(), static_cast<long long>(image.width),
              static_cast<long long>(image.height), image.channels == 1 ? "grey" : "RGB");
  const std::string bytes = [&] {
    std::ifstream in(path, std::ios::binary);
    std::string head(4, '\0');
    in.read(head.data(), 4);
    return head;
  }();
  const PngText text = bytes == "\x89PNG" ? read_png_text(path) : PngText{};
  if (text.empty()) std::printf("  no text: not written by ddpm.cpp (or the text was stripped)\n");
  for (const auto& [keyword, value] : text) std::printf("  %s: %s\n", keyword.c_str(), value.c_str());
  return 0;
}

}  // namespace

CLI::App* add_sample_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("sample", "Generate images (DDPM, DDIM or DPM-Solver++)");
  cmd->add_option("--model", sample.model, "diffusers model directory (e.g. RUN/model)")->required();
  sample.n_option = cmd->add_option("--n", sample.n, "number of images (default: 16, or the --init-noise count)")
                        ->check(CLI::PositiveNumber);
  cmd->add_option("--seed", sample.seed, "seed of x_T and of every step's noise")->capture_default_str();
  add_sampler_flags(cmd, sample.sampler);
  add_class_flags(cmd, sample.classes);
  cmd->add_option("--init-noise", sample.init_noise, "start from this x_T: NPY float32 [N, C, H, W]");
  cmd->add_option("--out", sample.out, "PNG grid to write")->capture_default_str();
  cmd->add_option("--out-dir", sample.out_dir, "also write one PNG per image into this directory");
  cmd->add_option("--npy", sample.npy, "also write the images as uint8 [N, H, W, C] NPY");
  cmd->add_option("--batch", sample.batch, "images per U-Net call (default: all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--cols", sample.cols, "grid columns (default: square)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--precision", sample.precision, "fp32 | bf16")->check(CLI::IsMember({"fp32", "bf16"}));
  return cmd;
}

int run_sample_command() {
  std::vector<float> init_noise;
  if (!sample.init_noise.empty()) {
    const ModelDir dir = open_model_dir(sample.model);
    if (sample.n_option->count() == 0) {
      const NpyArray a = read_npy(sample.init_noise);
      if (!a.shape.empty()) sample.n = a.shape[0];
    }
    init_noise = read_init_noise(sample.init_noise, sample.n, dir.unet);
  }
  const ModelDir dir = open_model_dir(sample.model);
  int64_t cols = sample.cols;
  if (sample.classes.klass == "all" && dir.unet.num_class_embeds) {  // --n per class, a row each
    if (sample.n_option->count() == 0) sample.n = 8;
    if (cols <= 0) cols = sample.n;
    sample.n *= dir.unet.class_count() - 1;
  }
  const std::vector<int32_t> classes = image_classes(sample.classes, dir.unet, sample.n);
  // Under mpirun each process takes a share of the batches (by default one batch each: the
  // images are then those of one process with --batch ceil(n / P)); rank 0 writes them.
  Communicator& comm = world();
  const int64_t whole = sample.batch > 0 ? sample.batch : (sample.n + comm.size() - 1) / comm.size();
  const int64_t batch = std::max<int64_t>(1, std::min(whole, sample.n));
  DiffusionModel model = load_diffusion_model(sample.model, batch, parse_precision(sample.precision),
                                              guidance_scale(sample.classes, dir.unet), selected_device());
  model.comm = &comm;
  const UNet2DConfig& cfg = model.dir.unet;
  const SamplerOptions sampler = sampler_options(sample.sampler, model.dir.scheduler);
  const int64_t per_item = model.per_item();
  std::vector<float> images(static_cast<size_t>(sample.n * per_item));
  if (comm.is_root())
    std::fprintf(stderr, "sampling %lld images: %s%s%s\n", static_cast<long long>(sample.n),
                 describe_sampler(sampler, model.schedule.num_timesteps()).c_str(),
                 describe_classes(sample.classes, cfg).c_str(),
                 comm.size() > 1 ? (", batches of " + std::to_string(batch) + " over " + std::to_string(comm.size()) +
                                    " processes")
                                       .c_str()
                                 : "");
  ProgressBar bar("sample", generation_calls(model, sample.n, sampler), "step");
  generate_images(
      model, sample.n, sample.seed, sampler, images.data(),
      [&](int64_t done, int64_t total) {
        if (comm.is_root()) bar.update(done * generation_calls(model, sample.n, sampler) / std::max<int64_t>(total, 1));
      },
      init_noise.empty() ? nullptr : init_noise.data(), classes.empty() ? nullptr : classes.data());
  if (!comm.is_root()) return 0;  // rank 0 holds the images and writes them
  bar.finish();
  std::vector<uint8_t> pixels(images.size());
  to_uint8(images.data(), images.size(), pixels.data());

  if (cols <= 0)
    while (cols * cols < sample.n) ++cols;
  const std::string made_by = std::to_string(sample.n) + " images from " + sample.model + ": " +
                              describe_sampler(sampler, model.schedule.num_timesteps()) +
                              describe_classes(sample.classes, cfg) + ", seed " + std::to_string(sample.seed) +
                              ", batch " + std::to_string(batch) + ", " + sample.precision + ", weights " +
                              model.weights_checksum() +
                              (sample.init_noise.empty() ? "" : ", x_T from " + sample.init_noise);
  write_png(sample.out, make_grid(pixels.data(), sample.n, cfg.sample_height, cfg.sample_width, cfg.in_channels, cols),
            provenance(made_by));
  std::fprintf(stderr, "wrote %s\n", sample.out.c_str());
  if (!sample.out_dir.empty()) {
    fs::create_directories(sample.out_dir);
    for (int64_t i = 0; i < sample.n; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "%06lld.png", static_cast<long long>(i));
      write_png((fs::path(sample.out_dir) / name).string(), pixels.data() + i * per_item, cfg.sample_height,
                cfg.sample_width, cfg.in_channels, provenance("image " + std::to_string(i) + " of " + made_by));
    }
    std::fprintf(stderr, "wrote %lld images to %s\n", static_cast<long long>(sample.n), sample.out_dir.c_str());
  }
  if (!sample.npy.empty()) {
    std::vector<float> as_float(pixels.begin(), pixels.end());  // NPY writer takes float32
    write_npy(sample.npy, as_float.data(), {sample.n, cfg.sample_height, cfg.sample_width, cfg.in_channels});
    std::fprintf(stderr, "wrote %s\n", sample.npy.c_str());
  }
  return 0;
}

CLI::App* add_info_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("info", "Show a model's or built-in config's architecture and size");
  auto* m = cmd->add_option("--model", info.model, "diffusers model directory");
  auto* c = cmd->add_option("--config", info.config, "built-in config name or config.json");
  auto* i = cmd->add_option("--image", info.image, "a PNG: its size and what made it (sampler, seed, command)");
  m->excludes(c);
  i->excludes(m)->excludes(c);
  cmd->add_option("--save-config", info.save_config, "also write the config as a diffusers config.json");
  return cmd;
}

int run_info_command() {
  if (!info.image.empty()) return print_image_info(info.image);
  UNet2DConfig cfg;
  std::string what;
  std::optional<SchedulerConfig> scheduler;
  if (!info.model.empty()) {
    const ModelDir dir = open_model_dir(info.model);
    cfg = dir.unet;
    scheduler = dir.scheduler;
    what = info.model;
  } else if (!info.config.empty()) {
    cfg = fs::is_regular_file(info.config) ? read_unet_config(info.config) : named_unet_config(info.config);
    what = info.config;
  } else {
    throw std::invalid_argument("info: give --model DIR, --config NAME or --image FILE");
  }
  if (!info.save_config.empty()) {
    write_unet_config(info.save_config, cfg);
    std::fprintf(stderr, "wrote %s\n", info.save_config.c_str());
  }
  UNet2D net(cfg, 1, Precision::fp32, false);
  std::printf("%s\n  sample_size %lldx%lld, channels %lld -> %lld\n  block_out_channels", what.c_str(),
              static_cast<long long>(cfg.sample_height), static_cast<long long>(cfg.sample_width),
              static_cast<long long>(cfg.in_channels), static_cast<long long>(cfg.out_channels));
  for (size_t i = 0; i < cfg.block_out_channels.size(); ++i)
    std::printf(" %lld%s", static_cast<long long>(cfg.block_out_channels[i]),
                cfg.level_has_attention(static_cast<int64_t>(i)) ? "(attn)" : "");
  std::printf("\n  layers_per_block %lld, groups %lld, dropout %g\n  %zu tensors, %lld parameters, %.3f GFLOP per image forward\n",
              static_cast<long long>(cfg.layers_per_block), static_cast<long long>(cfg.norm_num_groups), cfg.dropout,
              net.parameters().size(), static_cast<long long>(net.parameter_count()), net.forward_flops() * 1e-9);
  if (cfg.num_class_embeds)
    std::printf("  class-conditional: %lld classes + the null class (classifier-free guidance)\n",
                static_cast<long long>(cfg.class_count() - 1));
  if (scheduler) {
    ModelDir d{cfg, *scheduler, {}};
    if (d.condition_channels() > 0)
      std::printf("  image-conditioned: %lld image + %lld condition channels in (ddpm translate)\n",
                  static_cast<long long>(d.image_channels()), static_cast<long long>(d.condition_channels()));
  }
  if (scheduler)
    std::printf("  scheduler %s: T = %lld, %s betas, %s variance%s\n", scheduler->class_name.c_str(),
                static_cast<long long>(scheduler->num_train_timesteps), scheduler->beta_schedule.c_str(),
                scheduler->variance_type.c_str(), scheduler->clip_sample ? ", x0 clipped" : "");
  if (!info.model.empty()) {
    std::vector<float> weights(static_cast<size_t>(net.parameter_count()));
    TensorList list;
    for (const ParamInfo& p : net.parameters()) list.emplace_back(p.name, p.shape);
    load_model_dir_weights(info.model, cfg, list, weights.data());  // reports NaN/Inf by tensor
    std::printf("  weights: all %lld finite, checksum %016llx (FNV-1a of the fp32 values; sampled PNGs record it)\n",
                static_cast<long long>(net.parameter_count()),
                static_cast<unsigned long long>(checksum(weights.data(), net.parameter_count())));
  }
  return 0;
}

}  // namespace ddpm::app
