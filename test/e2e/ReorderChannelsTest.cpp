// Outlier channel reordering is folded into the weights: stories15M with its
// channels permuted (after calibration, before any quantization) computes the
// same function. Logits agree to float rounding, greedy ids exactly.
#include "test/e2e/CalibratedImport.h"

#include "passes/Passes.h"
#include "runtime/engine/Generation.h"
#include "runtime/engine/Session.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/Pass/PassManager.h"

namespace lathe::test {
namespace {

TEST(ReorderChannelsTest, PermutedModelComputesTheSameFunction) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  mlir::MLIRContext context;
  auto models = importCalibratedPair(context);
  ASSERT_TRUE(models);
  auto &original = models->original, &reordered = models->calibrated;

  // Calibration annotates every linear with per-channel statistics.
  EXPECT_GT(models->calibrationTokens, 300);
  int annotated = 0;
  reordered->walk([&](tfm::LinearOp l) {
    auto rms = l->getAttrOfType<mlir::DenseElementsAttr>(compiler::kCalibRmsAttr);
    ASSERT_TRUE(rms);
    EXPECT_EQ(rms.getNumElements(),
              mlir::cast<mlir::RankedTensorType>(l.getInput().getType()).getDimSize(1));
    ++annotated;
  });
  EXPECT_EQ(annotated, 42);

  mlir::PassManager pm(&context);
  ReorderChannelsOptions options;
  options.format = "bfp4:block=16";
  pm.addPass(createReorderChannels(options));
  ASSERT_TRUE(mlir::succeeded(pm.run(*reordered)));

  InMemoryModel a = lowerInMemory(*original), b = lowerInMemory(*reordered);
  ASSERT_TRUE(a.artifact && b.artifact);
  EXPECT_GT(changedTensors(a, b), 0u) << "the pass chose the identity everywhere";

  nlohmann::json ref = loadReference();
  for (const auto &p : ref["prompts"]) {
    std::vector<int32_t> prompt = p["prompt_ids"];
    auto sa = Session::create(a.artifact), sb = Session::create(b.artifact);
    ASSERT_TRUE(sa && sb);
    auto la = sa->forward(prompt);
    ASSERT_TRUE(la);
    std::vector<float> first(la->begin(), la->end());
    auto lb = sb->forward(prompt);
    ASSERT_TRUE(lb);
    // Permuting channels changes only the order of float sums: 1e-4 on
    // logits of magnitude ~20 is far above that rounding and far below any
    // real change.
    for (size_t v = 0; v < first.size(); ++v)
      ASSERT_NEAR(first[v], (*lb)[v], 1e-4) << "token " << v;

    std::vector<int32_t> expected = p["greedy_ids"];
    GenerationOptions g;
    g.maxNewTokens = 50;
    g.stopAtEndOfText = false;
    std::vector<int32_t> got;
    sb->reset();
    ASSERT_TRUE(generate(*sb, prompt, g, [&](int32_t t) { got.push_back(t); }));
    EXPECT_EQ(got, std::vector<int32_t>(expected.begin(), expected.begin() + 50));
  }
}

} // namespace
} // namespace lathe::test
