#include "runtime/formats/Bfp.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace lathe::formats {
namespace {

std::vector<float> padTo(std::vector<float> values, size_t n) {
  values.resize(n, 0.0f);
  return values;
}

std::vector<uint8_t> encode(int m, const std::vector<float> &block) {
  std::vector<uint8_t> out(bfpBlockBytes(m, block.size()), 0xAA);
  Status s = encodeBfpBlock(m, block, out);
  EXPECT_TRUE(s) << s.error().message();
  return out;
}

std::vector<float> decode(int m, const std::vector<uint8_t> &bytes, size_t n) {
  std::vector<float> out(n);
  decodeBfpBlock(m, bytes, out);
  return out;
}

void expectContains(const std::string &text, const std::string &part) {
  EXPECT_NE(text.find(part), std::string::npos)
      << "'" << text << "' lacks '" << part << "'";
}

TEST(Bfp, BlockBytesAreExponentPlusMantissas) {
  EXPECT_EQ(bfpBlockBytes(8, 16), 1u + 16u);
  EXPECT_EQ(bfpBlockBytes(6, 32), 1u + 24u);
  EXPECT_EQ(bfpBlockBytes(4, 32), 1u + 16u);
  EXPECT_EQ(bfpBlockBytes(4, 64), 1u + 32u);
  EXPECT_EQ(bfpBlockBytes(8, 64), 1u + 64u);
}

TEST(Bfp, Bfp8HandVector) {
  // max |x| = 3.0 = 1.5 * 2^1 -> e = 1, exponent code 1 + 127 = 128 = 0x80.
  // step = 2^(e - (m - 2)) = 2^(1 - 6) = 1/32.
  //   1.0 * 32 = 32 = 0x20     -0.5 * 32 = -16 = 0xF0
  //   0.75 * 32 = 24 = 0x18     3.0 * 32 = 96 = 0x60
  const std::vector<float> block = padTo({1.0f, -0.5f, 0.75f, 3.0f}, 16);
  std::vector<uint8_t> expected(17, 0);
  expected[0] = 0x80;
  expected[1] = 0x20;
  expected[2] = 0xF0;
  expected[3] = 0x18;
  expected[4] = 0x60;
  const std::vector<uint8_t> bytes = encode(8, block);
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(decode(8, bytes, 16), block); // all four are multiples of 1/32
  EXPECT_EQ(bfpSharedExponent(block), 1);
}

TEST(Bfp, Bfp4HandVectorWithRounding) {
  // max |x| = 3.0 -> e = 1, code 0x80; step = 2^(1 - 2) = 0.5.
  //   1.0 / 0.5 = 2                    -> 0b0010
  //  -0.3 / 0.5 = -0.6 -> -1           -> 0b1111
  //   0.75 / 0.5 = 1.5, tie -> 2 (even) -> 0b0010
  //   3.0 / 0.5 = 6                    -> 0b0110
  //   0.1 / 0.5 = 0.2 -> 0             -> 0b0000
  //   1.9 / 0.5 = 3.8 -> 4             -> 0b0100
  // value i in bits [4i, 4i + 4): 0xF2, 0x62, 0x40
  const std::vector<float> block =
      padTo({1.0f, -0.3f, 0.75f, 3.0f, 0.1f, 1.9f}, 16);
  std::vector<uint8_t> expected(9, 0);
  expected[0] = 0x80;
  expected[1] = 0xF2;
  expected[2] = 0x62;
  expected[3] = 0x40;
  const std::vector<uint8_t> bytes = encode(4, block);
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(decode(4, bytes, 16),
            padTo({1.0f, -0.5f, 1.0f, 3.0f, 0.0f, 2.0f}, 16));
}

TEST(Bfp, Bfp6HandVectorPacksFourValuesInThreeBytes) {
  // max |x| = 2.0 -> e = 1, code 0x80; step = 2^(1 - 4) = 1/8.
  //   q = 8 (001000 = 0x08), -8 (111000 = 0x38), 2 (000010 = 0x02),
  //       -16 (110000 = 0x30)
  // 24-bit word 0x08 | 0x38 << 6 | 0x02 << 12 | 0x30 << 18 = 0xC02E08
  //   -> bytes 0x08 0x2E 0xC0
  const std::vector<float> block = padTo({1.0f, -1.0f, 0.25f, -2.0f}, 16);
  std::vector<uint8_t> expected(13, 0);
  expected[0] = 0x80;
  expected[1] = 0x08;
  expected[2] = 0x2E;
  expected[3] = 0xC0;
  const std::vector<uint8_t> bytes = encode(6, block);
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(decode(6, bytes, 16), block);
}

TEST(Bfp, AllZeroBlockIsExponentCodeZero) {
  const std::vector<float> block(32, 0.0f);
  for (int m : {8, 6, 4}) {
    const std::vector<uint8_t> bytes = encode(m, block);
    EXPECT_EQ(bytes, std::vector<uint8_t>(bfpBlockBytes(m, 32), 0)) << m;
    EXPECT_EQ(decode(m, bytes, 32), block);
  }
  // -0.0 has no sign in a two's-complement mantissa: it decodes as +0.
  const std::vector<float> negativeZero(16, -0.0f);
  EXPECT_EQ(encode(4, negativeZero), std::vector<uint8_t>(9, 0));
}

TEST(Bfp, SaturationIsSymmetric) {
  // BFP4, max 3.9: e = 1, step 0.5, 3.9 / 0.5 = 7.8 -> 8, which needs a 5th
  // bit -> saturates to 7 (3.5); -3.9 saturates to -7, not -8.
  const std::vector<float> block = padTo({3.9f, -3.9f, 2.0f}, 16);
  const std::vector<uint8_t> bytes = encode(4, block);
  EXPECT_EQ(bytes[0], 0x80);
  EXPECT_EQ(bytes[1], 0x97); // 7 | (-7 = 0b1001) << 4
  EXPECT_EQ(decode(4, bytes, 16), padTo({3.5f, -3.5f, 2.0f}, 16));
}

TEST(Bfp, AllEqualBlock) {
  // 0.3 = 1.2 * 2^-2 -> e = -2, code 125 = 0x7D; BFP8 step 2^(-2 - 6) = 2^-8;
  // 0.3 * 256 = 76.8 -> 77 = 0x4D; decodes to 77 / 256 = 0.30078125.
  const std::vector<float> block(32, 0.3f);
  const std::vector<uint8_t> bytes = encode(8, block);
  EXPECT_EQ(bytes[0], 0x7D);
  for (size_t i = 1; i < bytes.size(); ++i)
    EXPECT_EQ(bytes[i], 0x4D) << i;
  EXPECT_EQ(decode(8, bytes, 32), std::vector<float>(32, 0.30078125f));
}

TEST(Bfp, SingleOutlierFlushesTheRestOfTheBlock) {
  // BFP4: 100 = 1.5625 * 2^6 -> e = 6, step 2^(6 - 2) = 16; 100 / 16 = 6.25
  // -> 6 (decodes 96); 0.01 / 16 rounds to 0. One outlier costs the block
  // all its small values, which is why the quantize pass reorders outlier
  // channels into blocks of their own.
  std::vector<float> block(32, 0.01f);
  block[7] = 100.0f;
  const std::vector<float> decoded = decode(4, encode(4, block), 32);
  for (size_t i = 0; i < 32; ++i)
    EXPECT_EQ(decoded[i], i == 7 ? 96.0f : 0.0f) << i;
}

TEST(Bfp, TinyBlocksClampTheExponentAndFlush) {
  // max 2^-140: floor(log2) = -140 is below -127, so e = -127 (code 0). BFP8
  // step 2^(-127 - 6) = 2^-133: 2^-140 / 2^-133 = 2^-7 rounds to 0.
  EXPECT_EQ(encode(8, padTo({0x1p-140f}, 16)), std::vector<uint8_t>(17, 0));
  // 1.5 * 2^-127 is a float subnormal: e = -127 exactly, q = 1.5 * 2^6 = 96.
  const std::vector<uint8_t> bytes = encode(8, padTo({0x1.8p-127f}, 16));
  EXPECT_EQ(bytes[0], 0x00);
  EXPECT_EQ(bytes[1], 96);
  EXPECT_EQ(decode(8, bytes, 16)[0], 0x1.8p-127f);
}

TEST(Bfp, LargestFloatSaturatesToAFiniteValue) {
  // FLT_MAX = (2 - 2^-23) * 2^127 -> e = 127, code 254; BFP8 step 2^121;
  // FLT_MAX / 2^121 = 127.99... -> 128 -> saturates to 127 = 1.984375 * 2^127.
  const std::vector<uint8_t> bytes = encode(8, padTo({FLT_MAX, -FLT_MAX}, 16));
  EXPECT_EQ(bytes[0], 254);
  EXPECT_EQ(bytes[1], 0x7F);
  EXPECT_EQ(bytes[2], 0x81);
  const std::vector<float> decoded = decode(8, bytes, 16);
  EXPECT_EQ(decoded[0], 0x1.fcp127f);
  EXPECT_EQ(decoded[1], -0x1.fcp127f);
}

TEST(Bfp, EveryMantissaCodeRoundTrips) {
  // Element 0 = 2^0 pins e = 0 (step 2^-(m-2)); element 1 = q * step must
  // come back as the mantissa code q, for every q the encoder can write.
  for (int m : {8, 6, 4}) {
    const double step = std::ldexp(1.0, -(m - 2));
    for (int q = -bfpMaxMantissa(m); q <= bfpMaxMantissa(m); ++q) {
      const std::vector<float> block =
          padTo({1.0f, static_cast<float>(q * step)}, 16);
      const std::vector<uint8_t> bytes = encode(m, block);
      ASSERT_EQ(bytes[0], 127) << m;
      const uint32_t mask = (1u << m) - 1u;
      const uint32_t word = bytes[1] | (bytes[2] << 8) | (bytes[3] << 16);
      EXPECT_EQ((word >> m) & mask, static_cast<uint32_t>(q) & mask)
          << "m " << m << " q " << q;
      EXPECT_EQ(decode(m, bytes, 16)[1], static_cast<float>(q * step));
    }
  }
}

TEST(Bfp, MostNegativeCodeDecodesButIsNeverWritten) {
  // -2^(m-1) is a valid two's-complement code: BFP4 mantissa 0b1000 with
  // e = 0 (step 2^-2) decodes to -8 * 2^-2 = -2.0.
  std::vector<uint8_t> bytes(9, 0);
  bytes[0] = 127;
  bytes[1] = 0x84; // q0 = 4 (1.0), q1 = 0b1000 = -8
  const std::vector<float> decoded = decode(4, bytes, 16);
  EXPECT_EQ(decoded[0], 1.0f);
  EXPECT_EQ(decoded[1], -2.0f);
  // The encoder only reaches magnitude 8 by rounding up a max in
  // [7.5, 8) steps, and saturation is symmetric: -1.99 (e = 0, -7.96 steps)
  // is written as -7 = 0b1001, not -8.
  EXPECT_EQ(encode(4, padTo({-1.99f}, 16))[1], 0x09);
}

TEST(Bfp, ErrorIsAtMostHalfAStepUnlessSaturated) {
  // The max lies in [2^e, 2^(e+1)) = [2^(m-2), 2^(m-1)) steps, so every
  // value rounds to within step / 2 except those above (2^(m-1) - 1/2) steps,
  // which saturate to 2^(m-1) - 1 and lose less than one step.
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-30, 30);
  for (int m : {8, 6, 4})
    for (size_t n : {16u, 32u, 64u})
      for (int trial = 0; trial < 200; ++trial) {
        std::vector<float> block(n);
        const float scale = std::ldexp(1.0f, exponent(rng));
        for (float &v : block)
          v = normal(rng) * scale;
        const std::vector<float> decoded = decode(m, encode(m, block), n);
        const int e = bfpSharedExponent(block);
        const double step = std::ldexp(1.0, e - (m - 2));
        const double saturation = (bfpMaxMantissa(m) + 0.5) * step;
        for (size_t i = 0; i < n; ++i) {
          const double error = std::fabs(double(block[i]) - decoded[i]);
          const bool saturated = std::fabs(block[i]) >= saturation;
          EXPECT_LE(error, saturated ? step : step / 2)
              << "m " << m << " n " << n << " value " << block[i];
        }
      }
}

TEST(Bfp, RejectsNonFiniteValues) {
  std::vector<float> block(16, 1.0f);
  std::vector<uint8_t> out(bfpBlockBytes(4, 16));
  block[2] = std::numeric_limits<float>::quiet_NaN();
  Status s = encodeBfpBlock(4, block, out);
  ASSERT_FALSE(s);
  expectContains(s.error().message(), "value 2");
  expectContains(s.error().message(), "NaN");
  block[2] = -std::numeric_limits<float>::infinity();
  s = encodeBfpBlock(4, block, out);
  ASSERT_FALSE(s);
  expectContains(s.error().message(), "infinite");
}

TEST(Bfp, RejectsBadShapes) {
  std::vector<float> block(16, 1.0f);
  std::vector<uint8_t> out(8);
  Status s = encodeBfpBlock(4, block, out);
  ASSERT_FALSE(s);
  expectContains(s.error().message(), "holds 8 bytes");
  expectContains(s.error().message(), "needs 9");
  std::vector<uint8_t> big(100);
  EXPECT_FALSE(encodeBfpBlock(9, block, big));
  EXPECT_FALSE(encodeBfpBlock(6, std::vector<float>(3, 1.0f), big)); // 18 bits
}

TEST(Bfp, BadInputDecodesToNaN) {
  std::vector<uint8_t> bytes(9, 0);
  bytes[0] = kBfpReservedExponentCode;
  for (float v : decode(4, bytes, 16))
    EXPECT_TRUE(std::isnan(v));
  bytes[0] = 127;
  for (float v : decode(4, bytes, 32)) // 9 bytes cannot hold 32 values
    EXPECT_TRUE(std::isnan(v));
}

// A value halfway between two steps rounds to the even one, not away from
// zero: at a step of 0.5, 0.25 and -0.25 go to 0 and 1.25 to 1 (1.5, the
// only tie tested before, rounds to 2 either way).
TEST(Bfp, RoundsTiesToEven) {
  const std::vector<uint8_t> bytes = encode(4, padTo({3.0f, 0.25f, 1.25f, -0.25f}, 16));
  EXPECT_EQ(decode(4, bytes, 16), padTo({3.0f, 0.0f, 1.0f, 0.0f}, 16));
}

} // namespace
} // namespace lathe::formats
