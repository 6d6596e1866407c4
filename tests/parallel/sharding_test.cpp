// Data-parallel sharding: a worker's part of every random draw (data order, training noise,
// dropout masks) is exactly the slice of what one process draws, and the split of the batch
// covers it once.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "ddpm/data/batcher.h"
#include "ddpm/diffusion/noise_rng.h"
#include "ddpm/diffusion/process.h"
#include "ddpm/diffusion/schedule.h"
#include "ddpm/kernels/dropout.h"
#include "ddpm/parallel/communicator.h"

namespace ddpm {
namespace {

TEST(Shard, SplitsContiguouslyAndEvenly) {
  for (int64_t n : {0, 1, 7, 16, 64, 101})
    for (int size : {1, 2, 3, 8}) {
      int64_t next = 0;
      for (int r = 0; r < size; ++r) {
        const Shard s = shard_of(n, r, size);
        EXPECT_EQ(s.first, next) << n << " " << r << "/" << size;
        EXPECT_TRUE(s.count == n / size || s.count == n / size + 1);
        next += s.count;
      }
      EXPECT_EQ(next, n);
    }
  EXPECT_THROW(shard_of(10, 2, 2), std::invalid_argument);
  EXPECT_EQ(shard_counts(10, 4), (std::vector<int64_t>{3, 3, 2, 2}));
}

TEST(Shard, SingleProcessIsRankZeroOfOne) {
  Communicator& one = single_process();
  EXPECT_EQ(one.rank(), 0);
  EXPECT_EQ(one.size(), 1);
  std::vector<float> g{1.5f, -2.0f};
  one.allreduce_sum(g.data(), 2);
  EXPECT_EQ(g, (std::vector<float>{1.5f, -2.0f}));
  std::vector<float> all(2);
  one.gather_to_root(g.data(), all.data(), {2});
  EXPECT_EQ(all, g);
  EXPECT_NE(checksum(g.data(), 2), checksum(all.data(), 1));
  EXPECT_EQ(checksum(g.data(), 2), checksum(all.data(), 2));
}

// Any part of a fill, aligned to Philox blocks and lane groups or not, is the slice of the whole
// fill, and the stream advances as by the whole.
TEST(NoiseRngPart, IsTheSliceOfTheWholeFill) {
  for (int64_t n : {1, 5, 64, 1000, 100003})
    for (int64_t begin : {int64_t{0}, int64_t{1}, n / 3, n / 2, n - 1})
      for (int64_t count : {int64_t{0}, int64_t{1}, n - begin, (n - begin) / 2}) {
        if (begin + count > n) continue;
        NoiseRng whole(7, 11), part(7, 11);
        std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(count));
        whole.fill_normal(a.data(), n);
        part.fill_normal_part(b.data(), n, begin, count);
        for (int64_t i = 0; i < count; ++i)
          ASSERT_EQ(b[static_cast<size_t>(i)], a[static_cast<size_t>(begin + i)]) << n << " " << begin << " " << i;
        EXPECT_EQ(part.offset(), whole.offset());
      }
  NoiseRng r;
  float x = 0;
  EXPECT_THROW(r.fill_normal_part(&x, 4, 3, 2), std::invalid_argument);
}

TEST(DrawTrainingShard, TwoShardsMakeTheWholeDraw) {
  const NoiseSchedule schedule(ScheduleKind::linear, 1000, 1e-4, 0.02);
  const int64_t B = 6, per_item = 13;  // 13: shards start inside a Philox block
  std::vector<float> x0(B * per_item);
  for (size_t i = 0; i < x0.size(); ++i) x0[i] = static_cast<float>(i % 7) / 7.0f - 0.5f;
  NoiseRng whole_rng(3, 0);
  std::vector<float> x_t(B * per_item), noise(B * per_item);
  std::vector<int64_t> t(B);
  draw_training_batch(x_t.data(), noise.data(), t.data(), x0.data(), B, per_item, schedule, whole_rng);
  for (const auto& [first, count] : {std::pair<int64_t, int64_t>{0, 3}, {3, 3}, {1, 4}}) {
    NoiseRng rng(3, 0);
    std::vector<float> xs(count * per_item), ns(count * per_item);
    std::vector<int64_t> ts(B);
    draw_training_shard(xs.data(), ns.data(), ts.data(), x0.data() + first * per_item, B, first, count, per_item,
                        schedule, rng);
    EXPECT_EQ(ts, t);
    EXPECT_EQ(rng.offset(), whole_rng.offset());
    for (int64_t i = 0; i < count * per_item; ++i) {
      ASSERT_EQ(ns[static_cast<size_t>(i)], noise[static_cast<size_t>(first * per_item + i)]);
      ASSERT_EQ(xs[static_cast<size_t>(i)], x_t[static_cast<size_t>(first * per_item + i)]);
    }
  }
}

TEST(BatcherShard, ShardsAreSlicesOfTheBatchAndKeepTheOrder) {
  Dataset d;
  d.name = "tiny";
  d.n = 11, d.height = 2, d.width = 2, d.channels = 1, d.num_classes = 10;
  for (int64_t i = 0; i < d.n; ++i) {
    for (int p = 0; p < 4; ++p) d.images.push_back(static_cast<uint8_t>(i * 20 + p));
    d.labels.push_back(static_cast<int32_t>(i % 10));
  }
  const int64_t B = 4;
  Batcher whole(d, B, 5, true), left(d, B, 5, true), right(d, B, 5, true);
  for (int step = 0; step < 9; ++step) {  // crosses epochs
    std::vector<float> a(B * 4), l(2 * 4), r(2 * 4);
    std::vector<int32_t> la(B), ll(2), lr(2);
    whole.next(a.data(), la.data());
    left.next_shard(0, 2, l.data(), ll.data());
    right.next_shard(2, 2, r.data(), lr.data());
    for (int i = 0; i < 8; ++i) {
      ASSERT_EQ(l[static_cast<size_t>(i)], a[static_cast<size_t>(i)]);
      ASSERT_EQ(r[static_cast<size_t>(i)], a[static_cast<size_t>(8 + i)]);
    }
    EXPECT_EQ(ll[0], la[0]);
    EXPECT_EQ(lr[1], la[3]);
    EXPECT_EQ(left.state().position, whole.state().position);
    EXPECT_EQ(right.state().epoch, whole.state().epoch);
  }
}

TEST(DropoutShard, MaskOfAPartIsTheSliceOfTheWholeMask) {
  const int64_t n = 1000, first = 377;
  std::vector<float> x(n, 1.0f), whole(n), part(n - first), back(n - first);
  cpu::dropout_forward(whole.data(), x.data(), n, 0.3f, 99);
  cpu::dropout_forward(part.data(), x.data() + first, n - first, 0.3f, 99, first);
  cpu::dropout_backward(back.data(), x.data() + first, n - first, 0.3f, 99, first);
  for (int64_t i = 0; i < n - first; ++i) {
    ASSERT_EQ(part[static_cast<size_t>(i)], whole[static_cast<size_t>(first + i)]);
    ASSERT_EQ(back[static_cast<size_t>(i)], whole[static_cast<size_t>(first + i)]);
  }
}

}  // namespace
}  // namespace ddpm
