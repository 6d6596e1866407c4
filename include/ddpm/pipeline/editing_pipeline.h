// Editing one image with a loaded model, any number of times, in batches of the model's batch
// size: image-to-image (SDEdit) and inpainting (RePaint) as `ddpm img2img` and `ddpm inpaint`
// run them (diffusion/editing.h has the methods); and image-conditioned generation as `ddpm
// translate` runs it. Shared by the CLI and the C interface.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ddpm/diffusion/editing.h"
#include "ddpm/diffusion/sampler.h"
#include "ddpm/pipeline/diffusion_model.h"

namespace ddpm {

// n variations of `image` ([per_item] in [−1, 1]) into out [n, per_item]: per batch, the image
// noised to the first timestep of the sampler (cut by sampler.strength), then denoised. The noise
// comes from one Philox stream of `seed` across the batches (a short last batch is padded and its
// padding dropped), so with n equal to the batch this is `ddpm img2img` at one strength.
// classes [n] (class-conditional models) or null. progress counts U-Net calls.
void img2img_images(DiffusionModel& model, const float* image, int64_t n, uint64_t seed, const SamplerOptions& sampler,
                    float* out, const int32_t* classes = nullptr, const SampleProgress& progress = {});

// n inpaintings of `image` into out: keep [per_item] is 1 where the image is kept and 0 where it
// is regenerated; RePaint over the sampler's timesteps (respaced DDPM; a learned variance is
// replaced by fixed_large, RePaint's), x_T and all noise from one stream of `seed` as above.
// The kept values of every result equal the image's exactly.
void inpaint_images(DiffusionModel& model, const float* image, const float* keep, int64_t n, uint64_t seed,
                    const SamplerOptions& sampler, const RepaintOptions& repaint, float* out,
                    const int32_t* classes = nullptr, const SampleProgress& progress = {});

// Image-conditioned models (SR3/Palette, `ddpm translate`): one output per condition, conditions
// [n, H, W, condition channels] in [−1, 1], in batches (a short last batch has zero conditions in
// its padding); x_T and every step's noise from one stream of `seed` across the batches.
void translate_images(DiffusionModel& model, const float* conditions, int64_t n, uint64_t seed,
                      const SamplerOptions& sampler, float* out, const SampleProgress& progress = {});

// inpaint_images' keep weights [pixels * channels] from a mask of `pixels` bytes: 255 (white)
// regenerates, 0 keeps (diffusers' convention), values between blend. Throws
// std::invalid_argument when no pixel is to be regenerated (`what` names the mask).
std::vector<float> keep_from_mask(const uint8_t* mask, int64_t pixels, int64_t channels, const std::string& what);

// U-Net calls inpaint_images makes for n images.
int64_t inpaint_calls(const DiffusionModel& model, int64_t n, const SamplerOptions& sampler,
                      const RepaintOptions& repaint);

}  // namespace ddpm
