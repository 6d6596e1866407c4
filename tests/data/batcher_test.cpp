// Batcher: reproducible order, exact resume, every index once per epoch, flips and values.
#include "ddpm/data/batcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <numeric>

namespace ddpm {
namespace {

// n images of 2x3x1; image i holds i*10 + x in column x, label i % 10.
Dataset tiny(int64_t n) {
  Dataset d;
  d.name = "tiny";
  d.n = n;
  d.height = 2;
  d.width = 3;
  d.channels = 1;
  d.num_classes = 10;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t p = 0; p < 6; ++p) d.images.push_back(static_cast<uint8_t>(i * 10 + p % 3));
    d.labels.push_back(static_cast<int32_t>(i % 10));
  }
  return d;
}

std::vector<int64_t> run(Batcher& b, int batches) {
  std::vector<int64_t> out(static_cast<size_t>(batches * b.batch_size()));
  auto flips = std::make_unique<bool[]>(static_cast<size_t>(b.batch_size()));
  for (int i = 0; i < batches; ++i) b.next_indices(&out[static_cast<size_t>(i * b.batch_size())], flips.get());
  return out;
}

TEST(Batcher, SameSeedSameOrderOtherSeedOther) {
  const Dataset d = tiny(23);
  Batcher a(d, 5, 42, true), b(d, 5, 42, true), c(d, 5, 43, true);
  const auto ra = run(a, 20), rb = run(b, 20), rc = run(c, 20);
  EXPECT_EQ(ra, rb);
  EXPECT_NE(ra, rc);
  EXPECT_NE(Batcher::epoch_permutation(23, 42, 0), Batcher::epoch_permutation(23, 42, 1));
}

TEST(Batcher, EveryIndexExactlyOncePerEpochAcrossBatchBoundaries) {
  const int64_t n = 23;
  const Dataset d = tiny(n);
  Batcher b(d, 5, 7, false);
  const auto order = run(b, 23);  // 115 draws = exactly 5 epochs, batches straddling epoch ends
  EXPECT_EQ(b.state().epoch, 5u);
  EXPECT_EQ(b.state().position, 0u);
  for (int64_t e = 0; e < 5; ++e) {
    std::vector<int64_t> epoch(order.begin() + e * n, order.begin() + (e + 1) * n);
    EXPECT_EQ(epoch, Batcher::epoch_permutation(n, 7, static_cast<uint64_t>(e)));
    std::sort(epoch.begin(), epoch.end());
    std::vector<int64_t> all(static_cast<size_t>(n));
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(epoch, all) << "epoch " << e;
  }
}

TEST(Batcher, ResumeFromSavedStateContinuesExactly) {
  const Dataset d = tiny(17);
  Batcher full(d, 4, 99, true);
  std::vector<float> x(4 * 6), y(4 * 6);
  std::vector<int32_t> lx(4), ly(4);
  for (int i = 0; i < 11; ++i) full.next(x.data(), lx.data());
  const BatcherState saved = full.state();

  Batcher resumed(d, 4, 99, true);
  resumed.restore(saved);
  for (int i = 0; i < 30; ++i) {
    full.next(x.data(), lx.data());
    resumed.next(y.data(), ly.data());
    ASSERT_EQ(x, y) << "batch " << i;
    ASSERT_EQ(lx, ly) << "batch " << i;
  }
  EXPECT_THROW(resumed.restore({0, 17}), std::invalid_argument);
}

TEST(Batcher, FillsValuesLabelsAndFlips) {
  const Dataset d = tiny(50);
  Batcher b(d, 50, 5, true);
  std::vector<int64_t> idx(50);
  auto flipped = std::make_unique<bool[]>(50);
  Batcher probe(d, 50, 5, true);
  probe.next_indices(idx.data(), flipped.get());
  std::vector<float> x(50 * 6);
  std::vector<int32_t> labels(50);
  b.next(x.data(), labels.data());
  int flips = 0;
  for (int64_t k = 0; k < 50; ++k) {
    const int64_t i = idx[static_cast<size_t>(k)];
    EXPECT_EQ(labels[static_cast<size_t>(k)], i % 10);
    EXPECT_EQ(flipped[static_cast<size_t>(k)], Batcher::flip(5, 0, i));
    flips += flipped[static_cast<size_t>(k)];
    for (int64_t row = 0; row < 2; ++row)
      for (int64_t col = 0; col < 3; ++col) {
        const int64_t src_col = flipped[static_cast<size_t>(k)] ? 2 - col : col;
        EXPECT_FLOAT_EQ(x[static_cast<size_t>(k * 6 + row * 3 + col)],
                        static_cast<float>(static_cast<uint8_t>(i * 10 + src_col)) / 127.5f - 1.0f);
      }
  }
  EXPECT_GT(flips, 10);  // about half of 50
  EXPECT_LT(flips, 40);

  // Without flips, and for unlabelled data, labels are -1.
  Dataset unlabelled = tiny(3);
  unlabelled.labels.clear();
  Batcher u(unlabelled, 3, 1, false);
  std::vector<float> ux(3 * 6);
  std::vector<int32_t> ul(3, 5);
  u.next(ux.data(), ul.data());
  EXPECT_EQ(ul, (std::vector<int32_t>{-1, -1, -1}));
  EXPECT_THROW(Batcher(unlabelled, 0, 1, false), std::invalid_argument);
}

}  // namespace
}  // namespace ddpm
