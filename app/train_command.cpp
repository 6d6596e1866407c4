// `ddpm train`: a new run (--out) or a resumed one (--resume); Ctrl-C stops after a checkpoint.
#include "train_command.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "ddpm/parallel/communicator.h"
#include "ddpm/train/trainer.h"
#include "progress.h"
#include "device_flag.h"

namespace ddpm::app {

namespace {

TrainOptions options;
std::string precision = "fp32";
std::string resume_dir;
std::optional<bool> random_flip;
std::string task;
int64_t final_samples = 64;
std::atomic<bool> interrupted{false};

void on_signal(int) { interrupted = true; }

// Under mpirun a worker that dies makes mpirun end the others with SIGTERM; they cannot finish a
// step without it, so each says what happened and where to resume, and exits at once.
// Two buffers: the handler reads the one published, the loop writes the other and then swaps.
char stopped_messages[2][1024] = {"\ntrain: stopped by mpirun\n", ""};
std::atomic<int> stopped_message_index{0};
void on_mpirun_stop(int) {
  const char* text = stopped_messages[stopped_message_index.load()];
  ssize_t written = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)written;
  std::_Exit(143);
}
void set_stopped_message(const Communicator& comm, const std::string& run_dir, int64_t saved_step) {
  const int next = 1 - stopped_message_index.load();
  const std::string where = saved_step > 0 ? "the checkpoint of step " + std::to_string(saved_step) + " in " + run_dir +
                                                 " is intact: continue with ddpm train --resume " + run_dir +
                                                 " (on any number of processes)"
                                           : "no checkpoint was written yet";
  std::snprintf(stopped_messages[next], sizeof stopped_messages[next],
                "\ntrain: rank %d of %d stopped by mpirun (another worker died or the job was interrupted); %s\n",
                comm.rank(), comm.size(), where.c_str());
  stopped_message_index.store(next);
}

CLI::App* command = nullptr;

// A resumed run keeps the settings it started with; a flag given with --resume that would change
// one of them is refused in one line, naming the flag and the run's value. (Periods and --steps
// may change: they go to Trainer::resume.)
void refuse_changed_settings(const TrainOptions& run) {
  const auto text = [](const auto& v) { return nlohmann::json(v).dump(); };
  const std::pair<const char*, std::pair<std::string, std::string>> fixed[] = {
      {"--data", {run.data, options.data}},
      {"--config", {run.config, options.config}},
      {"--out", {run.out, options.out}},
      {"--batch", {text(run.batch), text(options.batch)}},
      {"--lr", {text(run.lr), text(options.lr)}},
      {"--warmup", {text(run.warmup_steps), text(options.warmup_steps)}},
      {"--grad-clip", {text(run.grad_clip), text(options.grad_clip)}},
      {"--ema-decay", {text(run.ema_decay), text(options.ema_decay)}},
      {"--ema-warmup", {text(run.ema_warmup), text(options.ema_warmup)}},
      {"--random-flip", {text(run.random_flip), text(random_flip.value_or(run.random_flip))}},
      {"--beta-schedule", {run.beta_schedule, options.beta_schedule}},
      {"--num-timesteps", {text(run.num_timesteps), text(options.num_timesteps)}},
      {"--learn-variance", {text(run.learn_variance), text(options.learn_variance)}},
      {"--vlb-weight", {text(run.vlb_weight), text(options.vlb_weight)}},
      {"--class-conditional", {text(run.class_conditional), text(options.class_conditional)}},
      {"--label-dropout", {text(run.label_dropout), text(options.label_dropout)}},
      {"--super-resolution", {text(run.super_resolution), text(options.super_resolution)}},
      {"--seed", {text(run.seed), text(options.seed)}},
      {"--precision", {precision_name(run.precision), precision}}};
  for (const auto& [flag, values] : fixed) {
    const auto& [was, asked] = values;
    if (command->get_option(flag)->count() == 0 || was == asked) continue;
    throw std::invalid_argument("--resume " + resume_dir + ": the run trains with " + flag + " " + was + "; " + flag +
                                " " + asked + " would change it mid-run (a resumed run keeps its settings; start a " +
                                "new run with --out to change them)");
  }
}

}  // namespace

CLI::App* add_train_command(CLI::App& app) {
  CLI::App* cmd = command = app.add_subcommand("train", "Train a DDPM (L_simple or improved DDPM's hybrid loss, Adam, EMA) into a run directory");
  cmd->add_option("--data", options.data,
                  "fashion-mnist | cifar10:DIR | folder:DIR | pairs:DIR (DIR/input -> DIR/target, image-conditioned)")
      ->capture_default_str();
  cmd->add_option("--config", options.config, "fmnist-small | fmnist-64 | cifar10-ddpm")->capture_default_str();
  cmd->add_option("--out", options.out, "run directory to create");
  cmd->add_option("--resume", resume_dir, "continue the run in this directory");
  cmd->add_option("--steps", options.steps, "total optimizer steps (with --resume: a new total)")
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
  cmd->add_flag("--class-conditional", options.class_conditional,
                "learn p(x | class) and p(x) in one model for classifier-free guidance (labelled data: fashion-mnist, "
                "cifar10:DIR)");
  cmd->add_option("--label-dropout", options.label_dropout,
                  "with --class-conditional: probability that an image trains as the null class")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--task", task, "super-resolution: the same as --super-resolution 4 unless that gives 2")
      ->check(CLI::IsMember({"super-resolution"}));
  cmd->add_option("--super-resolution", options.super_resolution,
                  "image-conditioned super-resolution: learn the images from themselves shrunk by 2 or 4 and enlarged "
                  "back (the U-Net gets the condition as extra input channels; sample with ddpm translate)")
      ->check(CLI::IsMember({2, 4}));
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
  Communicator& comm = world();
  options.precision = parse_precision(precision);
  options.device = selected_device();
  if (task == "super-resolution" && options.super_resolution == 0) options.super_resolution = 4;
  options.random_flip = random_flip.value_or(options.data.rfind("cifar10:", 0) == 0);
  std::unique_ptr<Trainer> trainer;
  if (!resume_dir.empty()) {
    const auto given = [](const char* flag, int64_t value) {
      return command->get_option(flag)->count() ? std::optional<int64_t>(value) : std::nullopt;
    };
    trainer = Trainer::resume(resume_dir,
                              {given("--steps", options.steps), given("--save-every", options.save_every),
                               given("--sample-every", options.sample_every), given("--sample-n", options.sample_n),
                               given("--log-every", options.log_every),
                               given("--max-nonfinite-steps", options.max_nonfinite_steps), options.device},
                              comm);
    refuse_changed_settings(trainer->options());
    if (comm.is_root())
      std::fprintf(stderr, "resuming %s at step %lld of %lld\n", resume_dir.c_str(),
                   static_cast<long long>(trainer->step()), static_cast<long long>(trainer->options().steps));
  } else {
    trainer = std::make_unique<Trainer>(options, comm);
    if (comm.is_root())
      std::fprintf(stderr, "training %s (%lld parameters) on %s into %s\n", options.config.c_str(),
                   static_cast<long long>(trainer->parameter_count()), options.data.c_str(), options.out.c_str());
  }
  const TrainOptions& o = trainer->options();
  if (comm.size() > 1 && comm.is_root())
    std::fprintf(stderr, "data-parallel over %d processes (%s): %lld images of each batch of %lld per process\n",
                 comm.size(), comm.backend().c_str(), static_cast<long long>(o.batch / comm.size()),
                 static_cast<long long>(o.batch));
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, comm.size() > 1 ? on_mpirun_stop : on_signal);
  set_stopped_message(comm, o.out, trainer->last_saved_step());
  ProgressBar bar("train", comm.is_root() ? o.steps : 0, "step");
  int64_t saved = trainer->last_saved_step();
  trainer->run([&](const TrainRecord& r) {
    if (comm.is_root()) bar.update(r.step, r.loss);
    if (comm.size() > 1 && trainer->last_saved_step() != saved)
      set_stopped_message(comm, o.out, saved = trainer->last_saved_step());
    return !interrupted.load();
  });
  if (comm.is_root()) bar.finish();
  if (comm.size() > 1) {
    // Every worker's weights, for the record (rank 0 also compared them at each checkpoint).
    std::fprintf(stderr, "rank %d of %d: step %lld, weights checksum %016llx\n", comm.rank(), comm.size(),
                 static_cast<long long>(trainer->step()), static_cast<unsigned long long>(trainer->weights_checksum()));
    comm.barrier();
  }
  if (interrupted) {
    std::fprintf(stderr, "interrupted: checkpoint saved at step %lld; continue with: ddpm train --resume %s\n",
                 static_cast<long long>(trainer->step()), o.out.c_str());
    return 130;
  }
  if (final_samples > 0 && comm.is_root()) {
    const std::string path = (std::filesystem::path(o.out) / "samples" / "final.png").string();
    std::fprintf(stderr, "sampling %lld images from the EMA weights (%lld steps) ...\n",
                 static_cast<long long>(final_samples), static_cast<long long>(o.num_timesteps));
    trainer->save_samples(path, final_samples, o.seed + 1);
    std::fprintf(stderr, "wrote %s\n", path.c_str());
  }
  return 0;
}

}  // namespace ddpm::app
