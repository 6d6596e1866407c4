// The training loop and its run directory:
//   RUN/train_options.json          the resolved options (written once, read on resume)
//   RUN/training_state.safetensors  params, EMA, Adam moments + step, RNG and data-order state
//   RUN/log.jsonl                   one JSON object per logged step
//   RUN/samples/step_NNNNNNN.png    sample grids from the EMA weights
//   RUN/model/                      the EMA weights as a diffusers model directory (what
//                                   `ddpm sample --model` and diffusers' DDPMPipeline load)
// Every random draw comes from state saved in the checkpoint, so a resumed run is bit-identical.
#include "ddpm/train/trainer.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

#include "ddpm/bench/profiler.h"
#include "ddpm/data/batcher.h"
#include "ddpm/data/cifar10.h"
#include "ddpm/data/dataset.h"
#include "ddpm/data/idx.h"
#include "ddpm/data/image_folder.h"
#include "ddpm/data/pairs.h"
#include "ddpm/diffusion/ddpm_sampler.h"
#include "ddpm/diffusion/hybrid_loss.h"
#include "ddpm/diffusion/sampler.h"
#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/diffusion/process.h"
#include "ddpm/diffusion/schedule.h"
#include "ddpm/image/png.h"
#include "ddpm/io/model_config.h"
#include "ddpm/io/model_dir.h"
#include "ddpm/io/safetensors.h"
#include "ddpm/kernels/concat.h"
#include "ddpm/kernels/mse.h"
#include "ddpm/kernels/optimizer.h"
#include "ddpm/nn/unet.h"
#include "ddpm/parallel/communicator.h"
#include "ddpm/train/schedules.h"
#include "train/device_optimizer.h"

namespace ddpm {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kStateFile = "training_state.safetensors";
constexpr const char* kOptionsFile = "train_options.json";

UNet2DConfig resolve_config(const std::string& name_or_path);

json options_to_json(const TrainOptions& o) {
  return {{"data", o.data}, {"config", o.config}, {"steps", o.steps}, {"batch", o.batch}, {"lr", o.lr},
          {"warmup_steps", o.warmup_steps}, {"grad_clip", o.grad_clip}, {"ema_decay", o.ema_decay},
          {"ema_warmup", o.ema_warmup}, {"random_flip", o.random_flip}, {"seed", o.seed},
          {"class_conditional", o.class_conditional}, {"label_dropout", o.label_dropout},
          {"super_resolution", o.super_resolution},
          {"precision", precision_name(o.precision)}, {"num_timesteps", o.num_timesteps},
          {"beta_schedule", o.beta_schedule}, {"beta_start", o.beta_start}, {"beta_end", o.beta_end},
          {"save_every", o.save_every}, {"sample_every", o.sample_every}, {"sample_n", o.sample_n},
          {"log_every", o.log_every}, {"learn_variance", o.learn_variance}, {"vlb_weight", o.vlb_weight},
          {"max_nonfinite_steps", o.max_nonfinite_steps}};
}

TrainOptions options_from_json(const json& j, const std::string& run_dir) {
  TrainOptions o;
  o.out = run_dir;
  o.data = j.at("data");
  o.config = j.at("config");
  o.steps = j.at("steps");
  o.batch = j.at("batch");
  o.lr = j.at("lr");
  o.warmup_steps = j.at("warmup_steps");
  o.grad_clip = j.at("grad_clip");
  o.ema_decay = j.at("ema_decay");
  o.ema_warmup = j.at("ema_warmup");
  o.random_flip = j.at("random_flip");
  o.seed = j.at("seed");
  o.precision = parse_precision(j.at("precision"));
  o.num_timesteps = j.at("num_timesteps");
  o.beta_schedule = j.at("beta_schedule");
  o.beta_start = j.at("beta_start");
  o.beta_end = j.at("beta_end");
  o.save_every = j.at("save_every");
  o.sample_every = j.at("sample_every");
  o.sample_n = j.at("sample_n");
  o.log_every = j.at("log_every");
  o.learn_variance = j.value("learn_variance", false);  // absent in runs from before improved DDPM
  o.vlb_weight = j.value("vlb_weight", 0.001);
  o.max_nonfinite_steps = j.value("max_nonfinite_steps", int64_t{5});
  o.class_conditional = j.value("class_conditional", false);
  o.label_dropout = j.value("label_dropout", 0.1);
  o.super_resolution = j.value("super_resolution", int64_t{0});
  return o;
}

std::string hex64(uint64_t v) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(v));
  return hex;
}

// "60000 images 28x28x1, hash 0123456789abcdef": what a resume checks its data against. FNV-1a
// over the pixels and labels, 8 bytes at a time (~20 ms for Fashion-MNIST).
std::string fingerprint(const Dataset& d) {
  uint64_t h = 0xcbf29ce484222325ULL;
  const auto mix = [&h](const void* bytes, size_t n) {
    const auto* p = static_cast<const unsigned char*>(bytes);
    size_t i = 0;
    for (uint64_t word; i + 8 <= n; i += 8) {
      std::memcpy(&word, p + i, 8);
      h = (h ^ word) * 0x100000001b3ULL;
    }
    for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  };
  mix(d.images.data(), d.images.size());
  mix(d.labels.data(), d.labels.size() * sizeof(int32_t));
  return std::to_string(d.n) + " images " + std::to_string(d.height) + "x" + std::to_string(d.width) + "x" +
         std::to_string(d.channels) + ", hash " + hex64(h);
}

void validate(const TrainOptions& o) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("train: " + what); };
  if (o.out.empty()) bad("--out RUN_DIR is required");
  if (o.steps < 1) bad("--steps must be at least 1");
  if (o.batch < 1) bad("--batch must be at least 1");
  if (!(o.lr > 0)) bad("--lr must be positive");
  if (o.warmup_steps < 0) bad("--warmup must be >= 0");
  if (!(o.grad_clip > 0)) bad("--grad-clip must be positive");
  if (!(o.ema_decay >= 0 && o.ema_decay < 1)) bad("--ema-decay must be in [0, 1)");
  if (o.save_every < 1) bad("--save-every must be at least 1");
  if (o.sample_every < 0 || o.sample_n < 1) bad("--sample-every must be >= 0 and --sample-n >= 1");
  if (o.log_every < 1) bad("--log-every must be at least 1");
  if (!(o.vlb_weight >= 0)) bad("--vlb-weight must be >= 0");
  if (o.max_nonfinite_steps < 1) bad("--max-nonfinite-steps must be at least 1");
  if (!(o.label_dropout >= 0 && o.label_dropout <= 1)) bad("--label-dropout must be in [0, 1]");
  if (o.super_resolution != 0 && o.super_resolution != 2 && o.super_resolution != 4)
    bad("--super-resolution must be 2 or 4 (28x28 from 14x14 or 7x7)");
  if (o.super_resolution && o.data.rfind("pairs:", 0) == 0)
    bad("--super-resolution makes its own conditions; pairs:DIR data brings them already");
}

// A class-conditional run: num_class_embeds = classes + 1 (the last row is the null class). A
// config that already sets it must agree; an unconditional run must not have it.
void fit_class_embeds(UNet2DConfig& cfg, const TrainOptions& o, const Dataset& data) {
  if (!o.class_conditional) {
    if (cfg.num_class_embeds)
      throw std::invalid_argument("train: config " + o.config + " sets num_class_embeds " +
                                  std::to_string(*cfg.num_class_embeds) + "; train it with --class-conditional");
    return;
  }
  if (data.num_classes < 2 || data.labels.size() != static_cast<size_t>(data.n))
    throw std::invalid_argument("train: --class-conditional needs labelled data; " + o.data +
                                " has no class labels (fashion-mnist and cifar10:DIR have)");
  const int64_t rows = int64_t{data.num_classes} + 1;
  if (cfg.num_class_embeds && *cfg.num_class_embeds != rows)
    throw std::invalid_argument("train: config " + o.config + " sets num_class_embeds " +
                                std::to_string(*cfg.num_class_embeds) + ", but " + o.data + " has " +
                                std::to_string(data.num_classes) + " classes (+1 null class: " + std::to_string(rows) + ")");
  cfg.num_class_embeds = rows;
}

// Classifier-free guidance's label dropout: whether image b of step `step` trains as the null
// class. A hash of (seed, step, b), like the batcher's flips: nothing to save, resumes exactly.
bool drop_label(uint64_t seed, int64_t step, int64_t b, double p) {
  uint64_t x = (seed ^ 0xC1A55D20ULL) * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(step) * 0xBF58476D1CE4E5B9ULL +
               static_cast<uint64_t>(b);
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return static_cast<double>(x >> 11) * 0x1.0p-53 < p;
}

// The channels of the images the U-Net denoises: out_channels, halved when a learned variance
// already doubled them (a config.json of such a model: out_channels != in_channels).
int64_t image_channels(const UNet2DConfig& cfg, const TrainOptions& o) {
  return o.learn_variance && cfg.out_channels != cfg.in_channels ? cfg.out_channels / 2 : cfg.out_channels;
}

// The U-Net takes the noisy image and the condition (in_channels = C + condition channels) and
// predicts ε (C outputs) and, with a learned variance, v (as many again).
void fit_channels(UNet2DConfig& cfg, const TrainOptions& o, int64_t image, int64_t condition) {
  cfg.in_channels = image + condition;
  cfg.out_channels = (o.learn_variance ? 2 : 1) * image;
}

}  // namespace

Dataset load_dataset(const std::string& spec, Split split, int64_t height, int64_t width, int64_t channels) {
  Dataset data;
  if (spec == "fashion-mnist") {
    data = load_fashion_mnist(kFashionMnistDir, split);
  } else if (spec.rfind("cifar10:", 0) == 0) {
    data = load_cifar10(spec.substr(8), split);
  } else if (spec == "synthetic") {
    // Seeded random pixels of the model's size, labelled i mod 10: for benchmarks and smoke tests,
    // no files needed.
    data.name = "synthetic";
    data.n = 1024, data.height = height, data.width = width, data.channels = channels;
    data.num_classes = 10;
    for (int64_t i = 0; i < data.n; ++i) data.labels.push_back(static_cast<int32_t>(i % 10));
    data.images.resize(static_cast<size_t>(data.n * data.image_size()));
    uint64_t state = 0x9E3779B97F4A7C15ULL;
    for (uint8_t& px : data.images) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      px = static_cast<uint8_t>(state >> 56);
    }
  } else if (spec.rfind("pairs:", 0) == 0) {
    if (split != Split::train)
      throw std::invalid_argument("--data " + spec + ": image pairs have no test split (use --split train)");
    data = load_image_pairs(spec.substr(6), height, width, channels);
  } else if (spec.rfind("folder:", 0) == 0) {
    if (split != Split::train)
      throw std::invalid_argument("--data " + spec + ": an image folder has no test split (use --split train)");
    data = load_image_folder(spec.substr(7), height, width, channels);
  } else {
    throw std::invalid_argument("--data '" + spec + "' is not one of fashion-mnist, cifar10:DIR, folder:DIR, pairs:DIR, synthetic");
  }
  return data;
}

Dataset load_training_data(const std::string& spec, const UNet2DConfig& config, Split split, int64_t channels) {
  if (channels == 0) channels = config.in_channels;
  Dataset data = load_dataset(spec, split, config.sample_height, config.sample_width, channels);
  if (data.height != config.sample_height || data.width != config.sample_width || data.channels != channels)
    throw std::invalid_argument(
        data.name + " has " + std::to_string(data.height) + "x" + std::to_string(data.width) + "x" +
        std::to_string(data.channels) + " images, but the model's config needs sample_size " +
        std::to_string(config.sample_height) + "x" + std::to_string(config.sample_width) + " and " +
        std::to_string(channels) + " channels (for Fashion-MNIST use --config fmnist-small or fmnist-64)");
  return data;
}

namespace {
UNet2DConfig resolve_config(const std::string& name_or_path) {
  if (fs::is_regular_file(name_or_path)) return read_unet_config(name_or_path);
  if (fs::is_directory(name_or_path)) return read_model_dir(name_or_path).unet;
  return named_unet_config(name_or_path);
}
}  // namespace

SchedulerConfig scheduler_config_for(const TrainOptions& o) {
  SchedulerConfig s;
  s.num_train_timesteps = o.num_timesteps;
  s.beta_schedule = o.beta_schedule == "cosine" ? "squaredcos_cap_v2" : o.beta_schedule;
  s.beta_start = o.beta_start;
  s.beta_end = o.beta_end;
  s.variance_type = o.learn_variance ? "learned_range" : "fixed_large";
  s.clip_sample = true;
  s.validate();
  return s;
}

TensorList tensor_list(const UNet2D& model) {
  TensorList list;
  for (const ParamInfo& p : model.parameters()) list.emplace_back(p.name, p.shape);
  return list;
}

struct Trainer::Impl {
  Communicator* comm = &single_process();
  Shard shard;  // this worker's images of every batch: all of them in one process
  TrainOptions opt;
  UNet2DConfig cfg;
  Dataset data;
  std::string data_fingerprint;  // recorded in every checkpoint, checked on resume
  std::unique_ptr<Batcher> batcher;
  std::unique_ptr<UNet2D> model;
  std::unique_ptr<UNet2D> sampler_model;  // inference copy for sample grids, built on first use
  std::unique_ptr<NoiseSchedule> schedule;
  NoiseRng rng;
  int64_t step = 0;
  int64_t per_item = 0;
  std::vector<float> ema, adam_m, adam_v;  // on the host; --device cuda: copies of device_optimizer's
  std::unique_ptr<DeviceOptimizer> device_optimizer;  // --device cuda: Adam and the EMA on the device

  // --device cuda: the device state into the host vectors (and the model's params()), before a
  // checkpoint or anything else reads them; and back after they were loaded.
  void download_state() {
    if (device_optimizer) device_optimizer->download(adam_m.data(), adam_v.data(), ema.data());
  }
  void upload_state() {
    if (device_optimizer) device_optimizer->upload(adam_m.data(), adam_v.data(), ema.data());
  }
  // The shard's images (all of the batch's in one process); t and t_float cover the whole batch.
  std::vector<float> x0, x_t, noise, eps, d_eps, t_float;
  std::vector<float> conditions, net_input;  // image-conditioned: the batch's conditions; [x_t, condition]
  std::vector<int32_t> labels;  // the batch's classes (the null class where dropped); -1 when unlabelled
  std::vector<float> out, v, d_v, d_out;  // learn_variance: the 2C-channel output, v and gradients
  std::vector<int64_t> t;
  std::ofstream log;
  float last_grad_norm = 0.0f;
  int64_t nonfinite_in_a_row = 0, nonfinite_total = 0;
  int64_t last_saved_step = -1;
  double last_vlb = 0;

  // Forward, loss and backward of one batch (x_t, noise, t drawn); returns the loss.
  // Data-parallel: each worker's loss and gradients are means over its shard; the caller averages
  // them over the workers.
  double loss_and_gradients() {
    const int64_t B = shard.count, n = B * per_item;
    const uint64_t dropout_seed = opt.seed * 1000003ULL + static_cast<uint64_t>(step);  // no state to save
    const float* t_shard = t_float.data() + shard.first;
    const int32_t* class_labels = nullptr;
    if (opt.class_conditional) {
      const auto null_class = static_cast<int32_t>(cfg.class_count() - 1);
      for (int64_t b = 0; b < B; ++b)
        if (drop_label(opt.seed, step, shard.first + b, opt.label_dropout)) labels[static_cast<size_t>(b)] = null_class;
      class_labels = labels.data();
    }
    const float* input = x_t.data();
    if (!conditions.empty()) {
      const int64_t pixels = B * cfg.sample_height * cfg.sample_width, C = per_item / (cfg.sample_height * cfg.sample_width);
      cpu::concat_channels_forward(net_input.data(), x_t.data(), C, conditions.data(), data.condition_channels, pixels);
      input = net_input.data();
    }
    if (!opt.learn_variance) {
      model->forward(input, t_shard, eps.data(), dropout_seed, class_labels);
      const double loss = cpu::mse_forward(eps.data(), noise.data(), n);
      cpu::mse_backward(d_eps.data(), eps.data(), noise.data(), n);
      model->backward(d_eps.data());
      return loss;
    }
    const int64_t pixels = B * cfg.sample_height * cfg.sample_width, C = per_item / (cfg.sample_height * cfg.sample_width);
    model->forward(input, t_shard, out.data(), dropout_seed, class_labels);
    split_eps_variance(out.data(), eps.data(), v.data(), pixels, C);
    const HybridLoss loss = hybrid_loss(x0.data(), x_t.data(), noise.data(), eps.data(), v.data(), t.data() + shard.first, B,
                                        per_item, *schedule, opt.vlb_weight, d_eps.data(), d_v.data());
    join_eps_variance(d_out.data(), d_eps.data(), d_v.data(), pixels, C);
    model->backward(d_out.data());
    last_vlb = loss.vlb;
    return loss.total;
  }

  void build(const TrainOptions& options, Communicator& world) {
    comm = &world;
    opt = options;
    validate(opt);
    if (opt.batch % comm->size() != 0)
      throw std::invalid_argument("train: --batch " + std::to_string(opt.batch) + " (the global batch) does not split " +
                                  "evenly over " + std::to_string(comm->size()) + " processes; give a multiple of " +
                                  std::to_string(comm->size()));
    shard = shard_of(opt.batch, comm->rank(), comm->size());
    cfg = resolve_config(opt.config);
    const int64_t channels = image_channels(cfg, opt);
    data = load_training_data(opt.data, cfg, Split::train, channels);
    if (opt.super_resolution) add_super_resolution_conditions(data, opt.super_resolution);
    fit_channels(cfg, opt, channels, data.condition_channels);
    cfg.validate();
    data_fingerprint = fingerprint(data);
    fit_class_embeds(cfg, opt, data);
    schedule = std::make_unique<NoiseSchedule>(parse_schedule_kind(opt.beta_schedule), opt.num_timesteps,
                                               opt.beta_start, opt.beta_end);
    batcher = std::make_unique<Batcher>(data, opt.batch, opt.seed, opt.random_flip);
    if (opt.device == Device::cuda && comm->size() > 1)
      throw std::invalid_argument("train: --device cuda over several processes needs NCCL, which is not built yet");
    model = std::make_unique<UNet2D>(cfg, shard.count, opt.precision, true, opt.device);
    model->set_shard(shard.first);
    rng = NoiseRng(opt.seed ^ 0x5DEECE66DULL, 0);
    per_item = cfg.sample_height * cfg.sample_width * channels;
    const auto n = static_cast<size_t>(shard.count * per_item);
    if (data.condition_channels) {
      conditions.resize(static_cast<size_t>(shard.count * data.condition_size()));
      net_input.resize(static_cast<size_t>(shard.count * cfg.sample_height * cfg.sample_width * cfg.in_channels));
    }
    x0.resize(n), x_t.resize(n), noise.resize(n), eps.resize(n), d_eps.resize(n);
    if (opt.learn_variance) out.resize(2 * n), v.resize(n), d_v.resize(n), d_out.resize(2 * n);
    t.resize(static_cast<size_t>(opt.batch));
    t_float.resize(static_cast<size_t>(opt.batch));
    labels.resize(static_cast<size_t>(shard.count));
    const auto p = static_cast<size_t>(model->parameter_count());
    ema.resize(p), adam_m.assign(p, 0.0f), adam_v.assign(p, 0.0f);
    if (opt.device == Device::cuda) device_optimizer = std::make_unique<DeviceOptimizer>(*model);
  }

  // The mean over workers of their shard means (equal shards: the whole batch's mean), in place
  // for the gradients; returns the mean loss (and sets last_vlb likewise). Every worker ends
  // with the same numbers, so all apply the same update.
  double average_over_workers(double loss) {
    profile::Scope scope(profile::Kind::block, "all-reduce gradients");
    const int64_t P = model->parameter_count();
    float* g = model->grads();
    comm->allreduce_sum(g, P);
    const float inv = 1.0f / static_cast<float>(comm->size());
    for (int64_t i = 0; i < P; ++i) g[i] *= inv;
    double sums[2] = {loss, last_vlb};
    comm->allreduce_sum(sums, 2);
    last_vlb = sums[1] / comm->size();
    return sums[0] / comm->size();
  }

  std::string state_path() const { return (fs::path(opt.out) / kStateFile).string(); }

  void open_log() {
    if (!comm->is_root()) return;  // rank 0 alone logs
    log.open(fs::path(opt.out) / "log.jsonl", std::ios::app);
    if (!log) throw std::runtime_error(opt.out + "/log.jsonl: cannot open for writing");
  }
};

Trainer::Trainer() : impl_(std::make_unique<Impl>()) {}

Trainer::Trainer(const TrainOptions& options, Communicator& comm) : Trainer() {
  Impl& m = *impl_;
  m.build(options, comm);
  if (fs::exists(fs::path(options.out) / kStateFile))
    throw std::invalid_argument("train: " + options.out + " already holds a run; continue it with --resume " +
                                options.out + " or choose another --out");
  m.model->init_weights(options.seed);
  std::copy(m.model->params(), m.model->params() + m.model->parameter_count(), m.ema.begin());
  m.upload_state();
  if (!comm.is_root()) return;  // rank 0 alone writes the run directory
  fs::create_directories(fs::path(options.out) / "samples");
  {
    // Atomic, like every file a resume reads: a kill mid-write leaves the old file or none.
    const fs::path path = fs::path(options.out) / kOptionsFile, tmp = path.string() + ".tmp";
    {
      std::ofstream out(tmp);
      out << options_to_json(options).dump(2) << "\n";
      out.flush();
      if (!out) throw std::runtime_error(tmp.string() + ": cannot write (disk full or no permission?)");
    }
    fs::rename(tmp, path);
  }
  m.open_log();
}

std::unique_ptr<Trainer> Trainer::resume(const std::string& run_dir, const ResumeChanges& changes, Communicator& comm) {
  const fs::path options_path = fs::path(run_dir) / kOptionsFile;
  std::ifstream in(options_path);
  if (!in) throw std::invalid_argument("--resume " + run_dir + ": no " + kOptionsFile + " there (not a run directory)");
  json j;
  try {
    in >> j;
  } catch (const json::exception& e) {
    throw std::runtime_error(options_path.string() + ": not valid JSON: " + e.what());
  }
  TrainOptions options;
  try {
    options = options_from_json(j, run_dir);
  } catch (const json::exception& e) {
    throw std::runtime_error(options_path.string() + ": not the options of a ddpm.cpp run: " + e.what());
  }
  for (auto [change, field] : {std::pair{&changes.steps, &options.steps}, {&changes.save_every, &options.save_every},
                               {&changes.sample_every, &options.sample_every}, {&changes.sample_n, &options.sample_n},
                               {&changes.log_every, &options.log_every},
                               {&changes.max_nonfinite_steps, &options.max_nonfinite_steps}})
    if (*change) *field = **change;
  options.device = changes.device;
  if (!fs::exists(fs::path(run_dir) / kStateFile))
    throw std::invalid_argument("--resume " + run_dir + ": no checkpoint there yet (the run stopped before its first "
                                "save); start it again with the same --out");
  std::unique_ptr<Trainer> trainer(new Trainer());
  Impl& m = *trainer->impl_;
  m.build(options, comm);

  SafetensorsFile state = SafetensorsFile::open(m.state_path());
  const auto p = static_cast<size_t>(m.model->parameter_count());
  if (const SafeTensor* params = state.find("params"); params && params->numel() != m.model->parameter_count())
    throw std::runtime_error(m.state_path() + " holds " + std::to_string(params->numel()) + " parameters, but the run's " +
                             "model (config " + options.config + " in " + kOptionsFile + ") has " +
                             std::to_string(p) + ": the checkpoint is from another model");
  state.read_f32("params", m.model->params(), p);
  state.read_f32("ema", m.ema.data(), p);
  state.read_f32("adam_m", m.adam_m.data(), p);
  state.read_f32("adam_v", m.adam_v.data(), p);
  const auto& meta = state.metadata();
  auto get = [&](const char* key) -> uint64_t {
    const auto it = meta.find(key);
    if (it == meta.end()) throw std::runtime_error(m.state_path() + ": metadata has no '" + key + "'");
    return std::stoull(it->second);
  };
  if (const auto it = meta.find("data"); it != meta.end() && it->second != m.data_fingerprint)
    throw std::runtime_error("--resume " + run_dir + ": the data " + options.data + " is not what the run trained on " +
                             "(then: " + it->second + "; now: " + m.data_fingerprint + "); resuming would change the " +
                             "data order mid-run. Restore the data, or start a new run with --out");
  m.step = static_cast<int64_t>(get("step"));
  m.rng.set_state(get("rng_seed"), get("rng_offset"));
  m.batcher->restore({get("batcher_epoch"), get("batcher_position")});
  if (meta.count("skipped_nonfinite")) m.nonfinite_total = static_cast<int64_t>(get("skipped_nonfinite"));
  m.last_saved_step = m.step;
  m.model->set_weights();
  m.upload_state();
  m.open_log();
  return trainer;
}

Trainer::~Trainer() = default;

const TrainOptions& Trainer::options() const { return impl_->opt; }
int64_t Trainer::step() const { return impl_->step; }
int64_t Trainer::skipped_steps() const { return impl_->nonfinite_total; }
int64_t Trainer::last_saved_step() const { return impl_->last_saved_step; }
int64_t Trainer::parameter_count() const { return impl_->model->parameter_count(); }
const float* Trainer::params() const {
  impl_->download_state();
  return impl_->model->params();
}
const float* Trainer::ema() const {
  impl_->download_state();
  return impl_->ema.data();
}

double Trainer::train_step() {
  Impl& m = *impl_;
  const int64_t B = m.opt.batch, P = m.model->parameter_count();
  {
    profile::Scope scope(profile::Kind::block, "batch + noise draw");
    // Every worker steps the data order and the noise stream through the whole batch and fills
    // only its shard, so P workers draw exactly what one process draws.
    m.batcher->next_shard(m.shard.first, m.shard.count, m.x0.data(), m.labels.data(),
                          m.conditions.empty() ? nullptr : m.conditions.data());
    draw_training_shard(m.x_t.data(), m.noise.data(), m.t.data(), m.x0.data(), B, m.shard.first, m.shard.count,
                        m.per_item, *m.schedule, m.rng);
    for (int64_t b = 0; b < B; ++b) m.t_float[static_cast<size_t>(b)] = static_cast<float>(m.t[static_cast<size_t>(b)]);
  }
  double loss = m.loss_and_gradients();
  if (m.comm->size() > 1) loss = m.average_over_workers(loss);
  const auto max_norm = static_cast<float>(m.opt.grad_clip);
  // On the device the norm is read here, before the step counter moves, and the fused step below
  // measures it again to clip (one more read of the gradients: a small share of a step's traffic).
  const float grad_norm = m.device_optimizer ? m.device_optimizer->grad_norm()
                                             : cpu::clip_grad_norm(m.model->grads(), P, max_norm);
  m.last_grad_norm = grad_norm;
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
    ++m.nonfinite_total;
    ++m.nonfinite_in_a_row;
    const auto number = [](double v) { return std::isfinite(v) ? json(v) : json(std::to_string(v)); };
    m.log << json{{"skipped_step", m.step + 1}, {"reason", "non-finite loss or gradient"}, {"loss", number(loss)},
                  {"grad_norm", number(grad_norm)}, {"in_a_row", m.nonfinite_in_a_row}}
                 .dump()
          << "\n";
    m.log.flush();
    if (m.nonfinite_in_a_row >= m.opt.max_nonfinite_steps)
      throw std::runtime_error(
          "train: " + std::to_string(m.nonfinite_in_a_row) + " steps in a row had a non-finite loss or gradient (the " +
          "last at step " + std::to_string(m.step + 1) + ": loss " + std::to_string(loss) + ", gradient norm " +
          std::to_string(grad_norm) + "); none was applied. " +
          (m.last_saved_step >= 0 ? "The checkpoint of step " + std::to_string(m.last_saved_step) + " in " + m.opt.out +
                                        " is intact (--resume continues from it). "
                                  : "No checkpoint was written yet. ") +
          "Try a lower --lr or check the data; --max-nonfinite-steps sets the limit.");
    return loss;  // skipped: no update, step() unchanged
  }
  m.nonfinite_in_a_row = 0;
  ++m.step;
  profile::Scope scope(profile::Kind::block, "optimizer: Adam, EMA, weight reorder");
  cpu::AdamConfig adam;
  adam.lr = static_cast<float>(warmed_up_lr(m.opt.lr, m.step, m.opt.warmup_steps));
  const auto decay = static_cast<float>(ema_decay_at(m.opt.ema_decay, m.step, m.opt.ema_warmup));
  if (m.device_optimizer) {
    m.device_optimizer->step(adam, m.step, max_norm, decay);
    return loss;
  }
  cpu::adam_step(m.model->params(), m.model->grads(), m.adam_m.data(), m.adam_v.data(), P, adam, m.step);
  cpu::ema_update(m.ema.data(), m.model->params(), P, decay);
  m.model->set_weights();
  return loss;
}

uint64_t Trainer::weights_checksum() const {
  impl_->download_state();
  const Impl& m = *impl_;
  const int64_t P = m.model->parameter_count();
  return checksum(m.model->params(), P) * 31 + checksum(m.ema.data(), P);
}

void Trainer::save_checkpoint() {
  Impl& m = *impl_;
  const int64_t P = m.model->parameter_count();
  m.download_state();
  if (m.comm->size() > 1) {
    // Data-parallel replicas must hold the same weights: compare every worker's with rank 0's.
    const uint64_t mine = weights_checksum();
    uint64_t root = mine;
    m.comm->broadcast(&root, sizeof root, 0);
    double differing = root == mine ? 0 : 1;
    m.comm->allreduce_sum(&differing, 1);
    if (differing > 0)
      throw std::runtime_error("train: at step " + std::to_string(m.step) + " the weights of " +
                               std::to_string(static_cast<int>(differing)) + " of " + std::to_string(m.comm->size()) +
                               " workers differ from rank 0's (the replicas drifted apart; a bug or a faulty " +
                               "machine). Nothing was saved; the checkpoint of step " +
                               std::to_string(m.last_saved_step) + " is intact.");
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(mine));
    if (m.comm->is_root())
      m.log << json{{"replicas_identical", m.comm->size()}, {"step", m.step}, {"weights_checksum", hex}}.dump() << "\n";
    if (!m.comm->is_root()) {  // rank 0 alone writes the run directory
      m.last_saved_step = m.step;
      return;
    }
  }
  const std::vector<int64_t> shape{P};
  const BatcherState bs = m.batcher->state();
  // The exported model (a copy for users) first, the training state last: the state is what a
  // resume reads, so a kill between the two redoes the steps and rewrites both, never leaving a
  // final state beside a stale model.
  save_model_dir((fs::path(m.opt.out) / "model").string(), m.cfg, scheduler_config_for(m.opt),
                 tensor_list(*m.model), m.ema.data());
  write_safetensors(m.state_path(),
                    {{"params", shape, m.model->params()},
                     {"ema", shape, m.ema.data()},
                     {"adam_m", shape, m.adam_m.data()},
                     {"adam_v", shape, m.adam_v.data()}},
                    {{"format", "ddpm.cpp training state v1"},
                     {"step", std::to_string(m.step)},
                     {"rng_seed", std::to_string(m.rng.seed())},
                     {"rng_offset", std::to_string(m.rng.offset())},
                     {"batcher_epoch", std::to_string(bs.epoch)},
                     {"batcher_position", std::to_string(bs.position)},
                     {"skipped_nonfinite", std::to_string(m.nonfinite_total)},
                     {"data", m.data_fingerprint}});
  m.last_saved_step = m.step;
}

void Trainer::save_samples(const std::string& png_path, int64_t n, uint64_t seed) {
  Impl& m = *impl_;
  if (!m.sampler_model || m.sampler_model->batch() != n)
    m.sampler_model = std::make_unique<UNet2D>(m.cfg, n, m.opt.precision, false, m.opt.device);
  UNet2D& net = *m.sampler_model;
  m.download_state();
  std::copy(m.ema.begin(), m.ema.end(), net.params());
  net.set_weights();
  std::vector<float> x(static_cast<size_t>(n * m.per_item)), tf(static_cast<size_t>(n));
  NoiseRng rng(seed, 0);
  rng.fill_normal(x.data(), static_cast<int64_t>(x.size()));
  std::vector<float> out(m.opt.learn_variance ? x.size() * 2 : 0);
  // A class-conditional model draws image i as class i mod K (conditional, no guidance).
  std::vector<int32_t> classes(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    classes[static_cast<size_t>(i)] = m.cfg.num_class_embeds ? static_cast<int32_t>(i % (m.cfg.class_count() - 1)) : 0;
  const int32_t* class_labels = m.cfg.num_class_embeds ? classes.data() : nullptr;
  // An image-conditioned model draws image i from training image i's condition.
  const int64_t pixels = m.cfg.sample_height * m.cfg.sample_width, C = m.per_item / pixels;
  const int64_t Cc = m.data.condition_channels;
  std::vector<float> conditions(static_cast<size_t>(n * pixels * Cc)), input(static_cast<size_t>(n * pixels * (C + Cc)));
  for (int64_t i = 0; i < n && Cc; ++i)
    to_float(m.data.condition(i % m.data.n), static_cast<size_t>(pixels * Cc), conditions.data() + i * pixels * Cc);
  const EpsVarianceModel model = [&](const float* x_t, int64_t t, float* eps, float* v) {
    std::fill(tf.begin(), tf.end(), static_cast<float>(t));
    if (Cc) {
      cpu::concat_channels_forward(input.data(), x_t, C, conditions.data(), Cc, n * pixels);
      x_t = input.data();
    }
    if (!m.opt.learn_variance) return net.forward(x_t, tf.data(), eps, 0, class_labels);
    net.forward(x_t, tf.data(), out.data(), 0, class_labels);
    split_eps_variance(out.data(), eps, v, n * pixels, C);
  };
  SamplerOptions sampler;  // ancestral DDPM over all T steps, clipped x̂0
  sampler.variance = m.opt.learn_variance ? Variance::learned_range : Variance::fixed_large;
  run_sampler(model, x.data(), n, m.per_item, *m.schedule, sampler, rng);
  const std::vector<uint8_t> samples = to_uint8(x.data(), x.size());
  int64_t cols = 1;
  while (cols * cols < n) ++cols;
  if (m.cfg.num_class_embeds && n >= m.cfg.class_count() - 1) cols = m.cfg.class_count() - 1;  // a column per class
  const std::string made_by = "training samples at step " + std::to_string(m.step) + " of " + m.opt.out +
                              ": EMA weights (checksum " + hex64(checksum(m.ema.data(), m.model->parameter_count())) +
                              "), ddpm, " + std::to_string(m.schedule->num_timesteps()) + " steps, seed " +
                              std::to_string(seed) + ", " + std::to_string(n) + " images";
  write_png(png_path, make_grid(samples.data(), n, m.cfg.sample_height, m.cfg.sample_width, C, cols),
            {{"Software", std::string("ddpm.cpp ") + DDPM_VERSION_STRING}, {"parameters", made_by}});
}

void Trainer::run(const std::function<bool(const TrainRecord&)>& on_step) {
  Impl& m = *impl_;
  auto last = std::chrono::steady_clock::now();
  int64_t images_since = 0;
  while (m.step < m.opt.steps) {
    const int64_t before = m.step;
    const double loss = train_step();
    if (m.step == before) {  // skipped (and logged): a non-finite loss or gradient
      if (m.comm->is_root())
        std::fprintf(stderr, "\ntrain: step %lld skipped: non-finite loss or gradient (%lld in a row; the limit is %lld)\n",
                   static_cast<long long>(m.step + 1), static_cast<long long>(m.nonfinite_in_a_row),
                   static_cast<long long>(m.opt.max_nonfinite_steps));
      continue;
    }
    images_since += m.opt.batch;
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - last).count();
    TrainRecord record{m.step, loss, m.last_grad_norm, warmed_up_lr(m.opt.lr, m.step, m.opt.warmup_steps),
                       seconds > 0 ? static_cast<double>(images_since) / seconds : 0.0, m.last_vlb};
    if (m.comm->is_root() && (m.step % m.opt.log_every == 0 || m.step == m.opt.steps)) {
      json line{{"step", record.step}, {"loss", record.loss}, {"grad_norm", record.grad_norm}, {"lr", record.lr},
                {"img_per_s", record.images_per_second}};
      if (m.opt.learn_variance) line["vlb_bpd"] = record.vlb;
      m.log << line.dump() << "\n";
      m.log.flush();
      last = now;
      images_since = 0;
    }
    bool go_on = !on_step || on_step(record);
    if (m.comm->size() > 1) {  // workers stop together (a stop asked on any one stops all)
      double stops = go_on ? 0 : 1;
      m.comm->allreduce_sum(&stops, 1);
      go_on = stops == 0;
    }
    const bool final_save = !go_on || m.step == m.opt.steps;
    if (final_save) {
      save_checkpoint();  // a failure here throws: nothing would retry it
    } else if (m.step % m.opt.save_every == 0) {
      // A periodic checkpoint that cannot be written (disk full, directory gone or read-only) does
      // not stop training: the state stays in memory, the previous checkpoint is intact, and the
      // next period tries again.
      try {
        save_checkpoint();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "\ntrain: checkpoint at step %lld failed: %s\n  training goes on with its state in memory; "
                     "%s; next attempt at step %lld\n",
                     static_cast<long long>(m.step), e.what(),
                     m.last_saved_step >= 0 ? ("the checkpoint of step " + std::to_string(m.last_saved_step) +
                                               " is intact").c_str()
                                            : "no checkpoint was written yet",
                     static_cast<long long>(m.step + m.opt.save_every));
      }
    }
    if (!go_on) return;
    if (m.comm->is_root() && m.opt.sample_every > 0 && m.step % m.opt.sample_every == 0 && m.step != m.opt.steps) {
      char name[64];
      std::snprintf(name, sizeof name, "step_%07lld.png", static_cast<long long>(m.step));
      save_samples((fs::path(m.opt.out) / "samples" / name).string(), m.opt.sample_n, m.opt.seed + 1);
    }
  }
}

}  // namespace ddpm
