// The panel (repacked) int8-activation kernel against a float64 reference
// of the decoded weights times the int8-rounded activations, on fresh
// random inputs, for every format it supports: partial panels (N not a
// multiple of 16), K not a multiple of the block, T = 1 (decode) and T > 1,
// and panel sub-ranges as threads split them. Skipped where the machine has
// no AVX-512 VNNI (the session then keeps the row kernels).
#include "runtime/backends/cpu/kernels/PanelMatmul.h"

#include "runtime/formats/RowCodec.h"
#include "test/unit/runtime/backends/cpu/kernels/SimdTestSupport.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace lathe::kernels::simd {
namespace {

using testing::randomVector;

constexpr float kUntouched = 12345.0f;

const char *const kFormats[] = {
    "int8:group=32",  "int8:group=64",  "int8:group=128", "int4:group=32",
    "int4:group=64",  "int4:group=128", "bfp8:block=16",  "bfp8:block=32",
    "bfp8:block=64",  "bfp4:block=16",  "bfp4:block=32",  "bfp4:block=64",
    "mxint8",         "mxfp4",
};

struct Shape {
  int64_t T, N, K;
};

const Shape kShapes[] = {{1, 1, 16},   {1, 15, 33},  {1, 16, 288}, {1, 17, 200},
                         {1, 48, 768}, {1, 50, 130}, {3, 33, 288}, {2, 7, 64},
                         {9, 20, 96},  {4, 16, 288}};

struct Packed {
  std::vector<uint8_t> bytes;
  std::vector<float> decoded; // N x K, as formats::dequantizeRow gives them
};

Packed pack(const formats::FormatSpec &spec, const std::vector<float> &w, int64_t N,
            int64_t K) {
  const size_t rowBytes = formats::packedRowBytes(spec, K);
  Packed p{std::vector<uint8_t>(rowBytes * N), std::vector<float>(N * K)};
  for (int64_t n = 0; n < N; ++n) {
    std::span<uint8_t> row{p.bytes.data() + n * rowBytes, rowBytes};
    EXPECT_TRUE(formats::quantizeRow(spec, {w.data() + n * K, size_t(K)}, row));
    formats::dequantizeRow(spec, row, {p.decoded.data() + n * K, size_t(K)});
  }
  return p;
}

class PanelMatmulTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!panelsSupported(*formats::parseFormatSpec("int8:group=32")))
      GTEST_SKIP() << "no AVX-512 VNNI here: the panel kernel is not used";
  }
};

TEST_F(PanelMatmulTest, MatchesFloat64OfQuantizedActivations) {
  uint32_t seed = 1;
  for (const char *name : kFormats) {
    const auto spec = formats::parseFormatSpec(name);
    ASSERT_TRUE(spec) << name;
    ASSERT_TRUE(panelsSupported(*spec)) << name;
    for (const Shape &s : kShapes) {
      const std::string label = std::string(name) + " T=" + std::to_string(s.T) +
                                " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K);
      auto w = randomVector(s.N * s.K, seed++, 0.05f);
      w[seed % w.size()] = 0.8f; // one outlier: blocks of very different scales
      const Packed packed = pack(*spec, w, s.N, s.K);
      PanelWeights panels;
      ASSERT_TRUE(packPanels(packed.bytes.data(), *spec, s.N, s.K, panels)) << label;
      ASSERT_EQ(panels.panels, (s.N + 15) / 16);
      const auto x = randomVector(s.T * s.K, seed++);
      Int8Activations q;
      ASSERT_TRUE(quantizeActivations(x.data(), s.T, s.K, *spec, q, CodeOrder::Columns));
      std::vector<float> y(s.T * s.N, kUntouched);
      matmulPanels(q, panels, y.data(), 0, panels.panels);
      for (int64_t t = 0; t < s.T; ++t)
        for (int64_t n = 0; n < s.N; ++n) {
          double want = 0, mag = 0;
          for (int64_t k = 0; k < s.K; ++k) {
            const double xk = double(q.codes[t * q.codesPerRow + k]) *
                              q.scales[t * q.blocksPerRow + k / q.blockSize];
            want += packed.decoded[n * s.K + k] * xk;
            mag += std::fabs(packed.decoded[n * s.K + k] * xk);
          }
          ASSERT_LE(std::fabs(y[t * s.N + n] - want), 1e-5 * mag + 1e-30)
              << label << " t=" << t << " n=" << n;
        }
    }
  }
}

/// Threads split the panels: each range writes its own rows only, and the
/// results are bit for bit those of one call (panels run one or two at a
/// time).
TEST_F(PanelMatmulTest, PanelSplitsWriteTheirRowsIdentically) {
  const int64_t N = 90, K = 288; // 6 panels, the last one partial
  const auto w = randomVector(N * K, 7, 0.05f);
  const auto x = randomVector(K, 8);
  for (const char *name : {"int4:group=32", "bfp8:block=32", "mxfp4"}) {
    const auto spec = formats::parseFormatSpec(name);
    const Packed packed = pack(*spec, w, N, K);
    PanelWeights panels;
    ASSERT_TRUE(packPanels(packed.bytes.data(), *spec, N, K, panels));
    Int8Activations q;
    ASSERT_TRUE(quantizeActivations(x.data(), 1, K, *spec, q, CodeOrder::Columns));
    std::vector<float> whole(N, kUntouched);
    matmulPanels(q, panels, whole.data(), 0, panels.panels);
    for (int64_t split : {1, 2, 3, 5}) {
      std::vector<float> parts(N, kUntouched);
      matmulPanels(q, panels, parts.data(), split, panels.panels);
      for (int64_t n = 0; n < split * 16; ++n)
        ASSERT_EQ(parts[n], kUntouched) << name << " split " << split;
      matmulPanels(q, panels, parts.data(), 0, split);
      for (int64_t n = 0; n < N; ++n)
        ASSERT_EQ(parts[n], whole[n]) << name << " split " << split << " n=" << n;
    }
  }
}

TEST_F(PanelMatmulTest, NaNActivationsPropagate) {
  const int64_t N = 20, K = 64;
  const auto spec = formats::parseFormatSpec("int4:group=32");
  const Packed packed = pack(*spec, randomVector(N * K, 9, 0.05f), N, K);
  PanelWeights panels;
  ASSERT_TRUE(packPanels(packed.bytes.data(), *spec, N, K, panels));
  auto x = randomVector(K, 10);
  x[40] = std::nanf("");
  Int8Activations q;
  ASSERT_TRUE(quantizeActivations(x.data(), 1, K, *spec, q, CodeOrder::Columns));
  std::vector<float> y(N);
  matmulPanels(q, panels, y.data(), 0, panels.panels);
  for (float v : y) EXPECT_TRUE(std::isnan(v));
}

// Power-of-two block scales are kept as exponent bytes and rebuilt in
// registers; the codes that are not normal floats take the exact table:
// NaN scales (MX E8M0 0xFF, the BFP reserved exponent), all-zero blocks and
// blocks so small that their scale is subnormal.
TEST_F(PanelMatmulTest, SpecialExponentsMatchTheDecoder) {
  const int64_t N = 20, K = 128;
  for (const char *name : {"mxint8", "mxfp4", "bfp8:block=32", "bfp4:block=16"}) {
    const auto spec = formats::parseFormatSpec(name);
    ASSERT_TRUE(spec) << name;
    auto w = randomVector(N * K, 21, 0.05f);
    for (int64_t k = 0; k < 32; ++k) {
      w[2 * K + k] = 0.0f;                        // row 2, first block: zero
      w[3 * K + 32 + k] = 1e-41f * float(k % 5); // row 3, second block: subnormal scale
      w[17 * K + 64 + k] = 3e-39f * float(k % 3 - 1);
    }
    if (formats::isMicroscaling(spec->kind))
      w[5 * K + 100] = NAN; // row 5: a NaN scale
    Packed packed = pack(*spec, w, N, K);
    if (spec->kind == formats::FormatKind::BFP) {
      packed.bytes[5 * formats::packedRowBytes(*spec, K)] = 0xFF; // reserved exponent
      formats::dequantizeRow(*spec,
                             {packed.bytes.data() + 5 * formats::packedRowBytes(*spec, K),
                              formats::packedRowBytes(*spec, K)},
                             {packed.decoded.data() + 5 * K, size_t(K)});
    }
    PanelWeights panels;
    ASSERT_TRUE(packPanels(packed.bytes.data(), *spec, N, K, panels)) << name;
    const auto x = randomVector(K, 22);
    Int8Activations q;
    ASSERT_TRUE(quantizeActivations(x.data(), 1, K, *spec, q, CodeOrder::Columns));
    std::vector<float> y(N, kUntouched);
    matmulPanels(q, panels, y.data(), 0, panels.panels);
    for (int64_t n = 0; n < N; ++n) {
      double want = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double xk = double(q.codes[k]) * q.scales[k / q.blockSize];
        want += packed.decoded[n * K + k] * xk;
        mag += std::fabs(packed.decoded[n * K + k] * xk);
      }
      if (n == 5) {
        EXPECT_TRUE(std::isnan(y[n])) << name << " row 5 has a NaN scale";
        continue;
      }
      ASSERT_FALSE(std::isnan(want)) << name << " n=" << n;
      EXPECT_LE(std::fabs(y[n] - want), 1e-5 * mag + 1e-45) << name << " n=" << n;
    }
  }
}

// Sessions pack every weight into one arena: the panels there are the same
// bytes, and give the same outputs, as panels of their own.
TEST_F(PanelMatmulTest, ArenaPackingMatchesOwnMemory) {
  const auto spec8 = formats::parseFormatSpec("bfp8:block=32");
  const auto spec4 = formats::parseFormatSpec("int4:group=32");
  const int64_t K = 96;
  const Packed a = pack(*spec8, randomVector(40 * K, 31, 0.05f), 40, K);
  const Packed b = pack(*spec4, randomVector(17 * K, 32, 0.05f), 17, K);
  const size_t bytesA = panelStorageBytes(*spec8, 40, K), bytesB = panelStorageBytes(*spec4, 17, K);
  ASSERT_GT(bytesA, 0u);
  ASSERT_EQ(bytesA % 64, 0u);
  std::shared_ptr<uint8_t> arena(static_cast<uint8_t *>(std::aligned_alloc(64, bytesA + bytesB)),
                                 [](uint8_t *p) { std::free(p); });
  PanelWeights inArenaA, inArenaB, ownA, ownB;
  ASSERT_TRUE(packPanels(a.bytes.data(), *spec8, 40, K, inArenaA, arena, 0));
  ASSERT_TRUE(packPanels(b.bytes.data(), *spec4, 17, K, inArenaB, arena, bytesA));
  ASSERT_TRUE(packPanels(a.bytes.data(), *spec8, 40, K, ownA));
  ASSERT_TRUE(packPanels(b.bytes.data(), *spec4, 17, K, ownB));
  EXPECT_EQ(inArenaB.data, arena.get() + bytesA);
  EXPECT_EQ(0, std::memcmp(inArenaA.data, ownA.data, bytesA));
  EXPECT_EQ(0, std::memcmp(inArenaB.data, ownB.data, bytesB));
  PanelWeights misaligned;
  EXPECT_FALSE(packPanels(a.bytes.data(), *spec8, 40, K, misaligned, arena, 32));
  EXPECT_EQ(panelStorageBytes(*formats::parseFormatSpec("fp6_4p2"), 40, K), 0u);
}

TEST_F(PanelMatmulTest, RejectsWhatItCannotRun) {
  PanelWeights panels;
  const std::vector<uint8_t> bytes(4096);
  for (const char *name : {"int8:group=32:asym", "int4:group=64:asym", "bfp6:block=32",
                           "mxfp6_e3m2", "fp6_4p2"}) {
    const auto spec = formats::parseFormatSpec(name);
    ASSERT_TRUE(spec) << name;
    EXPECT_FALSE(panelsSupported(*spec)) << name;
    EXPECT_FALSE(packPanels(bytes.data(), *spec, 4, 32, panels)) << name;
  }
  const auto spec = formats::parseFormatSpec("int4:group=32");
  EXPECT_FALSE(packPanels(bytes.data(), *spec, 0, 32, panels));
  EXPECT_FALSE(packPanels(bytes.data(), *spec, 4, 0, panels));

  // Activations in the row kernel's nibble order, or for another block
  // size, give NaN rather than wrong numbers.
  const int64_t N = 16, K = 64;
  const Packed packed = pack(*spec, randomVector(N * K, 11, 0.05f), N, K);
  ASSERT_TRUE(packPanels(packed.bytes.data(), *spec, N, K, panels));
  const auto x = randomVector(K, 12);
  for (const char *other : {"int4:group=32", "int4:group=64"}) {
    Int8Activations q;
    const auto order = std::string(other) == "int4:group=32" ? CodeOrder::RowKernel
                                                             : CodeOrder::Columns;
    ASSERT_TRUE(quantizeActivations(x.data(), 1, K, *formats::parseFormatSpec(other), q, order));
    std::vector<float> y(N);
    matmulPanels(q, panels, y.data(), 0, panels.panels);
    for (float v : y) EXPECT_TRUE(std::isnan(v)) << other;
  }
}

} // namespace
} // namespace lathe::kernels::simd
