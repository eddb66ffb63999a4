// Key-channel equalization for a compressed KV cache
// (lathe-equalize-key-channels, on by default for --kv=int8/bfp8/bfp4):
// each RoPE pair of keys times a power of two, its queries divided by it.
//  - RoPE turns a pair within itself and a product by a power of two is
//    exact, so stories15M computes the same function to the bit: the same
//    logits on both kernel paths, the same greedy ids;
//  - on the outlier-key variant (4 RoPE pairs of keys a layer x 2^5, the
//    query rows meeting them / 2^5) it brings an int8 cache, one scale per
//    head row, within issue 20's KL limit.
#include "test/e2e/CalibratedImport.h"
#include "test/e2e/OutlierKeyDrift.h"

#include "passes/Passes.h"

#include "mlir/Pass/PassManager.h"

#include <cstdio>

namespace lathe::test {
namespace {

TEST(EqualizeKeyChannelsTest, EqualizedKeysComputeTheSameFunctionExactly) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  mlir::MLIRContext context;
  auto models = importCalibratedPair(context);
  ASSERT_TRUE(models);
  auto &original = models->original, &equalized = models->calibrated;

  mlir::PassManager pm(&context);
  pm.addPass(createEqualizeKeyChannels());
  ASSERT_TRUE(mlir::succeeded(pm.run(*equalized)));

  InMemoryModel a = lowerInMemory(*original), b = lowerInMemory(*equalized);
  ASSERT_TRUE(a.artifact && b.artifact);
  EXPECT_EQ(changedTensors(a, b), 12u) << "the q and k projections of 6 layers";

  // Exact, not merely close: every logit has the same bits.
  expectSameFunction(a, b, {KernelPath::Reference, KernelPath::Fast}, 0.0f);
}

// KL to FP32 on ~15k sampled tokens, lathe-compile --kv=int8 (one scale per
// token row and KV head) with and without scaling. Measured (15064 tokens;
// the KV table's 14716 gave 0.00020, 0.00069 and 0.0072):
//            clean, scaled  keys, scaled  keys, not scaled
//   KL       0.000188       0.000675      0.006773
// Issue 20's limit is KL <= 0.002; without scaling the outlier pairs set
// each head's scale and the variant misses it.
TEST(EqualizeKeyChannelsTest, KeepsAnInt8CacheWithinTheLimitOnOutlierKeys) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  const std::vector<Drift> d = outlierKeyDrift("equalize", "int8", "int8:no-equalize");
  ASSERT_EQ(d.size(), 3u);
  std::printf("%lld tokens; int8 KL to FP32: clean %.6f, keys %.6f, keys not scaled %.6f\n",
              static_cast<long long>(d[0].tokens), d[0].meanKL, d[1].meanKL, d[2].meanKL);
  EXPECT_LE(d[0].meanKL, 0.002);
  EXPECT_LE(d[1].meanKL, 0.002);
  EXPECT_LT(d[1].meanKL, 0.25 * d[2].meanKL);
}

} // namespace
} // namespace lathe::test
