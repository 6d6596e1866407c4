#include "edit_commands.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "class_flags.h"
#include "ddpm/diffusion/editing.h"
#include "ddpm/image/png.h"
#include "ddpm/image/resize.h"
#include "ddpm/io/npy.h"
#include "ddpm/pipeline/diffusion_model.h"
#include "ddpm/pipeline/editing_pipeline.h"
#include "device_flag.h"
#include "progress.h"
#include "sampler_flags.h"
#include "provenance.h"

namespace ddpm::app {

namespace {

struct EditOptions {
  std::string model, image, mask, out, npy, precision = "fp32";
  std::vector<double> strengths{0.6};
  int64_t n = 4, jump_length = 10, jump_n_sample = 10, frames = 8;
  uint64_t seed = 0, seed_b = 1;
  SamplerFlags sampler;
  ClassFlags classes;
};
EditOptions img2img, inpaint, interp;

void add_model_flags(CLI::App* cmd, EditOptions& o, const char* out_default) {
  cmd->add_option("--model", o.model, "diffusers model directory (e.g. RUN/model)")->required();
  o.out = out_default;
  cmd->add_option("--out", o.out, "PNG to write")->capture_default_str();
  cmd->add_option("--npy", o.npy, "also write the results as uint8 [N, H, W, C] NPY");
  cmd->add_option("--precision", o.precision, "fp32 | bf16")->check(CLI::IsMember({"fp32", "bf16"}))->capture_default_str();
  add_class_flags(cmd, o.classes);
}

// The loaded model for `n` images per call, its classes set from the flags.
DiffusionModel load_for(const EditOptions& o, int64_t n) {
  const ModelDir dir = open_model_dir(o.model);
  const std::vector<int32_t> classes = image_classes(o.classes, dir.unet, n);
  DiffusionModel model = load_diffusion_model(o.model, n, parse_precision(o.precision),
                                              guidance_scale(o.classes, dir.unet), selected_device());
  if (!classes.empty()) model.classes = classes;
  return model;
}

std::vector<float> image_values(const std::string& path, const UNet2DConfig& cfg) {
  const Image picture = read_model_image(path, cfg);
  return to_float(picture.pixels.data(), picture.pixels.size());
}

// Writes the grid (cols per row) and, when asked, the NPY of the `results` images in it.
void write_outputs(const EditOptions& o, const UNet2DConfig& cfg, const std::vector<float>& grid, int64_t cols,
                   const std::vector<float>& results) {
  const std::vector<uint8_t> pixels = to_uint8(grid.data(), grid.size());
  const int64_t per_item = cfg.sample_height * cfg.sample_width * cfg.in_channels;
  write_png(o.out,
            make_grid(pixels.data(), static_cast<int64_t>(grid.size()) / per_item, cfg.sample_height,
                      cfg.sample_width, cfg.in_channels, cols),
            provenance("edited with " + o.model + ", seed " + std::to_string(o.seed)));
  std::fprintf(stderr, "wrote %s\n", o.out.c_str());
  if (!o.npy.empty()) {
    const std::vector<uint8_t> r = to_uint8(results.data(), results.size());
    const std::vector<float> values(r.begin(), r.end());
    write_npy(o.npy, values.data(),
              {static_cast<int64_t>(results.size()) / per_item, cfg.sample_height, cfg.sample_width, cfg.in_channels});
    std::fprintf(stderr, "wrote %s\n", o.npy.c_str());
  }
}

// The inpainting mask as "keep" weights per value (1: the input's pixel is kept): a named half or
// the centre square, or a PNG whose white pixels are regenerated (diffusers' convention).
std::vector<float> keep_weights(const std::string& mask, const UNet2DConfig& cfg) {
  const int64_t H = cfg.sample_height, W = cfg.sample_width, C = cfg.in_channels;
  std::vector<float> keep(static_cast<size_t>(H * W * C), 1.0f);
  const auto regenerate = [&](int64_t y, int64_t x) {
    for (int64_t c = 0; c < C; ++c) keep[static_cast<size_t>((y * W + x) * C + c)] = 0.0f;
  };
  const bool named = mask == "left" || mask == "right" || mask == "top" || mask == "bottom" || mask == "center";
  if (named) {
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const bool hole = (mask == "left" && x < W / 2) || (mask == "right" && x >= W / 2) ||
                          (mask == "top" && y < H / 2) || (mask == "bottom" && y >= H / 2) ||
                          (mask == "center" && y >= H / 4 && y < H - H / 4 && x >= W / 4 && x < W - W / 4);
        if (hole) regenerate(y, x);
      }
    return keep;
  }
  Image m = read_image(mask, 1);
  if (m.height != H || m.width != W) {
    std::fprintf(stderr, "note: %s is %lldx%lld; the model takes %lldx%lld: scaled to cover it, centre cropped\n",
                 mask.c_str(), static_cast<long long>(m.width), static_cast<long long>(m.height),
                 static_cast<long long>(W), static_cast<long long>(H));
    m = resize_cover_crop(m, H, W);
  }
  return keep_from_mask(m.pixels.data(), H * W, C, mask);
}

}  // namespace

CLI::App* add_img2img_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("img2img", "Image-to-image (SDEdit): noise an image part of the way, then denoise it");
  add_model_flags(cmd, img2img, "img2img.png");
  cmd->add_option("--image", img2img.image, "PNG/JPEG input (converted and resized to the model)")->required();
  cmd->add_option("--strength", img2img.strengths,
                  "how far to noise, in (0, 1]: 1 ignores the input, small values keep it (several: a grid row each)")
      ->delimiter(',')
      ->check(CLI::Range(1e-6, 1.0))
      ->capture_default_str();
  cmd->add_option("--n", img2img.n, "variations per strength")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--seed", img2img.seed, "seed of the noise")->capture_default_str();
  add_sampler_flags(cmd, img2img.sampler);
  return cmd;
}

int run_img2img_command() {
  const EditOptions& o = img2img;
  DiffusionModel model = load_for(o, o.n);
  const UNet2DConfig& cfg = model.dir.unet;
  const int64_t per_item = model.per_item(), n = o.n;
  const std::vector<float> input = image_values(o.image, cfg);
  SamplerOptions sampler = sampler_options(o.sampler, model.dir.scheduler);
  std::vector<float> grid, results;
  int64_t calls = 0;
  for (double s : o.strengths) {
    sampler.strength = s;
    calls += static_cast<int64_t>(sampler_timesteps(model.schedule, sampler).size());
  }
  std::fprintf(stderr, "img2img %s: %s, strength", o.image.c_str(),
               describe_sampler(sampler, model.schedule.num_timesteps()).c_str());
  for (double s : o.strengths) std::fprintf(stderr, " %g", s);
  std::fprintf(stderr, "%s\n", describe_classes(o.classes, cfg).c_str());
  ProgressBar bar("img2img", calls, "step");
  NoiseRng rng(o.seed, 0);
  std::vector<float> x0(static_cast<size_t>(n * per_item)), x(x0.size());
  for (int64_t i = 0; i < n; ++i) std::copy(input.begin(), input.end(), x0.begin() + i * per_item);
  int64_t done = 0;
  for (double s : o.strengths) {
    sampler.strength = s;
    const std::vector<int64_t> ts = sampler_timesteps(model.schedule, sampler);
    noise_to_timestep(x.data(), x0.data(), ts.front(), n * per_item, model.schedule, rng);
    run_sampler(model.eps_variance_model(), x.data(), n, per_item, model.schedule, sampler, rng,
                [&](int64_t d, int64_t) { bar.update(done + d); });
    done += static_cast<int64_t>(ts.size());
    grid.insert(grid.end(), input.begin(), input.end());
    grid.insert(grid.end(), x.begin(), x.end());
    results.insert(results.end(), x.begin(), x.end());
  }
  bar.finish();
  write_outputs(o, cfg, grid, n + 1, results);
  return 0;
}

CLI::App* add_inpaint_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("inpaint", "Inpainting (RePaint): regenerate the masked part of an image");
  add_model_flags(cmd, inpaint, "inpaint.png");
  cmd->add_option("--image", inpaint.image, "PNG/JPEG input (converted and resized to the model)")->required();
  cmd->add_option("--mask", inpaint.mask,
                  "what to regenerate: a PNG (white = regenerate, black = keep) or left | right | top | bottom | center")
      ->required();
  cmd->add_option("--n", inpaint.n, "variations")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--seed", inpaint.seed, "seed of the noise")->capture_default_str();
  inpaint.sampler.steps = 250;  // RePaint's setting
  cmd->add_option("--steps", inpaint.sampler.steps, "respaced DDPM steps (RePaint: 250)")->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--jump-length", inpaint.jump_length, "resampling: steps gone back up per jump (RePaint's j)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--jump-n-sample", inpaint.jump_n_sample, "resampling: times each jump is taken (RePaint's r; 1: none)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  return cmd;
}

int run_inpaint_command() {
  const EditOptions& o = inpaint;
  DiffusionModel model = load_for(o, o.n);
  const UNet2DConfig& cfg = model.dir.unet;
  const int64_t per_item = model.per_item(), n = o.n;
  const std::vector<float> input = image_values(o.image, cfg);
  const std::vector<float> keep_one = keep_weights(o.mask, cfg);
  SamplerFlags flags = o.sampler;
  flags.sampler = "ddpm";
  const SamplerOptions sampler = sampler_options(flags, model.dir.scheduler);
  RepaintOptions repaint;
  repaint.jump_length = o.jump_length;
  repaint.jump_n_sample = o.jump_n_sample;
  const int64_t calls = inpaint_calls(model, n, sampler, repaint);
  std::fprintf(stderr, "inpaint %s (mask %s): RePaint, %lld steps, jumps of %lld taken %lld times: %lld U-Net calls%s\n",
               o.image.c_str(), o.mask.c_str(), static_cast<long long>(sampler.steps),
               static_cast<long long>(o.jump_length), static_cast<long long>(o.jump_n_sample),
               static_cast<long long>(calls), describe_classes(o.classes, cfg).c_str());
  ProgressBar bar("inpaint", calls, "step");
  std::vector<float> x(static_cast<size_t>(n * per_item));
  inpaint_images(model, input.data(), keep_one.data(), n, o.seed, sampler, repaint, x.data(), nullptr,
                 [&](int64_t d, int64_t) { bar.update(d); });
  bar.finish();
  // Row: the input, the input with the region to regenerate greyed out, the results.
  std::vector<float> grid(input.begin(), input.end());
  for (int64_t k = 0; k < per_item; ++k) grid.push_back(keep_one[static_cast<size_t>(k)] * input[static_cast<size_t>(k)]);
  grid.insert(grid.end(), x.begin(), x.end());
  write_outputs(o, cfg, grid, n + 2, x);
  return 0;
}

CLI::App* add_interpolate_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("interpolate", "Interpolate between two seeds: slerp of x_T, deterministic sampler");
  add_model_flags(cmd, interp, "interpolate.png");
  cmd->add_option("--seed-a", interp.seed, "seed of the first image (as `ddpm sample --n 1 --seed`)")->capture_default_str();
  cmd->add_option("--seed-b", interp.seed_b, "seed of the last image")->capture_default_str();
  cmd->add_option("--frames", interp.frames, "images along the path, both ends included")->check(CLI::Range(2, 1024))
      ->capture_default_str();
  interp.sampler.sampler = "ddim";
  add_sampler_flags(cmd, interp.sampler);
  return cmd;
}

int run_interpolate_command() {
  const EditOptions& o = interp;
  const SamplerKind kind = parse_sampler_kind(o.sampler.sampler);
  if (kind == SamplerKind::ddpm || (kind == SamplerKind::ddim && o.sampler.eta != 0))
    throw std::invalid_argument("interpolate: needs a deterministic sampler (ddim with eta 0, or dpm-solver++): a "
                                "stochastic one adds fresh noise at every step, so neighbouring frames would not be related");
  const int64_t n = o.frames;
  DiffusionModel model = load_for(o, n);
  const UNet2DConfig& cfg = model.dir.unet;
  const int64_t per_item = model.per_item();
  std::vector<float> a(static_cast<size_t>(per_item)), b(a.size()), x(static_cast<size_t>(n * per_item));
  NoiseRng(o.seed, 0).fill_normal(a.data(), per_item);  // x_T as `ddpm sample --n 1 --seed` draws it
  NoiseRng(o.seed_b, 0).fill_normal(b.data(), per_item);
  for (int64_t i = 0; i < n; ++i)
    slerp(x.data() + i * per_item, a.data(), b.data(), static_cast<double>(i) / static_cast<double>(n - 1), per_item);
  const SamplerOptions sampler = sampler_options(o.sampler, model.dir.scheduler);
  std::fprintf(stderr, "interpolating seed %llu -> %llu in %lld frames: %s%s\n", static_cast<unsigned long long>(o.seed),
               static_cast<unsigned long long>(o.seed_b), static_cast<long long>(n),
               describe_sampler(sampler, model.schedule.num_timesteps()).c_str(), describe_classes(o.classes, cfg).c_str());
  ProgressBar bar("interpolate", static_cast<int64_t>(sampler_timesteps(model.schedule, sampler).size()), "step");
  NoiseRng rng(o.seed, 1);  // unused by deterministic samplers
  run_sampler(model.eps_variance_model(), x.data(), n, per_item, model.schedule, sampler, rng,
              [&](int64_t d, int64_t) { bar.update(d); });
  bar.finish();
  write_outputs(o, cfg, x, n, x);
  return 0;
}

}  // namespace ddpm::app
