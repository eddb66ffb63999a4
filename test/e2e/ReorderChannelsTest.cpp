// Outlier channel reordering is folded into the weights: stories15M with its
// channels permuted (after calibration, before any quantization) computes the
// same function. Logits agree to float rounding, greedy ids exactly.
#include "test/e2e/ModelFixture.h"

#include "codegen/KernelPlan/BuildKernelPlan.h"
#include "compiler/Calibration/Calibration.h"
#include "compiler/Frontend/Llama2cCheckpoint.h"
#include "compiler/Frontend/LlamaImporter.h"
#include "passes/Passes.h"
#include "runtime/engine/Generation.h"
#include "runtime/engine/Session.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/Pass/PassManager.h"

#include <cstring>

namespace lathe::test {
namespace {

struct InMemoryModel {
  codegen::LoweredModel lowered;
  std::shared_ptr<const artifact::Artifact> artifact;
};

InMemoryModel lower(mlir::ModuleOp module) {
  InMemoryModel m;
  auto lowered = codegen::buildKernelPlan(module, "cpu");
  EXPECT_TRUE(mlir::succeeded(lowered));
  m.lowered = std::move(*lowered);
  artifact::ArtifactContents contents;
  contents.config = m.lowered.config;
  contents.tensors = m.lowered.tensors;
  contents.schedules.push_back(m.lowered.plan);
  auto a = artifact::Artifact::fromContents(contents, "in memory");
  EXPECT_TRUE(a) << a.error().message();
  m.artifact = *a;
  return m;
}

TEST(ReorderChannelsTest, PermutedModelComputesTheSameFunction) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  auto ckpt = frontend::readLlama2cCheckpoint(modelDir() + "/stories15M.bin");
  ASSERT_TRUE(ckpt);
  auto vocab = loadLlama2cTokenizer(modelDir() + "/tokenizer.bin", 32000);
  ASSERT_TRUE(vocab);
  auto tokenizer = Tokenizer::create(*vocab);
  ASSERT_TRUE(tokenizer);

  mlir::MLIRContext context;
  auto original = frontend::importLlama(context, *ckpt, "stories15M");
  auto reordered = frontend::importLlama(context, *ckpt, "stories15M");

  // Calibration annotates every linear with per-channel statistics.
  auto stats = compiler::calibrate(*reordered, *tokenizer, compiler::defaultCalibrationText());
  ASSERT_TRUE(stats) << stats.error().message();
  EXPECT_GT(stats->tokens, 300);
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

  InMemoryModel a = lower(*original), b = lower(*reordered);
  ASSERT_TRUE(a.artifact && b.artifact);
  size_t moved = 0;
  for (size_t i = 0; i < a.lowered.tensors.size(); ++i) {
    auto x = a.lowered.tensors[i].bytes, y = b.lowered.tensors[i].bytes;
    ASSERT_EQ(x.size(), y.size());
    moved += std::memcmp(x.data(), y.data(), x.size()) != 0;
  }
  EXPECT_GT(moved, 0u) << "the pass chose the identity everywhere";

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
