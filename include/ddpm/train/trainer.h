// DDPM training (paper Alg. 1) with the DDPM code's recipe: L_simple, Adam with linear warm-up,
// global gradient-norm clipping, an EMA of the weights, and a run directory that resumes exactly.
// With learn_variance, improved DDPM's learned_range variance and hybrid loss (hybrid_loss.h).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "ddpm/kernels/precision.h"
#include "ddpm/nn/unet_config.h"
#include "ddpm/parallel/communicator.h"
#include "ddpm/tensor.h"

namespace ddpm {

struct TrainOptions {
  std::string data = "fashion-mnist";   // fashion-mnist | cifar10:DIR | folder:DIR
  std::string config = "fmnist-small";  // a built-in name or a config.json path
  std::string out;                       // the run directory
  int64_t steps = 3000;                  // total optimizer steps (a resumed run continues to this)
  int64_t batch = 64;
  double lr = 2e-4;
  int64_t warmup_steps = 5000;  // paper: 5000
  double grad_clip = 1.0;
  double ema_decay = 0.9999;
  bool ema_warmup = false;      // min(decay, (1+step)/(10+step)): a usable EMA for short runs
  bool random_flip = false;     // paper: on for CIFAR-10 (the CLI turns it on for cifar10 data)
  uint64_t seed = 0;
  Precision precision = Precision::fp32;
  // Where the U-Net runs (Device::cuda: the CUDA backend). Not part of the run's state: a run
  // resumes on either. The optimizer, EMA and data stay on the host for now.
  Device device = Device::cpu;
  int64_t num_timesteps = 1000;
  std::string beta_schedule = "linear";
  double beta_start = 1e-4, beta_end = 0.02;
  // Improved DDPM: the U-Net gets 2C output channels (ε and v) and trains on
  // L_simple + vlb_weight·T·L_t; the exported scheduler says variance_type "learned_range".
  bool learn_variance = false;
  double vlb_weight = 0.001;  // λ (IDDPM)
  // Class-conditional training for classifier-free guidance: the U-Net gets a class embedding of
  // num_classes + 1 rows (the last is the null class) and each image's label is replaced by the
  // null class with probability label_dropout, so one model is conditional and unconditional.
  bool class_conditional = false;
  double label_dropout = 0.1;
  // Image-conditioned (SR3 / Palette): the U-Net sees the noisy image concatenated along channels
  // with a condition image (in_channels = image + condition channels). The conditions come from
  // pairs:DIR data, or, with super_resolution = 2 or 4, from each image shrunk by that factor and
  // enlarged back.
  int64_t super_resolution = 0;
  int64_t save_every = 500;     // checkpoint period in steps (and at exit)
  int64_t sample_every = 0;     // 0: only at the end
  int64_t sample_n = 16;
  int64_t log_every = 10;
  // A step whose loss or gradient is not finite is skipped (no update); this many in a row stop
  // the run with an error, the last checkpoint intact.
  int64_t max_nonfinite_steps = 5;
};

// One line of the JSON-lines log, also handed to the progress callback.
struct TrainRecord {
  int64_t step;
  double loss, grad_norm, lr, images_per_second;
  double vlb = 0;  // the batch's L_t in bits/dim (learn_variance only; loss is then the hybrid loss)
};

// What a resumed run may change: how long it runs and how often it reports. Everything that
// shapes the training itself (data, model, optimizer, seed, precision) is the run's own.
struct ResumeChanges {
  std::optional<int64_t> steps{}, save_every{}, sample_every{}, sample_n{}, log_every{}, max_nonfinite_steps{};
  Device device = Device::cpu;  // where the resumed run's U-Net runs (not part of the run's state)
};

// Data-parallel training: with a communicator of P processes (mpirun -np P), each worker takes
// its shard of every global batch (options.batch, which P must divide), the gradients are averaged
// with one all-reduce per step and every worker applies the same update; rank 0 alone writes the
// run directory. The data order, noise and dropout masks are those of one process, so the run
// equals a one-process run up to the summation order, and it resumes on any number of processes.
class Trainer {
 public:
  // A new run: validates everything (data, config, options) before creating `out`.
  explicit Trainer(const TrainOptions& options, Communicator& comm = single_process());
  // Continues the run in `run_dir` from its last complete checkpoint. Refuses, saying why, a
  // checkpoint whose parameters do not fit the run's model, or data that changed since the run
  // started (the checkpoint records the data's size and a hash of it).
  static std::unique_ptr<Trainer> resume(const std::string& run_dir, const ResumeChanges& changes = {},
                                         Communicator& comm = single_process());
  ~Trainer();

  const TrainOptions& options() const;
  int64_t step() const;               // optimizer steps done
  int64_t parameter_count() const;

  // One step; returns the batch's loss (L_simple or L_hybrid). A non-finite loss or gradient skips
  // the update (step() does not advance, skipped_steps() counts it); max_nonfinite_steps in a row
  // throw std::runtime_error.
  double train_step();
  int64_t skipped_steps() const;      // non-finite steps skipped over the whole run
  // Atomic: the previous checkpoint stays valid until replaced. Data-parallel: a collective that
  // first checks that every worker holds rank 0's weights (throws if not); rank 0 writes.
  void save_checkpoint();
  int64_t last_saved_step() const;    // the step of the newest complete checkpoint; -1 before the first
  // A hash of the weights and their EMA: equal on all data-parallel workers.
  uint64_t weights_checksum() const;
  // Samples n images from the EMA weights (DDPM ancestral, all T steps) into a PNG grid.
  void save_samples(const std::string& png_path, int64_t n, uint64_t seed);
  // Trains until options().steps, checkpointing every save_every steps and at the end. on_step
  // sees every step; returning false stops after a checkpoint (Ctrl-C in the CLI).
  void run(const std::function<bool(const TrainRecord&)>& on_step = {});

  // Flat buffers (diffusers state-dict order), for tests.
  const float* params() const;
  const float* ema() const;

 private:
  Trainer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The dataset named by `spec` for a model of this config (for the trainer, evaluation and tests),
// its images with `channels` (0: the config's in_channels). Image folders and pairs have no split;
// `split` then must be train.
struct Dataset;
enum class Split;
Dataset load_training_data(const std::string& spec, const UNet2DConfig& config, Split split, int64_t channels = 0);
// The dataset named by `spec` as stored (image folders are resized and cropped to height x width
// with `channels`); the caller checks the sizes.
Dataset load_dataset(const std::string& spec, Split split, int64_t height, int64_t width, int64_t channels);

// The DDPMScheduler config that describes a run's noise schedule (written into RUN/model).
struct SchedulerConfig;
SchedulerConfig scheduler_config_for(const TrainOptions& options);

}  // namespace ddpm
