// The decisions of the CUDA host schedule's calls
// (runtime/backends/cuda/schedule/CudaScheduleAbi.h), which every
// generated schedule makes for each launch, checked without a GPU: which
// kernel a launch runs for a step, on what grid, threads and shared memory,
// and which launches a step leaves out.
#include "runtime/backends/cuda/schedule/CudaScheduleAbi.h"
#include "test/unit/runtime/backends/cuda/ScheduleRecorder.h"

#include <gtest/gtest.h>

#include <vector>

namespace {

using Recorder = lathe::test::ScheduleRecorder;
LatheCudaStepFacts step(int64_t rows) { return lathe::test::scheduleStep(rows); }

void expectGrid(const LatheCudaLaunchCall &c, uint32_t x, uint32_t y, uint32_t z) {
  EXPECT_EQ(c.grid[0], x);
  EXPECT_EQ(c.grid[1], y);
  EXPECT_EQ(c.grid[2], z);
}

TEST(CudaScheduleAbiTest, PerTokensLaunchesSkipOneTokenSteps) {
  Recorder r;
  const LatheCudaStepFacts one = step(1), three = step(3);
  lathe_cuda_schedule_per_token(&one, &r.launcher, 4, 6, 0, /*severalTokens=*/1);
  EXPECT_TRUE(r.calls.empty()) << "the q/k/v product did its work";
  lathe_cuda_schedule_per_token(&one, &r.launcher, 4, 6, 0, 0);
  lathe_cuda_schedule_per_token(&three, &r.launcher, 5, 6, 128, 1);
  ASSERT_EQ(r.calls.size(), 2u);
  expectGrid(r.calls[0], 1, 6, 1);
  EXPECT_EQ(r.calls[0].kernel, LATHE_CUDA_KERNEL_STEP);
  expectGrid(r.calls[1], 3, 6, 1);
  EXPECT_EQ(r.calls[1].launch, 5);
  EXPECT_EQ(r.calls[1].sharedBytes, 128u);
  EXPECT_EQ(r.calls[1].threads, uint32_t(LATHE_CUDA_THREADS));
  EXPECT_EQ(r.calls[1].args, -1);
}

TEST(CudaScheduleAbiTest, AttentionTakesQueryTilesOnlyWhereTheyAreLongEnough) {
  Recorder r;
  // 64 tokens in 4 tiles of 16: the tensor-core kernel, a block per tile
  // (a block per token when the launch is captured for any tiling).
  LatheCudaStepFacts prompt = step(64);
  prompt.queryTiles = 4;
  lathe_cuda_schedule_attention(&prompt, &r.launcher, 3, 8, 0, /*queryTile=*/16, 0, 0);
  prompt.graphed = 1;
  lathe_cuda_schedule_attention(&prompt, &r.launcher, 3, 8, 0, 16, /*wgmma=*/1, /*args=*/40);
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].kernel, LATHE_CUDA_KERNEL_TILES);
  expectGrid(r.calls[0], 4, 8, 1);
  EXPECT_EQ(r.calls[0].args, -1);
  expectGrid(r.calls[1], 64, 8, 1);
  EXPECT_EQ(r.calls[1].args, 40) << "the wgmma attention takes its argument offset";
  // 16 sequences of one token each: 16 tiles of one token, the per-token
  // kernel with the rows split on z, no more than the step allows.
  r.calls.clear();
  LatheCudaStepFacts decode = step(16);
  decode.attentionSplits = 1;
  lathe_cuda_schedule_attention(&decode, &r.launcher, 3, 8, 0, 16, 0, 0);
  decode.attentionSplits = 32;
  lathe_cuda_schedule_attention(&decode, &r.launcher, 3, 8, 0, 16, 0, 0);
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].kernel, LATHE_CUDA_KERNEL_STEP);
  expectGrid(r.calls[0], 16, 8, 1);
  expectGrid(r.calls[1], 16, 8, uint32_t(LATHE_CUDA_ATTENTION_SPLITS(16, 8)));
}

TEST(CudaScheduleAbiTest, ProductsPickTheirTilesByTokens) {
  // 384 + 64 rows of k = 1024 in bf16: 2 blocks on the CUDA cores, 28
  // narrow tiles, 4 wide wgmma ones, 16 stages of k.
  auto product = [](const LatheCudaStepFacts &s, Recorder &r) {
    lathe_cuda_schedule_product(&s, &r.launcher, 7, 2, 0, 0, /*tileBlocks=*/28,
                                /*wideBlocks=*/4, /*wideMinTokens=*/17, /*wgmma=*/1,
                                /*wgmmaArgs=*/12, /*pairBlocks=*/0, /*kStages=*/16);
  };
  Recorder r;
  product(step(4), r);  // below LATHE_CUDA_TILE_MIN_TOKENS
  product(step(16), r); // narrow tiles, 16 tokens a block
  product(step(17), r); // wgmma, 64 tokens a block: too few blocks, k split
  ASSERT_EQ(r.calls.size(), 3u);
  EXPECT_EQ(r.calls[0].kernel, LATHE_CUDA_KERNEL_STEP);
  expectGrid(r.calls[0], 2, 1, 1);
  EXPECT_EQ(r.calls[1].kernel, LATHE_CUDA_KERNEL_TILES);
  expectGrid(r.calls[1], 28, 1, 1);
  EXPECT_EQ(r.calls[1].sharedBytes, uint32_t(LATHE_CUDA_TILE_SHARED));
  EXPECT_EQ(r.calls[2].kernel, LATHE_CUDA_KERNEL_WIDE);
  expectGrid(r.calls[2], 4, 1, LATHE_CUDA_WGMMA_MAX_SPLITS);
  EXPECT_EQ(r.calls[2].threads, uint32_t(LATHE_CUDA_WGMMA_THREADS));
  EXPECT_EQ(r.calls[2].sharedBytes, uint32_t(LATHE_CUDA_WGMMA_SHARED));
  EXPECT_EQ(r.calls[2].args, 12);
  // Splits capped by the runtime's setting and by the product's stages.
  r.calls.clear();
  LatheCudaStepFacts capped = step(17);
  capped.wgmmaSplits = 2;
  product(capped, r);
  lathe_cuda_schedule_product(&capped, &r.launcher, 7, 2, 0, 0, 28, 4, 17, 1, 12, 0,
                              /*kStages=*/1);
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].grid[2], 2u);
  EXPECT_EQ(r.calls[1].grid[2], 1u);
  // The code for other GPUs: the staged tiles on 256 threads, unsplit.
  r.calls.clear();
  LatheCudaStepFacts noWgmma = step(17);
  noWgmma.wgmmaCode = 0;
  product(noWgmma, r);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].kernel, LATHE_CUDA_KERNEL_WIDE);
  expectGrid(r.calls[0], 4, 1, 1);
  EXPECT_EQ(r.calls[0].threads, uint32_t(LATHE_CUDA_THREADS));
  EXPECT_EQ(r.calls[0].sharedBytes, uint32_t(LATHE_CUDA_WGMMA_FALLBACK_SHARED));
  EXPECT_EQ(r.calls[0].args, 12);
  // The classifier (gather) counts the tokens that return logits.
  r.calls.clear();
  LatheCudaStepFacts fewLogits = step(64);
  fewLogits.logitTokens = 1;
  lathe_cuda_schedule_product(&fewLogits, &r.launcher, 9, 5, 0, /*gather=*/1, 28, 0, 0, 0, 0, 0,
                              0);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].kernel, LATHE_CUDA_KERNEL_STEP);
}

TEST(CudaScheduleAbiTest, SplitsWriteTheRowsTheNextTilesRead) {
  Recorder r;
  // Before narrow tiles: 20 tokens rounded to 32; before wgmma tiles of 64
  // tokens a block (wideMinTokens 17): to 64; no tiles: nothing.
  LatheCudaStepFacts twenty = step(20);
  lathe_cuda_schedule_split(&twenty, &r.launcher, 6, 2, 0, 0, 0, 0, 0, /*afterWideMin=*/512, 0,
                            4, 0);
  lathe_cuda_schedule_split(&twenty, &r.launcher, 6, 2, 0, 0, 0, 0, 0, 17, 1, 4, 0);
  const LatheCudaStepFacts one = step(1);
  lathe_cuda_schedule_split(&one, &r.launcher, 6, 2, 0, 0, 0, 0, 0, 17, 1, 4, 0);
  ASSERT_EQ(r.calls.size(), 2u);
  expectGrid(r.calls[0], 32, 2, 1);
  expectGrid(r.calls[1], 64, 2, 1);
  // The down projection's rows, written by gate and up's narrow tiles
  // (narrowWritten 1): split only where either launch takes wide tiles.
  r.calls.clear();
  lathe_cuda_schedule_split(&twenty, &r.launcher, 6, 2, 0, 0, /*narrowWritten=*/1, 512, 0, 512,
                            0, 4, 0);
  LatheCudaStepFacts long_ = step(600);
  lathe_cuda_schedule_split(&long_, &r.launcher, 6, 2, 0, 0, 1, 512, 0, 512, 0, 4, 0);
  ASSERT_EQ(r.calls.size(), 1u);
  expectGrid(r.calls[0], 640, 2, 1);
  // ... and by their wgmma tiles too (2): not where those run.
  r.calls.clear();
  lathe_cuda_schedule_split(&twenty, &r.launcher, 6, 2, 0, 0, 2, 17, 1, 17, 1, 4, 0);
  twenty.wgmmaCode = 0;
  lathe_cuda_schedule_split(&twenty, &r.launcher, 6, 2, 0, 0, 2, 17, 1, 17, 1, 4, 0);
  ASSERT_EQ(r.calls.size(), 1u);
  expectGrid(r.calls[0], 64, 2, 1);
}

TEST(CudaScheduleAbiTest, AStepRunsItsRangeAndStopsAtAFailure) {
  Recorder r;
  LatheCudaStepFacts s = step(1);
  s.first = 2;
  s.end = 4;
  for (int32_t i = 0; i < 6; ++i)
    lathe_cuda_schedule_per_token(&s, &r.launcher, i, 1, 0, 0);
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.calls[0].launch, 2);
  EXPECT_EQ(r.calls[1].launch, 3);
  Recorder failing;
  failing.failAt = 0;
  s.first = 0;
  for (int32_t i = 0; i < 3; ++i)
    lathe_cuda_schedule_per_token(&s, &failing.launcher, i, 1, 0, 0);
  EXPECT_EQ(failing.calls.size(), 1u);
  EXPECT_EQ(failing.launcher.failed, 1);
}

} // namespace
