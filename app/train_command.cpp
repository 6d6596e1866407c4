// `ddpm train`: a new run (--out) or a resumed one (--resume); Ctrl-C stops after a checkpoint.
#include "train_command.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include "ddpm/train/trainer.h"
#include "progress.h"

namespace ddpm::app {

namespace {

TrainOptions options;
std::string precision = "fp32";
std::string resume_dir;
CLI::Option* steps_option = nullptr;  // --resume keeps the run's own total unless --steps is given
std::optional<bool> random_flip;
int64_t final_samples = 64;
std::atomic<bool> interrupted{false};

void on_signal(int) { interrupted = true; }

}  // namespace

CLI::App* add_train_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("train", "Train a DDPM (L_simple or improved DDPM's hybrid loss, Adam, EMA) into a run directory");
  cmd->add_option("--data", options.data, "fashion-mnist | cifar10:DIR | folder:DIR")->capture_default_str();
  cmd->add_option("--config", options.config, "fmnist-small | fmnist-64 | cifar10-ddpm")->capture_default_str();
  cmd->add_option("--out", options.out, "run directory to create");
  cmd->add_option("--resume", resume_dir, "continue the run in this directory");
  steps_option = cmd->add_option("--steps", options.steps, "total optimizer steps (with --resume: a new total)")
                     ->capture_default_str();
  cmd->add_option("--batch", options.batch, "batch size")->capture_default_str();
  cmd->add_option("--lr", options.lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--warmup", options.warmup_steps, "linear learning-rate warm-up steps")->capture_default_str();
  cmd->add_option("--grad-clip", options.grad_clip, "global gradient-norm clip")->capture_default_str();
  cmd->add_option("--ema-decay", options.ema_decay, "EMA decay")->capture_default_str();
  cmd->add_flag("--ema-warmup", options.ema_warmup,
                "EMA decay min(decay, (1+step)/(10+step)) for short runs (paper: fixed decay)");
  cmd->add_flag("--random-flip,!--no-random-flip", random_flip,
                "random horizontal flips (default: on for cifar10 data, as the paper)");
  cmd->add_option("--beta-schedule", options.beta_schedule, "linear | cosine (improved DDPM)")
      ->check(CLI::IsMember({"linear", "cosine"}))
      ->capture_default_str();
  cmd->add_option("--num-timesteps", options.num_timesteps, "diffusion steps T")->check(CLI::Range(2, 100000))->capture_default_str();
  cmd->add_flag("--learn-variance", options.learn_variance,
                "improved DDPM: the U-Net also predicts its variance (learned_range) and trains on L_simple + "
                "vlb_weight * T * L_vlb");
  cmd->add_option("--vlb-weight", options.vlb_weight, "lambda of the hybrid loss (with --learn-variance)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--seed", options.seed, "seed of every random draw")->capture_default_str();
  cmd->add_option("--max-nonfinite-steps", options.max_nonfinite_steps,
                  "skip a step with a non-finite loss or gradient; stop after this many in a row")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--precision", precision, "fp32 | bf16")->check(CLI::IsMember({"fp32", "bf16"}))->capture_default_str();
  cmd->add_option("--save-every", options.save_every, "checkpoint period in steps")->capture_default_str();
  cmd->add_option("--sample-every", options.sample_every, "sample-grid period in steps (0: only at the end)")->capture_default_str();
  cmd->add_option("--sample-n", options.sample_n, "images per periodic sample grid")->capture_default_str();
  cmd->add_option("--final-samples", final_samples, "images in the final grid (0: none)")->capture_default_str();
  cmd->add_option("--log-every", options.log_every, "log period in steps")->capture_default_str();
  return cmd;
}

int run_train_command() {
  options.precision = parse_precision(precision);
  options.random_flip = random_flip.value_or(options.data.rfind("cifar10:", 0) == 0);
  std::unique_ptr<Trainer> trainer;
  if (!resume_dir.empty()) {
    trainer = Trainer::resume(resume_dir, steps_option->count() > 0 ? options.steps : 0);
    std::fprintf(stderr, "resuming %s at step %lld of %lld\n", resume_dir.c_str(),
                 static_cast<long long>(trainer->step()), static_cast<long long>(trainer->options().steps));
  } else {
    trainer = std::make_unique<Trainer>(options);
    std::fprintf(stderr, "training %s (%lld parameters) on %s into %s\n", options.config.c_str(),
                 static_cast<long long>(trainer->parameter_count()), options.data.c_str(), options.out.c_str());
  }
  const TrainOptions& o = trainer->options();
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  ProgressBar bar("train", o.steps, "step");
  trainer->run([&](const TrainRecord& r) {
    bar.update(r.step, r.loss);
    return !interrupted.load();
  });
  bar.finish();
  if (interrupted) {
    std::fprintf(stderr, "interrupted: checkpoint saved at step %lld; continue with: ddpm train --resume %s\n",
                 static_cast<long long>(trainer->step()), o.out.c_str());
    return 130;
  }
  if (final_samples > 0) {
    const std::string path = (std::filesystem::path(o.out) / "samples" / "final.png").string();
    std::fprintf(stderr, "sampling %lld images from the EMA weights (%lld steps) ...\n",
                 static_cast<long long>(final_samples), static_cast<long long>(o.num_timesteps));
    trainer->save_samples(path, final_samples, o.seed + 1);
    std::fprintf(stderr, "wrote %s\n", path.c_str());
  }
  return 0;
}

}  // namespace ddpm::app
