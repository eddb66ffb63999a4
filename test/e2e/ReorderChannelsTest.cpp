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

  expectSameFunction(a, b);
}

} // namespace
} // namespace lathe::test
