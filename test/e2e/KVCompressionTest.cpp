// Compressed KV caches (lathe-compile --kv=int8|bfp8|bfp4|int4|int2) on stories15M:
// what a token costs, and how far the next-token distributions drift from
// the FP32 build's over ~15k tokens the FP32 build sampled itself
// (KLDivergence.h). The figures are printed for docs/benchmarks.md.
#include "test/e2e/KLDivergence.h"
#include "test/e2e/ModelFixture.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <span>
#include <string>
#include <vector>

namespace lathe::test {
namespace {

std::string stories() { return modelDir() + "/stories15M.bin"; }

/// A KV format under test: what a token costs and how far it may drift.
struct Format {
  const char *kv;
  size_t tokenBytes;
  double maxKL, minTop1, maxPerplexityRise;
};

/// Prints each build's drift (for docs/benchmarks.md) and checks it against
/// its format's bounds; `base` is the FP32 build's own row.
void expectDriftWithin(std::span<const Format> formats, const std::vector<Drift> &results,
                       const Drift &base) {
  std::printf("%lld tokens; fp32 perplexity %.4f\n", static_cast<long long>(base.tokens),
              base.perplexity);
  std::printf("| KV | bytes/token | KL to FP32 | top-1 agreement | perplexity |\n");
  for (size_t i = 0; i < results.size(); ++i) {
    const Format &f = formats[i];
    const Drift &d = results[i];
    std::printf("| %s | %zu | %.6f | %.4f | %.4f |\n", f.kv, f.tokenBytes, d.meanKL, d.top1,
                d.perplexity);
    EXPECT_LE(d.meanKL, f.maxKL) << f.kv;
    EXPECT_GE(d.top1, f.minTop1) << f.kv;
    EXPECT_LE(d.perplexity, base.perplexity * (1 + f.maxPerplexityRise)) << f.kv;
  }
}

// int8 keys and values (a scale per token row and KV head) keep greedy
// decoding on every reference prompt for 64 tokens. Measured first
// divergences at 200 tokens: 82, 83, 93, 167 and none; f16 never diverges.
TEST(KVCompressionTest, Int8KeepsGreedyOutput) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  auto fp32 = compileAndLoad(stories(), "kv-greedy-f32");
  auto int8 = compileAndLoad(stories(), "kv-greedy-int8", "none", "int8");
  ASSERT_TRUE(fp32 && int8);
  for (const auto &prompt : loadReference()["prompts"]) {
    const std::vector<int32_t> ids = prompt["prompt_ids"];
    EXPECT_EQ(greedyIds(int8, ids, 64), greedyIds(fp32, ids, 64));
  }
}

// Per format: bytes a token takes (6 layers x keys and values x 288 values),
// then KL to FP32, top-1 agreement and perplexity on the sampled text.
// Measured (15064 predicted tokens, FP32 perplexity 6.0624; bfp keys in
// stored order, before lathe-compile reordered them by default):
//   f16   6912 bytes  KL 2e-7     top-1 0.9996  ppl 6.0623
//   int8  3744 bytes  KL 0.00020  top-1 0.9925  ppl 6.0639
//   bfp8  3672 bytes  KL 0.00032  top-1 0.9898  ppl 6.0671
//   bfp4  1944 bytes  KL 0.080    top-1 0.860   ppl 6.589
// int8 meets issue 20's limit (KL <= 0.002). bfp4 with blocks of 16 and no
// window does not meet its 0.05, reordered keys or not (0.076 reordered,
// ReorderKeyChannelsTest): its bound here guards against regressions; the
// default bfp4, with a window of recent tokens in f32, does (below).
TEST(KVCompressionTest, DriftFromFp32OnSampledText) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  auto fp32 = compileAndLoad(stories(), "kv-drift-f32");
  ASSERT_TRUE(fp32);
  const Format formats[] = {
      {"f16", 12 * 288 * 2, 1e-5, 0.998, 0.001},
      {"int8", 12 * 6 * (4 + 48), 0.002, 0.985, 0.005},
      {"bfp8", 12 * 18 * (1 + 16), 0.002, 0.98, 0.005},
      {"bfp4:window=0", 12 * 18 * (1 + 8), 0.12, 0.8, 0.15},
  };
  std::vector<std::shared_ptr<const artifact::Artifact>> builds;
  for (const Format &f : formats) {
    builds.push_back(compileAndLoad(stories(), std::string("kv-drift-") + f.kv, "none", f.kv));
    ASSERT_TRUE(builds.back());
    auto session = Session::create(builds.back());
    ASSERT_TRUE(session);
    EXPECT_EQ(session->kvCache().layout().tokenBytes(), f.tokenBytes) << f.kv;
  }
  const auto text = sampleText(fp32);
  ASSERT_FALSE(text.empty());
  const Drift base = drift(text, fp32, {fp32})[0];
  EXPECT_EQ(base.meanKL, 0.0);
  EXPECT_EQ(base.top1, 1.0);
  const std::vector<Drift> results = drift(text, fp32, builds);
  expectDriftWithin(formats, results, base);
  // Fewer bits drift further.
  EXPECT_LT(results[0].meanKL, results[1].meanKL);
  EXPECT_LT(results[1].meanKL, results[3].meanKL);
  EXPECT_LT(results[2].meanKL, results[3].meanKL);

  // bfp4 as lathe-compile --kv=bfp4 builds it: blocks of 16 and the newest
  // 8 to 23 tokens of a sequence in f32 (kBfp4DefaultWindow, paged blocks
  // of 16). Scored by decoding, one token a step (the window applies to
  // what decoding leaves behind), on the first 16 sequences to keep the
  // test short, against the window=0 build on the same tokens. Measured
  // (3768 predicted tokens): window 0 KL 0.0738, top-1 0.859; window 8 KL
  // 0.0085, top-1 0.957; on all 14716 tokens (lathe-eval, docs/benchmarks.md
  // "KV window of recent tokens") 0.0805 and 0.0081. Issue 20's limit: KL
  // <= 0.05.
  auto windowed = compileAndLoad(stories(), "kv-drift-bfp4-window", "none", "bfp4");
  ASSERT_TRUE(windowed);
  auto session = Session::create(windowed);
  ASSERT_TRUE(session);
  const kv::KVLayout &layout = session->kvCache().layout();
  EXPECT_EQ(formats::kvFormatName(layout.format), "bfp4:block=16:window=8");
  EXPECT_EQ(layout.tokenBytes(), 12u * 18 * (1 + 8));
  EXPECT_EQ(layout.windowTokenBytes(), 12u * 288 * 4);
  ASSERT_GE(text.size(), 16u);
  const std::vector<std::vector<int32_t>> first16(text.begin(), text.begin() + 16);
  const std::vector<Drift> w = drift(first16, fp32, {builds[3], windowed});
  std::printf("first 16 sequences, %lld tokens: bfp4 window 0 KL %.6f top-1 %.4f; window 8 KL "
              "%.6f top-1 %.4f\n",
              static_cast<long long>(w[1].tokens), w[0].meanKL, w[0].top1, w[1].meanKL,
              w[1].top1);
  EXPECT_LE(w[1].meanKL, 0.05);
  EXPECT_LT(w[1].meanKL, w[0].meanKL / 4);
  EXPECT_GE(w[1].top1, w[0].top1);
}

// KIVI int4 and int2 with their defaults (keys per channel over groups of
// 32 tokens, values per token in blocks of 16 channels, f32 window of the
// newest 32 to 63 tokens). Bytes a quantized token takes, 6 layers: keys
// 288 x 4 / 8 codes + 288 x (f16 scale + f16 zero) / 32 tokens, values
// 18 x (4 + 16 x 4 / 8); the window's tokens take f32's 13824. Their
// prefill attention reads f32 rows, so the text is scored by decoding, one
// token a step (KLDivergence.h, scoredLogits).
// Measured (15064 predicted tokens, FP32 perplexity 6.0624):
//   int4  2376 bytes  KL 0.00048  top-1 0.9915  ppl 6.0649 (+0.04%)
//   int2  1512 bytes  KL 0.0142   top-1 0.9532  ppl 6.1561 (+1.5%)
// Issue 20's limit for int2: perplexity within +10% of the f32 cache's.
// The other bounds guard against regressions (about 4x and 2x the
// measured KL).
TEST(KVCompressionTest, KiviDriftFromFp32OnSampledText) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  const Format formats[] = {
      {"int4", 6 * (144 + 288 * 4 / 32 + 18 * (4 + 8)), 0.002, 0.985, 0.003},
      {"int2", 6 * (72 + 288 * 4 / 32 + 18 * (4 + 4)), 0.03, 0.93, 0.10},
  };
  std::vector<std::shared_ptr<const artifact::Artifact>> builds;
  for (const Format &f : formats) {
    builds.push_back(compileAndLoad(stories(), std::string("kv-kivi-") + f.kv, "none", f.kv));
    ASSERT_TRUE(builds.back());
    auto session = Session::create(builds.back());
    ASSERT_TRUE(session);
    const kv::KVLayout &layout = session->kvCache().layout();
    ASSERT_TRUE(layout.format.kivi()) << "lathe-compile --kv=" << f.kv << " built a "
                                      << formats::kvFormatName(layout.format) << " cache";
    EXPECT_EQ(formats::kvFormatName(layout.format), std::string(f.kv) + ":group=32:window=32");
    EXPECT_EQ(layout.tokenBytes(), f.tokenBytes) << f.kv;
    EXPECT_EQ(layout.windowTokenBytes(), 12u * 288 * 4) << f.kv;
  }
  auto fp32 = compileAndLoad(stories(), "kv-kivi-f32");
  ASSERT_TRUE(fp32);
  const auto text = sampleText(fp32);
  ASSERT_FALSE(text.empty());
  const Drift base = drift(text, fp32, {fp32})[0];
  const std::vector<Drift> results = drift(text, fp32, builds);
  expectDriftWithin(formats, results, base);
  EXPECT_LT(results[0].meanKL, results[1].meanKL);
}

} // namespace
} // namespace lathe::test
