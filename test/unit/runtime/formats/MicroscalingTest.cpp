#include "runtime/formats/Microscaling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace lathe::formats {
namespace {

constexpr MxElement kAllElements[] = {
    MxElement::INT8,     MxElement::FP8_E4M3, MxElement::FP8_E5M2,
    MxElement::FP6_E3M2, MxElement::FP6_E2M3, MxElement::FP4_E2M1,
};

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string nameOf(MxElement e) { return std::string(mxElementInfo(e).name); }

std::vector<float> padTo(std::vector<float> values, size_t n) {
  values.resize(n, 0.0f);
  return values;
}

std::vector<uint8_t> encodeBlock(MxElement e, const std::vector<float> &block) {
  std::vector<uint8_t> out(mxBlockBytes(e, block.size()), 0xAA);
  Status s = encodeMxBlock(e, block, out);
  EXPECT_TRUE(s) << s.error().message();
  return out;
}

std::vector<float> decodeBlock(MxElement e, const std::vector<uint8_t> &bytes,
                               size_t n = kMxBlockSize) {
  std::vector<float> out(n);
  decodeMxBlock(e, bytes, out);
  return out;
}

// ---------------------------------------------------------------------------
// Element formats

struct ElementCase {
  MxElement element;
  double value;
  uint8_t code;
  const char *why;
};

// Exact values: encode(value) == code and decode(code) == value.
const ElementCase kExactCases[] = {
    // FP6 E3M2, bias 3, no Inf/NaN.
    {MxElement::FP6_E3M2, 1.75, 0x0F, "1.11b x 2^0: sign 0, exp 0+3 = 011, mantissa 11 -> 0b0_011_11"},
    {MxElement::FP6_E3M2, 3.5, 0x13, "1.11b x 2^1: sign 0, exp 1+3 = 100, mantissa 11 -> 0b0_100_11"},
    {MxElement::FP6_E3M2, 28.0, 0x1F, "max: 1.11b x 2^4: exp 4+3 = 111 (a normal binade, no Inf/NaN), mantissa 11"},
    {MxElement::FP6_E3M2, 0.25, 0x04, "min normal 2^-2: exp 001, mantissa 00"},
    {MxElement::FP6_E3M2, 0.0625, 0x01, "min subnormal 0.01b x 2^-2: exp 000, mantissa 01"},
    {MxElement::FP6_E3M2, -0.1875, 0x23, "-0.11b x 2^-2: sign 1, exp 000, mantissa 11 -> 0b1_000_11"},
    {MxElement::FP6_E3M2, -0.0, 0x20, "negative zero keeps its sign bit"},
    // FP6 E2M3, bias 1, no Inf/NaN.
    {MxElement::FP6_E2M3, 7.5, 0x1F, "max: 1.111b x 2^2: exp 2+1 = 11, mantissa 111"},
    {MxElement::FP6_E2M3, 1.0, 0x08, "1.000b x 2^0: exp 01, mantissa 000 -> 0b0_01_000"},
    {MxElement::FP6_E2M3, 0.125, 0x01, "min subnormal 0.001b x 2^0"},
    {MxElement::FP6_E2M3, 0.875, 0x07, "max subnormal 0.111b x 2^0"},
    {MxElement::FP6_E2M3, -2.25, 0x31, "-1.001b x 2^1: sign 1, exp 10, mantissa 001 -> 0b1_10_001"},
    // FP4 E2M1, bias 1: the eight magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6.
    {MxElement::FP4_E2M1, 0.5, 0x1, "subnormal 0.1b x 2^0"},
    {MxElement::FP4_E2M1, 1.0, 0x2, "exp 01, mantissa 0"},
    {MxElement::FP4_E2M1, 1.5, 0x3, "exp 01, mantissa 1"},
    {MxElement::FP4_E2M1, 2.0, 0x4, "exp 10, mantissa 0"},
    {MxElement::FP4_E2M1, 3.0, 0x5, "exp 10, mantissa 1"},
    {MxElement::FP4_E2M1, 4.0, 0x6, "exp 11, mantissa 0"},
    {MxElement::FP4_E2M1, 6.0, 0x7, "max: 1.1b x 2^2: exp 11, mantissa 1"},
    {MxElement::FP4_E2M1, -3.0, 0xD, "sign 1, exp 10, mantissa 1 -> 0b1_10_1"},
    // FP8 E4M3, bias 7, no Inf, NaN = S.1111.111.
    {MxElement::FP8_E4M3, 448.0, 0x7E, "max: 1.110b x 2^8: exp 8+7 = 1111, mantissa 110 (111 would be NaN)"},
    {MxElement::FP8_E4M3, 1.0, 0x38, "exp 0+7 = 0111, mantissa 000"},
    {MxElement::FP8_E4M3, 0x1p-6, 0x08, "min normal: exp 0001"},
    {MxElement::FP8_E4M3, 0x1p-9, 0x01, "min subnormal 0.001b x 2^-6"},
    {MxElement::FP8_E4M3, -2.5, 0xC2, "-1.010b x 2^1: sign 1, exp 1000, mantissa 010"},
    // FP8 E5M2, bias 15, IEEE-like Inf/NaN.
    {MxElement::FP8_E5M2, 57344.0, 0x7B, "max: 1.11b x 2^15: exp 30 = 11110, mantissa 11"},
    {MxElement::FP8_E5M2, 1.0, 0x3C, "exp 0+15 = 01111, mantissa 00"},
    {MxElement::FP8_E5M2, 0x1p-16, 0x01, "min subnormal 0.01b x 2^-14"},
    {MxElement::FP8_E5M2, -0x1p-14, 0x84, "-min normal: sign 1, exp 00001, mantissa 00"},
    {MxElement::FP8_E5M2, kInf, 0x7C, "Inf = 0.11111.00"},
    {MxElement::FP8_E5M2, -kInf, 0xFC, "-Inf = 1.11111.00"},
    // MXINT8: two's complement q, value q * 2^-6.
    {MxElement::INT8, 1.0, 0x40, "64 * 2^-6"},
    {MxElement::INT8, -0.5, 0xE0, "-32 -> 0xE0"},
    {MxElement::INT8, 127.0 / 64.0, 0x7F, "max 127 * 2^-6 = 1 63/64"},
    {MxElement::INT8, 1.0 / 64.0, 0x01, "the quantum 2^-6"},
};

TEST(MxElement, HandWorkedCodes) {
  for (const ElementCase &c : kExactCases) {
    SCOPED_TRACE(nameOf(c.element) + " " + std::to_string(c.value) + ": " + c.why);
    EXPECT_EQ(encodeMxElement(c.element, c.value), c.code);
    const float decoded = decodeMxElement(c.element, c.code);
    EXPECT_EQ(decoded, static_cast<float>(c.value));
    EXPECT_EQ(std::signbit(decoded), std::signbit(c.value));
  }
}

// Inexact values: encode(value) == code.
const ElementCase kRoundingCases[] = {
    {MxElement::FP6_E3M2, 0.09375, 0x02, "1.5 x 0.0625: tie between 0x01 and 0x02 -> even code 0x02 (0.125)"},
    {MxElement::FP6_E3M2, 0.03125, 0x00, "half the min subnormal: tie between 0 and 0x01 -> 0"},
    {MxElement::FP6_E3M2, 0.0313, 0x01, "just above half the min subnormal -> 0.0625"},
    {MxElement::FP6_E3M2, 0.1, 0x02, "0.1 / 0.0625 = 1.6 subnormal steps -> 2 -> 0.125"},
    {MxElement::FP6_E3M2, 30.0, 0x1F, "above max: saturates to 28"},
    {MxElement::FP6_E3M2, 1e30, 0x1F, "far above max: saturates to 28"},
    {MxElement::FP6_E3M2, -kInf, 0x3F, "-Inf: no Inf in E3M2, saturates to -28"},
    {MxElement::FP6_E2M3, 7.9, 0x1F, "above max 7.5: saturates"},
    {MxElement::FP6_E2M3, 0.0625, 0x00, "tie between 0 and 0.125 -> 0"},
    {MxElement::FP4_E2M1, 2.5, 0x4, "tie between 2 (0x4) and 3 (0x5) -> even 0x4"},
    {MxElement::FP4_E2M1, 5.0, 0x6, "tie between 4 (0x6) and 6 (0x7) -> even 0x6"},
    {MxElement::FP4_E2M1, 0.25, 0x0, "tie between 0 and 0.5 -> 0"},
    {MxElement::FP4_E2M1, 0.75, 0x2, "tie between 0.5 (0x1) and 1.0 (0x2) -> 0x2"},
    {MxElement::FP4_E2M1, 1.75, 0x4, "tie between 1.5 (0x3) and 2.0 (0x4) -> 0x4"},
    {MxElement::FP4_E2M1, -100.0, 0xF, "saturates to -6"},
    {MxElement::FP8_E4M3, 464.0, 0x7E, "tie between 448 and 480 (no such value, that code is NaN): the even 448"},
    {MxElement::FP8_E4M3, 470.0, 0x7E, "rounds to 480, which saturates to 448"},
    {MxElement::FP8_E4M3, kInf, 0x7E, "no Inf in E4M3: saturates to 448"},
    {MxElement::FP8_E4M3, kNaN, 0x7F, "NaN -> S.1111.111"},
    {MxElement::FP8_E4M3, -kNaN, 0xFF, "negative NaN keeps its sign"},
    {MxElement::FP8_E5M2, 60000.0, 0x7B, "above max: saturates to 57344, not Inf (the spec clamps)"},
    {MxElement::FP8_E5M2, kNaN, 0x7F, "NaN -> canonical 0.11111.11"},
    {MxElement::FP6_E3M2, kNaN, 0x00, "no NaN in E3M2: +0 (blocks make the scale NaN instead)"},
    {MxElement::INT8, 127.5 / 64.0, 0x7F, "tie between 127 and 128 -> 128, saturated to 127"},
    {MxElement::INT8, -2.0, 0x81, "saturation is symmetric: -128 is never written"},
    {MxElement::INT8, 0.5 / 64.0, 0x00, "tie between 0 and 1 -> 0"},
    {MxElement::INT8, 1.5 / 64.0, 0x02, "tie between 1 and 2 -> 2"},
    {MxElement::INT8, kInf, 0x7F, "saturates"},
    {MxElement::INT8, kNaN, 0x00, "no NaN in MXINT8: 0"},
};

TEST(MxElement, RoundingSaturationAndSpecialValues) {
  for (const ElementCase &c : kRoundingCases) {
    SCOPED_TRACE(nameOf(c.element) + " " + std::to_string(c.value) + ": " + c.why);
    EXPECT_EQ(encodeMxElement(c.element, c.value), c.code);
  }
}

TEST(MxElement, InfoMatchesTheSpec) {
  // max normal = 2^emax * (largest significand)
  EXPECT_EQ(mxElementInfo(MxElement::FP8_E4M3).maxNormal, 448.0);   // 2^8 * 1.75
  EXPECT_EQ(mxElementInfo(MxElement::FP8_E5M2).maxNormal, 57344.0); // 2^15 * 1.75
  EXPECT_EQ(mxElementInfo(MxElement::FP6_E3M2).maxNormal, 28.0);    // 2^4 * 1.75
  EXPECT_EQ(mxElementInfo(MxElement::FP6_E2M3).maxNormal, 7.5);     // 2^2 * 1.875
  EXPECT_EQ(mxElementInfo(MxElement::FP4_E2M1).maxNormal, 6.0);     // 2^2 * 1.5
  EXPECT_EQ(mxElementInfo(MxElement::INT8).maxNormal, 127.0 / 64.0);
  for (MxElement e : kAllElements) {
    const MxElementInfo info = mxElementInfo(e);
    EXPECT_EQ(std::ilogb(info.maxNormal), info.emax) << info.name;
    if (e != MxElement::INT8) {
      EXPECT_EQ(info.bits, 1u + info.exponentBits + info.mantissaBits) << info.name;
    }
  }
}

TEST(MxElement, EveryCodeDecodesAndReencodesToItself) {
  for (MxElement e : kAllElements) {
    const MxElementInfo info = mxElementInfo(e);
    int nanCodes = 0;
    for (uint32_t code = 0; code < (1u << info.bits); ++code) {
      SCOPED_TRACE(std::string(info.name) + " code " + std::to_string(code));
      const float value = decodeMxElement(e, static_cast<uint8_t>(code));
      if (isMxElementNaN(e, static_cast<uint8_t>(code))) {
        // NaN duplicates: every NaN code decodes to NaN, and NaN encodes to
        // the canonical code of the same sign.
        ++nanCodes;
        EXPECT_TRUE(std::isnan(value));
        EXPECT_TRUE(isMxElementNaN(e, encodeMxElement(e, value)));
        continue;
      }
      if (e == MxElement::INT8 && code == 0x80) {
        // -128 * 2^-6 = -2.0 is a valid code, but the encoder saturates
        // symmetrically (as the reference implementation does) to -127.
        EXPECT_EQ(value, -2.0f);
        EXPECT_EQ(encodeMxElement(e, value), 0x81);
        continue;
      }
      EXPECT_FALSE(std::isnan(value));
      EXPECT_EQ(encodeMxElement(e, value), code);
    }
    const int expectedNaNs = e == MxElement::FP8_E4M3 ? 2    // S.1111.111
                             : e == MxElement::FP8_E5M2 ? 6  // S.11111.{01,10,11}
                                                        : 0;
    EXPECT_EQ(nanCodes, expectedNaNs) << info.name;
  }
}

TEST(MxElement, PositiveCodesIncreaseWithValue) {
  // Sign-magnitude float codes are ordered like their values; round-to-
  // nearest-even therefore means "the even code" on ties, which the next
  // test relies on.
  for (MxElement e : kAllElements) {
    if (e == MxElement::INT8)
      continue;
    const MxElementInfo info = mxElementInfo(e);
    float previous = -1.0f;
    for (uint32_t code = 0; code < (1u << (info.bits - 1)); ++code) {
      const float value = decodeMxElement(e, static_cast<uint8_t>(code));
      if (std::isnan(value) || std::isinf(value))
        break;
      EXPECT_GT(value, previous) << info.name << " code " << code;
      previous = value;
    }
    EXPECT_EQ(previous, info.maxNormal) << info.name;
  }
}

TEST(MxElement, MidpointsRoundToTheEvenCode) {
  // Exhaustive round-to-nearest-even check: for every pair of neighbouring
  // finite codes, the midpoint goes to the even code, and anything off the
  // midpoint to the nearer one. Mirrored for negative values.
  for (MxElement e : kAllElements) {
    if (e == MxElement::INT8)
      continue;
    const MxElementInfo info = mxElementInfo(e);
    const uint32_t signBit = 1u << (info.bits - 1);
    for (uint32_t lo = 0; lo + 1 < signBit; ++lo) {
      const double a = decodeMxElement(e, static_cast<uint8_t>(lo));
      const double b = decodeMxElement(e, static_cast<uint8_t>(lo + 1));
      if (!std::isfinite(b))
        break;
      const double mid = (a + b) / 2;
      const double nudge = (b - a) / 1024;
      const uint32_t even = (lo % 2 == 0) ? lo : lo + 1;
      SCOPED_TRACE(std::string(info.name) + " between codes " + std::to_string(lo) +
                   " and " + std::to_string(lo + 1));
      EXPECT_EQ(encodeMxElement(e, mid), even);
      EXPECT_EQ(encodeMxElement(e, mid - nudge), lo);
      EXPECT_EQ(encodeMxElement(e, mid + nudge), lo + 1);
      EXPECT_EQ(encodeMxElement(e, -mid), even | signBit);
      EXPECT_EQ(encodeMxElement(e, -(mid + nudge)), (lo + 1) | signBit);
    }
  }
  // MXINT8 is a plain integer grid with step 2^-6.
  for (int q = -127; q < 127; ++q) {
    const double mid = (q + 0.5) / 64.0;
    const int even = (q % 2 == 0) ? q : q + 1;
    EXPECT_EQ(encodeMxElement(MxElement::INT8, mid),
              static_cast<uint8_t>(static_cast<int8_t>(even)))
        << q;
  }
}

// ---------------------------------------------------------------------------
// E8M0 scale

TEST(MxScale, E8M0Decoding) {
  EXPECT_EQ(decodeE8M0(127), 1.0f);    // 2^(127 - 127)
  EXPECT_EQ(decodeE8M0(130), 8.0f);    // 2^3
  EXPECT_EQ(decodeE8M0(126), 0.5f);    // 2^-1
  EXPECT_EQ(decodeE8M0(254), 0x1p127f); // largest
  EXPECT_EQ(decodeE8M0(0), 0x1p-127f);  // smallest, a float32 subnormal
  EXPECT_TRUE(std::isnan(decodeE8M0(0xFF)));
}

TEST(MxScale, SharedExponentIsFloorLog2MaxMinusEmax) {
  const std::vector<float> block = padTo({3.0f, -0.1f}, 32);
  // floor(log2 3.0) = 1; emax: E2M1 2, E3M2 4, E2M3 2, E4M3 8, E5M2 15, INT8 0.
  EXPECT_EQ(mxScaleCode(MxElement::FP4_E2M1, block), 127 + 1 - 2);
  EXPECT_EQ(mxScaleCode(MxElement::FP6_E3M2, block), 127 + 1 - 4);
  EXPECT_EQ(mxScaleCode(MxElement::FP6_E2M3, block), 127 + 1 - 2);
  EXPECT_EQ(mxScaleCode(MxElement::FP8_E4M3, block), 127 + 1 - 8);
  EXPECT_EQ(mxScaleCode(MxElement::FP8_E5M2, block), 127 + 1 - 15);
  EXPECT_EQ(mxScaleCode(MxElement::INT8, block), 127 + 1 - 0);
  // A negative max counts by magnitude.
  EXPECT_EQ(mxScaleCode(MxElement::INT8, padTo({-100.0f}, 32)), 127 + 6);
}

// ---------------------------------------------------------------------------
// Blocks

TEST(MxBlock, BlockBytes) {
  EXPECT_EQ(mxBlockBytes(MxElement::INT8), 33u);
  EXPECT_EQ(mxBlockBytes(MxElement::FP8_E4M3), 33u);
  EXPECT_EQ(mxBlockBytes(MxElement::FP8_E5M2), 33u);
  EXPECT_EQ(mxBlockBytes(MxElement::FP6_E3M2), 25u); // 32 * 6 / 8 = 24
  EXPECT_EQ(mxBlockBytes(MxElement::FP6_E2M3), 25u);
  EXPECT_EQ(mxBlockBytes(MxElement::FP4_E2M1), 17u);
}

TEST(MxBlock, Fp4HandVector) {
  // max 3.0: floor(log2 3.0) = 1, emax(E2M1) = 2 -> X = -1, scale code 126 = 0x7E.
  // V / 2^X = 2V:  6.0 -> 0x7;  -2.0 -> 0x8 | 0x4 = 0xC;  0.5 -> 0x1;
  //   0.6 -> nearest 0.5 -> 0x1;  2.5 -> tie 2/3 -> 2 = 0x4
  // two per byte, low nibble first: 0xC7, 0x11, 0x04
  const std::vector<float> block = padTo({3.0f, -1.0f, 0.25f, 0.3f, 1.25f}, 32);
  std::vector<uint8_t> expected(17, 0);
  expected[0] = 0x7E;
  expected[1] = 0xC7;
  expected[2] = 0x11;
  expected[3] = 0x04;
  const std::vector<uint8_t> bytes = encodeBlock(MxElement::FP4_E2M1, block);
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(decodeBlock(MxElement::FP4_E2M1, bytes),
            padTo({3.0f, -1.0f, 0.25f, 0.25f, 1.0f}, 32));
}

TEST(MxBlock, Fp6E3M2HandVector) {
  // max 28: floor(log2 28) = 4 = emax(E3M2) -> X = 0, scale code 127 = 0x7F.
  // codes: 28 -> 0x1F, -1.75 -> 0x2F, 0.0625 -> 0x01, 3.5 -> 0x13,
  //   0.1 -> 1.6 subnormal steps -> 2 -> 0x02 (0.125)
  // 4 codes in 3 bytes: 0x1F | 0x2F << 6 | 0x01 << 12 | 0x13 << 18 = 0x4C1BDF
  //   -> DF 1B 4C; code 4 (0x02) starts the next 3 bytes.
  const std::vector<float> block = padTo({28.0f, -1.75f, 0.0625f, 3.5f, 0.1f}, 32);
  std::vector<uint8_t> expected(25, 0);
  expected[0] = 0x7F;
  expected[1] = 0xDF;
  expected[2] = 0x1B;
  expected[3] = 0x4C;
  expected[4] = 0x02;
  const std::vector<uint8_t> bytes = encodeBlock(MxElement::FP6_E3M2, block);
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(decodeBlock(MxElement::FP6_E3M2, bytes),
            padTo({28.0f, -1.75f, 0.0625f, 3.5f, 0.125f}, 32));
}

TEST(MxBlock, Fp6E2M3HandVector) {
  // max 7.5: floor(log2 7.5) = 2 = emax(E2M3) -> X = 0, code 0x7F.
  // 7.5 -> 0x1F, -2.25 -> 0x31: 0x1F | 0x31 << 6 = 0xC5F -> 5F 0C 00
  const std::vector<float> block = padTo({7.5f, -2.25f}, 32);
  std::vector<uint8_t> expected(25, 0);
  expected[0] = 0x7F;
  expected[1] = 0x5F;
  expected[2] = 0x0C;
  const std::vector<uint8_t> bytes = encodeBlock(MxElement::FP6_E2M3, block);
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(decodeBlock(MxElement::FP6_E2M3, bytes), block);
}

TEST(MxBlock, Int8HandVector) {
  // max 100: floor(log2 100) = 6, emax(INT8) = 0 -> X = 6, code 133 = 0x85.
  // 100 / 2^6 = 1.5625 = 100 * 2^-6 -> q = 100 = 0x64;
  // -37 / 2^6 -> q = -37 = 0xDB;  0.3 / 2^6 * 64 = 0.3 -> 0
  const std::vector<float> block = padTo({100.0f, -37.0f, 0.3f}, 32);
  std::vector<uint8_t> expected(33, 0);
  expected[0] = 0x85;
  expected[1] = 0x64;
  expected[2] = 0xDB;
  const std::vector<uint8_t> bytes = encodeBlock(MxElement::INT8, block);
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(decodeBlock(MxElement::INT8, bytes), padTo({100.0f, -37.0f}, 32));
}

TEST(MxBlock, Fp8E4M3HandVector) {
  // max 1792: floor(log2 1792) = 10, emax(E4M3) = 8 -> X = 2, code 129 = 0x81.
  // 1792 / 4 = 448 -> 0x7E;  1.0 / 4 = 2^-2 -> exp 5 = 0101 -> 0x28;
  // -3.0 / 4 = -1.1b x 2^-1 -> sign 1, exp 6 = 0110, mantissa 100 -> 0xB4
  const std::vector<float> block = padTo({1792.0f, 1.0f, -3.0f}, 32);
  std::vector<uint8_t> expected(33, 0);
  expected[0] = 0x81;
  expected[1] = 0x7E;
  expected[2] = 0x28;
  expected[3] = 0xB4;
  const std::vector<uint8_t> bytes = encodeBlock(MxElement::FP8_E4M3, block);
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(decodeBlock(MxElement::FP8_E4M3, bytes), block);
}

TEST(MxBlock, Fp8E5M2HandVector) {
  // max 1.0: floor(log2 1) = 0, emax(E5M2) = 15 -> X = -15, code 112 = 0x70.
  // 1.0 * 2^15 -> exp 30 = 11110, mantissa 00 -> 0x78
  // -0.375 * 2^15 = -1.1b x 2^13 -> sign 1, exp 28 = 11100, mantissa 10 -> 0xF2
  const std::vector<float> block = padTo({1.0f, -0.375f}, 32);
  std::vector<uint8_t> expected(33, 0);
  expected[0] = 0x70;
  expected[1] = 0x78;
  expected[2] = 0xF2;
  const std::vector<uint8_t> bytes = encodeBlock(MxElement::FP8_E5M2, block);
  EXPECT_EQ(bytes, expected);
  EXPECT_EQ(decodeBlock(MxElement::FP8_E5M2, bytes), block);
}

TEST(MxBlock, MaxAboveTheElementRangeSaturates) {
  // The spec's scale only looks at the max's exponent: max 3.9 in MXFP4 gives
  // X = floor(log2 3.9) - 2 = -1, and 3.9 / 2^-1 = 7.8 exceeds E2M1's 6, so
  // the element clamps to 6 and the max decodes as 3.0.
  const std::vector<float> block = padTo({3.9f, -3.9f, 1.0f}, 32);
  const std::vector<uint8_t> bytes = encodeBlock(MxElement::FP4_E2M1, block);
  EXPECT_EQ(bytes[0], 0x7E);
  EXPECT_EQ(decodeBlock(MxElement::FP4_E2M1, bytes),
            padTo({3.0f, -3.0f, 1.0f}, 32));
}

TEST(MxBlock, NaNOrInfAnywhereMakesTheWholeBlockNaN) {
  for (MxElement e : kAllElements)
    for (float special : {std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
      std::vector<float> block(32, 1.0f);
      block[9] = special;
      const std::vector<uint8_t> bytes = encodeBlock(e, block);
      EXPECT_EQ(bytes[0], kE8M0NaN) << nameOf(e);
      for (size_t i = 1; i < bytes.size(); ++i)
        EXPECT_EQ(bytes[i], 0) << nameOf(e);
      for (float v : decodeBlock(e, bytes))
        EXPECT_TRUE(std::isnan(v)) << nameOf(e);
    }
}

TEST(MxBlock, AllZeroBlockHasScaleCodeZero) {
  for (MxElement e : kAllElements) {
    const std::vector<float> zeros(32, 0.0f);
    const std::vector<uint8_t> bytes = encodeBlock(e, zeros);
    EXPECT_EQ(bytes, std::vector<uint8_t>(mxBlockBytes(e), 0)) << nameOf(e);
    for (float v : decodeBlock(e, bytes)) {
      EXPECT_EQ(v, 0.0f);
      EXPECT_FALSE(std::signbit(v));
    }
  }
}

TEST(MxBlock, TinyBlocksClampTheScaleAndFlush) {
  // max 2^-140 in MXFP8 E4M3: X = -140 - 8 = -148, clamped to -127 (code 0);
  // 2^-140 / 2^-127 = 2^-13 is below half E4M3's smallest subnormal (2^-10).
  const std::vector<uint8_t> bytes =
      encodeBlock(MxElement::FP8_E4M3, padTo({0x1p-140f}, 32));
  EXPECT_EQ(bytes, std::vector<uint8_t>(33, 0));
  // 2^-135 alone also gets X = -127; 2^-135 / 2^-127 = 2^-8 is two E4M3
  // subnormal quanta (2^(-6-3) = 2^-9): mantissa 010, code 0x02.
  const std::vector<uint8_t> kept =
      encodeBlock(MxElement::FP8_E4M3, padTo({0x1p-135f}, 32));
  EXPECT_EQ(kept[0], 0x00);
  EXPECT_EQ(kept[1], 0x02);
  EXPECT_EQ(decodeBlock(MxElement::FP8_E4M3, kept)[0], 0x1p-135f);
}

TEST(MxBlock, AllEqualBlock) {
  // 0.3 in MXFP8 E4M3: X = floor(log2 0.3) - 8 = -10, code 117 = 0x75;
  // 0.3 * 2^10 = 307.2 = 1.2 x 2^8, quantum 2^(8-3) = 32: 9.6 -> 10 -> 320
  //   = 1.010b x 2^8 -> exp 15 = 1111, mantissa 010 -> 0x7A; decodes to
  //   320 / 1024 = 0.3125 (within 2^-4 relative: 3 mantissa bits).
  const std::vector<uint8_t> bytes =
      encodeBlock(MxElement::FP8_E4M3, std::vector<float>(32, 0.3f));
  EXPECT_EQ(bytes[0], 0x75);
  for (size_t i = 1; i < bytes.size(); ++i)
    EXPECT_EQ(bytes[i], 0x7A);
  EXPECT_EQ(decodeBlock(MxElement::FP8_E4M3, bytes),
            std::vector<float>(32, 0.3125f));
}

TEST(MxBlock, SingleOutlierPushesSmallValuesIntoSubnormals) {
  // MXFP6 E3M2, outlier 1000: X = floor(log2 1000) - 4 = 9 - 4 = 5.
  //   1000 / 32 = 31.25 is above 28 -> saturates, decodes to 28 * 32 = 896;
  //   1.0 / 32 = 0.03125 is exactly half the smallest subnormal 0.0625 -> 0;
  //   3.0 / 32 = 0.09375 = 1.5 subnormal steps -> 2 steps -> 0.125 * 32 = 4.
  std::vector<float> block(32, 1.0f);
  block[0] = 1000.0f;
  block[1] = 3.0f;
  const std::vector<float> decoded =
      decodeBlock(MxElement::FP6_E3M2, encodeBlock(MxElement::FP6_E3M2, block));
  EXPECT_EQ(decoded[0], 896.0f);
  EXPECT_EQ(decoded[1], 4.0f);
  EXPECT_EQ(decoded[2], 0.0f);
}

TEST(MxBlock, ErrorBoundsPerElement) {
  // Per element, with t = V / 2^X the value the element format sees:
  //  - |t| above max normal: saturates, decodes to exactly +-max * 2^X;
  //  - |t| in the normal range: relative error <= 2^-(m+1), half an ulp of an
  //    m-bit mantissa (MXFP6 E3M2: 2 mantissa bits -> 2^-3; E2M1: 2^-2);
  //  - |t| below the smallest normal: absolute error <= half the subnormal
  //    quantum, 2^(emin - m - 1) * 2^X;
  //  - MXINT8: absolute error <= 2^-7 * 2^X, half the 2^-6 quantum.
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-40, 40);
  for (MxElement e : kAllElements) {
    const MxElementInfo info = mxElementInfo(e);
    const int emin = 1 - info.bias;
    for (int trial = 0; trial < 300; ++trial) {
      std::vector<float> block(32);
      const float scale = std::ldexp(1.0f, exponent(rng));
      for (float &v : block)
        v = normal(rng) * scale * (trial % 10 == 0 ? 100.0f : 1.0f);
      if (trial % 7 == 0)
        block[trial % 32] *= 1000.0f; // an outlier
      const std::vector<uint8_t> bytes = encodeBlock(e, block);
      const std::vector<float> decoded = decodeBlock(e, bytes);
      const int x = static_cast<int>(bytes[0]) - kE8M0Bias;
      for (size_t i = 0; i < 32; ++i) {
        const double v = block[i];
        const double t = std::ldexp(v, -x);
        const double error = std::fabs(decoded[i] - v);
        SCOPED_TRACE(std::string(info.name) + " value " + std::to_string(v));
        if (e == MxElement::INT8) {
          if (std::fabs(t) >= info.maxNormal)
            EXPECT_EQ(decoded[i], std::copysign(std::ldexp(info.maxNormal, x), v));
          else
            EXPECT_LE(error, std::ldexp(1.0, x - 7));
        } else if (std::fabs(t) >= info.maxNormal) {
          EXPECT_EQ(decoded[i], std::copysign(std::ldexp(info.maxNormal, x), v));
        } else if (std::fabs(t) >= std::ldexp(1.0, emin)) {
          EXPECT_LE(error, std::fabs(v) * std::ldexp(1.0, -(info.mantissaBits + 1)));
        } else {
          EXPECT_LE(error, std::ldexp(1.0, emin - info.mantissaBits - 1 + x));
        }
      }
    }
  }
}

TEST(MxBlock, RejectsBadShapes) {
  std::vector<float> block(32, 1.0f);
  std::vector<uint8_t> out(24);
  Status s = encodeMxBlock(MxElement::FP6_E3M2, block, out);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("needs 25"), std::string::npos)
      << s.error().message();
  std::vector<uint8_t> big(100);
  EXPECT_FALSE(encodeMxBlock(MxElement::FP6_E3M2, std::vector<float>(3, 1.0f), big));
  // A wrongly sized input decodes to NaN instead of reading past the end.
  for (float v : decodeBlock(MxElement::FP4_E2M1, std::vector<uint8_t>(16, 0)))
    EXPECT_TRUE(std::isnan(v));
}

} // namespace
} // namespace lathe::formats
