#include "runtime/formats/IntGroup.h"

#include <gtest/gtest.h>

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

std::vector<uint8_t> encode(int bits, bool symmetric,
                            const std::vector<float> &group) {
  std::vector<uint8_t> out(intGroupBytes(bits, symmetric, group.size()), 0xAA);
  Status s = encodeIntGroup(bits, symmetric, group, out);
  EXPECT_TRUE(s) << s.error().message();
  return out;
}

std::vector<float> decode(int bits, bool symmetric,
                          const std::vector<uint8_t> &bytes, size_t n) {
  std::vector<float> out(n);
  decodeIntGroup(bits, symmetric, bytes, out);
  return out;
}

TEST(IntGroup, GroupBytes) {
  EXPECT_EQ(intGroupBytes(8, true, 32), 4u + 32u);   // scale + codes
  EXPECT_EQ(intGroupBytes(8, false, 64), 5u + 64u);  // scale + zero point + codes
  EXPECT_EQ(intGroupBytes(4, true, 32), 4u + 16u);
  EXPECT_EQ(intGroupBytes(4, false, 128), 5u + 64u);
}

TEST(IntGroup, Int8SymmetricHandVector) {
  // max |x| = 1.984375 = 127/64 -> s = (127/64) / 127 = 2^-6, float32 0x3C800000
  // q = x / s:  1.984375 -> 127 = 0x7F;  -0.5 -> -32 = 0xE0;
  //   0.0234375 -> 1.5, tie -> 2 = 0x02;  -0.0390625 -> -2.5, tie -> -2 = 0xFE;
  //   0.01 -> 0.64 -> 1 = 0x01
  const std::vector<float> group =
      padTo({1.984375f, -0.5f, 0.0234375f, -0.0390625f, 0.01f}, 32);
  std::vector<uint8_t> expected(36, 0);
  const uint8_t head[] = {0x00, 0x00, 0x80, 0x3C, 0x7F, 0xE0, 0x02, 0xFE, 0x01};
  std::copy(std::begin(head), std::end(head), expected.begin());
  const std::vector<uint8_t> bytes = encode(8, true, group);
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(decode(8, true, bytes, 32),
            padTo({1.984375f, -0.5f, 0.03125f, -0.03125f, 0.015625f}, 32));
}

TEST(IntGroup, Int4SymmetricHandVector) {
  // max |x| = 1.75 -> s = 1.75 / 7 = 0.25, float32 0x3E800000
  // q:  1.75 -> 7;  -1.75 -> -7 = 0b1001;  0.3 -> 1.2 -> 1;
  //   -0.125 -> -0.5, tie -> 0;  0.375 -> 1.5, tie -> 2
  // low nibble first: 0x7 | 0x9 << 4 = 0x97;  0x1 | 0x0 << 4 = 0x01;  0x02
  const std::vector<float> group = padTo({1.75f, -1.75f, 0.3f, -0.125f, 0.375f}, 32);
  std::vector<uint8_t> expected(20, 0);
  const uint8_t head[] = {0x00, 0x00, 0x80, 0x3E, 0x97, 0x01, 0x02};
  std::copy(std::begin(head), std::end(head), expected.begin());
  const std::vector<uint8_t> bytes = encode(4, true, group);
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(decode(4, true, bytes, 32),
            padTo({1.75f, -1.75f, 0.25f, 0.0f, 0.5f}, 32));
}

TEST(IntGroup, Int4AsymmetricHandVector) {
  // lo = -0.5, hi = 1.375 -> s = 1.875 / 15 = 0.125 (0x3E000000);
  // z = round(0.5 / 0.125) = 4.  q = round(x / s) + z:
  //   1.375 -> 11 + 4 = 15;  -0.5 -> -4 + 4 = 0;  0.0 -> 4;
  //   0.3 -> 2.4 -> 2 -> 6;  0.1875 -> 1.5, tie -> 2 -> 6;  padding zeros -> 4
  // nibbles: 15 | 0 << 4 = 0x0F;  4 | 6 << 4 = 0x64;  6 | 4 << 4 = 0x46;  0x44...
  const std::vector<float> group = padTo({1.375f, -0.5f, 0.0f, 0.3f, 0.1875f}, 32);
  std::vector<uint8_t> expected(21, 0x44);
  const uint8_t head[] = {0x00, 0x00, 0x00, 0x3E, 0x04, 0x0F, 0x64, 0x46};
  std::copy(std::begin(head), std::end(head), expected.begin());
  const std::vector<uint8_t> bytes = encode(4, false, group);
  EXPECT_EQ(bytes, expected);
  const IntGroupScale gs = intGroupScale(4, false, group);
  EXPECT_EQ(gs.scale, 0.125f);
  EXPECT_EQ(gs.zeroPoint, 4);
  EXPECT_EQ(decode(4, false, bytes, 32),
            padTo({1.375f, -0.5f, 0.0f, 0.25f, 0.25f}, 32));
}

TEST(IntGroup, Int8AsymmetricHandVector) {
  // lo = -0.5, hi = 1.4921875 -> s = 1.9921875 / 255 = 2^-7 (0x3C000000);
  // z = 0.5 * 128 = 64 = 0x40.  1.4921875 -> 191 + 64 = 255;  -0.5 -> 0;
  // 0.25 -> 32 + 64 = 96 = 0x60;  zeros -> 64 = 0x40
  const std::vector<float> group = padTo({1.4921875f, -0.5f, 0.25f}, 32);
  std::vector<uint8_t> expected(37, 0x40);
  const uint8_t head[] = {0x00, 0x00, 0x00, 0x3C, 0x40, 0xFF, 0x00, 0x60};
  std::copy(std::begin(head), std::end(head), expected.begin());
  const std::vector<uint8_t> bytes = encode(8, false, group);
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(decode(8, false, bytes, 32), group);
}

TEST(IntGroup, AsymmetricRangeAlwaysIncludesZero) {
  // All-positive group: lo is widened to 0, so z = 0 and 0.0 stays exact.
  const std::vector<float> positive = padTo({1.0f, 2.0f, 3.0f}, 32);
  IntGroupScale gs = intGroupScale(4, false, positive);
  EXPECT_EQ(gs.zeroPoint, 0);
  EXPECT_EQ(gs.scale, 0.2f); // 3 / 15
  // All-negative group: hi is widened to 0, so z = 2^b - 1.
  const std::vector<float> negative = padTo({-1.0f, -3.0f}, 32);
  gs = intGroupScale(4, false, negative);
  EXPECT_EQ(gs.zeroPoint, 15);
  const std::vector<float> decoded = decode(4, false, encode(4, false, negative), 32);
  // s = 3 / 15 = 0.2: -1 -> -5 + 15 = 10, -3 -> -15 + 15 = 0, 0 -> 15.
  EXPECT_FLOAT_EQ(decoded[0], -1.0f);
  EXPECT_FLOAT_EQ(decoded[1], -3.0f);
  EXPECT_EQ(decoded[2], 0.0f);
}

TEST(IntGroup, ZeroGroupStoresZeroScale) {
  for (int bits : {8, 4})
    for (bool symmetric : {true, false}) {
      const std::vector<float> zeros(32, 0.0f);
      const std::vector<uint8_t> bytes = encode(bits, symmetric, zeros);
      EXPECT_EQ(bytes, std::vector<uint8_t>(bytes.size(), 0));
      EXPECT_EQ(decode(bits, symmetric, bytes, 32), zeros);
    }
}

TEST(IntGroup, AllEqualGroups) {
  // Symmetric: s = x / qmax, every q = qmax; decodes to qmax * s, x up to the
  // float32 rounding of s. Asymmetric: lo = 0, z = 0, every q = 2^b - 1.
  for (int bits : {8, 4})
    for (bool symmetric : {true, false}) {
      const std::vector<float> group(64, 0.7f);
      for (float v : decode(bits, symmetric, encode(bits, symmetric, group), 64))
        EXPECT_NEAR(v, 0.7f, 0.7f * 0x1p-23f);
    }
}

TEST(IntGroup, SingleOutlierCoarsensTheGroup) {
  // INT4 symmetric, outlier 70: s = 10; 1.0 / 10 -> 0, 6.0 / 10 -> 1 (decodes 10).
  std::vector<float> group(32, 1.0f);
  group[3] = 70.0f;
  group[4] = 6.0f;
  const std::vector<float> decoded = decode(4, true, encode(4, true, group), 32);
  EXPECT_EQ(decoded[3], 70.0f);
  EXPECT_EQ(decoded[4], 10.0f);
  EXPECT_EQ(decoded[0], 0.0f);
}

TEST(IntGroup, ErrorIsAtMostHalfAScaleStep) {
  // Symmetric: max |x| / s = qmax (up to the float32 rounding of s), so no
  // value saturates by more than that rounding and all round to within s/2.
  // Asymmetric: lo / s + z = d and hi / s + z = 2^b - 1 + d with |d| <= 1/2,
  // so the clamps at 0 and 2^b - 1 cut off at most d: again within s/2.
  // Slack: float32 rounding of s and of the (q - z) * s product, 2^-22 relative.
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> shift(-2.0f, 2.0f);
  for (int bits : {8, 4})
    for (bool symmetric : {true, false})
      for (size_t n : {32u, 64u, 128u})
        for (int trial = 0; trial < 100; ++trial) {
          std::vector<float> group(n);
          const float offset = symmetric ? 0.0f : shift(rng);
          for (float &v : group)
            v = normal(rng) + offset;
          const IntGroupScale gs = intGroupScale(bits, symmetric, group);
          const std::vector<float> decoded =
              decode(bits, symmetric, encode(bits, symmetric, group), n);
          for (size_t i = 0; i < n; ++i)
            EXPECT_LE(std::fabs(decoded[i] - group[i]),
                      gs.scale / 2 + std::fabs(group[i]) * 0x1p-22f + gs.scale * 0x1p-20f)
                << "int" << bits << (symmetric ? " sym" : " asym") << " value "
                << group[i];
        }
}

TEST(IntGroup, RejectsNonFiniteValuesAndBadSizes) {
  std::vector<float> group(32, 1.0f);
  group[5] = std::numeric_limits<float>::infinity();
  std::vector<uint8_t> out(intGroupBytes(4, true, 32));
  Status s = encodeIntGroup(4, true, group, out);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("value 5"), std::string::npos);
  group[5] = 1.0f;
  std::vector<uint8_t> small(10);
  s = encodeIntGroup(4, true, group, small);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("needs 20"), std::string::npos)
      << s.error().message();
  EXPECT_FALSE(encodeIntGroup(5, true, group, out));
  for (float v : decode(4, true, small, 32))
    EXPECT_TRUE(std::isnan(v));
}

} // namespace
} // namespace lathe::formats
