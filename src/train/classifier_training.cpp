// The classifier's training loop: Batcher order (seeded, flips), cross-entropy, Adam over the flat
// parameter buffer with a warm-up + cosine learning rate, and a test-set evaluation per epoch.
#include "ddpm/train/classifier_training.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>
#include <stdexcept>

#include "ddpm/data/batcher.h"
#include "ddpm/kernels/cross_entropy.h"
#include "ddpm/kernels/optimizer.h"

namespace ddpm {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void check_data(const Dataset& data, const ClassifierConfig& model) {
  if (data.height != model.height || data.width != model.width || data.channels != model.channels)
    throw std::invalid_argument(data.name + " has " + std::to_string(data.height) + "x" + std::to_string(data.width) +
                                "x" + std::to_string(data.channels) + " images, but the classifier expects " +
                                std::to_string(model.height) + "x" + std::to_string(model.width) + "x" +
                                std::to_string(model.channels));
  if (data.labels.size() != static_cast<size_t>(data.n))
    throw std::invalid_argument(data.name + ": a classifier needs one label per image, got " +
                                std::to_string(data.labels.size()) + " labels for " + std::to_string(data.n) +
                                " images");
  for (size_t i = 0; i < data.labels.size(); ++i)
    if (data.labels[i] < 0 || data.labels[i] >= model.num_classes)
      throw std::invalid_argument(data.name + ": label " + std::to_string(data.labels[i]) + " of image " +
                                  std::to_string(i) + " is outside [0, " + std::to_string(model.num_classes) + ")");
}

void validate(const ClassifierTrainOptions& o) {
  auto bad = [](const std::string& what) { throw std::invalid_argument("train-classifier: " + what); };
  if (o.epochs < 1) bad("--epochs must be at least 1");
  if (o.batch < 1) bad("--batch must be at least 1");
  if (!(o.lr > 0)) bad("--lr must be positive");
  if (o.warmup_steps < 0) bad("--warmup must be >= 0");
  if (!(o.weight_decay >= 0)) bad("--weight-decay must be >= 0");
  o.model.validate();
}

int64_t argmax(const float* v, int64_t n) { return std::max_element(v, v + n) - v; }

}  // namespace

double warmup_cosine_lr(double lr, int64_t step, int64_t warmup_steps, int64_t total_steps) {
  if (step <= warmup_steps) return lr * static_cast<double>(step) / static_cast<double>(warmup_steps);
  const int64_t decay_steps = std::max<int64_t>(total_steps - warmup_steps, 1);
  const double progress = std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps));
  return 0.5 * lr * (1.0 + std::cos(std::numbers::pi * progress));
}

double classifier_accuracy(Classifier& net, const Dataset& data, int64_t count) {
  check_data(data, net.config());
  const int64_t n = count > 0 ? std::min(count, data.n) : data.n;
  const int64_t classes = net.config().num_classes, chunk = 1000;
  std::vector<float> images(static_cast<size_t>(chunk * data.image_size()));
  std::vector<float> probs(static_cast<size_t>(chunk * classes));
  int64_t correct = 0;
  for (int64_t first = 0; first < n; first += chunk) {
    const int64_t m = std::min(chunk, n - first);
    images_to_float(data, first, m, images.data());
    classify(net, images.data(), m, nullptr, probs.data());
    for (int64_t i = 0; i < m; ++i)
      correct += argmax(probs.data() + i * classes, classes) == data.labels[static_cast<size_t>(first + i)];
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

ClassifierTrainResult train_classifier(const ClassifierTrainOptions& o, const Dataset& train, const Dataset& test,
                                       const ClassifierStepCallback& on_step, const ClassifierEpochCallback& on_epoch) {
  validate(o);
  check_data(train, o.model);
  check_data(test, o.model);
  const auto start = Clock::now();
  ClassifierTrainResult result;
  result.net = std::make_unique<Classifier>(o.model, o.batch, true);
  Classifier& net = *result.net;
  net.init_weights(o.seed);

  const int64_t n = net.num_params(), classes = o.model.num_classes;
  const int64_t steps_per_epoch = (train.n + o.batch - 1) / o.batch;
  const int64_t total_steps = steps_per_epoch * o.epochs;
  std::vector<float> m(static_cast<size_t>(n), 0.0f), v(static_cast<size_t>(n), 0.0f);
  std::vector<float> images(static_cast<size_t>(o.batch * train.image_size()));
  std::vector<float> logits(static_cast<size_t>(o.batch * classes));
  std::vector<int32_t> labels(static_cast<size_t>(o.batch));
  Batcher batcher(train, o.batch, o.seed, o.random_flip);
  cpu::AdamConfig adam;
  adam.weight_decay = static_cast<float>(o.weight_decay);

  int64_t step = 0;
  for (int64_t epoch = 1; epoch <= o.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    double loss_sum = 0;
    for (int64_t k = 0; k < steps_per_epoch; ++k) {
      ++step;
      batcher.next(images.data(), labels.data());
      net.forward(images.data(), logits.data());
      const double loss = cpu::cross_entropy_forward(logits.data(), labels.data(), o.batch, classes, logits.data());
      if (!std::isfinite(loss))
        throw std::runtime_error("train-classifier: the loss became " + std::to_string(loss) + " at step " +
                                 std::to_string(step) + " (try a lower --lr)");
      cpu::cross_entropy_backward(logits.data(), logits.data(), labels.data(), o.batch, classes);
      net.backward(logits.data());
      adam.lr = static_cast<float>(warmup_cosine_lr(o.lr, step, o.warmup_steps, total_steps));
      cpu::adam_step(net.params(), net.grads(), m.data(), v.data(), n, adam, step);
      net.set_weights();
      loss_sum += loss;
      if (on_step) on_step(step, total_steps, loss);
    }
    ClassifierEpochRecord record{epoch, loss_sum / static_cast<double>(steps_per_epoch), 0.0, seconds_since(epoch_start)};
    record.test_accuracy = classifier_accuracy(net, test);
    result.epochs.push_back(record);
    if (on_epoch) on_epoch(record);
  }
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace ddpm
