#include "ddpm/pipeline/editing_pipeline.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "ddpm/diffusion/noise_rng.h"

namespace ddpm {

namespace {

// Runs edit(x, count) over n images in batches: x [batch, per_item] holds the batch's copies of
// the image on entry and the results on return; the classes of each batch are set first.
template <typename Edit>
void in_batches(DiffusionModel& model, const float* image, int64_t n, float* out, const int32_t* classes, Edit&& edit) {
  const int64_t batch = model.batch(), per_item = model.per_item();
  std::vector<float> x(static_cast<size_t>(batch * per_item));
  for (int64_t first = 0; first < n; first += batch) {
    const int64_t count = std::min(batch, n - first);
    if (classes && !model.classes.empty()) {  // a short last batch keeps the null class in its padding
      std::fill(model.classes.begin(), model.classes.end(), static_cast<int32_t>(model.dir.unet.class_count() - 1));
      std::copy_n(classes + first, count, model.classes.begin());
    }
    for (int64_t i = 0; i < batch; ++i) std::copy_n(image, per_item, x.begin() + i * per_item);
    edit(x.data(), first);
    std::copy_n(x.begin(), count * per_item, out + first * per_item);
  }
}

SamplerOptions repaint_sampler(SamplerOptions sampler) {
  sampler.kind = SamplerKind::ddpm;
  if (sampler.variance == Variance::learned_range) sampler.variance = Variance::fixed_large;  // RePaint's fixed one
  return sampler;
}

}  // namespace

void img2img_images(DiffusionModel& model, const float* image, int64_t n, uint64_t seed, const SamplerOptions& sampler,
                    float* out, const int32_t* classes, const SampleProgress& progress) {
  const int64_t batch = model.batch(), per_item = model.per_item();
  const std::vector<int64_t> ts = sampler_timesteps(model.schedule, sampler);
  const auto steps = static_cast<int64_t>(ts.size()), total = steps * ((n + batch - 1) / batch);
  NoiseRng rng(seed, 0);
  std::vector<float> x_t(static_cast<size_t>(batch * per_item));
  in_batches(model, image, n, out, classes, [&](float* x, int64_t first) {
    noise_to_timestep(x_t.data(), x, ts.front(), batch * per_item, model.schedule, rng);
    std::copy(x_t.begin(), x_t.end(), x);
    run_sampler(model.eps_variance_model(), x, batch, per_item, model.schedule, sampler, rng,
                [&](int64_t done, int64_t) {
                  if (progress) progress(first / batch * steps + done, total);
                });
  });
}

void translate_images(DiffusionModel& model, const float* conditions, int64_t n, uint64_t seed,
                      const SamplerOptions& sampler, float* out, const SampleProgress& progress) {
  const int64_t batch = model.batch(), per_item = model.per_item();
  const UNet2DConfig& cfg = model.dir.unet;
  const int64_t per_condition = cfg.sample_height * cfg.sample_width * model.dir.condition_channels();
  model.condition.assign(static_cast<size_t>(batch * per_condition), 0.0f);
  std::vector<float> x(static_cast<size_t>(batch * per_item));
  NoiseRng rng(seed, 0);
  const auto steps = static_cast<int64_t>(sampler_timesteps(model.schedule, sampler).size());
  const int64_t total = steps * ((n + batch - 1) / batch);
  for (int64_t first = 0; first < n; first += batch) {
    const int64_t count = std::min(batch, n - first);
    std::fill(model.condition.begin(), model.condition.end(), 0.0f);  // a short last batch: zero padding
    std::copy_n(conditions + first * per_condition, count * per_condition, model.condition.begin());
    rng.fill_normal(x.data(), batch * per_item);
    run_sampler(model.eps_variance_model(), x.data(), batch, per_item, model.schedule, sampler, rng,
                [&](int64_t done, int64_t) {
                  if (progress) progress(first / batch * steps + done, total);
                });
    std::copy_n(x.begin(), count * per_item, out + first * per_item);
  }
}

std::vector<float> keep_from_mask(const uint8_t* mask, int64_t pixels, int64_t channels, const std::string& what) {
  std::vector<float> keep(static_cast<size_t>(pixels * channels));
  int64_t regenerated = 0;
  for (int64_t p = 0; p < pixels; ++p) {
    const float k = 1.0f - static_cast<float>(mask[p]) / 255.0f;
    regenerated += k < 0.5f;
    std::fill_n(keep.begin() + p * channels, channels, k);
  }
  if (regenerated == 0)
    throw std::invalid_argument(what + ": the mask has no white (to be regenerated) pixels: nothing to inpaint");
  return keep;
}

int64_t inpaint_calls(const DiffusionModel& model, int64_t n, const SamplerOptions& sampler,
                      const RepaintOptions& repaint) {
  const auto K = static_cast<int64_t>(sampler_timesteps(model.schedule, repaint_sampler(sampler)).size());
  return repaint_model_calls(K, repaint.jump_length, repaint.jump_n_sample) * ((n + model.batch() - 1) / model.batch());
}

void inpaint_images(DiffusionModel& model, const float* image, const float* keep, int64_t n, uint64_t seed,
                    const SamplerOptions& sampler, const RepaintOptions& repaint, float* out, const int32_t* classes,
                    const SampleProgress& progress) {
  const int64_t batch = model.batch(), per_item = model.per_item();
  const SamplerOptions ddpm = repaint_sampler(sampler);
  const std::vector<int64_t> ts = sampler_timesteps(model.schedule, ddpm);
  RepaintOptions options = repaint;
  options.clip_x0 = ddpm.clip_x0;
  options.variance = ddpm.variance;
  const int64_t per_batch = repaint_model_calls(static_cast<int64_t>(ts.size()), repaint.jump_length,
                                                repaint.jump_n_sample);
  const int64_t total = per_batch * ((n + batch - 1) / batch);
  std::vector<float> known(static_cast<size_t>(batch * per_item)), keep_all(known.size()), unused_v(known.size());
  for (int64_t i = 0; i < batch; ++i) std::copy_n(keep, per_item, keep_all.begin() + i * per_item);
  const EpsVarianceModel ev = model.eps_variance_model();
  const EpsModel eps = [&](const float* x_t, int64_t t, float* e) { ev(x_t, t, e, unused_v.data()); };
  NoiseRng rng(seed, 0);
  in_batches(model, image, n, out, classes, [&](float* x, int64_t first) {
    std::copy_n(x, batch * per_item, known.begin());
    rng.fill_normal(x, batch * per_item);
    sample_repaint(eps, x, known.data(), keep_all.data(), batch, per_item, model.schedule, ts, options, rng,
                   [&](int64_t done, int64_t) {
                     if (progress) progress(first / batch * per_batch + done, total);
                   });
  });
}

}  // namespace ddpm
