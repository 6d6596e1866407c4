// `ddpm eval nll`: the variational bound (paper Eq. 5) of a model on images of a dataset split, in
// bits/dim, with its split into prior, diffusion terms and decoder (the paper's rate and
// distortion, Table 4).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ddpm/data/dataset.h"
#include "ddpm/diffusion/likelihood.h"
#include "ddpm/train/trainer.h"
#include "ddpm/pipeline/diffusion_model.h"
#include "device_flag.h"
#include "eval_command.h"
#include "progress.h"

namespace ddpm::app {

namespace {

struct NllOptions {
  std::string model, data = "fashion-mnist", split = "test", precision = "fp32", variance;
  int64_t n = 1000, batch = 100, timesteps = 0, first = 0;
  uint64_t seed = 0;
  bool no_clip = false, json = false;
} opt;

double mean_of(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return sum / static_cast<double>(v.size());
}

double standard_error(const std::vector<double>& v) {
  if (v.size() < 2) return NAN;
  const double m = mean_of(v);
  double sq = 0;
  for (double x : v) sq += (x - m) * (x - m);
  return std::sqrt(sq / static_cast<double>(v.size() - 1) / static_cast<double>(v.size()));
}

// The paper's Table 4 rows: after s reverse steps (from x_T), the bits received so far (prior +
// the KLs of those steps) and the RMSE of x̂0 on the [0, 255] scale.
void print_rate_distortion(const BoundProfile& profile, double prior) {
  const int64_t T = static_cast<int64_t>(profile.term_bpd.size());
  const double images = static_cast<double>(profile.images);
  std::printf("\n  reverse step   rate (bits/dim)   distortion (RMSE, 0..255)\n");
  double rate = prior;
  std::vector<int64_t> rows;
  for (int64_t s : {1, 10, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 950, 990, 1000})
    if (s < T) rows.push_back(s);
  rows.push_back(T);
  size_t next = 0;
  for (int64_t s = 1; s <= T && next < rows.size(); ++s) {
    const int64_t i = T - s;  // code timestep of reverse step s
    if (i >= 1) rate += profile.term_bpd[i] / images;
    if (s == rows[next]) {
      std::printf("  %12lld   %15.5f   %25.5f\n", static_cast<long long>(s), rate,
                  127.5 * std::sqrt(profile.x0_sq_error[i] / images));
      ++next;
    }
  }
}

}  // namespace

CLI::App* add_eval_nll_command(CLI::App& eval) {
  CLI::App* cmd = eval.add_subcommand("nll", "Variational bound on the negative log-likelihood, in bits/dim");
  cmd->add_option("--model", opt.model, "diffusers model directory")->required();
  cmd->add_option("--data", opt.data, "fashion-mnist | cifar10:DIR | folder:DIR")->capture_default_str();
  cmd->add_option("--split", opt.split, "train | test")->check(CLI::IsMember({"train", "test"}))->capture_default_str();
  cmd->add_option("--n", opt.n, "images to evaluate (0: the whole split)")->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--first", opt.first, "index of the first image")->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--batch", opt.batch, "images per U-Net call")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--timesteps", opt.timesteps,
                  "0: all T terms; K: stratified estimate of the diffusion terms from K timesteps per image")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  cmd->add_option("--seed", opt.seed, "seed of the noise (and of the estimator's timesteps)")->capture_default_str();
  cmd->add_option("--precision", opt.precision, "fp32 | bf16")->check(CLI::IsMember({"fp32", "bf16"}))->capture_default_str();
  cmd->add_option("--variance", opt.variance, "reverse-process variance (default: the scheduler config's)")
      ->check(CLI::IsMember({"fixed_large", "fixed_small"}));
  cmd->add_flag("--no-clip", opt.no_clip, "do not clip the predicted x0 to [-1, 1]");
  cmd->add_flag("--json", opt.json, "also print the result as one JSON object");
  return cmd;
}

namespace {

// Philox blocks that variational_bound takes from the stream for one full batch: found by running
// it on zeros with a model that predicts zeros (no U-Net work).
uint64_t bound_blocks_per_batch(const DiffusionModel& model, int64_t batch, int64_t per_item,
                                const BoundOptions& options) {
  std::vector<float> x0(static_cast<size_t>(batch * per_item), 0.0f);
  std::vector<ImageBound> bounds(static_cast<size_t>(batch));
  const BatchEpsVarianceModel zero = [&](const float*, const int64_t*, float* eps, float* v) {
    std::fill(eps, eps + batch * per_item, 0.0f);
    if (v) std::fill(v, v + batch * per_item, 0.0f);
  };
  NoiseRng rng(0, 0);
  variational_bound(zero, x0.data(), batch, per_item, model.schedule, options, rng, bounds.data());
  return rng.offset();
}

// Data-parallel: every process's per-image terms to rank 0 (in image order) and the profile sums
// added up there. Returns whether this is rank 0, which then holds everything.
bool gather_bounds(Communicator& comm, int64_t n, int64_t batch, std::vector<double>& total,
                   std::vector<double>& prior, std::vector<double>& diffusion, std::vector<double>& decoder,
                   BoundProfile& profile, int64_t T, bool exact) {
  const std::vector<int64_t> counts = batched_shard_counts(n, batch, comm.size());
  for (std::vector<double>* terms : {&total, &prior, &diffusion, &decoder}) {
    std::vector<double> all(comm.is_root() ? static_cast<size_t>(n) : 0);
    comm.gather_to_root(terms->data(), all.data(), counts);
    *terms = std::move(all);
  }
  if (exact) {
    if (profile.term_bpd.empty()) {  // a process without batches
      profile.term_bpd.assign(static_cast<size_t>(T), 0.0);
      profile.x0_sq_error.assign(static_cast<size_t>(T), 0.0);
    }
    comm.allreduce_sum(profile.term_bpd.data(), T);
    comm.allreduce_sum(profile.x0_sq_error.data(), T);
    double images = static_cast<double>(profile.images);
    comm.allreduce_sum(&images, 1);
    profile.images = static_cast<int64_t>(images);
  }
  return comm.is_root();
}

}  // namespace

int run_eval_nll_command() {
  const auto start = std::chrono::steady_clock::now();
  const Split split = opt.split == "test" ? Split::test : Split::train;
  const Dataset data = load_training_data(opt.data, open_model_dir(opt.model).unet, split);
  if (opt.first >= data.n)
    throw std::invalid_argument("--first " + std::to_string(opt.first) + " is past the end of " + data.name + " (" +
                                std::to_string(data.n) + " images)");
  const int64_t n = opt.n == 0 ? data.n - opt.first : std::min(opt.n, data.n - opt.first);
  DiffusionModel model = load_diffusion_model(opt.model, std::min(opt.batch, n), parse_precision(opt.precision),
                                              1.0, selected_device());
  const int64_t T = model.schedule.num_timesteps();
  if (opt.timesteps > T - 1)
    throw std::invalid_argument("--timesteps must be at most T - 1 = " + std::to_string(T - 1));

  BoundOptions options;
  options.variance = opt.variance.empty() ? model.variance : parse_variance(opt.variance);
  if (options.variance == Variance::learned_range && model.variance != Variance::learned_range)
    throw std::invalid_argument("--variance learned_range: " + opt.model +
                                " does not predict its variance (its scheduler says " + variance_name(model.variance) + ")");
  options.clip_x0 = !opt.no_clip;
  options.timesteps = opt.timesteps;
  const std::string terms = opt.timesteps == 0
                                ? "all " + std::to_string(T) + " terms"
                                : "prior and decoder exact, diffusion terms estimated from " +
                                      std::to_string(opt.timesteps) + " stratified timesteps per image";
  Communicator& comm = world();
  if (comm.is_root())
    std::fprintf(stderr, "eval nll: %s on %lld images of %s (from %lld), %s, %s variance%s%s\n", opt.model.c_str(),
                 static_cast<long long>(n), data.name.c_str(), static_cast<long long>(opt.first), terms.c_str(),
                 variance_name(options.variance), options.clip_x0 ? ", clipped x0" : "",
                 comm.size() > 1 ? (", over " + std::to_string(comm.size()) + " processes").c_str() : "");

  const int64_t batch = std::min(opt.batch, n), per_item = model.per_item();
  const int64_t batches = (n + batch - 1) / batch;
  const int64_t calls = opt.timesteps == 0 ? T : opt.timesteps + 1;
  std::vector<float> x0(static_cast<size_t>(batch * per_item));
  std::vector<ImageBound> bounds(static_cast<size_t>(batch));
  std::vector<double> total, prior, diffusion, decoder;
  BoundProfile profile;
  // Under mpirun each process takes a contiguous run of the batches, starting at the noise-stream
  // position one process would have reached there, so the bound is one process's to the
  // summation order.
  const Shard mine = shard_of(batches, comm.rank(), comm.size());
  NoiseRng rng(opt.seed, comm.size() > 1 ? mine.first * bound_blocks_per_batch(model, batch, per_item, options) : 0);
  std::unique_ptr<DiffusionModel> tail;  // a U-Net planned for the short last batch, if any
  ProgressBar bar("nll", comm.is_root() ? mine.count * calls : 0, "call");
  for (int64_t k = mine.first; k < mine.first + mine.count; ++k) {
    const int64_t count = std::min(batch, n - k * batch);
    if (count < batch)
      tail = std::make_unique<DiffusionModel>(
          load_diffusion_model(opt.model, count, parse_precision(opt.precision), 1.0, selected_device()));
    DiffusionModel& m = count < batch ? *tail : model;
    images_to_float(data, opt.first + k * batch, count, x0.data());
    variational_bound(m.batch_eps_variance_model(), x0.data(), count, per_item, m.schedule, options, rng, bounds.data(),
                      opt.timesteps == 0 ? &profile : nullptr,
                      [&](int64_t done, int64_t) {
                        if (comm.is_root()) bar.update((k - mine.first) * calls + done);
                      });
    for (int64_t b = 0; b < count; ++b) {
      total.push_back(bounds[b].total());
      prior.push_back(bounds[b].prior);
      diffusion.push_back(bounds[b].diffusion);
      decoder.push_back(bounds[b].decoder);
    }
  }
  if (comm.size() > 1 && !gather_bounds(comm, n, batch, total, prior, diffusion, decoder, profile, T,
                                         opt.timesteps == 0))
    return 0;  // rank 0 reports
  bar.finish();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  const double nll = mean_of(total), error = standard_error(total);
  std::printf("NLL <= %.4f +- %.4f bits/dim (mean +- standard error over %lld images; %s)\n", nll, error,
              static_cast<long long>(n), terms.c_str());
  std::printf("  prior      L_T            %10.6f\n", mean_of(prior));
  std::printf("  diffusion  L_1..L_%-6lld  %10.6f   rate = prior + diffusion = %.4f\n", static_cast<long long>(T - 1),
              mean_of(diffusion), mean_of(prior) + mean_of(diffusion));
  std::printf("  decoder    L_0            %10.6f   distortion\n", mean_of(decoder));
  if (opt.timesteps == 0) print_rate_distortion(profile, mean_of(prior));
  if (opt.json) {
    const nlohmann::json j = {{"model", opt.model},       {"data", data.name},          {"images", n},
                              {"first", opt.first},       {"timesteps", opt.timesteps}, {"seed", opt.seed},
                              {"nll_bpd", nll},           {"stderr_bpd", error},        {"prior_bpd", mean_of(prior)},
                              {"diffusion_bpd", mean_of(diffusion)}, {"decoder_bpd", mean_of(decoder)},
                              {"variance", variance_name(options.variance)}, {"clip_x0", options.clip_x0},
                              {"seconds", seconds}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace ddpm::app
