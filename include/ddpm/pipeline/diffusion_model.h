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
#include "ddpm/parallel/communicator.h"
#include "ddpm/kernels/precision.h"
#include "ddpm/nn/unet.h"

namespace ddpm {

struct DiffusionModel {
  ModelDir dir;
  std::unique_ptr<UNet2D> net;
  NoiseSchedule schedule;
  Variance variance;  // learned_range: the U-Net's last C output channels are v
  bool clip_x0;       // the scheduler config's clip_sample
  int64_t images_per_call = 0;
  // Classifier-free guidance scale W. On a class-conditional model with W != 1 the U-Net runs on
  // 2 x batch images per call: the batch with its classes, then with the null class, and
  // eps = eps_uncond + W (eps_cond - eps_uncond) (v, for learned_range, from the conditional half).
  double guidance = 1.0;
  // [batch, H, W, condition channels]: the condition images of an image-conditioned model
  // (dir.condition_channels() > 0), given to the U-Net after the noisy image's channels.
  std::vector<float> condition{};
  std::vector<int32_t> classes{};  // [batch]: each image's class (class-conditional models; null by default)
  // Data-parallel generation (mpirun): generate_images spreads its batches over these processes
  // and gathers the images on rank 0. Null: this process alone.
  Communicator* comm = nullptr;

  int64_t batch() const { return images_per_call; }
  bool guided() const { return dir.unet.num_class_embeds && guidance != 1.0; }
  int64_t per_item() const;  // values of one image: H·W·C (C: dir.image_channels())
  // 16 hex digits: FNV-1a 64 of the loaded fp32 weights (parallel/communicator.h's checksum), the
  // same whatever dtype the file stored; `ddpm info --model` prints it and sampled PNGs record it.
  std::string weights_checksum() const;
  // ε_θ (and v, for learned_range; otherwise v is left alone) at one timestep for the whole
  // batch, and at a timestep per item; eps_model drops v.
  EpsModel eps_model();
  EpsVarianceModel eps_variance_model();
  BatchEpsVarianceModel batch_eps_variance_model();

  std::vector<float> timestep_buffer{};  // [batch] timesteps as the U-Net takes them (float)
  std::vector<float> output_buffer{};  // [batch, H, W, 2C] for learned_range, split into ε and v
  std::vector<float> unused_v{};       // eps_model's v of a learned_range model
  std::vector<float> guided_x{}, guided_t{}, guided_out{}, guided_eps{};  // the doubled batch of a guided call
  std::vector<int32_t> guided_labels{};
  std::vector<float> conditioned_x{};  // [x_t, condition] along channels

 private:
  void forward(const float* x_t, float* eps, float* v);  // timestep_buffer holds the timesteps
};

// read_model_dir, printing once per directory what it had to assume (warnings on stderr).
ModelDir open_model_dir(const std::string& path);

// An image file as the model takes it: converted to the model's channels and resized (cover, then
// centre crop) to its sample size, with a one-line note on stderr for each change made (a grey
// image given to an RGB model, or the reverse; a different size).
Image read_model_image(const std::string& path, const UNet2DConfig& cfg);

// Reads `path` (a diffusers model directory), builds the U-Net for `batch` images (2 x batch
// when guided) on `device` and loads its weights. Throws with the path in the message when anything is
// missing or malformed.
DiffusionModel load_diffusion_model(const std::string& path, int64_t batch, Precision precision,
                                    double guidance = 1.0, Device device = Device::cpu);

// n images into out [n, per_item] (values in [−1, 1]) with the given sampler, in batches of the
// model's batch size (with model.comm of P processes: a share of the batches each, the images on
// rank 0 alone, the same as one process makes). For each batch, x_T and then every stochastic step's noise come from one
// Philox stream of `seed` (so `ddpm sample` with the same seed and batch reproduces the same
// pictures); when init_noise is given ([n, per_item] NHWC), x_T is read from it instead and the
// stream gives only the steps' noise. progress(done, total) counts U-Net calls.
void generate_images(DiffusionModel& model, int64_t n, uint64_t seed, const SamplerOptions& sampler, float* out,
                     const SampleProgress& progress = {}, const float* init_noise = nullptr);

// generate_images for a class-conditional model: classes [n] (image_classes()) set each image's
// class, batch by batch.
void generate_images(DiffusionModel& model, int64_t n, uint64_t seed, const SamplerOptions& sampler, float* out,
                     const SampleProgress& progress, const float* init_noise, const int32_t* classes);

// U-Net calls that generate_images makes for n images.
int64_t generation_calls(const DiffusionModel& model, int64_t n, const SamplerOptions& sampler);

}  // namespace ddpm
