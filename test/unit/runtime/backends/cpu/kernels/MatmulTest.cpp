// The SIMD matmul kernels against the scalar reference (ReferenceKernels:
// formats::dequantizeRow + float64 dot products) on fresh random inputs, on
// every Highway target this machine can run, for every packed format, for
// shapes with K not a multiple of the vector width or block, T = 1 (the
// fused decode path), small batches (the same path, several tokens a row)
// and T > 16 (the decoded-tile path), and sub-ranges of output columns.
#include "runtime/backends/cpu/kernels/Matmul.h"

#include "runtime/formats/RowCodec.h"
#include "runtime/kernels/ReferenceKernels.h"
#include "test/unit/runtime/backends/cpu/kernels/SimdTestSupport.h"


#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace lathe::kernels::simd {
namespace {

using testing::randomVector;
using testing::targetName;

// float32 accumulation of K products in several accumulators: each output's
// error against float64 is at most ~K * 2^-24 * sum|x*w| in the worst case
// and ~sqrt(K) * 2^-24 * sum|x*w| typically; for K <= 768 on random data
// 1e-5 * sum|x*w| holds with a wide margin (observed: < 1e-6).
constexpr double kTolerance = 1e-5;
constexpr float kUntouched = 12345.0f;

struct Shape {
  int64_t T, N, K, n0, n1;
};

// K = 1, odd, a multiple of 16 but not of 64/128 (288), larger than one
// block (130, 200), the model's 768; T = 1, the streamed small batches
// (T <= 16, also past kStreamTokens) and the tiles (T > 16); column ranges that do and do not start at 0 or reach N.
const Shape kShapes[] = {
    {1, 1, 1, 0, 1},     {1, 7, 5, 0, 7},     {1, 29, 67, 3, 27},
    {1, 37, 288, 0, 37}, {2, 9, 288, 1, 8},   {3, 11, 130, 0, 11},
    {5, 13, 200, 2, 13}, {7, 6, 768, 0, 6},   {4, 9, 16, 0, 9},
    {1, 64, 768, 5, 64}, {9, 17, 33, 4, 16},  {1, 10, 96, 9, 10},
    {16, 7, 130, 0, 7},  {17, 9, 288, 1, 8},  {40, 5, 67, 0, 5},
};

std::string describe(const Shape &s) {
  return "T=" + std::to_string(s.T) + " N=" + std::to_string(s.N) +
         " K=" + std::to_string(s.K) + " n=[" + std::to_string(s.n0) + "," +
         std::to_string(s.n1) + ")";
}

/// Checks y against float64 dot products of x with the decoded weights
/// `wd` (N x K), and that columns outside [n0, n1) were not written.
void expectMatchesFloat64(const std::vector<float> &y, const std::vector<float> &x,
                          const std::vector<float> &wd, const Shape &s,
                          const std::string &label) {
  double errNorm = 0, refNorm = 0;
  for (int64_t t = 0; t < s.T; ++t)
    for (int64_t n = 0; n < s.N; ++n) {
      const float got = y[t * s.N + n];
      if (n < s.n0 || n >= s.n1) {
        ASSERT_EQ(got, kUntouched) << label << " wrote outside [n0, n1) at t=" << t
                                   << " n=" << n;
        continue;
      }
      double want = 0, magnitude = 0;
      for (int64_t k = 0; k < s.K; ++k) {
        const double p = double(x[t * s.K + k]) * wd[n * s.K + k];
        want += p;
        magnitude += std::fabs(p);
      }
      ASSERT_LE(std::fabs(got - want), kTolerance * magnitude + 1e-37)
          << label << " t=" << t << " n=" << n << " got " << got << " want " << want;
      errNorm += (got - want) * (got - want);
      refNorm += want * want;
    }
  if (refNorm > 0)
    EXPECT_LE(std::sqrt(errNorm / refNorm), kTolerance) << label;
}

class MatmulTest : public testing::PerTarget {};

// The kernels dispatch to the target under test (the fixture masks out the
// better ones), so every other test of this suite measures that target.
TEST_P(MatmulTest, ReportsItsTarget) {
  const std::string name = simdTargetName();
  EXPECT_EQ(name, hwy::TargetName(GetParam()));
}

TEST_P(MatmulTest, F32MatchesFloat64) {
  uint32_t seed = 1;
  for (const Shape &s : kShapes) {
    const auto x = randomVector(s.T * s.K, seed++), w = randomVector(s.N * s.K, seed++);
    std::vector<float> y(s.T * s.N, kUntouched);
    matmulF32(x.data(), s.T, w.data(), s.N, s.K, y.data(), s.n0, s.n1);
    expectMatchesFloat64(y, x, w, s, "f32 " + describe(s));
  }
}

// A GEMV over >= 24 MiB of weights takes the row-at-a-time streaming path.
TEST_P(MatmulTest, LargeF32GemvMatchesFloat64) {
  const Shape s{1, 23000, 291, 7, 22990};
  const auto x = randomVector(s.K, 40), w = randomVector(s.N * s.K, 41);
  std::vector<float> y(s.N, kUntouched);
  matmulF32(x.data(), 1, w.data(), s.N, s.K, y.data(), s.n0, s.n1);
  expectMatchesFloat64(y, x, w, s, "large f32 " + describe(s));
  std::vector<float> pieces(s.N, kUntouched);
  matmulF32(x.data(), 1, w.data(), s.N, s.K, pieces.data(), s.n0, 11111);
  matmulF32(x.data(), 1, w.data(), s.N, s.K, pieces.data(), 11111, s.n1);
  EXPECT_EQ(pieces, y);
}

TEST_P(MatmulTest, BF16MatchesFloat64) {
  uint32_t seed = 100;
  for (const Shape &s : kShapes) {
    const auto x = randomVector(s.T * s.K, seed++), w = randomVector(s.N * s.K, seed++);
    std::vector<uint16_t> bits(w.size());
    std::vector<float> wd(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      uint32_t b;
      std::memcpy(&b, &w[i], 4);
      bits[i] = static_cast<uint16_t>(b >> 16);
      if (i % 17 == 3)
        bits[i] = static_cast<uint16_t>(bits[i] & 0x807F); // subnormal
      wd[i] = bf16ToFloat(bits[i]);
    }
    std::vector<float> y(s.T * s.N, kUntouched);
    matmulBF16(x.data(), s.T, bits.data(), s.N, s.K, y.data(), s.n0, s.n1);
    expectMatchesFloat64(y, x, wd, s, "bf16 " + describe(s));
  }
}

TEST_P(MatmulTest, F16MatchesFloat64) {
  uint32_t seed = 200;
  for (const Shape &s : kShapes) {
    const auto x = randomVector(s.T * s.K, seed++);
    std::mt19937 rng(seed++);
    std::vector<uint16_t> bits(s.N * s.K);
    std::vector<float> wd(bits.size());
    for (size_t i = 0; i < bits.size(); ++i) {
      // Any finite half: sign, exponent 0..30 (0: subnormal), mantissa.
      const uint32_t r = rng();
      bits[i] = static_cast<uint16_t>((r & 0x8000) | ((r >> 16) % 31) << 10 | (r & 0x3FF));
      wd[i] = f16ToFloat(bits[i]);
    }
    std::vector<float> y(s.T * s.N, kUntouched);
    matmulF16(x.data(), s.T, bits.data(), s.N, s.K, y.data(), s.n0, s.n1);
    expectMatchesFloat64(y, x, wd, s, "f16 " + describe(s));
  }
}

const char *const kFormats[] = {
    "bfp8:block=16", "bfp8:block=32", "bfp8:block=64", "bfp6:block=16",
    "bfp6:block=32", "bfp6:block=64", "bfp4:block=16", "bfp4:block=32",
    "bfp4:block=64", "mxint8", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2",
    "mxfp6_e2m3", "mxfp4", "fp6_4p2", "fp6_4p2:group=32", "fp6_4p2:group=64",
    "fp6_4p2:group=128", "int8:group=32", "int8:group=64", "int8:group=128",
    "int8:group=32:asym", "int8:group=64:asym", "int8:group=128:asym",
    "int4:group=32", "int4:group=64", "int4:group=128", "int4:group=32:asym",
    "int4:group=64:asym", "int4:group=128:asym",
};

struct Packed {
  std::vector<uint8_t> bytes;
  std::vector<float> decoded; // N x K, by formats::dequantizeRow
  size_t rowBytes = 0;
};

Packed pack(const formats::FormatSpec &spec, const std::vector<float> &w, int64_t N,
            int64_t K) {
  Packed p;
  p.rowBytes = formats::packedRowBytes(spec, K);
  p.bytes.resize(p.rowBytes * N);
  p.decoded.resize(N * K);
  for (int64_t n = 0; n < N; ++n) {
    std::span<uint8_t> row{p.bytes.data() + n * p.rowBytes, p.rowBytes};
    EXPECT_TRUE(formats::quantizeRow(spec, {w.data() + n * K, size_t(K)}, row));
    formats::dequantizeRow(spec, row, {p.decoded.data() + n * K, size_t(K)});
  }
  return p;
}

/// Weights whose blocks span a huge range of magnitudes: block scales that
/// are subnormal or near the top of float32, and elements that decode to
/// subnormals, exercise the exact power-of-two scale paths.
std::vector<float> wideRangeWeights(int64_t N, int64_t K, uint32_t seed) {
  std::vector<float> w = randomVector(N * K, seed);
  std::mt19937 rng(seed + 1);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k0 = 0; k0 < K; k0 += 16) {
      const int e = static_cast<int>(rng() % 250) - 145; // 2^-145 .. 2^104
      for (int64_t k = k0; k < std::min(K, k0 + 16); ++k)
        w[n * K + k] = static_cast<float>(std::ldexp(double(w[n * K + k]), e));
    }
  return w;
}

TEST_P(MatmulTest, PackedMatchesReference) {
  uint32_t seed = 300;
  for (const char *name : kFormats) {
    const auto spec = formats::parseFormatSpec(name);
    ASSERT_TRUE(spec) << name;
    for (const Shape &s : kShapes) {
      const auto x = randomVector(s.T * s.K, seed++);
      auto w = randomVector(s.N * s.K, seed++, 0.05f);
      w[seed % w.size()] = 0.9f; // an outlier, as real weights have
      const Packed p = pack(*spec, w, s.N, s.K);
      std::vector<float> y(s.T * s.N, kUntouched);
      matmulPacked(x.data(), s.T, p.bytes.data(), *spec, s.N, s.K, y.data(), s.n0, s.n1);
      const std::string label = std::string(name) + " " + describe(s);
      expectMatchesFloat64(y, x, p.decoded, s, label);

      // The scalar reference kernel itself, for the columns in range.
      std::vector<float> ref(s.T * s.N);
      kernels::matmul(x.data(), s.T, {ElementType::F32, p.bytes.data(), s.N, s.K, &*spec},
                      ref.data());
      for (int64_t t = 0; t < s.T; ++t)
        for (int64_t n = s.n0; n < s.n1; ++n) {
          double magnitude = 0;
          for (int64_t k = 0; k < s.K; ++k)
            magnitude += std::fabs(double(x[t * s.K + k]) * p.decoded[n * s.K + k]);
          ASSERT_LE(std::fabs(y[t * s.N + n] - ref[t * s.N + n]), kTolerance * magnitude)
              << label << " vs ReferenceKernels at t=" << t << " n=" << n;
        }
    }
  }
}

/// With x = the identity, y = the decoded weights, transposed, exactly: each
/// output sums one product with 1.0 and zeros. This pins every decoded value
/// bit for bit (up to the sign of zero), not just within a tolerance.
TEST_P(MatmulTest, PackedDecodeIsExact) {
  uint32_t seed = 500;
  for (const char *name : kFormats) {
    const auto spec = formats::parseFormatSpec(name);
    ASSERT_TRUE(spec) << name;
    for (int64_t K : {int64_t{67}, int64_t{160}}) {
      const int64_t N = 5;
      const Packed p = pack(*spec, wideRangeWeights(N, K, seed++), N, K);
      // T = K: the decoded-tile path.
      std::vector<float> identity(K * K, 0.0f);
      for (int64_t k = 0; k < K; ++k) identity[k * K + k] = 1.0f;
      std::vector<float> y(K * N);
      matmulPacked(identity.data(), K, p.bytes.data(), *spec, N, K, y.data(), 0, N);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n)
          ASSERT_EQ(y[k * N + n], p.decoded[n * K + k])
              << name << " K=" << K << " T=K row " << n << " column " << k;
      // T = 1 with x = e_k: the fused in-register path.
      for (int64_t k = 0; k < K; k += 7) {
        std::vector<float> y1(N);
        matmulPacked(identity.data() + k * K, 1, p.bytes.data(), *spec, N, K, y1.data(), 0, N);
        for (int64_t n = 0; n < N; ++n)
          ASSERT_EQ(y1[n], p.decoded[n * K + k])
              << name << " K=" << K << " T=1 row " << n << " column " << k;
      }
    }
  }
}

/// NaN and infinity: MX blocks with a NaN scale, FP8 NaN/Inf codes, and a
/// BFP block with the reserved exponent 255 must give NaN/Inf exactly where
/// the reference does.
TEST_P(MatmulTest, PackedSpecialValuesPropagate) {
  const int64_t K = 96, N = 8;
  const auto x = randomVector(K, 900);
  std::vector<float> w = randomVector(N * K, 901);
  for (const char *name : {"mxint8", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp4",
                           "bfp8:block=32", "bfp4:block=16"}) {
    const auto spec = formats::parseFormatSpec(name);
    ASSERT_TRUE(spec) << name;
    std::vector<float> rows = w;
    const bool mx = formats::isMicroscaling(spec->kind);
    if (mx) {
      rows[1 * K + 40] = NAN;       // row 1: block 1 gets a NaN scale
      rows[2 * K + 3] = INFINITY;   // row 2: likewise
    }
    Packed p = pack(*spec, rows, N, K);
    if (!mx)
      p.bytes[3 * p.rowBytes + formats::rowBlockBytes(*spec, K)] = 0xFF; // row 3, block 1
    if (spec->kind == formats::FormatKind::MXFP8_E4M3)
      p.bytes[4 * p.rowBytes + 1 + 5] = 0x7F; // row 4: S.1111.111, NaN
    if (spec->kind == formats::FormatKind::MXFP8_E5M2) {
      p.bytes[4 * p.rowBytes + 1 + 5] = 0xFC; // row 4: -Inf
      p.bytes[5 * p.rowBytes + 1 + 9] = 0x7D; // row 5: NaN
    }
    std::vector<float> y(N), ref(N);
    matmulPacked(x.data(), 1, p.bytes.data(), *spec, N, K, y.data(), 0, N);
    kernels::matmul(x.data(), 1, {ElementType::F32, p.bytes.data(), N, K, &*spec}, ref.data());
    for (int64_t n = 0; n < N; ++n) {
      EXPECT_EQ(std::isnan(y[n]), std::isnan(ref[n])) << name << " row " << n;
      EXPECT_EQ(std::isinf(y[n]), std::isinf(ref[n])) << name << " row " << n;
      if (std::isinf(ref[n]))
        EXPECT_EQ(y[n], ref[n]) << name << " row " << n;
    }
    // The same through the T > 1 path.
    std::vector<float> x2(2 * K);
    std::copy(x.begin(), x.end(), x2.begin());
    std::copy(x.begin(), x.end(), x2.begin() + K);
    std::vector<float> y2(2 * N);
    matmulPacked(x2.data(), 2, p.bytes.data(), *spec, N, K, y2.data(), 0, N);
    for (int64_t n = 0; n < N; ++n)
      for (int t = 0; t < 2; ++t)
        EXPECT_EQ(std::isnan(y2[t * N + n]), std::isnan(ref[n])) << name << " T=2 row " << n;
  }
}

/// Threads split the output columns; every column must come out bit for
/// bit the same whatever the split, so that results do not depend on the
/// thread count.
TEST_P(MatmulTest, ColumnSplitsGiveIdenticalResults) {
  const int64_t N = 37, K = 288;
  const auto w = randomVector(N * K, 61, 0.05f);
  for (int64_t T : {int64_t{1}, int64_t{3}}) {
    const auto x = randomVector(T * K, 60);
    for (const char *name : {"f32", "int8:group=32", "int4:group=32:asym", "mxfp4", "fp6_4p2",
                             "bfp6:block=16"}) {
      const bool dense = std::string(name) == "f32";
      const auto spec = dense ? formats::parseFormatSpec("int8") : formats::parseFormatSpec(name);
      ASSERT_TRUE(spec) << name;
      const Packed p = pack(*spec, w, N, K);
      auto run = [&](float *y, int64_t n0, int64_t n1) {
        if (dense)
          matmulF32(x.data(), T, w.data(), N, K, y, n0, n1);
        else
          matmulPacked(x.data(), T, p.bytes.data(), *spec, N, K, y, n0, n1);
      };
      std::vector<float> whole(T * N), pieces(T * N);
      run(whole.data(), 0, N);
      for (auto [a, b] : {std::pair<int64_t, int64_t>{1, 2}, {5, 18}, {3, 36}}) {
        std::fill(pieces.begin(), pieces.end(), 0.0f);
        run(pieces.data(), 0, a);
        run(pieces.data(), a, b);
        run(pieces.data(), b, N);
        EXPECT_EQ(pieces, whole) << name << " T=" << T << " split at " << a << ", " << b;
      }
    }
  }
}

/// A batch of up to 16 tokens (several sequences, a speculative tree's
/// nodes) gives every token exactly the outputs it gets alone: greedy
/// speculative decoding relies on it to pick plain decoding's tokens. Every
/// float weight type and every format decoded in registers (per-channel
/// FP6 and the dequantizeRow fallback decode whole rows into the tiles).
TEST_P(MatmulTest, SmallBatchesEqualLoneTokens) {
  const int64_t N = 23;
  for (int64_t K : {int64_t{288}, int64_t{200}, int64_t{67}}) {
    const auto w = randomVector(N * K, 71, 0.05f);
    std::vector<uint16_t> bf16(w.size()), f16(w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      bf16[i] = floatToBf16(w[i]);
      f16[i] = floatToF16(w[i]);
    }
    std::vector<std::string> names = {"f32", "bf16", "f16"};
    for (const char *name : kFormats) {
      const auto spec = formats::parseFormatSpec(name);
      ASSERT_TRUE(spec) << name;
      if (decodesInRegisters(*spec) && !spec->perChannel)
        names.push_back(name);
    }
    for (const std::string &name : names) {
      const bool dense = name == "f32" || name == "bf16" || name == "f16";
      const auto spec = formats::parseFormatSpec(dense ? "int8" : name);
      const Packed p = dense ? Packed{} : pack(*spec, w, N, K);
      auto run = [&](const float *x, int64_t T, float *y) {
        if (name == "f32")
          matmulF32(x, T, w.data(), N, K, y, 0, N);
        else if (name == "bf16")
          matmulBF16(x, T, bf16.data(), N, K, y, 0, N);
        else if (name == "f16")
          matmulF16(x, T, f16.data(), N, K, y, 0, N);
        else
          matmulPacked(x, T, p.bytes.data(), *spec, N, K, y, 0, N);
      };
      for (int64_t T : {2, 3, 4, 5, 8, 13, 16}) {
        const auto x = randomVector(T * K, 72 + uint32_t(T));
        std::vector<float> batch(T * N), alone(N);
        run(x.data(), T, batch.data());
        for (int64_t t = 0; t < T; ++t) {
          run(x.data() + t * K, 1, alone.data());
          ASSERT_EQ(0, std::memcmp(alone.data(), batch.data() + t * N, N * sizeof(float)))
              << name << " K=" << K << " T=" << T << " token " << t;
        }
      }
    }
  }
}

TEST_P(MatmulTest, InRegisterDecodeCoverage) {
  // Every format decodes in registers except BFP4/BFP6 with 16-value
  // blocks on 16-lane targets (a block is less than one vector of codes;
  // those fall back to dequantizeRow).
  const bool wide = std::string(simdTargetName()).rfind("AVX3", 0) == 0;
  for (const char *name : kFormats) {
    const auto spec = formats::parseFormatSpec(name);
    ASSERT_TRUE(spec) << name;
    const bool narrowBfp = spec->kind == formats::FormatKind::BFP && spec->blockSize == 16 &&
                           spec->mantissaBits != 8;
    EXPECT_EQ(decodesInRegisters(*spec), !(wide && narrowBfp)) << name;
  }
  formats::FormatSpec bad;
  bad.kind = formats::FormatKind::INT8;
  bad.blockSize = 48;
  EXPECT_FALSE(decodesInRegisters(bad));
}

TEST_P(MatmulTest, InvalidSpecGivesNaN) {
  formats::FormatSpec bad;
  bad.kind = formats::FormatKind::BFP;
  bad.mantissaBits = 5;
  const auto x = randomVector(32, 1);
  std::vector<uint8_t> w(64);
  std::vector<float> y(4, kUntouched);
  matmulPacked(x.data(), 1, w.data(), bad, 4, 32, y.data(), 1, 3);
  EXPECT_EQ(y[0], kUntouched);
  EXPECT_TRUE(std::isnan(y[1]));
  EXPECT_TRUE(std::isnan(y[2]));
  EXPECT_EQ(y[3], kUntouched);
}

TEST_P(MatmulTest, EmptyRangesWriteNothing) {
  const auto x = randomVector(64, 1), w = randomVector(4 * 64, 2);
  std::vector<float> y(4, kUntouched);
  matmulF32(x.data(), 1, w.data(), 4, 64, y.data(), 2, 2);
  matmulF32(x.data(), 0, w.data(), 4, 64, y.data(), 0, 4);
  for (float v : y) EXPECT_EQ(v, kUntouched);
}

INSTANTIATE_TEST_SUITE_P(Targets, MatmulTest,
                         ::testing::Values(int64_t{HWY_AVX3}, int64_t{HWY_AVX2},
                                           int64_t{HWY_EMU128}),
                         targetName);

} // namespace
} // namespace lathe::kernels::simd
