#include "diffusion_model.h"

#include <algorithm>

#include "ddpm/diffusion/noise_rng.h"

namespace ddpm::app {

int64_t DiffusionModel::per_item() const {
  const UNet2DConfig& cfg = dir.unet;
  return cfg.sample_height * cfg.sample_width * cfg.in_channels;
}

EpsModel DiffusionModel::eps_model() {
  timestep_buffer.resize(static_cast<size_t>(batch()));
  return [this](const float* x_t, int64_t t, float* eps) {
    std::fill(timestep_buffer.begin(), timestep_buffer.end(), static_cast<float>(t));
    net->forward(x_t, timestep_buffer.data(), eps, 0);
  };
}

BatchEpsModel DiffusionModel::batch_eps_model() {
  timestep_buffer.resize(static_cast<size_t>(batch()));
  return [this](const float* x_t, const int64_t* t, float* eps) {
    for (size_t b = 0; b < timestep_buffer.size(); ++b) timestep_buffer[b] = static_cast<float>(t[b]);
    net->forward(x_t, timestep_buffer.data(), eps, 0);
  };
}

DiffusionModel load_diffusion_model(const std::string& path, int64_t batch, Precision precision) {
  ModelDir dir = read_model_dir(path);
  auto net = std::make_unique<UNet2D>(dir.unet, batch, precision, false);
  TensorList list;
  for (const ParamInfo& p : net->parameters()) list.emplace_back(p.name, p.shape);
  load_model_dir_weights(path, dir.unet, list, net->params());
  net->set_weights();
  const SchedulerConfig& s = dir.scheduler;
  NoiseSchedule schedule(parse_schedule_kind(s.beta_schedule), s.num_train_timesteps, s.beta_start, s.beta_end);
  const Variance variance = parse_variance(s.variance_type);
  const bool clip = s.clip_sample;
  return DiffusionModel{std::move(dir), std::move(net), std::move(schedule), variance, clip, {}};
}

void generate_ddpm(DiffusionModel& model, int64_t n, uint64_t seed, bool clip_x0, float* out,
                   const SampleProgress& progress) {
  const int64_t batch = model.batch(), per_item = model.per_item();
  const int64_t T = model.schedule.num_timesteps();
  const int64_t total = T * ((n + batch - 1) / batch);
  std::vector<float> x(static_cast<size_t>(batch * per_item));
  NoiseRng rng(seed, 0);
  const EpsModel eps = model.eps_model();
  int64_t done = 0;
  for (int64_t first = 0; first < n; first += batch) {
    rng.fill_normal(x.data(), batch * per_item);
    sample_ddpm(eps, x.data(), batch, per_item, model.schedule, model.variance, clip_x0, rng,
                [&](int64_t d, int64_t) {
                  if (progress) progress(done + d, total);
                });
    done += T;
    const int64_t count = std::min(batch, n - first);
    std::copy_n(x.begin(), count * per_item, out + first * per_item);
  }
}

}  // namespace ddpm::app
