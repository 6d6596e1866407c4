// The device path of generate_images.
#include "device_sampling.h"

#include "ddpm/diffusion/device_sampler.h"

namespace ddpm {

bool samples_on_device(const DiffusionModel& model, const SamplerOptions& sampler) {
  return model.net->device() == Device::cuda && sampler.kind == SamplerKind::ddpm &&
         sampler.variance != Variance::learned_range && model.variance != Variance::learned_range &&
         !model.guided() && model.dir.condition_channels() == 0 && !model.dir.unet.num_class_embeds;
}

void sample_batch_on_device(DiffusionModel& model, GraphForward& eps, float* x, const SamplerOptions& sampler,
                            NoiseRng& rng, const SampleProgress& progress) {
  sample_ddpm_respaced_on_device([&](const float* x_t, int64_t t, float* out) { eps(x_t, t, out); }, x, model.batch(),
                                 model.per_item(), model.schedule, sampler_timesteps(model.schedule, sampler),
                                 sampler.variance, sampler.clip_x0, rng, progress);
}

}  // namespace ddpm
