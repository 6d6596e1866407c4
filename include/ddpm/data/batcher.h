// Batcher: the order in which training visits the data. Each epoch is a permutation drawn from
// (seed, epoch) alone and the position is an integer, so the state (epoch, position) resumes a run
// exactly; a random horizontal flip is a hash of (seed, epoch, index), so it needs no state at all.
#pragma once

#include <cstdint>
#include <vector>

#include "ddpm/data/dataset.h"

namespace ddpm {

struct BatcherState {
  uint64_t epoch = 0;
  uint64_t position = 0;  // next slot of the epoch's permutation, in [0, n)
};

class Batcher {
 public:
  // Keeps a reference to `data`, which must outlive the batcher.
  Batcher(const Dataset& data, int64_t batch_size, uint64_t seed, bool random_flip);

  // Fills images [batch_size, H, W, C] in [-1, 1] and, when non-null, labels [batch_size] (-1 for
  // unlabelled data) and conditions [batch_size, H, W, condition_channels] in [-1, 1], flipped with
  // their images. A batch that reaches the end of an epoch continues with the next epoch's
  // permutation, so every index appears exactly once per epoch. Does not allocate.
  void next(float* images, int32_t* labels = nullptr, float* conditions = nullptr);
  // A data-parallel worker's part of next(): the batch's items [first, first + count) into
  // images [count, H, W, C] (labels, conditions likewise); the state advances by the whole batch,
  // so every worker keeps the same position and P workers see exactly one process's batches.
  void next_shard(int64_t first, int64_t count, float* images, int32_t* labels = nullptr, float* conditions = nullptr);

  // Like next(), but only the dataset indices and flip decisions (for tests and logging).
  void next_indices(int64_t* indices, bool* flipped);

  BatcherState state() const { return state_; }
  void restore(const BatcherState& state);  // throws when position >= n

  int64_t batch_size() const { return batch_size_; }
  uint64_t seed() const { return seed_; }

  // The permutation of [0, n) for one epoch (Fisher-Yates driven by std::mt19937_64, whose output the
  // standard fixes, with our own unbiased bounded draw: identical on every platform).
  static std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, uint64_t epoch);
  // Whether image `index` is mirrored in `epoch`.
  static bool flip(uint64_t seed, uint64_t epoch, int64_t index);

 private:
  int64_t take(bool* flipped);  // the next index; advances the state

  const Dataset& data_;
  int64_t batch_size_;
  uint64_t seed_;
  bool random_flip_;
  BatcherState state_;
  std::vector<int64_t> permutation_;  // for permutation_epoch_
  uint64_t permutation_epoch_ = 0;
};

}  // namespace ddpm
