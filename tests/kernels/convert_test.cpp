// fp32 <-> bf16: round to nearest even, NaN kept, and the vector path equals the scalar one.
#include "ddpm/kernels/convert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "test_support.h"

namespace ddpm {
namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(Convert, RoundsToNearestEven) {
  EXPECT_EQ(cpu::bf16_from_f32(1.0f), 0x3f80);
  EXPECT_EQ(cpu::bf16_from_f32(from_bits(0x3f808000)), 0x3f80);  // tie, even stays
  EXPECT_EQ(cpu::bf16_from_f32(from_bits(0x3f818000)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(cpu::bf16_from_f32(from_bits(0x3f808001)), 0x3f81);  // above the tie
  EXPECT_EQ(cpu::bf16_from_f32(-2.0f), 0xc000);
  EXPECT_TRUE(std::isnan(cpu::f32_from_bf16(cpu::bf16_from_f32(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isinf(cpu::f32_from_bf16(cpu::bf16_from_f32(std::numeric_limits<float>::infinity()))));
}

// bf16 keeps 8 significant bits, so rounding moves a value by at most 2^-8 of itself; the vector
// kernel matches the scalar rule bit for bit.
TEST(Convert, VectorMatchesScalarWithinHalfAnUlp) {
  const auto x = test::random_normal(100003, 5, 10.0f);
  std::vector<uint16_t> h(x.size());
  std::vector<float> back(x.size());
  cpu::convert_f32_to_bf16(h.data(), x.data(), static_cast<int64_t>(x.size()));
  cpu::convert_bf16_to_f32(back.data(), h.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(h[i], cpu::bf16_from_f32(x[i])) << i;
    ASSERT_LE(std::fabs(back[i] - x[i]), std::ldexp(std::fabs(x[i]), -8)) << i;
  }
}

}  // namespace
}  // namespace ddpm
