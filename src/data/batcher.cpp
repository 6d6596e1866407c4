// Batcher: seeded epoch permutations, stateless flips, batches in [-1, 1].
#include "ddpm/data/batcher.h"

#include <random>
#include <stdexcept>
#include <string>

namespace ddpm {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in [0, bound) without modulo bias: reject the lowest 2^64 mod bound outputs, so the
// accepted range is a whole number of copies of [0, bound).
uint64_t bounded(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t threshold = (0 - bound) % bound;
  uint64_t r = rng();
  while (r < threshold) r = rng();
  return r % bound;
}

void fill_permutation(std::vector<int64_t>& perm, int64_t n, uint64_t seed, uint64_t epoch) {
  perm.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[static_cast<size_t>(i)] = i;
  std::mt19937_64 rng(splitmix64(seed ^ splitmix64(epoch ^ 0x5eed0f0e90c4ull)));
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(bounded(rng, static_cast<uint64_t>(i) + 1));
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
  }
}

}  // namespace

Batcher::Batcher(const Dataset& data, int64_t batch_size, uint64_t seed, bool random_flip)
    : data_(data), batch_size_(batch_size), seed_(seed), random_flip_(random_flip) {
  if (data.n <= 0) throw std::invalid_argument(data.name + ": cannot batch an empty dataset");
  if (batch_size <= 0) throw std::invalid_argument("batch size must be positive, got " + std::to_string(batch_size));
  if (data.images.size() != static_cast<size_t>(data.n * data.image_size()))
    throw std::invalid_argument(data.name + ": images hold " + std::to_string(data.images.size()) +
                                " bytes, the shape needs " + std::to_string(data.n * data.image_size()));
  if (!data.labels.empty() && data.labels.size() != static_cast<size_t>(data.n))
    throw std::invalid_argument(data.name + ": " + std::to_string(data.labels.size()) + " labels for " +
                                std::to_string(data.n) + " images");
  if (data.conditions.size() != static_cast<size_t>(data.n * data.condition_size()))
    throw std::invalid_argument(data.name + ": conditions hold " + std::to_string(data.conditions.size()) +
                                " bytes, the shape needs " + std::to_string(data.n * data.condition_size()));
  fill_permutation(permutation_, data.n, seed_, 0);
  permutation_epoch_ = 0;
}

std::vector<int64_t> Batcher::epoch_permutation(int64_t n, uint64_t seed, uint64_t epoch) {
  std::vector<int64_t> perm;
  fill_permutation(perm, n, seed, epoch);
  return perm;
}

bool Batcher::flip(uint64_t seed, uint64_t epoch, int64_t index) {
  const uint64_t h = splitmix64(splitmix64(splitmix64(seed ^ 0xf11bull) ^ epoch) ^ static_cast<uint64_t>(index));
  return (h >> 63) != 0;
}

void Batcher::restore(const BatcherState& state) {
  if (state.position >= static_cast<uint64_t>(data_.n))
    throw std::invalid_argument(data_.name + ": saved data position " + std::to_string(state.position) +
                                " is past the dataset's " + std::to_string(data_.n) +
                                " images (was the run trained on different data?)");
  state_ = state;
}

int64_t Batcher::take(bool* flipped) {
  if (permutation_epoch_ != state_.epoch) {
    fill_permutation(permutation_, data_.n, seed_, state_.epoch);  // same size: no reallocation
    permutation_epoch_ = state_.epoch;
  }
  const int64_t index = permutation_[static_cast<size_t>(state_.position)];
  *flipped = random_flip_ && flip(seed_, state_.epoch, index);
  if (++state_.position == static_cast<uint64_t>(data_.n)) {
    state_.position = 0;
    ++state_.epoch;
  }
  return index;
}

void Batcher::next_indices(int64_t* indices, bool* flipped) {
  for (int64_t b = 0; b < batch_size_; ++b) indices[b] = take(&flipped[b]);
}

namespace {
// One image of h x w x c bytes to floats in [-1, 1], mirrored left-right when asked.
void to_unit_range(float* dst, const uint8_t* src, int64_t h, int64_t w, int64_t c, bool mirrored) {
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const uint8_t* p = src + (y * w + (mirrored ? w - 1 - x : x)) * c;
      for (int64_t k = 0; k < c; ++k) dst[(y * w + x) * c + k] = static_cast<float>(p[k]) / 127.5f - 1.0f;
    }
}
}  // namespace

void Batcher::next(float* images, int32_t* labels, float* conditions) {
  next_shard(0, batch_size_, images, labels, conditions);
}

void Batcher::next_shard(int64_t first, int64_t count, float* images, int32_t* labels, float* conditions) {
  const int64_t h = data_.height, w = data_.width;
  const bool labelled = !data_.labels.empty();
  if (conditions && data_.condition_channels == 0)
    throw std::invalid_argument(data_.name + ": the data has no conditioning images");
  if (first < 0 || count < 0 || first + count > batch_size_)
    throw std::invalid_argument("Batcher::next_shard: items [" + std::to_string(first) + ", " +
                                std::to_string(first + count) + ") of a batch of " + std::to_string(batch_size_));
  for (int64_t slot = 0; slot < batch_size_; ++slot) {
    bool mirrored = false;
    const int64_t index = take(&mirrored);
    if (slot < first || slot >= first + count) continue;
    const int64_t b = slot - first;
    to_unit_range(images + b * data_.image_size(), data_.image(index), h, w, data_.channels, mirrored);
    if (conditions)
      to_unit_range(conditions + b * data_.condition_size(), data_.condition(index), h, w, data_.condition_channels,
                    mirrored);
    if (labels != nullptr) labels[b] = labelled ? data_.labels[static_cast<size_t>(index)] : -1;
  }
}

}  // namespace ddpm
