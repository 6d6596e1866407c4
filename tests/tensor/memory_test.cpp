// Arena: planned slots are aligned, disjoint and zeroed; misuse is refused.
#include "ddpm/memory.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace ddpm {
namespace {

TEST(Arena, SlotsAreAlignedDisjointAndZeroed) {
  Arena arena;
  const auto a = arena.reserve({3, 5, 7, 3});
  const auto b = arena.reserve({17}, DType::bf16);
  const auto c = arena.reserve_bytes(100);
  arena.allocate();
  const Tensor ta = arena.tensor(a), tb = arena.tensor(b);
  EXPECT_EQ(ta.shape(), (Shape{3, 5, 7, 3}));
  EXPECT_EQ(tb.dtype(), DType::bf16);
  for (const void* p : {ta.data(), tb.data(), arena.bytes_at(c)})
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kAlignment, 0u);
  EXPECT_GE(static_cast<char*>(tb.data()), static_cast<char*>(ta.data()) + ta.bytes());
  EXPECT_GE(static_cast<char*>(arena.bytes_at(c)), static_cast<char*>(tb.data()) + tb.bytes());
  for (int64_t i = 0; i < ta.numel(); ++i) ASSERT_EQ(ta.f32()[i], 0.0f);
}

TEST(Arena, RefusesMisuse) {
  Arena arena;
  const auto a = arena.reserve({4});
  EXPECT_THROW(arena.tensor(a), std::logic_error);
  arena.allocate();
  EXPECT_THROW(arena.reserve({4}), std::logic_error);
  EXPECT_THROW(arena.allocate(), std::logic_error);
  EXPECT_THROW(arena.tensor(a).bf16(), std::logic_error);
}

TEST(Shape, CountsAndPrints) {
  EXPECT_EQ((Shape{2, 3, 4}).numel(), 24);
  EXPECT_EQ((Shape{2, 3, 4}).str(), "[2,3,4]");
  EXPECT_NE((Shape{2, 3}), (Shape{3, 2}));
  EXPECT_THROW((Shape{1, 2, 3, 4, 5}), std::invalid_argument);
}

}  // namespace
}  // namespace ddpm
