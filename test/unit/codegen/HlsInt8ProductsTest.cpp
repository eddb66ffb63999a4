// The HLS backend's int8-activation product (lathe_hls::quantizeActivations
// then lathe_hls::productsInt8 of codegen/HLS/kernels/LatheHlsKernels.h,
// the templates generated projects' product functions call) against the CPU backend's integer kernel on fresh random inputs:
// every output bit for bit (memcmp), for every format the HLS product
// takes, several shapes (K a multiple of the block or not, rows that fill
// panels or not), blocks of zeros and non-finite activations, and panel
// ranges split as threads split them. The CPU kernel is the panel kernel
// (PanelMatmul.h), which the CPU backend runs for these formats on
// machines with AVX-512 VNNI; elsewhere the test is skipped.
#include "LatheHlsKernels.h"

#include "runtime/backends/cpu/kernels/PanelMatmul.h"
#include "runtime/formats/RowCodec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace lathe {
namespace {

using kernels::simd::CodeOrder;
using kernels::simd::Int8Activations;
using kernels::simd::PanelWeights;

std::vector<float> normal(size_t n, std::mt19937 &rng, float sigma) {
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (float &x : v) x = dist(rng);
  return v;
}

/// What an input vector holds besides random values.
enum class Extra { None, ZeroBlock, NaN, Infinity };

/// One format (the HLS template's KIND and P1, the block and its bytes)
/// at one shape: N rows of K columns.
template <int KIND, int P1, int BLOCK, int BLOCK_BYTES, int N, int K>
void check(const char *name, uint32_t seed, Extra extra) {
  constexpr int kBlocks = (K + BLOCK - 1) / BLOCK;
  constexpr int kRowBytes = kBlocks * BLOCK_BYTES;
  const std::string label = std::string(name) + " N=" + std::to_string(N) +
                            " K=" + std::to_string(K) + " extra=" +
                            std::to_string(static_cast<int>(extra));
  SCOPED_TRACE(label);
  const auto spec = formats::parseFormatSpec(name);
  ASSERT_TRUE(spec);
  ASSERT_EQ(formats::packedRowBytes(*spec, K), size_t(kRowBytes));

  std::mt19937 rng(seed);
  std::vector<float> w = normal(size_t(N) * K, rng, 0.05f);
  w[seed % w.size()] = 0.8f; // an outlier: blocks of very different scales
  std::vector<uint8_t> packed(size_t(N) * kRowBytes);
  for (int n = 0; n < N; ++n)
    ASSERT_TRUE(formats::quantizeRow(*spec, {w.data() + size_t(n) * K, size_t(K)},
                                     {packed.data() + size_t(n) * kRowBytes, size_t(kRowBytes)}));
  std::vector<float> x = normal(K, rng, 1.0f);
  if (extra == Extra::ZeroBlock)
    std::fill(x.begin(), x.begin() + std::min(K, BLOCK), 0.0f);
  else if (extra == Extra::NaN)
    x[K / 2] = std::numeric_limits<float>::quiet_NaN();
  else if (extra == Extra::Infinity)
    x[K - 1] = -std::numeric_limits<float>::infinity();

  PanelWeights panels;
  ASSERT_TRUE(kernels::simd::packPanels(packed.data(), *spec, N, K, panels));
  Int8Activations q;
  ASSERT_TRUE(kernels::simd::quantizeActivations(x.data(), 1, K, *spec, q, CodeOrder::Columns));
  std::vector<float> cpu(N);
  kernels::simd::matmulPanels(q, panels, cpu.data(), 0, panels.panels);

  // As a generated product function calls them (codegen/HLS/EmitHlsProject.cpp).
  int8_t codes[kBlocks * BLOCK];
  float scales[kBlocks];
  lathe_hls::quantizeActivations<K, BLOCK, 1>(x.data(), codes, scales);
  std::vector<float> hls(N);
  lathe_hls::productsInt8<N, K, KIND, P1, 1, BLOCK, BLOCK_BYTES, kRowBytes, 1, 1>(
      packed.data(), 0, codes, scales, hls.data());
  for (int n = 0; n < N; ++n)
    ASSERT_EQ(std::memcmp(&cpu[n], &hls[n], sizeof(float)), 0)
        << "row " << n << ": cpu " << cpu[n] << " hls " << hls[n];
  // Four rows at a time (#plan.hls_loop's unroll) and panel ranges split
  // as threads split them give the same bits.
  if constexpr (N % 4 == 0) {
    std::vector<float> unrolled(N);
    lathe_hls::productsInt8<N, K, KIND, P1, 1, BLOCK, BLOCK_BYTES, kRowBytes, 1, 4>(
        packed.data(), 0, codes, scales, unrolled.data());
    ASSERT_EQ(std::memcmp(unrolled.data(), hls.data(), sizeof(float) * N), 0);
  }
  for (int64_t split = 1; split < panels.panels; ++split) {
    std::vector<float> parts(N);
    kernels::simd::matmulPanels(q, panels, parts.data(), split, panels.panels);
    kernels::simd::matmulPanels(q, panels, parts.data(), 0, split);
    ASSERT_EQ(std::memcmp(parts.data(), hls.data(), sizeof(float) * N), 0) << "split " << split;
  }
}

/// Every shape and input kind of one format.
template <int KIND, int P1, int BLOCK, int BLOCK_BYTES> void checkFormat(const char *name) {
  uint32_t seed = 23;
  for (Extra extra : {Extra::None, Extra::ZeroBlock, Extra::NaN, Extra::Infinity}) {
    check<KIND, P1, BLOCK, BLOCK_BYTES, 40, 288>(name, seed++, extra);
    check<KIND, P1, BLOCK, BLOCK_BYTES, 17, 200>(name, seed++, extra);
    check<KIND, P1, BLOCK, BLOCK_BYTES, 33, 768>(name, seed++, extra);
    check<KIND, P1, BLOCK, BLOCK_BYTES, 1, 130>(name, seed++, extra);
  }
}

class HlsInt8Products : public ::testing::Test {
protected:
  void SetUp() override {
    if (!kernels::simd::panelsSupported(*formats::parseFormatSpec("int8:group=32")))
      GTEST_SKIP() << "no AVX-512 VNNI here: the CPU backend runs its row kernels, not the "
                      "panel kernel";
  }
};

using lathe_hls::kBfp;
using lathe_hls::kInt;
using lathe_hls::kMx;

TEST_F(HlsInt8Products, Int8GroupsMatchTheCpuBitForBit) {
  checkFormat<kInt, 8, 32, 36>("int8:group=32");
  checkFormat<kInt, 8, 64, 68>("int8:group=64");
  checkFormat<kInt, 8, 128, 132>("int8:group=128");
}

TEST_F(HlsInt8Products, Int4GroupsMatchTheCpuBitForBit) {
  checkFormat<kInt, 4, 32, 20>("int4:group=32");
  checkFormat<kInt, 4, 64, 36>("int4:group=64");
  checkFormat<kInt, 4, 128, 68>("int4:group=128");
}

TEST_F(HlsInt8Products, BfpBlocksMatchTheCpuBitForBit) {
  checkFormat<kBfp, 8, 16, 17>("bfp8:block=16");
  checkFormat<kBfp, 8, 32, 33>("bfp8:block=32");
  checkFormat<kBfp, 8, 64, 65>("bfp8:block=64");
  checkFormat<kBfp, 4, 16, 9>("bfp4:block=16");
  checkFormat<kBfp, 4, 32, 17>("bfp4:block=32");
  checkFormat<kBfp, 4, 64, 33>("bfp4:block=64");
}

TEST_F(HlsInt8Products, MxBlocksMatchTheCpuBitForBit) {
  checkFormat<kMx, lathe_hls::kMxInt8, 32, 33>("mxint8");
  checkFormat<kMx, lathe_hls::kMxE2M1, 32, 17>("mxfp4");
}

/// The HLS product takes what hlsTakesInt8Activations says (checked in the
/// generator); the rounding of x is the CPU's, including its specials.
TEST(HlsInt8Quantization, MatchesTheCpuRounding) {
  std::mt19937 rng(5);
  std::vector<float> x = normal(200, rng, 3.0f);
  std::fill(x.begin() + 64, x.begin() + 96, 0.0f);
  x[100] = std::numeric_limits<float>::infinity();
  int8_t codes[7 * 32];
  float scales[7];
  lathe_hls::quantizeActivations<200, 32, 1>(x.data(), codes, scales);
  Int8Activations q;
  ASSERT_TRUE(kernels::simd::quantizeActivations(x.data(), 1, 200,
                                                 *formats::parseFormatSpec("int8:group=32"), q,
                                                 CodeOrder::Columns));
  ASSERT_EQ(q.blocksPerRow, 7);
  for (int i = 0; i < 7 * 32; ++i)
    ASSERT_EQ(codes[i], q.codes[i]) << i;
  for (int b = 0; b < 7; ++b)
    ASSERT_EQ(std::memcmp(&scales[b], &q.scales[b], 4), 0) << b;
}

} // namespace
} // namespace lathe
