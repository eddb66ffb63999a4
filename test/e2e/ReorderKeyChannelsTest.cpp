// Key-channel reordering for a block-compressed KV cache
// (lathe-reorder-key-channels, on by default for --kv=bfp8/bfp4):
//  - folded into the query and key projections and the ropes' pair order,
//    it leaves stories15M computing the same function (logits to float
//    rounding, greedy ids exactly);
//  - on an outlier-key variant (4 RoPE pairs of keys a layer x 2^5, the
//    query rows meeting them / 2^5: the same FP32 model) it keeps a bfp4
//    cache close to the clean model's, where without it the outlier pairs
//    coarsen the blocks they share.
#include "test/e2e/CalibratedImport.h"
#include "test/e2e/KLDivergence.h"
#include "test/e2e/OutlierVariant.h"

#include "passes/Passes.h"

#include "mlir/Pass/PassManager.h"

#include <cstdio>

namespace lathe::test {
namespace {

TEST(ReorderKeyChannelsTest, ReorderedKeysComputeTheSameFunction) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  mlir::MLIRContext context;
  auto models = importCalibratedPair(context);
  ASSERT_TRUE(models);
  auto &original = models->original, &reordered = models->calibrated;

  // An f32 cache has no blocks of its own: order for bfp blocks of 16.
  mlir::PassManager pm(&context);
  ReorderKeyChannelsOptions options;
  options.blockOption = 16;
  pm.addPass(createReorderKeyChannels(options));
  ASSERT_TRUE(mlir::succeeded(pm.run(*reordered)));
  int ordered = 0;
  reordered->walk([&](tfm::RopeOp r) {
    ordered += !r.getPairOrder().empty();
    EXPECT_EQ(r.getPairOrder().size(), r.getPairOrder().empty() ? 0u : 6u * 24u);
  });
  EXPECT_EQ(ordered, 12) << "every layer's query and key ropes";

  InMemoryModel a = lowerInMemory(*original), b = lowerInMemory(*reordered);
  ASSERT_TRUE(a.artifact && b.artifact);
  EXPECT_EQ(changedTensors(a, b), 12u) << "the q and k projections of 6 layers";

  expectSameFunction(a, b, {KernelPath::Reference, KernelPath::Fast});
}

// KL to FP32 on ~15k sampled tokens, lathe-compile --kv=bfp4 (blocks of 16)
// with and without reordering. Measured first (15064 tokens):
//            clean, reordered  keys, reordered  keys, not reordered
//   KL       0.076             0.143            0.489
// The bounds guard that gain: the variant's KL must fall below half of
// what it is without reordering, and stay within 2.5x of the clean model's.
TEST(ReorderKeyChannelsTest, KeepsABfp4CacheCloseOnOutlierKeys) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  const std::string clean = modelDir() + "/stories15M.bin";
  const std::string keys = tempPath("reorder-outlier-keys.bin");
  OutlierKeySpec spec; // seed 1, 4 pairs a layer at 2^5: the KV table's variant
  ASSERT_TRUE(writeOutlierKeyVariant(clean, keys, spec));
  auto fp32 = compileAndLoad(clean, "reorder-f32");
  ASSERT_TRUE(fp32);
  const std::vector<std::shared_ptr<const artifact::Artifact>> builds = {
      compileAndLoad(clean, "reorder-clean", "none", "bfp4"),
      compileAndLoad(keys, "reorder-keys", "none", "bfp4"),
      compileAndLoad(keys, "reorder-keys-off", "none", "bfp4:no-reorder"),
  };
  for (const auto &b : builds)
    ASSERT_TRUE(b);
  const auto text = sampleText(fp32);
  ASSERT_FALSE(text.empty());
  const std::vector<Drift> d = drift(text, fp32, builds);
  std::printf("%lld tokens; bfp4 KL to FP32: clean %.4f, keys %.4f, keys without reordering "
              "%.4f\n",
              static_cast<long long>(d[0].tokens), d[0].meanKL, d[1].meanKL, d[2].meanKL);
  EXPECT_LT(d[1].meanKL, 0.5 * d[2].meanKL);
  EXPECT_LT(d[1].meanKL, 2.5 * d[0].meanKL);
  EXPECT_LE(d[0].meanKL, 0.1);
}

} // namespace
} // namespace lathe::test
