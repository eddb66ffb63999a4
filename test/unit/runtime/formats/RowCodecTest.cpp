#include "runtime/formats/RowCodec.h"

#include "runtime/formats/Bfp.h"
#include "runtime/formats/Fp6SplitLayout.h"
#include "runtime/formats/IntGroup.h"
#include "runtime/formats/Microscaling.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace lathe::formats {
namespace {

FormatSpec spec(const std::string &text) {
  Expected<FormatSpec> parsed = parseFormatSpec(text);
  EXPECT_TRUE(parsed) << parsed.error().message();
  return parsed ? *parsed : FormatSpec{};
}

const char *const kAllFormats[] = {
    "bfp8:block=16", "bfp8:block=32", "bfp8:block=64", "bfp6:block=16",
    "bfp6:block=32", "bfp6:block=64", "bfp4:block=16", "bfp4:block=32",
    "bfp4:block=64", "mxint8",        "mxfp8_e4m3",    "mxfp8_e5m2",
    "mxfp6_e3m2",    "mxfp6_e2m3",    "mxfp4_e2m1",    "fp6_4p2",
    "fp6_4p2:group=32", "fp6_4p2:group=64", "fp6_4p2:group=128",
    "int8:group=32", "int8:group=64", "int8:group=128", "int8:group=32:asym",
    "int8:group=128:asym", "int4:group=32", "int4:group=64", "int4:group=128",
    "int4:group=32:asym", "int4:group=64:asym", "int4:group=128:asym",
};

std::vector<float> randomRow(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> row(n);
  for (float &v : row)
    v = normal(rng);
  return row;
}

std::vector<uint8_t> quantize(const FormatSpec &s, const std::vector<float> &row) {
  std::vector<uint8_t> out(packedRowBytes(s, static_cast<int64_t>(row.size())));
  Status status = quantizeRow(s, row, out);
  EXPECT_TRUE(status) << status.error().message();
  return out;
}

TEST(RowCodec, PackedRowBytes) {
  // blocks = ceil(cols / block), each with its header
  EXPECT_EQ(packedRowBytes(spec("bfp4:block=32"), 64), 2u * 17u);
  EXPECT_EQ(packedRowBytes(spec("bfp4:block=32"), 33), 2u * 17u); // padded
  EXPECT_EQ(packedRowBytes(spec("bfp8:block=16"), 16), 17u);
  EXPECT_EQ(packedRowBytes(spec("mxfp6_e3m2"), 32), 25u);
  EXPECT_EQ(packedRowBytes(spec("mxfp4_e2m1"), 4096), 128u * 17u);
  EXPECT_EQ(packedRowBytes(spec("fp6_4p2"), 10), 4u + 6u + 3u); // 10 -> 12 values
  EXPECT_EQ(packedRowBytes(spec("fp6_4p2"), 4096), 4u + 2048u + 1024u);
  EXPECT_EQ(packedRowBytes(spec("fp6_4p2:group=128"), 256), 2u * (4u + 64u + 32u));
  EXPECT_EQ(packedRowBytes(spec("int4:group=32:asym"), 64), 2u * 21u);
  EXPECT_EQ(packedRowBytes(spec("int8:group=128"), 100), 132u);
  EXPECT_EQ(packedRowBytes(spec("int8:group=128"), 0), 0u);
  EXPECT_EQ(packedRowBytes(FormatSpec{FormatKind::BFP, 5, 32}, 64), 0u); // invalid
}

TEST(RowCodec, BitsPerWeight) {
  // (header bits + values * element bits) / values
  EXPECT_DOUBLE_EQ(bitsPerWeight(spec("bfp8:block=16")), 8.5);   // 8 + 8/16
  EXPECT_DOUBLE_EQ(bitsPerWeight(spec("bfp6:block=32")), 6.25);  // 6 + 8/32
  EXPECT_DOUBLE_EQ(bitsPerWeight(spec("bfp4:block=64")), 4.125); // 4 + 8/64
  EXPECT_DOUBLE_EQ(bitsPerWeight(spec("mxint8")), 8.25);
  EXPECT_DOUBLE_EQ(bitsPerWeight(spec("mxfp8_e5m2")), 8.25);
  EXPECT_DOUBLE_EQ(bitsPerWeight(spec("mxfp6_e2m3")), 6.25);
  EXPECT_DOUBLE_EQ(bitsPerWeight(spec("mxfp4_e2m1")), 4.25);
  EXPECT_DOUBLE_EQ(bitsPerWeight(spec("fp6_4p2:group=128")), 6.25); // 6 + 32/128
  EXPECT_DOUBLE_EQ(bitsPerWeight(spec("fp6_4p2:group=32")), 7.0);
  EXPECT_DOUBLE_EQ(bitsPerWeight(spec("fp6_4p2")), 6.0);
  EXPECT_DOUBLE_EQ(bitsPerWeight(spec("fp6_4p2"), 4096), 6.0 + 32.0 / 4096);
  EXPECT_DOUBLE_EQ(bitsPerWeight(spec("int8:group=128")), 8.25);
  EXPECT_DOUBLE_EQ(bitsPerWeight(spec("int4:group=32")), 5.0);        // 4 + 32/32
  EXPECT_DOUBLE_EQ(bitsPerWeight(spec("int4:group=32:asym")), 5.25);  // + 8/32
  EXPECT_DOUBLE_EQ(bitsPerWeight(spec("int8:group=64:asym")), 8.625); // 8 + 40/64
  // Padding counts: 33 values of bfp4:block=32 take two blocks.
  EXPECT_DOUBLE_EQ(bitsPerWeight(spec("bfp4:block=32"), 33), 34.0 * 8 / 33);
}

TEST(RowCodec, QuantizedRowFillsExactlyPackedRowBytes) {
  for (const char *name : kAllFormats) {
    const FormatSpec s = spec(name);
    for (int64_t cols : {1, 3, 31, 32, 33, 100, 256, 1000}) {
      SCOPED_TRACE(std::string(name) + " cols " + std::to_string(cols));
      const std::vector<float> row = randomRow(static_cast<size_t>(cols), 17);
      const size_t bytes = packedRowBytes(s, cols);
      ASSERT_GT(bytes, 0u);
      // Sentinels around the row show the encoder writes inside it only.
      std::vector<uint8_t> buffer(bytes + 2, 0xA5);
      ASSERT_TRUE(quantizeRow(s, row, std::span<uint8_t>(buffer).subspan(1, bytes)));
      EXPECT_EQ(buffer.front(), 0xA5);
      EXPECT_EQ(buffer.back(), 0xA5);
      // Every other size is refused.
      std::vector<uint8_t> shorter(bytes - 1), longer(bytes + 1);
      EXPECT_FALSE(quantizeRow(s, row, shorter));
      EXPECT_FALSE(quantizeRow(s, row, longer));
      // And it decodes to something close (the per-format tests hold the
      // exact bounds): within 40% of the row's max, the coarsest (4-bit) case.
      std::vector<float> decoded(static_cast<size_t>(cols));
      dequantizeRow(s, std::span<const uint8_t>(buffer).subspan(1, bytes), decoded);
      float maxAbs = 0.0f;
      for (float v : row)
        maxAbs = std::max(maxAbs, std::fabs(v));
      for (size_t i = 0; i < row.size(); ++i)
        EXPECT_NEAR(decoded[i], row[i], 0.4f * maxAbs) << i;
    }
  }
}

TEST(RowCodec, RowIsTheConcatenationOfItsBlocks) {
  // Blocks are encoded independently, in order, and never cross rows.
  const std::vector<float> row = randomRow(96, 3);
  const std::vector<uint8_t> packed = quantize(spec("bfp4:block=32"), row);
  for (size_t b = 0; b < 3; ++b) {
    std::vector<uint8_t> block(17);
    ASSERT_TRUE(encodeBfpBlock(4, std::span<const float>(row).subspan(32 * b, 32), block));
    EXPECT_EQ(std::vector<uint8_t>(packed.begin() + 17 * b, packed.begin() + 17 * (b + 1)),
              block);
  }
  const std::vector<uint8_t> mx = quantize(spec("mxfp6_e3m2"), row);
  std::vector<uint8_t> block(25);
  ASSERT_TRUE(encodeMxBlock(MxElement::FP6_E3M2,
                            std::span<const float>(row).subspan(32, 32), block));
  EXPECT_EQ(std::vector<uint8_t>(mx.begin() + 25, mx.begin() + 50), block);
  const std::vector<uint8_t> ints = quantize(spec("int4:group=32:asym"), row);
  std::vector<uint8_t> group(21);
  ASSERT_TRUE(encodeIntGroup(4, false, std::span<const float>(row).subspan(64, 32), group));
  EXPECT_EQ(std::vector<uint8_t>(ints.begin() + 42, ints.end()), group);
  const std::vector<uint8_t> fp6 = quantize(spec("fp6_4p2"), row);
  std::vector<uint8_t> whole(fp6SplitGroupBytes(96));
  ASSERT_TRUE(encodeFp6SplitGroup(row, whole));
  EXPECT_EQ(fp6, whole);
}

TEST(RowCodec, PaddingEqualsExplicitZeros) {
  // A short last block is padded with zeros, which change no block's scale,
  // so a row of 40 packs like the same row zero-extended to a whole block.
  for (const char *name : kAllFormats) {
    const FormatSpec s = spec(name);
    const std::vector<float> row = randomRow(41, 9);
    const size_t blockValues = rowBlockValues(s, 41);
    std::vector<float> padded = row;
    padded.resize((41 + blockValues - 1) / blockValues * blockValues, 0.0f);
    EXPECT_EQ(quantize(s, row), quantize(s, padded)) << name;
    // Decoding the short row gives the first 41 values of the padded one.
    std::vector<float> shortOut(41), paddedOut(padded.size());
    dequantizeRow(s, quantize(s, row), shortOut);
    dequantizeRow(s, quantize(s, padded), paddedOut);
    EXPECT_EQ(shortOut, std::vector<float>(paddedOut.begin(), paddedOut.begin() + 41))
        << name;
  }
}

TEST(RowCodec, MatrixRowsAreIndependent) {
  // A [3, 50] matrix quantized row by row: each row's bytes depend on that
  // row only, so an outlier in row 1 leaves rows 0 and 2 untouched.
  const FormatSpec s = spec("mxfp4_e2m1");
  const int64_t cols = 50;
  std::vector<float> matrix = randomRow(3 * cols, 21);
  std::vector<float> withOutlier = matrix;
  withOutlier[cols + 7] = 1000.0f;
  const size_t rowBytes = packedRowBytes(s, cols);
  for (int64_t r = 0; r < 3; ++r) {
    auto rowOf = [&](const std::vector<float> &m) {
      return std::vector<float>(m.begin() + r * cols, m.begin() + (r + 1) * cols);
    };
    const std::vector<uint8_t> a = quantize(s, rowOf(matrix));
    const std::vector<uint8_t> b = quantize(s, rowOf(withOutlier));
    ASSERT_EQ(a.size(), rowBytes);
    EXPECT_EQ(a == b, r != 1) << "row " << r;
  }
}

TEST(RowCodec, NonFiniteValues) {
  std::vector<float> row = randomRow(64, 1);
  row[37] = std::numeric_limits<float>::quiet_NaN();
  for (const char *name : kAllFormats) {
    const FormatSpec s = spec(name);
    std::vector<uint8_t> out(packedRowBytes(s, 64));
    Status status = quantizeRow(s, row, out);
    if (isMicroscaling(s.kind)) {
      // MX encodes it: block 1 (values 32..63) gets a NaN scale, block 0 is fine.
      ASSERT_TRUE(status) << name;
      std::vector<float> decoded(64);
      dequantizeRow(s, out, decoded);
      for (size_t i = 0; i < 64; ++i)
        EXPECT_EQ(std::isnan(decoded[i]), i >= 32) << name << " " << i;
    } else {
      ASSERT_FALSE(status) << name;
      const std::string message = status.error().message();
      EXPECT_NE(message.find("column 37 is NaN"), std::string::npos) << message;
      EXPECT_NE(message.find(formatName(s)), std::string::npos) << message;
    }
  }
}

TEST(RowCodec, InvalidInputsAreReportedNotFatal) {
  std::vector<float> row(32, 1.0f);
  std::vector<uint8_t> out(64);
  Status status = quantizeRow(FormatSpec{FormatKind::BFP, 5, 32}, row, out);
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message().find("mantissa bits"), std::string::npos);
  status = quantizeRow(spec("bfp4:block=32"), row, out);
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message().find(
                "quantizeRow(bfp4:block=32): output holds 64 bytes, a row of 32 "
                "values needs 17"),
            std::string::npos)
      << status.error().message();
  // Decoding with a wrong size or spec fills NaN instead of reading out of bounds.
  std::vector<float> decoded(32);
  dequantizeRow(spec("bfp4:block=32"), out, decoded);
  for (float v : decoded)
    EXPECT_TRUE(std::isnan(v));
  dequantizeRow(FormatSpec{FormatKind::INT4, 0, 7}, std::vector<uint8_t>(17), decoded);
  for (float v : decoded)
    EXPECT_TRUE(std::isnan(v));
  // An empty row is fine and takes no bytes.
  EXPECT_TRUE(quantizeRow(spec("int4:group=32"), {}, {}));
}

} // namespace
} // namespace lathe::formats
