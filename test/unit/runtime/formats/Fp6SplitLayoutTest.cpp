#include "runtime/formats/Fp6SplitLayout.h"

#include "runtime/formats/Microscaling.h"

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

std::vector<uint8_t> encode(const std::vector<float> &group) {
  std::vector<uint8_t> out(fp6SplitGroupBytes(group.size()), 0xAA);
  Status s = encodeFp6SplitGroup(group, out);
  EXPECT_TRUE(s) << s.error().message();
  return out;
}

std::vector<float> decode(const std::vector<uint8_t> &bytes, size_t n) {
  std::vector<float> out(n);
  decodeFp6SplitGroup(bytes, out);
  return out;
}

TEST(Fp6Split, GroupBytes) {
  EXPECT_EQ(fp6SplitGroupBytes(32), 4u + 16u + 8u);   // scale, 4-bit plane, 2-bit plane
  EXPECT_EQ(fp6SplitGroupBytes(128), 4u + 64u + 32u); // 6.25 bits per weight
  EXPECT_EQ(fp6SplitGroupBytes(12), 4u + 6u + 3u);
}

TEST(Fp6Split, HandVector) {
  // max |x| = 14 -> s = 14 / 28 = 0.5 (float32 0x3F000000). Codes of x / s:
  //   14 / 0.5 = 28     -> 1.11b x 2^4:  0 111 11 = 0x1F
  //   -0.875 / 0.5 = -1.75 -> 1.11b x 2^0: 1 011 11 = 0x2F
  //   0.03125 / 0.5 = 0.0625 -> min subnormal: 0 000 01 = 0x01
  //   1.75 / 0.5 = 3.5  -> 1.11b x 2^1:  0 100 11 = 0x13
  // Split (code = s e2 | e1 e0 m1 m0):
  //   0x1F = 01|1111   0x2F = 10|1111   0x01 = 00|0001   0x13 = 01|0011
  // 4-bit plane, low nibble first: 0xF | 0xF << 4 = 0xFF;  0x1 | 0x3 << 4 = 0x31
  // 2-bit plane, code i at bits 2i: 01 | 10 << 2 | 00 << 4 | 01 << 6 = 0x49
  const std::vector<float> group = padTo({14.0f, -0.875f, 0.03125f, 1.75f}, 32);
  std::vector<uint8_t> expected(28, 0);
  expected[3] = 0x3F; // scale bytes 00 00 00 3F
  expected[4] = 0xFF;
  expected[5] = 0x31;
  expected[4 + 16] = 0x49;
  const std::vector<uint8_t> bytes = encode(group);
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(fp6SplitScale(group), 0.5f);
  EXPECT_EQ(decode(bytes, 32), group);
}

TEST(Fp6Split, SplitAndJoinEveryCodeAtEveryPosition) {
  // 0x2D = 10 1101: low plane gets 1101, high plane 10.
  std::vector<uint8_t> low(2), high(1), codes = {0x2D, 0, 0, 0};
  splitFp6Codes(codes, low, high);
  EXPECT_EQ(low[0], 0x0D);
  EXPECT_EQ(high[0], 0x02);
  // Exhaustive: every 6-bit code at each of the 4 positions a 2-bit-plane
  // byte holds, with the other positions holding other codes.
  for (uint32_t code = 0; code < 64; ++code)
    for (size_t position = 0; position < 4; ++position) {
      std::vector<uint8_t> in = {0x15, 0x2A, 0x3F, 0x00, 0x11, 0x22, 0x33, 0x3C};
      in[position] = static_cast<uint8_t>(code);
      std::vector<uint8_t> lowPlane(4), highPlane(2), out(8);
      splitFp6Codes(in, lowPlane, highPlane);
      joinFp6Codes(lowPlane, highPlane, out);
      EXPECT_EQ(out, in) << "code " << code << " at " << position;
      EXPECT_EQ((lowPlane[position / 2] >> (4 * (position % 2))) & 0xF, code & 0xF);
      EXPECT_EQ((highPlane[0] >> (2 * position)) & 0x3, code >> 4);
    }
}

TEST(Fp6Split, CodesAreMxfp6E3M2Codes) {
  // Same element as MXFP6 E3M2: with s = 1 (max 28) every E3M2 value comes
  // back exactly, so every one of the 64 codes appears once.
  std::vector<float> group;
  for (uint32_t code = 0; code < 64; ++code)
    group.push_back(decodeMxElement(MxElement::FP6_E3M2, static_cast<uint8_t>(code)));
  EXPECT_EQ(fp6SplitScale(group), 1.0f);
  const std::vector<float> decoded = decode(encode(group), 64);
  for (size_t i = 0; i < 64; ++i) {
    EXPECT_EQ(decoded[i], group[i]) << i;
    EXPECT_EQ(std::signbit(decoded[i]), std::signbit(group[i])) << i;
  }
}

TEST(Fp6Split, ZeroGroupAndEdgeValues) {
  const std::vector<float> zeros(32, 0.0f);
  const std::vector<uint8_t> bytes = encode(zeros);
  EXPECT_EQ(bytes, std::vector<uint8_t>(28, 0));
  EXPECT_EQ(decode(bytes, 32), zeros);
  // All-equal group: each value maps to 28, the top code 0x1F.
  const std::vector<float> equal(32, -3.3f);
  for (float v : decode(encode(equal), 32))
    EXPECT_NEAR(v, -3.3f, 3.3f * 0x1p-22f);
  // Single outlier: s = 280 / 28 = 10; 1.0 / 10 = 0.1 = 1.6 subnormal steps
  // of 0.0625 -> 2 -> 0.125 * 10 = 1.25; 0.3 / 10 = 0.03 -> under half a
  // step -> 0.
  std::vector<float> outlier(32, 1.0f);
  outlier[0] = 280.0f;
  outlier[1] = 0.3f;
  const std::vector<float> decoded = decode(encode(outlier), 32);
  EXPECT_EQ(decoded[0], 280.0f);
  EXPECT_EQ(decoded[1], 0.0f);
  EXPECT_EQ(decoded[2], 1.25f);
}

TEST(Fp6Split, ErrorBounds) {
  // E3M2 has 2 mantissa bits: for |x| / s in the normal range [0.25, 28] the
  // relative error is <= 2^-3; below it (subnormals, quantum 0.0625) the
  // absolute error is <= 0.03125 * s. Slack 2^-22 for the float32 product.
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (size_t n : {32u, 64u, 128u, 4096u})
    for (int trial = 0; trial < 50; ++trial) {
      std::vector<float> group(n);
      for (float &v : group)
        v = normal(rng) * static_cast<float>(trial + 1);
      const float s = fp6SplitScale(group);
      const std::vector<float> decoded = decode(encode(group), n);
      for (size_t i = 0; i < n; ++i) {
        const double x = group[i];
        const double error = std::fabs(decoded[i] - x);
        const double bound = std::fabs(x) / s >= 0.25 ? std::fabs(x) * 0x1p-3
                                                      : 0.03125 * s;
        EXPECT_LE(error, bound + std::fabs(x) * 0x1p-22) << x;
      }
    }
}

TEST(Fp6Split, RejectsNonFiniteValuesAndBadSizes) {
  std::vector<float> group(32, 1.0f);
  group[31] = std::numeric_limits<float>::quiet_NaN();
  std::vector<uint8_t> out(28);
  Status s = encodeFp6SplitGroup(group, out);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("value 31"), std::string::npos);
  group[31] = 0.0f;
  std::vector<uint8_t> wrong(27);
  EXPECT_FALSE(encodeFp6SplitGroup(group, wrong));
  std::vector<uint8_t> odd(fp6SplitGroupBytes(8));
  EXPECT_FALSE(encodeFp6SplitGroup(std::vector<float>(6, 1.0f), odd));
  for (float v : decode(wrong, 32))
    EXPECT_TRUE(std::isnan(v));
}

} // namespace
} // namespace lathe::formats
