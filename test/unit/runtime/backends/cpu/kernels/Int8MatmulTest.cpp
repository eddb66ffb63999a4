// The int8-activation matmul against float64 references on fresh random
// inputs, on every Highway target this machine can run (AVX3_DL is the VNNI
// path), for every format it supports, T = 1 and T > 1, K not a multiple of
// the block, and sub-ranges of output columns.
#include "runtime/backends/cpu/kernels/Int8Matmul.h"

#include "runtime/formats/RowCodec.h"
#include "test/unit/runtime/backends/cpu/kernels/SimdTestSupport.h"


#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace lathe::kernels::simd {
namespace {

using testing::randomVector;
using testing::targetName;

constexpr float kUntouched = 12345.0f;

struct Shape {
  int64_t T, N, K, n0, n1;
};

const Shape kShapes[] = {
    {1, 1, 1, 0, 1},     {1, 9, 67, 0, 9},    {1, 37, 288, 3, 37}, {2, 9, 288, 1, 8},
    {3, 11, 130, 0, 11}, {5, 13, 200, 2, 13}, {7, 6, 768, 0, 6},   {4, 9, 16, 0, 9},
    {9, 17, 33, 4, 16},  {1, 10, 96, 9, 10},
};

const char *const kFormats[] = {
    "int8:group=32",      "int8:group=64",      "int8:group=128",     "int8:group=32:asym",
    "int8:group=64:asym", "int8:group=128:asym", "int4:group=32",     "int4:group=64",
    "int4:group=128",     "int4:group=32:asym", "int4:group=64:asym", "int4:group=128:asym",
    "bfp8:block=16",      "bfp8:block=32",      "bfp8:block=64",      "bfp4:block=16",
    "bfp4:block=32",      "bfp4:block=64",      "mxint8",             "mxfp4",
};

/// The column of position p of a block of B codes stored in x's order.
int64_t columnOf(const Int8Activations &x, int64_t p) {
  const int64_t B = x.blockSize;
  if (!x.nibbleOrder)
    return p;
  return p < B / 2 ? 2 * p : 2 * (p - B / 2) + 1;
}

/// x~[t, k] = scale * code, back in column order.
std::vector<double> dequantizedActivations(const Int8Activations &x) {
  std::vector<double> out(x.rows * x.cols, 0.0);
  for (int64_t t = 0; t < x.rows; ++t)
    for (int64_t b = 0; b < x.blocksPerRow; ++b)
      for (int64_t p = 0; p < x.blockSize; ++p) {
        const int64_t k = b * x.blockSize + columnOf(x, p);
        const int64_t xb = t * x.blocksPerRow + b;
        if (k < x.cols)
          out[t * x.cols + k] =
              double(x.scales[xb]) * x.codes[t * x.codesPerRow + b * x.blockSize + p];
      }
  return out;
}

class Int8MatmulTest : public testing::PerTarget {};

TEST_P(Int8MatmulTest, QuantizesActivationsPerBlock) {
  const auto spec4 = formats::parseFormatSpec("int4:group=32");
  const auto spec8 = formats::parseFormatSpec("int8:group=64");
  ASSERT_TRUE(spec4 && spec8);
  const int64_t T = 3, K = 100;
  const auto x = randomVector(T * K, 7);
  for (const auto *spec : {&*spec4, &*spec8}) {
    Int8Activations q;
    ASSERT_TRUE(quantizeActivations(x.data(), T, K, *spec, q));
    EXPECT_EQ(q.nibbleOrder, spec->kind == formats::FormatKind::INT4);
    ASSERT_EQ(q.blocksPerRow, (K + spec->blockSize - 1) / spec->blockSize);
    ASSERT_EQ(q.codesPerRow % 64, 0);
    ASSERT_GE(q.codesPerRow, q.blocksPerRow * q.blockSize);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = q.blocksPerRow * q.blockSize; c < q.codesPerRow; ++c) {
        EXPECT_EQ(q.codes[t * q.codesPerRow + c], 0) << "row padding must be zero";
        EXPECT_EQ(q.laneScales[t * q.codesPerRow / 4 + c / 4], 0.0f);
      }
    const auto xq = dequantizedActivations(q);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t b = 0; b < q.blocksPerRow; ++b) {
        const int64_t xb = t * q.blocksPerRow + b;
        double maxAbs = 0;
        int32_t sum = 0;
        for (int64_t p = 0; p < q.blockSize; ++p) {
          const int64_t k = b * q.blockSize + columnOf(q, p);
          const int8_t code = q.codes[t * q.codesPerRow + b * q.blockSize + p];
          sum += code;
          EXPECT_GE(code, -127);
          if (k >= K) {
            EXPECT_EQ(code, 0) << "padding past K must be zero";
            continue;
          }
          maxAbs = std::max(maxAbs, double(std::fabs(x[t * K + k])));
        }
        EXPECT_EQ(sum, q.sums[xb]);
        // The per-lane copies the VNNI kernel reads.
        const int64_t lanes = q.codesPerRow / 4;
        const float offset = spec->kind == formats::FormatKind::INT4 ? 8.0f : 128.0f;
        for (int64_t l = b * q.blockSize / 4; l < (b + 1) * q.blockSize / 4; ++l) {
          EXPECT_EQ(q.laneScales[t * lanes + l], q.scales[xb]);
          EXPECT_FLOAT_EQ(q.laneOffsets[t * lanes + l],
                          offset * sum * q.scales[xb] * 4 / q.blockSize);
        }
        EXPECT_FLOAT_EQ(q.scales[xb], float(maxAbs / 127));
        // Round to nearest: off by at most half a step (and float rounding
        // of x * 127 / max).
        for (int64_t k = b * q.blockSize; k < std::min(K, (b + 1) * q.blockSize); ++k)
          EXPECT_LE(std::fabs(xq[t * K + k] - x[t * K + k]), q.scales[xb] * (0.5 + 1e-4));
      }
  }
}

/// Two checks per output: (1) against float64 sum(w * x~) with x~ the
/// quantized activations, where only float32 accumulation separates the
/// two (1e-5 relative to sum|w * x~|, as for matmulPacked); (2) against the
/// exact float64 sum(w * x), within the bound that x's rounding allows,
/// sum |w_k| * scale_b(k) / 2.
TEST_P(Int8MatmulTest, MatchesFloat64WithinActivationRounding) {
  uint32_t seed = 10;
  for (const char *name : kFormats) {
    const auto spec = formats::parseFormatSpec(name);
    ASSERT_TRUE(spec) << name;
    ASSERT_TRUE(supportsInt8Activations(*spec)) << name;
    for (const Shape &s : kShapes) {
      const std::string label = std::string(name) + " T=" + std::to_string(s.T) +
                                " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K);
      const auto x = randomVector(s.T * s.K, seed++);
      auto w = randomVector(s.N * s.K, seed++, 0.05f);
      w[seed % w.size()] = 0.8f;
      const size_t rowBytes = formats::packedRowBytes(*spec, s.K);
      std::vector<uint8_t> packed(rowBytes * s.N);
      std::vector<float> wd(s.N * s.K);
      for (int64_t n = 0; n < s.N; ++n) {
        std::span<uint8_t> row{packed.data() + n * rowBytes, rowBytes};
        ASSERT_TRUE(formats::quantizeRow(*spec, {w.data() + n * s.K, size_t(s.K)}, row));
        formats::dequantizeRow(*spec, row, {wd.data() + n * s.K, size_t(s.K)});
      }
      Int8Activations q;
      ASSERT_TRUE(quantizeActivations(x.data(), s.T, s.K, *spec, q));
      const auto xq = dequantizedActivations(q);
      std::vector<float> y(s.T * s.N, kUntouched);
      matmulPackedInt8(q, packed.data(), *spec, s.N, y.data(), s.n0, s.n1);
      for (int64_t t = 0; t < s.T; ++t)
        for (int64_t n = 0; n < s.N; ++n) {
          const float got = y[t * s.N + n];
          if (n < s.n0 || n >= s.n1) {
            ASSERT_EQ(got, kUntouched) << label << " wrote outside [n0, n1)";
            continue;
          }
          double wantQ = 0, magQ = 0, want = 0, mag = 0, bound = 0;
          for (int64_t k = 0; k < s.K; ++k) {
            const double wk = wd[n * s.K + k];
            wantQ += wk * xq[t * s.K + k];
            magQ += std::fabs(wk * xq[t * s.K + k]);
            want += wk * x[t * s.K + k];
            mag += std::fabs(wk * x[t * s.K + k]);
            bound += std::fabs(wk) * q.scales[t * q.blocksPerRow + k / q.blockSize] * (0.5 + 1e-4);
          }
          ASSERT_LE(std::fabs(got - wantQ), 1e-5 * magQ + 1e-30)
              << label << " t=" << t << " n=" << n << " vs quantized-x reference";
          ASSERT_LE(std::fabs(got - want), bound + 1e-5 * mag + 1e-30)
              << label << " t=" << t << " n=" << n << " vs exact reference";
        }
    }
  }
}

/// N rows of K weights packed in `spec` (empty where a row fails to pack).
std::vector<uint8_t> packRows(const formats::FormatSpec &spec, const std::vector<float> &w,
                              int64_t N, int64_t K) {
  const size_t rowBytes = formats::packedRowBytes(spec, K);
  std::vector<uint8_t> packed(rowBytes * N);
  for (int64_t n = 0; n < N; ++n)
    if (!formats::quantizeRow(spec, {w.data() + n * K, size_t(K)},
                              {packed.data() + n * rowBytes, rowBytes}))
      return {};
  return packed;
}

/// Threads split the output columns; every column must come out bit for
/// bit the same whatever the split (the kernel tiles rows by four).
TEST_P(Int8MatmulTest, ColumnSplitsGiveIdenticalResults) {
  const int64_t N = 37, K = 288;
  const auto w = randomVector(N * K, 61, 0.05f);
  for (int64_t T : {int64_t{1}, int64_t{6}}) {
    const auto x = randomVector(T * K, 60);
    for (const char *name : {"int8:group=32", "int8:group=128:asym", "int4:group=64",
                             "bfp4:block=16", "mxfp4"}) {
      const auto spec = formats::parseFormatSpec(name);
      ASSERT_TRUE(spec) << name;
      const std::vector<uint8_t> packed = packRows(*spec, w, N, K);
      ASSERT_FALSE(packed.empty()) << name;
      Int8Activations q;
      ASSERT_TRUE(quantizeActivations(x.data(), T, K, *spec, q));
      std::vector<float> whole(T * N), pieces(T * N);
      matmulPackedInt8(q, packed.data(), *spec, N, whole.data(), 0, N);
      for (auto [a, b] : {std::pair<int64_t, int64_t>{1, 2}, {5, 18}, {3, 36}}) {
        std::fill(pieces.begin(), pieces.end(), 0.0f);
        matmulPackedInt8(q, packed.data(), *spec, N, pieces.data(), 0, a);
        matmulPackedInt8(q, packed.data(), *spec, N, pieces.data(), a, b);
        matmulPackedInt8(q, packed.data(), *spec, N, pieces.data(), b, N);
        EXPECT_EQ(pieces, whole) << name << " T=" << T << " split at " << a << ", " << b;
      }
    }
  }
}

/// A token's outputs must not depend on the other tokens of its step: a
/// speculative tree step's rows are compared with one-token steps' bit for
/// bit (greedy speculative decoding gives plain decoding's ids only so).
/// Every token count the kernels tile differently, and every format.
TEST_P(Int8MatmulTest, EachTokenSumsAsIfAlone) {
  const int64_t N = 13, K = 288;
  const auto w = randomVector(N * K, 71, 0.05f);
  const auto x = randomVector(9 * K, 70);
  for (const char *name : kFormats) {
    const auto spec = formats::parseFormatSpec(name);
    ASSERT_TRUE(spec) << name;
    const std::vector<uint8_t> packed = packRows(*spec, w, N, K);
    ASSERT_FALSE(packed.empty()) << name;
    std::vector<float> alone(9 * N);
    for (int64_t t = 0; t < 9; ++t) {
      Int8Activations q;
      ASSERT_TRUE(quantizeActivations(x.data() + t * K, 1, K, *spec, q));
      matmulPackedInt8(q, packed.data(), *spec, N, alone.data() + t * N, 0, N);
    }
    for (int64_t T : {2, 3, 4, 5, 6, 7, 8, 9}) {
      Int8Activations q;
      ASSERT_TRUE(quantizeActivations(x.data(), T, K, *spec, q));
      std::vector<float> together(T * N);
      matmulPackedInt8(q, packed.data(), *spec, N, together.data(), 0, N);
      EXPECT_EQ(together, std::vector<float>(alone.begin(), alone.begin() + T * N))
          << name << " T=" << T;
    }
  }
}

TEST_P(Int8MatmulTest, NaNPropagates) {
  const int64_t K = 64, N = 4;
  for (const char *name : {"mxint8", "mxfp4", "bfp8:block=32", "int8:group=32"}) {
    const auto spec = formats::parseFormatSpec(name);
    ASSERT_TRUE(spec) << name;
    auto w = randomVector(N * K, 3);
    if (formats::isMicroscaling(spec->kind))
      w[1 * K + 40] = NAN; // row 1, block 1: NaN scale
    const size_t rowBytes = formats::packedRowBytes(*spec, K);
    std::vector<uint8_t> packed(rowBytes * N);
    for (int64_t n = 0; n < N; ++n)
      ASSERT_TRUE(formats::quantizeRow(*spec, {w.data() + n * K, size_t(K)},
                                       {packed.data() + n * rowBytes, rowBytes}));
    if (spec->kind == formats::FormatKind::BFP)
      packed[1 * rowBytes + formats::rowBlockBytes(*spec, K)] = 0xFF; // reserved exponent
    auto x = randomVector(2 * K, 4);
    x[K + 5] = NAN; // token 1
    Int8Activations q;
    ASSERT_TRUE(quantizeActivations(x.data(), 2, K, *spec, q));
    std::vector<float> y(2 * N);
    matmulPackedInt8(q, packed.data(), *spec, N, y.data(), 0, N);
    for (int64_t n = 0; n < N; ++n) {
      EXPECT_EQ(std::isnan(y[n]), n == 1 && spec->kind != formats::FormatKind::INT8)
          << name << " token 0 row " << n;
      EXPECT_TRUE(std::isnan(y[N + n])) << name << " token 1 row " << n;
    }
  }
}

TEST_P(Int8MatmulTest, RejectsMismatchedActivations) {
  const auto spec8 = formats::parseFormatSpec("int8:group=32");
  const auto spec4 = formats::parseFormatSpec("int4:group=32");
  const auto spec64 = formats::parseFormatSpec("int8:group=64");
  ASSERT_TRUE(spec8 && spec4 && spec64);
  const int64_t K = 64, N = 2;
  const auto x = randomVector(K, 1);
  std::vector<uint8_t> packed(formats::packedRowBytes(*spec8, K) * N, 0);
  for (const auto *other : {&*spec4, &*spec64}) {
    Int8Activations q;
    ASSERT_TRUE(quantizeActivations(x.data(), 1, K, *other, q));
    std::vector<float> y(N, kUntouched);
    matmulPackedInt8(q, packed.data(), *spec8, N, y.data(), 0, N);
    EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[1]));
  }
}

TEST(Int8MatmulSupportTest, SupportedFormats) {
  for (const char *name : kFormats) {
    const auto spec = formats::parseFormatSpec(name);
    ASSERT_TRUE(spec) << name;
    EXPECT_TRUE(supportsInt8Activations(*spec)) << name;
  }
  for (const char *name : {"bfp6:block=32", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2",
                           "mxfp6_e2m3", "fp6_4p2", "fp6_4p2:group=64"}) {
    const auto spec = formats::parseFormatSpec(name);
    ASSERT_TRUE(spec) << name;
    EXPECT_FALSE(supportsInt8Activations(*spec)) << name;
    Int8Activations q;
    const float x[4] = {1, 2, 3, 4};
    EXPECT_FALSE(quantizeActivations(x, 1, 4, *spec, q)) << name;
    EXPECT_EQ(q.rows, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, Int8MatmulTest,
                         ::testing::Values(int64_t{HWY_AVX3_DL}, int64_t{HWY_AVX3},
                                           int64_t{HWY_AVX2}, int64_t{HWY_EMU128}),
                         targetName);

} // namespace
} // namespace lathe::kernels::simd
