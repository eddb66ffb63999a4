// The launch-shape arithmetic that host and generated device code share
// (runtime/backends/cuda/kernels/CudaFrame.h), checked without a GPU: the
// one-token attention's splits must stay inside the scratch the generated
// module sizes for them (codegen/CUDA/EmitCudaModel.cpp: twice the target
// blocks), or the splits' partial sums would overrun it on the device.
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

} // namespace
