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
  const size_t rowBytes = formats::packedRowBytes(*info.quant, cols);
  const size_t gpuBytes = size_t(gpuRowBytes(info));
  // Exponent-coded blocks (MXINT8, BFP): a NaN block, subnormal scales.
  const bool fp4 = std::string(c.format) == "mxfp4_e2m1";
  const bool mx = std::string(c.format).rfind("mxint8", 0) == 0 || fp4 ||
                  std::string(c.format).rfind("bfp", 0) == 0;
  std::mt19937 rng(uint32_t(c.bits * 1000 + c.group));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<uint8_t> packed(rows * rowBytes);
  std::vector<float> reference(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (float &v : row)
      v = normal(rng) * (r == 1 ? (mx ? 1e-37f : 1e-3f) : 1.0f); // MX: subnormal scales
    row[5] = 0; // zero codes
    ASSERT_TRUE(formats::quantizeRow(*info.quant, row,
                                     std::span(packed).subspan(r * rowBytes, rowBytes)));
    if (r == 2 && mx) // the second block's exponent code 0xFF: a NaN block
      packed[size_t(r) * rowBytes + 1 + size_t(c.group) * c.bits / 8] = 0xFF;
    formats::dequantizeRow(*info.quant, std::span(packed).subspan(r * rowBytes, rowBytes),
                           std::span(reference).subspan(size_t(r * cols), size_t(cols)));
  }
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

} // namespace
} // namespace lathe::cuda
