// The CUDA target's lane layout of symmetric INT groups
// (runtime/backends/cuda/kernels/CudaWeightLayouts.h): which tensors take
// it, that it places every byte of a row exactly once, and that a row
// rearranged by toIntLanes and read back through the offsets the device
// code uses gives the reference decode's values, bit for bit. No GPU: the
// device reads the same offsets (IntLanes::at, the row stream and the
// tiles), which CudaBackendTest checks on the GPU.
#include "runtime/backends/cuda/CudaWeightLayout.h"
#include "runtime/backends/cuda/kernels/CudaWeightLayouts.h"
#include "runtime/formats/FormatSpec.h"
#include "runtime/formats/RowCodec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <set>

namespace lathe::cuda {
namespace {

plan::TensorInfo intTensor(const std::string &format, int64_t rows, int64_t cols) {
  plan::TensorInfo info;
  info.name = "w";
  info.shape = {rows, cols};
  auto spec = formats::parseFormatSpec(format);
  EXPECT_TRUE(spec) << format;
  info.quant = *spec;
  return info;
}

/// `rows` rows of the tensor's format from random values (row 1's times
/// `small`; a zero and a negative zero in each), packed as the artifact
/// keeps them, `tweak(r, packedRow)` applied to each, and decoded by the
/// reference (formats::dequantizeRow) into `reference`.
template <class Tweak>
void makeRows(const plan::TensorInfo &info, int64_t rows, float small, uint32_t seed,
              std::vector<uint8_t> &packed, std::vector<float> &reference, Tweak &&tweak) {
  const int64_t cols = info.shape.back();
  const size_t rowBytes = formats::packedRowBytes(*info.quant, cols);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  packed.assign(size_t(rows) * rowBytes, 0);
  reference.assign(size_t(rows * cols), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (float &v : row)
      v = normal(rng) * (r == 1 ? small : 1.0f);
    row[5] = 0, row[6] = -0.0f;
    const std::span<uint8_t> out = std::span(packed).subspan(size_t(r) * rowBytes, rowBytes);
    ASSERT_TRUE(formats::quantizeRow(*info.quant, row, out));
    tweak(r, out);
    formats::dequantizeRow(*info.quant, out,
                           std::span(reference).subspan(size_t(r * cols), size_t(cols)));
  }
}

TEST(CudaWeightLayout, SymmetricIntGroupsOfWholeSpansTakeTheLaneLayout) {
  EXPECT_EQ(gpuWeightLayout(intTensor("int4:group=32", 4, 2048)), LATHE_CUDA_LAYOUT_INT_LANES);
  EXPECT_EQ(gpuWeightLayout(intTensor("int8:group=32", 4, 512)), LATHE_CUDA_LAYOUT_INT_LANES);
  EXPECT_EQ(gpuWeightLayout(intTensor("int4:group=128", 4, 1024)), LATHE_CUDA_LAYOUT_INT_LANES);
  EXPECT_EQ(gpuWeightLayout(intTensor("int8:group=128", 4, 512)), LATHE_CUDA_LAYOUT_INT_LANES);
  // Rows of part of a span (stories15M's 288 and 768), asymmetric groups,
  // other formats: as stored.
  EXPECT_EQ(gpuWeightLayout(intTensor("int4:group=32", 4, 768)), LATHE_CUDA_LAYOUT_AS_STORED);
  EXPECT_EQ(gpuWeightLayout(intTensor("int8:group=32", 4, 288)), LATHE_CUDA_LAYOUT_AS_STORED);
  EXPECT_EQ(gpuWeightLayout(intTensor("int4:group=32:asym", 4, 2048)),
            LATHE_CUDA_LAYOUT_AS_STORED);
  EXPECT_EQ(gpuWeightLayout(intTensor("bfp4", 4, 2048)), LATHE_CUDA_LAYOUT_INT_LANES);
  EXPECT_EQ(gpuWeightLayout(intTensor("bfp6", 4, 2048)), LATHE_CUDA_LAYOUT_AS_STORED);
  // MXINT8 blocks are INT8 groups of 32 with a power-of-two scale; other
  // MX elements are not integers.
  EXPECT_EQ(gpuWeightLayout(intTensor("mxint8", 4, 2048)), LATHE_CUDA_LAYOUT_INT_LANES);
  EXPECT_EQ(gpuRowBytes(intTensor("mxint8", 4, 2048)), 4 * 576); // 33-byte blocks widen to 36
  EXPECT_EQ(gpuWeightLayout(intTensor("mxint8", 4, 288)), LATHE_CUDA_LAYOUT_AS_STORED);
  EXPECT_EQ(gpuWeightLayout(intTensor("mxfp4_e2m1", 4, 2048)), LATHE_CUDA_LAYOUT_INT_LANES);
  EXPECT_TRUE(laneCodesAreE2M1(intTensor("mxfp4_e2m1", 4, 2048)));
  EXPECT_FALSE(laneCodesAreE2M1(intTensor("bfp4", 4, 2048)));
  EXPECT_EQ(gpuWeightLayout(intTensor("mxfp6_e3m2", 4, 2048)), LATHE_CUDA_LAYOUT_AS_STORED);
  EXPECT_EQ(gpuRowBytes(intTensor("int4:group=32", 4, 2048)), 1280);
  plan::TensorInfo plain;
  plain.shape = {4, 2048};
  EXPECT_EQ(gpuWeightLayout(plain), LATHE_CUDA_LAYOUT_AS_STORED);
}

struct LaneCase {
  const char *format;
  int bits, group;
};
class LaneLayoutTest : public ::testing::TestWithParam<LaneCase> {};

TEST_P(LaneLayoutTest, EveryByteOfARowHasOnePlace) {
  const LaneCase c = GetParam();
  const int64_t cols = 3 * latheLanesSpanValues(c.bits);
  const plan::TensorInfo info = intTensor(c.format, 1, cols);
  const size_t rowBytes = size_t(gpuRowBytes(info));
  ASSERT_EQ(int64_t(rowBytes), 3 * latheLanesSpanBytes(c.bits, c.group));
  std::vector<int> writes(rowBytes, 0);
  for (int64_t k = 0; k < cols; k += 32 / c.bits)
    for (int b = 0; b < 4; ++b)
      ++writes[size_t(latheLanesWordAt(c.bits, c.group, uint32_t(k)) + b)];
  for (int64_t k = 0; k < cols; k += c.group)
    for (int b = 0; b < 4; ++b)
      ++writes[size_t(latheLanesScaleAt(c.bits, c.group, uint32_t(k)) + b)];
  for (size_t i = 0; i < rowBytes; ++i)
    ASSERT_EQ(writes[i], 1) << "byte " << i;
  // A group's values all find its one scale.
  for (int64_t k = 0; k < cols; ++k)
    ASSERT_EQ(latheLanesScaleAt(c.bits, c.group, uint32_t(k)),
              latheLanesScaleAt(c.bits, c.group, uint32_t(k / c.group * c.group)));
}

TEST_P(LaneLayoutTest, RearrangedRowsDecodeToTheReferenceValues) {
  const LaneCase c = GetParam();
  const int64_t rows = 3, cols = 2 * latheLanesSpanValues(c.bits);
  const plan::TensorInfo info = intTensor(c.format, rows, cols);
  const size_t gpuBytes = size_t(gpuRowBytes(info));
  // Exponent-coded blocks (MXINT8, BFP): a NaN block, subnormal scales.
  const bool fp4 = std::string(c.format) == "mxfp4_e2m1";
  const bool mx = std::string(c.format).rfind("mxint8", 0) == 0 || fp4 ||
                  std::string(c.format).rfind("bfp", 0) == 0;
  std::vector<uint8_t> packed;
  std::vector<float> reference;
  // MX: subnormal scales in row 1; the second block's exponent code 0xFF
  // in row 2, a NaN block.
  makeRows(info, rows, mx ? 1e-37f : 1e-3f, uint32_t(c.bits * 1000 + c.group), packed, reference,
           [&](int64_t r, std::span<uint8_t> row) {
             if (r == 2 && mx)
               row[1 + size_t(c.group) * c.bits / 8] = 0xFF;
           });
  std::vector<uint8_t> lanes(size_t(rows) * gpuBytes, 0xAB);
  toIntLanes(info, packed, lanes);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t *row = lanes.data() + r * gpuBytes;
    for (int64_t k = 0; k < cols; ++k) {
      uint32_t word;
      float scale;
      std::memcpy(&word, row + latheLanesWordAt(c.bits, c.group, uint32_t(k)), 4);
      std::memcpy(&scale, row + latheLanesScaleAt(c.bits, c.group, uint32_t(k)), 4);
      const int j = int(k % (32 / c.bits));
      float code;
      if (fp4) { // IntLanes' E2M1 codes: the value doubled, -0 for a negative zero
        static constexpr float kDoubled[8] = {0, 1, 2, 3, 4, 6, 8, 12};
        const uint32_t n = (word >> (4 * j)) & 15u;
        code = (n & 8u) ? -kDoubled[n & 7u] : kDoubled[n & 7u];
      } else {
        code = float(c.bits == 8 ? int(int8_t(word >> (8 * j)))
                                 : int(((word >> (4 * j)) & 15u) ^ 8u) - 8);
      }
      const float got = code * scale, want = reference[size_t(r * cols + k)];
      if (std::isnan(want))
        ASSERT_TRUE(std::isnan(got)) << "row " << r << " value " << k;
      else
        ASSERT_EQ(std::memcmp(&got, &want, 4), 0) << "row " << r << " value " << k;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, LaneLayoutTest,
                         ::testing::Values(LaneCase{"int4:group=32", 4, 32},
                                           LaneCase{"int4:group=64", 4, 64},
                                           LaneCase{"int4:group=128", 4, 128},
                                           LaneCase{"int8:group=32", 8, 32},
                                           LaneCase{"int8:group=64", 8, 64},
                                           LaneCase{"int8:group=128", 8, 128},
                                           LaneCase{"mxint8", 8, 32},
                                           LaneCase{"bfp8:block=32", 8, 32},
                                           LaneCase{"bfp8:block=16", 8, 16},
                                           LaneCase{"bfp4:block=32", 4, 32},
                                           LaneCase{"bfp4:block=16", 4, 16},
                                           LaneCase{"bfp4:block=64", 4, 64},
                                           LaneCase{"mxfp4_e2m1", 4, 32}));

TEST(CudaWeightLayout, Fp6RowsOfWholeSpansTakeTheFp6LaneLayout) {
  EXPECT_EQ(gpuWeightLayout(intTensor("fp6_4p2", 4, 2048)), LATHE_CUDA_LAYOUT_FP6_LANES);
  EXPECT_EQ(fp6LaneGroup(intTensor("fp6_4p2", 4, 2048)), 2048); // per channel: one group a row
  EXPECT_EQ(gpuRowBytes(intTensor("fp6_4p2", 4, 2048)), 2 * (768 + 16));
  EXPECT_EQ(gpuWeightLayout(intTensor("fp6_4p2:group=32", 4, 1024)), LATHE_CUDA_LAYOUT_FP6_LANES);
  EXPECT_EQ(gpuRowBytes(intTensor("fp6_4p2:group=32", 4, 1024)), 768 + 8 * 16);
  EXPECT_EQ(gpuRowBytes(intTensor("fp6_4p2:group=128", 4, 1024)), 768 + 2 * 16);
  EXPECT_EQ(gpuWeightLayout(intTensor("fp6_4p2", 4, 768)), LATHE_CUDA_LAYOUT_AS_STORED);
  EXPECT_EQ(gpuWeightLayout(intTensor("fp6_4p2:group=64", 4, 1536)),
            LATHE_CUDA_LAYOUT_AS_STORED);
  // A per-channel row of 1024 n values is one group that words of 256
  // values never straddle; groups that are not a multiple of 256 do.
  EXPECT_TRUE(latheFp6Fit(3072, 3072));
  EXPECT_FALSE(latheFp6Fit(1000, 3072));
  EXPECT_EQ(gpuTensorBytes(intTensor("fp6_4p2", 4, 2048), 4 * (4 + 1024 + 512)),
            size_t(4 * 2 * 784));
}

// The places of a word's values are a partition of its bits: each bit of a
// low word is one value's nibble bit, each bit of a high word one value's
// sign or e2.
TEST(CudaWeightLayout, Fp6LaneBitPlacesCoverEachWordOnce) {
  uint32_t low = 0, high = 0;
  for (int j = 0; j < 8; ++j) {
    const uint32_t nibble = 15u << latheFp6LowShift(j);
    EXPECT_EQ(low & nibble, 0u) << j;
    low |= nibble;
  }
  EXPECT_EQ(low, 0xFFFFFFFFu);
  for (int i = 0; i < 16; ++i) {
    const uint32_t bits = 1u << latheFp6HighE2(i) | 1u << latheFp6HighSign(i);
    EXPECT_EQ(high & bits, 0u) << i;
    high |= bits;
  }
  EXPECT_EQ(high, 0xFFFFFFFFu);
}

TEST(CudaWeightLayout, Fp6LaneEveryByteOfARowHasOnePlace) {
  for (const char *format : {"fp6_4p2", "fp6_4p2:group=32", "fp6_4p2:group=64"}) {
    const int64_t cols = 3 * LATHE_CUDA_FP6_SPAN_VALUES;
    const plan::TensorInfo info = intTensor(format, 1, cols);
    const int group = fp6LaneGroup(info);
    const size_t rowBytes = size_t(gpuRowBytes(info));
    std::vector<int> writes(rowBytes, 0);
    for (int64_t k = 0; k < cols; k += 8)
      for (int b = 0; b < 4; ++b)
        ++writes[size_t(latheFp6LowAt(group, uint32_t(k)) + b)];
    for (int64_t k = 0; k < cols; k += 8)
      if (k % 1024 / 256 % 2 == 0) // a high word holds words w and w + 1: once, from w even
        for (int b = 0; b < 4; ++b)
          ++writes[size_t(latheFp6HighAt(group, uint32_t(k)) + b)];
    // Scales: one per lane group and word (a group's values find its scale
    // in each of its words': the decode test below).
    std::set<uint32_t> scales;
    for (int64_t k = 0; k < cols; ++k)
      scales.insert(latheFp6ScaleAt(group, uint32_t(k)));
    for (uint32_t at : scales)
      for (int b = 0; b < 4; ++b)
        ++writes[at + b];
    for (size_t i = 0; i < rowBytes; ++i)
      ASSERT_EQ(writes[i], 1) << format << " byte " << i;
  }
}

/// An IEEE half's value (the host has no half type to lean on).
float halfValue(uint32_t bits) {
  const int exponent = int(bits >> 10 & 31u), mantissa = int(bits & 1023u);
  const float magnitude = exponent == 0 ? std::ldexp(float(mantissa), -24)
                                        : std::ldexp(float(1024 + mantissa), exponent - 25);
  return (bits & 0x8000u) ? -magnitude : magnitude;
}

// A row rearranged by toFp6Lanes, read back as the device reads it (a word's
// pairs by latheFp6PairBits, a single value by latheFp6HalfBits: E3M2 times
// 2^-12 as halves), times 2^12 and rounded once with the scale, gives the
// reference decode's values bit for bit: every code of E3M2, subnormals
// and negative zeros among them, in groups of 32, 64, 128 and per channel.
TEST(CudaWeightLayout, Fp6LaneRowsDecodeToTheReferenceValues) {
  for (const char *format : {"fp6_4p2", "fp6_4p2:group=32", "fp6_4p2:group=64",
                             "fp6_4p2:group=128"}) {
    const int64_t rows = 3, cols = 2 * LATHE_CUDA_FP6_SPAN_VALUES;
    const plan::TensorInfo info = intTensor(format, rows, cols);
    const int group = fp6LaneGroup(info);
    const size_t rowBytes = formats::packedRowBytes(*info.quant, cols);
    const size_t gpuBytes = size_t(gpuRowBytes(info));
    std::vector<uint8_t> packed;
    std::vector<float> reference;
    makeRows(info, rows, 1e-3f, 7, packed, reference, [](int64_t, std::span<uint8_t>) {});
    // Row 2: every 6-bit code in turn, in every group (the planes written
    // directly), so that each code meets each place of a word.
    const size_t groupBytes = formats::rowBlockBytes(*info.quant, cols);
    for (int64_t k = 0; k < cols; ++k) {
      const int64_t g = k / group, i = k % group;
      uint8_t *at = packed.data() + 2 * rowBytes + g * groupBytes;
      const uint32_t code = uint32_t((k * 7 + k / 64) % 64);
      uint8_t &lowByte = at[4 + i / 2], &highByte = at[4 + group / 2 + i / 4];
      lowByte = uint8_t((lowByte & ~(15u << 4 * (i % 2))) | (code & 15u) << 4 * (i % 2));
      highByte = uint8_t((highByte & ~(3u << 2 * (i % 4))) | (code >> 4) << 2 * (i % 4));
    }
    formats::dequantizeRow(*info.quant, std::span(packed).subspan(2 * rowBytes, rowBytes),
                           std::span(reference).subspan(size_t(2 * cols), size_t(cols)));
    std::vector<uint8_t> lanes(size_t(rows) * gpuBytes, 0xAB);
    toFp6Lanes(info, packed, lanes);
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t *row = lanes.data() + r * gpuBytes;
      for (int64_t k = 0; k < cols; ++k) {
        uint32_t low, high;
        float scale;
        std::memcpy(&low, row + latheFp6LowAt(group, uint32_t(k)), 4);
        std::memcpy(&high, row + latheFp6HighAt(group, uint32_t(k)), 4);
        std::memcpy(&scale, row + latheFp6ScaleAt(group, uint32_t(k)), 4);
        const int w = int(k % 1024 / 256), j = int(k % 8);
        const uint32_t pair = latheFp6PairBits(low, high, w, j / 2);
        const uint32_t half = latheFp6HalfBits(low, high, w, j);
        ASSERT_EQ(half, j % 2 ? pair >> 16 : pair & 0xFFFFu) << format << " value " << k;
        const float got = halfValue(half) * 4096.0f * scale;
        const float want = reference[size_t(r * cols + k)];
        ASSERT_EQ(std::memcmp(&got, &want, 4), 0)
            << format << " row " << r << " value " << k << ": " << got << " != " << want;
      }
    }
  }
}

} // namespace
} // namespace lathe::cuda
