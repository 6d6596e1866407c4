// Training the classifier behind `ddpm eval fd`: mean cross-entropy, Adam with a linear warm-up and
// a cosine decay, shuffled batches with random horizontal flips, test accuracy after every epoch.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ddpm/data/dataset.h"
#include "ddpm/nn/classifier.h"

namespace ddpm {

struct ClassifierTrainOptions {
  ClassifierConfig model;
  int64_t epochs = 8;
  int64_t batch = 128;
  double lr = 2e-3;             // peak learning rate
  int64_t warmup_steps = 200;   // linear warm-up, then cosine decay to 0 at the last step
  double weight_decay = 0.0;    // Adam's L2 term
  bool random_flip = true;
  uint64_t seed = 0;
};

struct ClassifierEpochRecord {
  int64_t epoch;        // 1-based
  double train_loss;    // mean over the epoch's batches
  double test_accuracy; // fraction of the test set classified correctly
  double seconds;       // wall time of the epoch's training steps
};

// The progress callback: optimizer step (1-based), total steps, the batch's loss.
using ClassifierStepCallback = std::function<void(int64_t step, int64_t total, double loss)>;
using ClassifierEpochCallback = std::function<void(const ClassifierEpochRecord&)>;

struct ClassifierTrainResult {
  std::unique_ptr<Classifier> net;  // the trained network (built for options.batch, training mode)
  std::vector<ClassifierEpochRecord> epochs;
  double seconds = 0;               // total wall time, test evaluations included
};

// lr * step / warmup during the warm-up, then lr * (1 + cos(pi * progress)) / 2 with progress going
// from 0 after the warm-up to 1 at total_steps (steps count from 1).
double warmup_cosine_lr(double lr, int64_t step, int64_t warmup_steps, int64_t total_steps);

// Trains a new classifier on `train` (images must match options.model's size, labels in
// [0, num_classes)) and measures its accuracy on `test` after every epoch. Throws
// std::invalid_argument naming the option or the dataset for anything inconsistent.
ClassifierTrainResult train_classifier(const ClassifierTrainOptions& options, const Dataset& train, const Dataset& test,
                                       const ClassifierStepCallback& on_step = {},
                                       const ClassifierEpochCallback& on_epoch = {});

// Fraction of the first `count` images of `data` (all when count <= 0) that `net` labels
// correctly, in batches of net.batch().
double classifier_accuracy(Classifier& net, const Dataset& data, int64_t count = 0);

}  // namespace ddpm
