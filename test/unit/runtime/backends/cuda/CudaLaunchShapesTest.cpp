// The launch-shape arithmetic that host and generated device code share
// (runtime/backends/cuda/kernels/CudaFrame.h), checked without a GPU: the
// one-token attention's splits must stay inside the scratch the generated
// module sizes for them (codegen/CUDA/EmitCudaModel.cpp: twice the target
// blocks), or the splits' partial sums would overrun it on the device; the
// wgmma tiles' blocks must read inside the split token rows.
#include "runtime/backends/cuda/kernels/CudaFrame.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace {

TEST(CudaLaunchShapesTest, AttentionSplitsStayInsideTheModuleScratch) {
  for (int64_t tokens = 1; tokens <= 4096; ++tokens)
    for (int64_t groups = 1; groups <= 64; ++groups) {
      const int64_t splits = LATHE_CUDA_ATTENTION_SPLITS(tokens, groups);
      ASSERT_GE(splits, 1) << tokens << " tokens, " << groups << " groups";
      ASSERT_LE(splits, LATHE_CUDA_ATTENTION_MAX_SPLITS);
      if (splits > 1) {
        // Scratch: a block's partials for each (token, group, split); and
        // one arrival counter per (token, group).
        ASSERT_LT(tokens * groups * splits, 2 * LATHE_CUDA_ATTENTION_TARGET_BLOCKS)
            << tokens << " tokens, " << groups << " groups";
        ASSERT_LT(tokens * groups, LATHE_CUDA_ATTENTION_TARGET_BLOCKS);
      }
    }
}

TEST(CudaLaunchShapesTest, AttentionSplitsFillTheTargetUntilTheCap) {
  // One sequence, 8 KV-head groups (the Llama-3.2-1B shape): as many
  // splits as the cap allows (256 blocks); 16 sequences: 2 (256 blocks); 4
  // sequences: 8; a step with a block per token and group already at the
  // target: none.
  EXPECT_EQ(LATHE_CUDA_ATTENTION_SPLITS(1, 8), LATHE_CUDA_ATTENTION_MAX_SPLITS);
  EXPECT_EQ(LATHE_CUDA_ATTENTION_SPLITS(16, 8), 2);
  EXPECT_EQ(LATHE_CUDA_ATTENTION_SPLITS(4, 8), 8);
  EXPECT_EQ(LATHE_CUDA_ATTENTION_SPLITS(32, 8), 1);
  EXPECT_EQ(LATHE_CUDA_ATTENTION_SPLITS(20, 8), 2); // 160 blocks: 320 with 2
}

TEST(CudaLaunchShapesTest, WgmmaBlocksCoverTheTokensInsideTheSplitRowsRoom) {
  // The split token rows hold the step's tokens rounded up to
  // LATHE_CUDA_MAX_BLOCK_TOKENS: a launch's blocks of either size must read
  // inside them, and cover every token.
  for (int64_t blocks = 1; blocks <= 600; ++blocks)
    for (int64_t tokens = 1; tokens <= 4096; ++tokens) {
      const int64_t unit = LATHE_CUDA_WGMMA_TOKENS(blocks, tokens);
      ASSERT_TRUE(unit == 64 || unit == 128);
      const int64_t rounded = LATHE_CUDA_TILE_ROUNDED(tokens, unit);
      ASSERT_GE(rounded, tokens);
      ASSERT_LE(rounded, LATHE_CUDA_TILE_ROUNDED(tokens, LATHE_CUDA_MAX_BLOCK_TOKENS));
      // 128-token blocks only where they leave 96 blocks or more.
      if (unit == 128)
        ASSERT_GE(blocks * (rounded / unit), 96) << blocks << " blocks, " << tokens << " tokens";
    }
}

TEST(CudaLaunchShapesTest, WgmmaBlocksOfTheLlamaShape) {
  // Llama-3.2-1B: q/k/v in 8 + 2 + 2 blocks of 256 rows, gate/up in 64 of
  // 128, output and down in 8 of 256.
  EXPECT_EQ(LATHE_CUDA_WGMMA_TOKENS(12, 2048), 128);
  EXPECT_EQ(LATHE_CUDA_WGMMA_TOKENS(12, 512), 64);
  EXPECT_EQ(LATHE_CUDA_WGMMA_TOKENS(64, 200), 128);
  EXPECT_EQ(LATHE_CUDA_WGMMA_TOKENS(8, 2048), 128);
  EXPECT_EQ(LATHE_CUDA_WGMMA_TOKENS(8, 1024), 64);
}

} // namespace
