// float32 <-> f16 / bf16: every half and every bfloat16 survives a round
// trip through float exactly, and conversions from float round to nearest
// even (the KV cache stores f16/bf16 rows converted this way).
#include "runtime/formats/ElementType.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace lathe {
namespace {

float bitsToFloat(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

TEST(ElementTypeTest, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16ToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16ToFloat(floatToF16(f)))) << h;
      continue;
    }
    EXPECT_EQ(floatToF16(f), h) << std::hex << h;
  }
}

TEST(ElementTypeTest, EveryBfloat16RoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = bf16ToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(f)))) << h;
      continue;
    }
    EXPECT_EQ(floatToBf16(f), h) << std::hex << h;
  }
}

TEST(ElementTypeTest, HalfRoundsToNearestEven) {
  // 1 + 2^-11 lies halfway between 1 and the next half (1 + 2^-10): even
  // (1) wins; 1 + 3 * 2^-11 lies halfway between odd and even: up.
  EXPECT_EQ(floatToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(floatToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(floatToF16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
  EXPECT_EQ(floatToF16(65504.0f), 0x7bff);
  EXPECT_EQ(floatToF16(65519.0f), 0x7bff);
  EXPECT_EQ(floatToF16(65520.0f), 0x7c00);
  EXPECT_EQ(floatToF16(-1e10f), 0xfc00);
  EXPECT_EQ(floatToF16(std::numeric_limits<float>::infinity()), 0x7c00);
  // Subnormals: 2^-24 is the smallest; half of it ties to zero (even).
  EXPECT_EQ(floatToF16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(floatToF16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(floatToF16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(floatToF16(std::ldexp(3.0f, -25)), 0x0002);
  EXPECT_EQ(floatToF16(-0.0f), 0x8000);
  // The largest subnormal rounds up into the smallest normal.
  EXPECT_EQ(floatToF16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -26)), 0x0400);
}

TEST(ElementTypeTest, Bfloat16RoundsToNearestEven) {
  EXPECT_EQ(floatToBf16(bitsToFloat(0x3f808000)), 0x3f80); // tie, even stays
  EXPECT_EQ(floatToBf16(bitsToFloat(0x3f818000)), 0x3f82); // tie, odd rounds up
  EXPECT_EQ(floatToBf16(bitsToFloat(0x3f808001)), 0x3f81);
  EXPECT_EQ(floatToBf16(bitsToFloat(0x7f7fffff)), 0x7f80); // rounds to infinity
  EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(bitsToFloat(0x7f800001)))));
}

} // namespace
} // namespace lathe
