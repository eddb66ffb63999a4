// Which plan steps the CUDA target runs in one launch: every fusion is
// taken where the buffers allow it and refused where a block of the fused
// launch would write what another still reads, or a later step still needs
// an intermediate the fusion never writes.
#include "codegen/CUDA/FusedLaunches.h"

#include <gtest/gtest.h>

namespace lathe::codegen {
namespace {

using namespace plan;

bool fits(uint64_t width) { return width <= 12288; }

/// The plans' tensors as far as fusion looks at them: gains of the rows'
/// width, 8.
const std::vector<TensorInfo> kGains(16, TensorInfo{"gain", ElementType::F32, {8}, {}});

KernelPlan planOf(std::vector<Step> steps, uint32_t buffers, uint32_t logits) {
  KernelPlan plan;
  plan.bufferWidths.assign(buffers, 8);
  plan.steps = std::move(steps);
  plan.logits = logits;
  return plan;
}

// One Llama layer and the classifier, buffers as the plan's reuse pass
// leaves them: x 0; norm 1; q/k/v 2, 3, 4; rope outputs 5, 6; attention 7;
// o 8; sum 9; norm 10; gate/up 11, 12; h 13; down 14; sum 15; norm 16;
// logits 17.
std::vector<Step> layer() {
  return {
      EmbeddingStep{0, 0},
      RmsNormStep{0, 1, 1, 1e-5f},
      MatMulsStep{1, {2, 3, 4}, {2, 3, 4}},
      RopeStep{2, 5, 4, 1e4f, RopeLayout::Interleaved},
      RopeStep{3, 6, 4, 1e4f, RopeLayout::Interleaved},
      AttentionStep{5, 6, 4, 7, 0, 2, 2, 4},
      MatMulStep{7, 5, 8},
      AddRmsNormStep{0, 8, 6, 9, 10, 1e-5f},
      MatMulsStep{10, {7, 8}, {11, 12}},
      SiluMulStep{11, 12, 13},
      MatMulStep{13, 9, 14},
      AddRmsNormStep{9, 14, 10, 15, 16, 1e-5f},
      LogitsStep{16, 0, 17},
  };
}

TEST(FusedLaunchesTest, LlamaLayerFusesEveryNeighbour) {
  const KernelPlan plan = planOf(layer(), 18, 17);
  const FusedLaunches f = fuseLaunches(plan, kGains, fits);
  // Norms into the products after them: of x for layer 0's, of the sums
  // the matmuls before them write for the others.
  ASSERT_TRUE(f.normOf[2] && f.normOf[8] && f.normOf[12]);
  EXPECT_EQ(f.normOf[2]->step, 1u);
  EXPECT_EQ(f.normOf[2]->input, 0u);
  EXPECT_EQ(f.normOf[2]->gain, 1u);
  EXPECT_EQ(f.normOf[8]->step, 7u);
  EXPECT_EQ(f.normOf[8]->input, 9u);
  EXPECT_EQ(f.normOf[8]->gain, 6u);
  EXPECT_EQ(f.normOf[12]->step, 11u);
  EXPECT_EQ(f.normOf[12]->input, 15u);
  // Adds into the matmuls before them, with the other addend and the sum.
  ASSERT_TRUE(f.residualOf[6] && f.residualOf[10]);
  EXPECT_EQ(f.residualOf[6]->step, 7u);
  EXPECT_EQ(f.residualOf[6]->other, 0u);
  EXPECT_EQ(f.residualOf[6]->sum, 9u);
  EXPECT_EQ(f.residualOf[10]->step, 11u);
  EXPECT_EQ(f.residualOf[10]->other, 9u);
  EXPECT_EQ(f.residualOf[10]->sum, 15u);
  EXPECT_TRUE(f.addDone[7]);
  EXPECT_TRUE(f.addDone[11]);
  // SwiGLU into gate/up; both ropes into attention's KV store.
  EXPECT_EQ(f.gatedOf[8], 9u);
  EXPECT_EQ(f.ropeOf[5], 3u);
  // For a single token the q/k/v product does the ropes and the KV store
  // of attention step 5; no other product does.
  EXPECT_EQ(f.ropeProductOf[2], 5u);
  for (size_t i = 0; i < f.ropeProductOf.size(); ++i)
    EXPECT_TRUE(i == 2 || !f.ropeProductOf[i]) << i;
  const std::vector<bool> absorbed{false, true,  false, true,  true,  false, false,
                                   true,  false, true,  false, true,  false};
  EXPECT_EQ(f.absorbed, absorbed);
}

TEST(FusedLaunchesTest, SumOverTheMatmulInputIsNotFused) {
  std::vector<Step> steps = layer();
  // The add_rms_norm's sum takes the o-product's input: other blocks of the
  // product would still read it while one writes the sum.
  steps[7] = AddRmsNormStep{0, 8, 6, 7, 10, 1e-5f};
  const FusedLaunches f = fuseLaunches(planOf(steps, 18, 17), kGains, fits);
  EXPECT_FALSE(f.residualOf[6]);
  EXPECT_FALSE(f.addDone[7]);
  // Without the add done, its norm stays a kernel of its own.
  EXPECT_FALSE(f.normOf[8]);
  EXPECT_FALSE(f.absorbed[7]);
}

TEST(FusedLaunchesTest, IntermediatesReadLaterAreNotFused) {
  std::vector<Step> steps = layer();
  // A later step reads the norm's output, the o-product's output and the
  // gate's output: none of them may disappear into a fused launch.
  steps.insert(steps.end() - 1, AddStep{1, 8, 17});
  steps.insert(steps.end() - 1, AddStep{11, 11, 17});
  const FusedLaunches f = fuseLaunches(planOf(steps, 18, 17), kGains, fits);
  EXPECT_FALSE(f.normOf[2]);
  EXPECT_FALSE(f.residualOf[6]);
  EXPECT_FALSE(f.gatedOf[8]);
  EXPECT_FALSE(f.absorbed[1]);
  EXPECT_FALSE(f.absorbed[9]);
}

TEST(FusedLaunchesTest, ProductWritingTheNormInputIsNotFused) {
  std::vector<Step> steps = layer();
  // The q/k/v products overwrite x, which every block of the fused launch
  // reads to normalize.
  steps[2] = MatMulsStep{1, {2, 3, 4}, {0, 3, 4}};
  const FusedLaunches f = fuseLaunches(planOf(steps, 18, 17), kGains, fits);
  EXPECT_FALSE(f.normOf[2]);
  // Rows too wide for shared memory are not normalized in it either.
  const FusedLaunches narrow = fuseLaunches(planOf(layer(), 18, 17), kGains,
                                            [](uint64_t) { return false; });
  EXPECT_FALSE(narrow.normOf[2]);
  EXPECT_FALSE(narrow.absorbed[1]);
}

TEST(FusedLaunchesTest, NormOfSlicesIsNotFused) {
  // A gain of 4 over rows of 8 normalizes each half on its own (per-head
  // q/k norms); the products' prologue normalizes whole rows.
  std::vector<TensorInfo> tensors = kGains;
  tensors[1].shape = {4};
  const FusedLaunches f = fuseLaunches(planOf(layer(), 18, 17), tensors, fits);
  EXPECT_FALSE(f.normOf[2]);
  EXPECT_FALSE(f.absorbed[1]);
  EXPECT_TRUE(f.normOf[8]); // the other norms still are
}

TEST(FusedLaunchesTest, RopesOfDifferentScalingStaySeparate) {
  std::vector<Step> steps = layer();
  std::get<RopeStep>(steps[3]).scalingFactor = 8.0f;
  const FusedLaunches f = fuseLaunches(planOf(steps, 18, 17), kGains, fits);
  EXPECT_FALSE(f.ropeOf[5]);
}

TEST(FusedLaunchesTest, RopesSharingBuffersStaySeparate) {
  std::vector<Step> steps = layer();
  // The keys' rope writes the queries' input.
  steps[4] = RopeStep{3, 2, 4, 1e4f, RopeLayout::Interleaved};
  steps[5] = AttentionStep{5, 2, 4, 7, 0, 2, 2, 4};
  const FusedLaunches f = fuseLaunches(planOf(steps, 18, 17), kGains, fits);
  EXPECT_FALSE(f.ropeOf[5]);
  EXPECT_FALSE(f.absorbed[3]);
  EXPECT_FALSE(f.absorbed[4]);
}

TEST(FusedLaunchesTest, RopeInputsReadLaterKeepTheRopesOutOfTheProduct) {
  // The product would not write the queries' or the keys' unrotated rows
  // for a single token, so a later reader of either keeps the ropes in
  // their own launch; the ropes and the KV store still fuse.
  for (uint32_t unrotated : {2u, 3u}) {
    std::vector<Step> steps = layer();
    steps.insert(steps.end() - 1, AddStep{unrotated, 8, 17});
    const FusedLaunches f = fuseLaunches(planOf(steps, 18, 17), kGains, fits);
    EXPECT_FALSE(f.ropeProductOf[2]) << unrotated;
    EXPECT_EQ(f.ropeOf[5], 3u);
  }
}

TEST(FusedLaunchesTest, RopesInPlaceFuseIntoTheProduct) {
  // Ropes that rotate their input in place: the product writes the rotated
  // rows where the unrotated ones were, and a later reader sees them as
  // after the rope.
  std::vector<Step> steps = layer();
  steps[3] = RopeStep{2, 2, 4, 1e4f, RopeLayout::Interleaved};
  steps[4] = RopeStep{3, 3, 4, 1e4f, RopeLayout::Interleaved};
  steps[5] = AttentionStep{2, 3, 4, 7, 0, 2, 2, 4};
  steps.insert(steps.end() - 1, AddStep{2, 8, 17});
  const FusedLaunches f = fuseLaunches(planOf(steps, 18, 17), kGains, fits);
  EXPECT_EQ(f.ropeProductOf[2], 5u);
}

TEST(FusedLaunchesTest, ProductsNotFeedingTheRopesExactlyStaySeparate) {
  // Outputs in another order than the ropes and attention read them, a
  // step between the product and the ropes (a bias), and a rope that
  // writes the product's input: each keeps the ropes in their own launch.
  std::vector<Step> swapped = layer();
  swapped[2] = MatMulsStep{1, {2, 3, 4}, {3, 2, 4}};
  EXPECT_FALSE(fuseLaunches(planOf(swapped, 18, 17), kGains, fits).ropeProductOf[2]);
  std::vector<Step> bias = layer();
  bias.insert(bias.begin() + 3, BiasAddStep{2, 2, 2});
  EXPECT_FALSE(fuseLaunches(planOf(bias, 18, 17), kGains, fits).ropeProductOf[2]);
  // (The norm stays a launch of its own here, so the product reads 5.)
  std::vector<Step> overwrite = layer();
  overwrite[1] = RmsNormStep{0, 1, 5, 1e-5f}; // the queries' rope writes 5
  overwrite[2] = MatMulsStep{5, {2, 3, 4}, {2, 3, 4}};
  const auto noNorms = [](uint64_t) { return false; };
  EXPECT_FALSE(fuseLaunches(planOf(overwrite, 18, 17), kGains, noNorms).ropeProductOf[2]);
  // With the norm fused, the launch reads x instead, and the product may
  // write 5.
  EXPECT_EQ(fuseLaunches(planOf(overwrite, 18, 17), kGains, fits).ropeProductOf[2], 5u);
}

} // namespace
} // namespace lathe::codegen
