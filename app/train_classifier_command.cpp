// `ddpm train-classifier --data fashion-mnist --out DIR`: trains the classifier, reports the test
// accuracy after every epoch, and writes DIR (config.json, model.safetensors and a model card,
// README.md, saying how it was made) in one atomic step.
#include "train_classifier_command.h"

#include <omp.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "ddpm/data/idx.h"
#include "ddpm/train/classifier_training.h"
#include "progress.h"

namespace ddpm::app {

namespace {

struct Options {
  std::string data = "fashion-mnist";
  std::string out;
  ClassifierTrainOptions train;
} opt;

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

std::string utc_date() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d", std::gmtime(&now));
  return text;
}

std::string format(const char* fmt, double a, double b = 0, double c = 0, double d = 0) {
  char text[160];
  std::snprintf(text, sizeof text, fmt, a, b, c, d);
  return text;
}

std::string reproduce_command() {
  std::ostringstream s;
  s << "OMP_NUM_THREADS=" << omp_get_max_threads() << " ddpm train-classifier --data " << opt.data << " --out "
    << opt.out << " --epochs " << opt.train.epochs << " --batch " << opt.train.batch << " --lr " << opt.train.lr
    << " --warmup " << opt.train.warmup_steps << " --seed " << opt.train.seed
    << (opt.train.random_flip ? "" : " --no-random-flip");
  if (opt.train.weight_decay > 0) s << " --weight-decay " << opt.train.weight_decay;
  return s.str();
}

std::string model_card(const ClassifierTrainResult& r) {
  const Classifier& net = *r.net;
  const ClassifierConfig& c = net.config();
  std::ostringstream s;
  s << "# Fashion-MNIST classifier (ddpm.cpp)\n\n"
    << "The feature network of `ddpm eval fd`: sample quality is the Fréchet distance between the\n"
    << "`features` (the " << c.feature_dim << "-d penultimate layer) of generated images and of the test set.\n"
    << "Trained by ddpm.cpp itself (`ddpm train-classifier`, its own kernels), " << utc_date() << ".\n\n"
    << "## Result\n\n"
    << format("Test accuracy: **%.2f%%** on the Fashion-MNIST test split (10000 images) after the last epoch.\n\n",
              100.0 * r.epochs.back().test_accuracy)
    << "| epoch | mean train loss | test accuracy | seconds |\n|---:|---:|---:|---:|\n";
  for (const ClassifierEpochRecord& e : r.epochs)
    s << format("| %.0f | %.4f | %.2f%% | %.0f |\n", static_cast<double>(e.epoch), e.train_loss,
                100.0 * e.test_accuracy, e.seconds);
  s << "\n## Architecture\n\n"
    << "Input " << c.height << "x" << c.width << "x" << c.channels << " in [-1, 1] (NHWC). conv3x3 " << c.channels
    << "->" << c.widths[0] << ", GroupNorm(" << c.groups << ")+SiLU";
  for (size_t i = 1; i < c.widths.size(); ++i)
    s << "; conv3x3 stride 2 (padding (0,1)) " << c.widths[i - 1] << "->" << c.widths[i] << ", GN+SiLU; conv3x3 "
      << c.widths[i] << "->" << c.widths[i] << ", GN+SiLU";
  s << "; global average pool; Linear " << c.widths.back() << "->" << c.feature_dim << ", SiLU (= features); Linear "
    << c.feature_dim << "->" << c.num_classes << " (logits).\n\n"
    << net.num_params() << " parameters (fp32), names and shapes in model.safetensors; config.json holds the\n"
    << "configuration. Load with `ddpm::load_classifier(DIR, batch)` (include/ddpm/nn/classifier.h).\n\n"
    << "## Training\n\n"
    << "- Data: Fashion-MNIST train split (60000 images, /usr/share/datasets/fashion-mnist), random\n"
    << "  horizontal flips " << (opt.train.random_flip ? "on" : "off") << "; evaluated on the test split (10000).\n"
    << "- Loss: mean softmax cross-entropy. Optimizer: Adam (betas 0.9, 0.999, eps 1e-8, weight decay "
    << opt.train.weight_decay << "),\n"
    << "  peak learning rate " << opt.train.lr << ", linear warm-up over " << opt.train.warmup_steps
    << " steps, then cosine decay to 0.\n"
    << "- " << opt.train.epochs << " epochs of batch " << opt.train.batch << ", seed " << opt.train.seed << ".\n"
    << format("- Wall time: %.1f minutes (test evaluations included) on ", r.seconds / 60.0) << cpu_model() << ", "
    << omp_get_max_threads() << " OpenMP threads (" << std::thread::hardware_concurrency()
    << " cores; the machine was shared with another training run).\n\n"
    << "## Reproduce\n\n```\n" << reproduce_command() << "\n```\n";
  return s.str();
}

}  // namespace

CLI::App* add_train_classifier_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("train-classifier", "Train the Fashion-MNIST classifier behind `ddpm eval fd`");
  ClassifierTrainOptions& t = opt.train;
  cmd->add_option("--data", opt.data, "training data (fashion-mnist)")->check(CLI::IsMember({"fashion-mnist"}))
      ->capture_default_str();
  cmd->add_option("--out", opt.out, "classifier directory to write")->required();
  cmd->add_option("--epochs", t.epochs, "passes over the training set")->capture_default_str();
  cmd->add_option("--batch", t.batch, "batch size")->capture_default_str();
  cmd->add_option("--lr", t.lr, "peak learning rate (Adam)")->capture_default_str();
  cmd->add_option("--warmup", t.warmup_steps, "linear learning-rate warm-up steps")->capture_default_str();
  cmd->add_option("--weight-decay", t.weight_decay, "Adam's L2 weight decay")->capture_default_str();
  cmd->add_flag("--random-flip,!--no-random-flip", t.random_flip, "random horizontal flips")->capture_default_str();
  cmd->add_option("--seed", t.seed, "seed of the initialisation and the data order")->capture_default_str();
  return cmd;
}

int run_train_classifier_command() {
  const Dataset train = load_fashion_mnist(kFashionMnistDir, Split::train);
  const Dataset test = load_fashion_mnist(kFashionMnistDir, Split::test);
  const int64_t steps_per_epoch = (train.n + opt.train.batch - 1) / opt.train.batch;
  std::fprintf(stderr, "training the classifier on %s (%lld images) for %lld epochs of %lld steps into %s\n",
               train.name.c_str(), static_cast<long long>(train.n), static_cast<long long>(opt.train.epochs),
               static_cast<long long>(steps_per_epoch), opt.out.c_str());
  std::unique_ptr<ProgressBar> bar;
  int64_t epoch = 1;
  const auto on_step = [&](int64_t step, int64_t, double loss) {
    if (!bar)
      bar = std::make_unique<ProgressBar>("epoch " + std::to_string(epoch) + "/" + std::to_string(opt.train.epochs),
                                          steps_per_epoch, "step");
    bar->update(step - (epoch - 1) * steps_per_epoch, loss);
  };
  const auto on_epoch = [&](const ClassifierEpochRecord& r) {
    bar->finish();
    bar.reset();
    std::fprintf(stderr, "epoch %lld: mean train loss %.4f, test accuracy %.2f%% (%.0f s)\n",
                 static_cast<long long>(r.epoch), r.train_loss, 100.0 * r.test_accuracy, r.seconds);
    ++epoch;
  };
  const ClassifierTrainResult result = train_classifier(opt.train, train, test, on_step, on_epoch);
  save_classifier(opt.out, *result.net, model_card(result));
  std::fprintf(stderr, "wrote %s (%lld parameters, test accuracy %.2f%%, %.1f minutes)\n", opt.out.c_str(),
               static_cast<long long>(result.net->num_params()), 100.0 * result.epochs.back().test_accuracy,
               result.seconds / 60.0);
  return 0;
}

}  // namespace ddpm::app
