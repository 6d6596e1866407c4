#include "ddpm/pipeline/diffusion_model.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "ddpm/diffusion/hybrid_loss.h"
#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/image/resize.h"
#include "ddpm/kernels/concat.h"
#include "ddpm/log.h"
#include "device_sampling.h"

namespace ddpm {

int64_t DiffusionModel::per_item() const {
  const UNet2DConfig& cfg = dir.unet;
  return cfg.sample_height * cfg.sample_width * dir.image_channels();
}

void DiffusionModel::forward(const float* x_t, float* eps, float* v) {
  const UNet2DConfig& cfg = dir.unet;
  const int64_t B = batch(), n = B * per_item(), pixels = B * cfg.sample_height * cfg.sample_width;
  const int64_t C = dir.image_channels(), Cc = dir.condition_channels();
  const bool learned = variance == Variance::learned_range;
  if (Cc > 0) {  // the U-Net's input: the noisy image, then the condition, along channels
    if (condition.size() != static_cast<size_t>(pixels * Cc))
      throw std::invalid_argument("this model is image-conditioned (in_channels " + std::to_string(cfg.in_channels) +
                                  " = " + std::to_string(C) + " image + " + std::to_string(Cc) +
                                  " condition channels): sample it with `ddpm translate --image IN.png`");
    conditioned_x.resize(static_cast<size_t>(pixels * (C + Cc)));
    cpu::concat_channels_forward(conditioned_x.data(), x_t, C, condition.data(), Cc, pixels);
    x_t = conditioned_x.data();
  }
  const int32_t* labels = cfg.num_class_embeds ? classes.data() : nullptr;
  if (!guided()) {
    if (!learned) return net->forward(x_t, timestep_buffer.data(), eps, 0, labels);
    output_buffer.resize(static_cast<size_t>(2 * n));
    net->forward(x_t, timestep_buffer.data(), output_buffer.data(), 0, labels);
    split_eps_variance(output_buffer.data(), eps, v, pixels, C);
    return;
  }
  // One U-Net call on [x_t with its classes; x_t with the null class].
  const auto null_class = static_cast<int32_t>(cfg.class_count() - 1);
  const int64_t in = pixels * cfg.in_channels;
  guided_x.resize(static_cast<size_t>(2 * in));
  std::copy_n(x_t, in, guided_x.begin());
  std::copy_n(x_t, in, guided_x.begin() + in);
  guided_t.resize(static_cast<size_t>(2 * B));
  std::copy(timestep_buffer.begin(), timestep_buffer.end(), guided_t.begin());
  std::copy(timestep_buffer.begin(), timestep_buffer.end(), guided_t.begin() + B);
  guided_labels.assign(static_cast<size_t>(2 * B), null_class);
  std::copy(classes.begin(), classes.end(), guided_labels.begin());
  const int64_t out_per_half = n * (learned ? 2 : 1);
  guided_out.resize(static_cast<size_t>(2 * out_per_half));
  net->forward(guided_x.data(), guided_t.data(), guided_out.data(), 0, guided_labels.data());
  const float* uncond = guided_out.data() + out_per_half;
  if (learned) {
    guided_eps.resize(static_cast<size_t>(2 * n));  // the unconditional ε, then its unused v
    split_eps_variance(guided_out.data(), eps, v, pixels, C);
    split_eps_variance(uncond, guided_eps.data(), guided_eps.data() + n, pixels, C);
    uncond = guided_eps.data();
  } else {
    std::copy_n(guided_out.data(), n, eps);
  }
  const auto w = static_cast<float>(guidance);
  for (int64_t i = 0; i < n; ++i) eps[i] = uncond[i] + w * (eps[i] - uncond[i]);
}

std::string DiffusionModel::weights_checksum() const {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(checksum(net->params(), net->parameter_count())));
  return hex;
}

EpsModel DiffusionModel::eps_model() {
  timestep_buffer.resize(static_cast<size_t>(batch()));
  unused_v.resize(variance == Variance::learned_range ? static_cast<size_t>(batch() * per_item()) : 0);
  return [this](const float* x_t, int64_t t, float* eps) {
    std::fill(timestep_buffer.begin(), timestep_buffer.end(), static_cast<float>(t));
    forward(x_t, eps, unused_v.data());
  };
}

EpsVarianceModel DiffusionModel::eps_variance_model() {
  timestep_buffer.resize(static_cast<size_t>(batch()));
  return [this](const float* x_t, int64_t t, float* eps, float* v) {
    std::fill(timestep_buffer.begin(), timestep_buffer.end(), static_cast<float>(t));
    forward(x_t, eps, v);
  };
}

BatchEpsVarianceModel DiffusionModel::batch_eps_variance_model() {
  timestep_buffer.resize(static_cast<size_t>(batch()));
  return [this](const float* x_t, const int64_t* t, float* eps, float* v) {
    for (size_t b = 0; b < timestep_buffer.size(); ++b) timestep_buffer[b] = static_cast<float>(t[b]);
    forward(x_t, eps, v);
  };
}

ModelDir open_model_dir(const std::string& path) {
  static std::set<std::string> warned;  // a command may read one model directory twice
  ModelDir dir = read_model_dir(path);
  if (warned.insert(path).second)
    for (const std::string& line : dir.assumed) log_message(LogLevel::warning, line);
  return dir;
}

Image read_model_image(const std::string& path, const UNet2DConfig& cfg) {
  const auto name = [](int64_t c) { return std::string(c == 1 ? "1 channel (grey)" : "3 channels (RGB)"); };
  Image image = read_image(path);  // as stored: 1 or 3 channels (alpha dropped)
  if (image.channels != cfg.in_channels) {
    log_message(LogLevel::note, path + " has " + name(image.channels) + " but the model takes " + name(cfg.in_channels) +
                                    ": " +
                                    (cfg.in_channels == 1 ? "converted to grey (BT.601 luma)"
                                                          : "its grey copied into R, G and B"));
    image = read_image(path, cfg.in_channels);
  }
  if (image.height != cfg.sample_height || image.width != cfg.sample_width) {
    log_message(LogLevel::note, path + " is " + std::to_string(image.width) + "x" + std::to_string(image.height) +
                                    "; the model takes " + std::to_string(cfg.sample_width) + "x" +
                                    std::to_string(cfg.sample_height) + ": scaled to cover it, centre cropped");
    image = resize_cover_crop(image, cfg.sample_height, cfg.sample_width);
  }
  return image;
}

DiffusionModel load_diffusion_model(const std::string& path, int64_t batch, Precision precision, double guidance,
                                    Device device) {
  ModelDir dir = open_model_dir(path);
  const bool guided = dir.unet.num_class_embeds && guidance != 1.0;
  auto net = std::make_unique<UNet2D>(dir.unet, guided ? 2 * batch : batch, precision, false, device);
  TensorList list;
  for (const ParamInfo& p : net->parameters()) list.emplace_back(p.name, p.shape);
  load_model_dir_weights(path, dir.unet, list, net->params());
  net->set_weights();
  const SchedulerConfig& s = dir.scheduler;
  NoiseSchedule schedule(parse_schedule_kind(s.beta_schedule), s.num_train_timesteps, s.beta_start, s.beta_end);
  const Variance variance = parse_variance(s.variance_type);
  const bool clip = s.clip_sample;
  DiffusionModel model{std::move(dir), std::move(net), std::move(schedule), variance, clip};
  model.images_per_call = batch;
  model.guidance = guidance;
  if (model.dir.unet.num_class_embeds)
    model.classes.assign(static_cast<size_t>(batch), static_cast<int32_t>(model.dir.unet.class_count() - 1));
  return model;
}

int64_t generation_calls(const DiffusionModel& model, int64_t n, const SamplerOptions& sampler) {
  const auto steps = static_cast<int64_t>(sampler_timesteps(model.schedule, sampler).size());
  return steps * ((n + model.batch() - 1) / model.batch());
}

void generate_images(DiffusionModel& model, int64_t n, uint64_t seed, const SamplerOptions& sampler, float* out,
                     const SampleProgress& progress, const float* init_noise) {
  generate_images(model, n, seed, sampler, out, progress, init_noise, nullptr);
}

namespace {

// Philox blocks that one batch of generate_images takes from the stream (x_T unless given, then
// every stochastic step's noise): the same for every batch, so found once by running the sampler
// on a stand-in model that predicts zeros (no U-Net work).
uint64_t noise_blocks_per_batch(const DiffusionModel& model, const SamplerOptions& sampler, bool init_noise) {
  const int64_t batch = model.batch(), per_item = model.per_item();
  std::vector<float> x(static_cast<size_t>(batch * per_item), 0.0f);
  NoiseRng rng(0, 0);
  if (!init_noise) rng.fill_normal(x.data(), batch * per_item);
  const EpsVarianceModel zero = [&](const float*, int64_t, float* eps, float* v) {
    std::fill(eps, eps + batch * per_item, 0.0f);
    if (v) std::fill(v, v + batch * per_item, 0.0f);
  };
  run_sampler(zero, x.data(), batch, per_item, model.schedule, sampler, rng);
  return rng.offset();
}

}  // namespace

void generate_images(DiffusionModel& model, int64_t n, uint64_t seed, const SamplerOptions& sampler, float* out,
                     const SampleProgress& progress, const float* init_noise, const int32_t* classes) {
  const int64_t batch = model.batch(), per_item = model.per_item();
  // Data-parallel (mpirun): each process takes a contiguous run of the batches, starting each at
  // the stream position one process would have reached there, and rank 0 gathers the images.
  Communicator& comm = model.comm ? *model.comm : single_process();
  const int64_t batches = (n + batch - 1) / batch;
  const Shard mine = shard_of(batches, comm.rank(), comm.size());
  const uint64_t blocks = comm.size() > 1 ? noise_blocks_per_batch(model, sampler, init_noise != nullptr) : 0;
  const int64_t per_batch = generation_calls(model, batch, sampler);
  const int64_t my_first = std::min(n, mine.first * batch), my_end = std::min(n, (mine.first + mine.count) * batch);
  const int64_t total = comm.size() > 1 ? mine.count * per_batch : generation_calls(model, n, sampler);
  std::vector<float> x(static_cast<size_t>(batch * per_item));
  NoiseRng rng(seed, mine.first * blocks);
  const EpsVarianceModel eps = model.eps_variance_model();
  // --device cuda with plain DDPM sampling: the whole chain on the GPU, the U-Net replayed as a graph.
  std::unique_ptr<GraphForward> device_eps;
  if (samples_on_device(model, sampler)) device_eps = std::make_unique<GraphForward>(*model.net);
  int64_t done = 0;
  for (int64_t first = my_first; first < my_end; first += batch) {
    const int64_t count = std::min(batch, n - first);
    if (classes && !model.classes.empty()) {  // a short last batch keeps the null class in its padding
      std::fill(model.classes.begin(), model.classes.end(), static_cast<int32_t>(model.dir.unet.class_count() - 1));
      std::copy_n(classes + first, count, model.classes.begin());
    }
    if (init_noise) {  // a short last batch is padded with zeros, which are sampled and dropped
      std::fill(x.begin(), x.end(), 0.0f);
      std::copy_n(init_noise + first * per_item, count * per_item, x.begin());
    } else {
      rng.fill_normal(x.data(), batch * per_item);
    }
    const SampleProgress batch_progress = [&](int64_t d, int64_t) {
      if (progress) progress(done + d, total);
    };
    if (device_eps)
      sample_batch_on_device(model, *device_eps, x.data(), sampler, rng, batch_progress);
    else
      run_sampler(eps, x.data(), batch, per_item, model.schedule, sampler, rng, batch_progress);
    done += per_batch;
    std::copy_n(x.begin(), count * per_item, out + first * per_item);
  }
  if (comm.size() > 1) {
    std::vector<int64_t> counts = batched_shard_counts(n, batch, comm.size());
    for (int64_t& c : counts) c *= per_item;
    const std::vector<float> part(out + my_first * per_item, out + my_end * per_item);  // MPI forbids aliasing
    comm.gather_to_root(part.data(), out, counts);
  }
}

}  // namespace ddpm
