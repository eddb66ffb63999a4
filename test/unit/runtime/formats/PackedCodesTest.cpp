// PackedCodes.h, the one decoding of every packed weight code that the
// runtime and the generated HLS projects share, against references written
// here from the definitions (IEEE 754 binary16/bfloat16, OCP MX v1.0,
// BitPacking.h's bit order), not from the code under test. Every code of
// every element type is checked, bit-exact: these decodes are exact, so any
// difference is a bug, not rounding. NaN only has to stay NaN.
#include "runtime/formats/PackedCodes.h"

#include "runtime/formats/BitPacking.h"
#include "runtime/formats/ElementType.h"
#include "runtime/formats/Microscaling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace lathe::formats {
namespace {

uint32_t bitsOf(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

uint64_t bitsOf(double d) {
  uint64_t b;
  std::memcpy(&b, &d, 8);
  return b;
}

// Same bits, or both NaN (payloads are not part of any format here).
::testing::AssertionResult sameFloat(float actual, float expected) {
  if (std::isnan(expected) && std::isnan(actual))
    return ::testing::AssertionSuccess();
  if (bitsOf(actual) == bitsOf(expected))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << actual << " (0x" << std::hex << bitsOf(actual) << "), expected "
         << expected << " (0x" << bitsOf(expected) << ")";
}

// An IEEE-style binary format of `e` exponent and `m` mantissa bits, all-ones
// exponent reserved for infinity (mantissa 0) and NaN: binary16, bfloat16.
float ieeeReference(uint32_t code, int e, int m) {
  const int bias = (1 << (e - 1)) - 1;
  const bool negative = (code >> (e + m)) & 1u;
  const int exponent = static_cast<int>((code >> m) & ((1u << e) - 1u));
  const int mantissa = static_cast<int>(code & ((1u << m) - 1u));
  double magnitude;
  if (exponent == (1 << e) - 1)
    magnitude = mantissa == 0 ? std::numeric_limits<double>::infinity()
                              : std::numeric_limits<double>::quiet_NaN();
  else if (exponent == 0)
    magnitude = std::ldexp(mantissa, 1 - bias - m);
  else
    magnitude = std::ldexp((1 << m) + mantissa, exponent - bias - m);
  return static_cast<float>(negative ? -magnitude : magnitude);
}

TEST(PackedCodes, EveryF16Code) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float expected = ieeeReference(h, 5, 10);
    EXPECT_TRUE(sameFloat(lathe_f16_to_f32(static_cast<uint16_t>(h)), expected))
        << "f16 code 0x" << std::hex << h;
    EXPECT_TRUE(sameFloat(f16ToFloat(static_cast<uint16_t>(h)), expected))
        << "f16 code 0x" << std::hex << h;
  }
  // Anchors for the reference itself.
  EXPECT_EQ(lathe_f16_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(lathe_f16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(lathe_f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(bitsOf(lathe_f16_to_f32(0x8000)), 0x80000000u); // -0 keeps its sign
}

TEST(PackedCodes, EveryBf16Code) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float expected = ieeeReference(h, 8, 7);
    EXPECT_TRUE(sameFloat(lathe_bf16_to_f32(static_cast<uint16_t>(h)), expected))
        << "bf16 code 0x" << std::hex << h;
    EXPECT_TRUE(sameFloat(bf16ToFloat(static_cast<uint16_t>(h)), expected))
        << "bf16 code 0x" << std::hex << h;
  }
}

// OCP MX v1.0, section 5.3: value = (-1)^S * 2^(E - bias) * (1 + M / 2^m)
// for normals, (-1)^S * 2^(1 - bias) * (M / 2^m) for E = 0. E4M3 has no
// infinity and one NaN per sign (S.1111.111); E5M2 is IEEE-like; the FP6
// and FP4 types have neither. The parameters are the spec's, typed here.
struct MxReference {
  MxElement element;
  const char *name;
  int exponentBits, mantissaBits, bias;
  double maxNormal; // the spec's table, to check the formula itself
};

constexpr MxReference kMxTypes[] = {
    {MxElement::FP4_E2M1, "e2m1", 2, 1, 1, 6.0},
    {MxElement::FP6_E3M2, "e3m2", 3, 2, 3, 28.0},
    {MxElement::FP6_E2M3, "e2m3", 2, 3, 1, 7.5},
    {MxElement::FP8_E4M3, "e4m3", 4, 3, 7, 448.0},
    {MxElement::FP8_E5M2, "e5m2", 5, 2, 15, 57344.0},
};

float mxReference(const MxReference &t, uint32_t code) {
  const int m = t.mantissaBits;
  const bool negative = (code >> (t.exponentBits + m)) & 1u;
  const int exponent = static_cast<int>((code >> m) & ((1u << t.exponentBits) - 1u));
  const int mantissa = static_cast<int>(code & ((1u << m) - 1u));
  const double sign = negative ? -1.0 : 1.0;
  if (t.element == MxElement::FP8_E4M3 && exponent == 15 && mantissa == 7)
    return std::numeric_limits<float>::quiet_NaN();
  if (t.element == MxElement::FP8_E5M2 && exponent == 31)
    return mantissa == 0 ? static_cast<float>(sign * HUGE_VAL)
                         : std::numeric_limits<float>::quiet_NaN();
  if (exponent == 0)
    return static_cast<float>(sign * std::ldexp(1.0, 1 - t.bias) *
                              (mantissa / std::ldexp(1.0, m)));
  return static_cast<float>(sign * std::ldexp(1.0, exponent - t.bias) *
                            (1.0 + mantissa / std::ldexp(1.0, m)));
}

int nanRule(MxElement element) {
  return element == MxElement::FP8_E4M3 ? 1 : element == MxElement::FP8_E5M2 ? 2 : 0;
}

TEST(PackedCodes, EveryMxMinifloatCode) {
  for (const MxReference &t : kMxTypes) {
    const uint32_t bits = 1u + t.exponentBits + t.mantissaBits;
    double largest = 0.0;
    for (uint32_t code = 0; code < (1u << bits); ++code) {
      const float expected = mxReference(t, code);
      const bool hasInf = t.element == MxElement::FP8_E5M2;
      EXPECT_TRUE(sameFloat(lathe_minifloat_value(code, bits, t.exponentBits,
                                                  t.mantissaBits, t.bias, hasInf,
                                                  nanRule(t.element)),
                            expected))
          << t.name << " code 0x" << std::hex << code;
      EXPECT_TRUE(sameFloat(decodeMxElement(t.element, static_cast<uint8_t>(code)),
                            expected))
          << t.name << " code 0x" << std::hex << code;
      // Bits above the element's width are ignored.
      if (bits < 8)
        EXPECT_TRUE(sameFloat(
            decodeMxElement(t.element, static_cast<uint8_t>(code | (0xFFu << bits))),
            expected))
            << t.name << " code 0x" << std::hex << code << " with high bits set";
      EXPECT_EQ(std::isnan(expected), isMxElementNaN(t.element, static_cast<uint8_t>(code)))
          << t.name << " code 0x" << std::hex << code;
      if (std::isfinite(expected))
        largest = std::max(largest, std::fabs(static_cast<double>(expected)));
    }
    EXPECT_EQ(largest, t.maxNormal) << t.name;
  }
}

TEST(PackedCodes, EveryFp6E3M2CodeOfTheSplitLayout) {
  for (uint32_t code = 0; code < 64; ++code)
    EXPECT_TRUE(sameFloat(lathe_fp6_e3m2_value(code), mxReference(kMxTypes[1], code)))
        << "code 0x" << std::hex << code;
}

// MXINT8: two's complement with an implicit scale 2^-6 (spec section 5.4).
TEST(PackedCodes, EveryMxInt8Code) {
  for (uint32_t code = 0; code < 256; ++code) {
    const int q = code < 128 ? static_cast<int>(code) : static_cast<int>(code) - 256;
    const float expected = static_cast<float>(std::ldexp(q, -6));
    EXPECT_TRUE(sameFloat(lathe_mxint8_value(code), expected)) << "code " << code;
    EXPECT_TRUE(sameFloat(decodeMxElement(MxElement::INT8, static_cast<uint8_t>(code)),
                          expected))
        << "code " << code;
  }
}

// Every finite and special 8-bit element value times every E8M0 scale but
// NaN (0xFF, which the block decoder handles before scaling).
TEST(PackedCodes, MxScaledIsTheElementTimesTwoToTheScale) {
  for (MxElement element : {MxElement::FP8_E4M3, MxElement::FP8_E5M2, MxElement::INT8}) {
    for (uint32_t code = 0; code < 256; ++code) {
      const float p = decodeMxElement(element, static_cast<uint8_t>(code));
      for (uint32_t scale = 0; scale < 255; ++scale) {
        const float expected =
            static_cast<float>(std::ldexp(static_cast<double>(p), static_cast<int>(scale) - 127));
        EXPECT_TRUE(sameFloat(lathe_mx_scaled(p, scale), expected))
            << "code " << code << " scale " << scale;
      }
    }
  }
  for (uint32_t scale = 0; scale < 255; ++scale)
    EXPECT_TRUE(sameFloat(decodeE8M0(static_cast<uint8_t>(scale)),
                          std::ldexp(1.0f, static_cast<int>(scale) - 127)));
}

TEST(PackedCodes, Pow2MatchesLdexp) {
  for (int32_t e = -1100; e <= 1100; ++e)
    EXPECT_EQ(bitsOf(lathe_pow2(e)), bitsOf(std::ldexp(1.0, e))) << "2^" << e;
  // The ends: the smallest subnormal, the largest power, just past each,
  // and exponents whose arithmetic would overflow if it were attempted.
  EXPECT_EQ(lathe_pow2(-1074), std::numeric_limits<double>::denorm_min());
  EXPECT_EQ(lathe_pow2(-1022), std::numeric_limits<double>::min());
  EXPECT_EQ(lathe_pow2(1023), std::ldexp(1.0, 1023));
  EXPECT_EQ(bitsOf(lathe_pow2(-1075)), 0u);
  EXPECT_EQ(lathe_pow2(1024), std::numeric_limits<double>::infinity());
  EXPECT_EQ(bitsOf(lathe_pow2(INT32_MIN)), 0u);
  EXPECT_EQ(lathe_pow2(INT32_MAX), std::numeric_limits<double>::infinity());
}

// Bit k is bit k % 8 of byte k / 8; code i of width w is bits [i*w, i*w+w).
uint32_t naiveCode(const std::vector<uint8_t> &bytes, size_t index, unsigned width) {
  uint32_t code = 0;
  for (unsigned j = 0; j < width; ++j) {
    const size_t k = index * width + j;
    code |= static_cast<uint32_t>((bytes[k / 8] >> (k % 8)) & 1u) << j;
  }
  return code;
}

TEST(PackedCodes, UnpackBitsMatchesBitByBitExtraction) {
  std::mt19937 rng(20240601);
  std::vector<uint8_t> bytes(97);
  for (int round = 0; round < 20; ++round) {
    for (uint8_t &b : bytes)
      b = static_cast<uint8_t>(rng());
    for (unsigned width = 1; width <= 8; ++width) {
      const size_t count = bytes.size() * 8 / width;
      for (size_t i = 0; i < count; ++i) {
        const uint32_t expected = naiveCode(bytes, i, width);
        ASSERT_EQ(lathe_unpack_bits(bytes.data(), static_cast<uint32_t>(i), width), expected)
            << "width " << width << " index " << i;
        ASSERT_EQ(unpackBits(bytes, i, width), expected) << "width " << width << " index " << i;
      }
    }
  }
}

TEST(PackedCodes, SignExtendMatchesTwosComplement) {
  std::mt19937 rng(7);
  for (unsigned width = 1; width <= 8; ++width) {
    for (uint32_t code = 0; code < (1u << width); ++code) {
      const int32_t expected = (code >> (width - 1)) & 1u
                                   ? static_cast<int32_t>(code) - (1 << width)
                                   : static_cast<int32_t>(code);
      // Bits above the width are ignored.
      const uint32_t noisy = code | (static_cast<uint32_t>(rng()) << width);
      EXPECT_EQ(lathe_sign_extend(code, width), expected) << "width " << width;
      EXPECT_EQ(lathe_sign_extend(noisy, width), expected) << "width " << width;
      EXPECT_EQ(signExtend(noisy, width), expected) << "width " << width;
    }
  }
}

TEST(PackedCodes, LoadF32IsLittleEndian) {
  const uint8_t one[4] = {0x00, 0x00, 0x80, 0x3F};
  EXPECT_EQ(lathe_load_f32(one), 1.0f);
  std::mt19937 rng(3);
  for (int i = 0; i < 1000; ++i) {
    const uint32_t bits = static_cast<uint32_t>(rng());
    const uint8_t bytes[4] = {static_cast<uint8_t>(bits), static_cast<uint8_t>(bits >> 8),
                              static_cast<uint8_t>(bits >> 16), static_cast<uint8_t>(bits >> 24)};
    EXPECT_EQ(bitsOf(lathe_load_f32(bytes)), bits);
    EXPECT_EQ(bitsOf(loadFloat32(bytes)), bits);
  }
}

TEST(PackedCodes, IntGroupValue) {
  const float scales[] = {0.0f, 1.0f, 0.0123f, -3.5f, 1e-30f, 3e38f};
  for (uint32_t bits : {4u, 8u}) {
    for (float scale : scales) {
      for (uint32_t code = 0; code < (1u << bits); ++code) {
        const int32_t q = code >= (1u << (bits - 1)) ? static_cast<int32_t>(code) - (1 << bits)
                                                      : static_cast<int32_t>(code);
        EXPECT_TRUE(sameFloat(lathe_int_group_value(code, bits, 1, 0, scale),
                              static_cast<float>(q) * scale));
        for (int32_t zero : {0, 3, static_cast<int32_t>((1u << bits) - 1)})
          EXPECT_TRUE(sameFloat(lathe_int_group_value(code, bits, 0, zero, scale),
                                static_cast<float>(static_cast<int32_t>(code) - zero) * scale));
      }
    }
  }
}

// A BFP mantissa q (two's complement) at step 2^s is q * 2^s, for every
// step a stored exponent byte 0..254 can give (Bfp.h).
TEST(PackedCodes, BfpValue) {
  for (uint32_t bits = 2; bits <= 8; ++bits) {
    for (int32_t step = -127 - 6; step <= 127; ++step) {
      for (uint32_t code = 0; code < (1u << bits); ++code) {
        const int q = code >= (1u << (bits - 1)) ? static_cast<int>(code) - (1 << bits)
                                                  : static_cast<int>(code);
        ASSERT_TRUE(sameFloat(lathe_bfp_value(code, bits, step),
                              static_cast<float>(std::ldexp(static_cast<double>(q), step))))
            << "bits " << bits << " step " << step << " code " << code;
      }
    }
  }
}

// The 4+2 split: the low nibble of code i in the low plane (two a byte,
// low nibble first), its top two bits in the high plane (four a byte).
TEST(PackedCodes, Fp6SplitCode) {
  std::mt19937 rng(11);
  std::vector<uint8_t> low(64), high(32);
  for (uint8_t &b : low)
    b = static_cast<uint8_t>(rng());
  for (uint8_t &b : high)
    b = static_cast<uint8_t>(rng());
  for (uint32_t i = 0; i < 128; ++i) {
    const uint32_t expected =
        (((high[i / 4] >> (2 * (i % 4))) & 3u) << 4) | ((low[i / 2] >> (4 * (i % 2))) & 15u);
    EXPECT_EQ(lathe_fp6_split_code(low.data(), high.data(), i), expected) << "index " << i;
  }
}

} // namespace
} // namespace lathe::formats
