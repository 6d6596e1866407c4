// A model directory loaded for inference: the U-Net (planned for a fixed batch, weights set), its
// noise schedule and sampling settings, and the two views of it that samplers and the likelihood
// take. Shared by sample, diffuse, eval and predict.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ddpm/diffusion/ddpm_sampler.h"
#include "ddpm/diffusion/likelihood.h"
#include "ddpm/diffusion/sampler.h"
#include "ddpm/diffusion/schedule.h"
#include "ddpm/image/png.h"
#include "ddpm/io/model_dir.h"
#include "ddpm/kernels/precision.h"
#include "ddpm/nn/unet.h"

namespace ddpm::app {

struct DiffusionModel {
  ModelDir dir;
  std::unique_ptr<UNet2D> net;
  NoiseSchedule schedule;
  Variance variance;  // learned_range: the U-Net's last C output channels are v
  bool clip_x0;       // the scheduler config's clip_sample

  int64_t batch() const { return net->batch(); }
  int64_t per_item() const;  // values of one image: H·W·C
  // ε_θ (and v, for learned_range; otherwise v is left alone) at one timestep for the whole
  // batch, and at a timestep per item; eps_model drops v.
  EpsModel eps_model();
  EpsVarianceModel eps_variance_model();
  BatchEpsVarianceModel batch_eps_variance_model();

  std::vector<float> timestep_buffer;  // [batch] timesteps as the U-Net takes them (float)
  std::vector<float> output_buffer;    // [batch, H, W, 2C] for learned_range, split into ε and v
  std::vector<float> unused_v;         // eps_model's v of a learned_range model

 private:
  void forward(const float* x_t, float* eps, float* v);  // timestep_buffer holds the timesteps
};

// read_model_dir, printing once per directory what it had to assume (warnings on stderr).
ModelDir open_model_dir(const std::string& path);

// An image file as the model takes it: converted to the model's channels and resized (cover, then
// centre crop) to its sample size, with a one-line note on stderr for each change made (a grey
// image given to an RGB model, or the reverse; a different size).
Image read_model_image(const std::string& path, const UNet2DConfig& cfg);

// Reads `path` (a diffusers model directory), builds the U-Net for `batch` images and loads its
// weights. Throws with the path in the message when anything is missing or malformed.
DiffusionModel load_diffusion_model(const std::string& path, int64_t batch, Precision precision);

// n images into out [n, per_item] (values in [−1, 1]) with the given sampler, in batches of the
// model's batch size. For each batch, x_T and then every stochastic step's noise come from one
// Philox stream of `seed` (so `ddpm sample` with the same seed and batch reproduces the same
// pictures); when init_noise is given ([n, per_item] NHWC), x_T is read from it instead and the
// stream gives only the steps' noise. progress(done, total) counts U-Net calls.
void generate_images(DiffusionModel& model, int64_t n, uint64_t seed, const SamplerOptions& sampler, float* out,
                     const SampleProgress& progress = {}, const float* init_noise = nullptr);

// U-Net calls that generate_images makes for n images.
int64_t generation_calls(const DiffusionModel& model, int64_t n, const SamplerOptions& sampler);

}  // namespace ddpm::app
