// Shared setup of the tests of passes that transform channels before
// quantization (ReorderChannelsTest, EqualizeChannelsTest): stories15M
// imported twice, one copy calibrated for the pass to transform, and both
// lowered to artifacts in memory to compare what they compute.
#pragma once

#include "test/e2e/ModelFixture.h"

#include "codegen/KernelPlan/BuildKernelPlan.h"
#include "compiler/Calibration/Calibration.h"
#include "compiler/Frontend/Llama2cCheckpoint.h"
#include "compiler/Frontend/LlamaImporter.h"
#include "runtime/tokenizer/Tokenizer.h"

#include "mlir/IR/BuiltinOps.h"

#include <bit>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>

namespace lathe::test {

struct CalibratedPair {
  frontend::LlamaCheckpoint checkpoint; // holds the data the weights point into
  mlir::OwningOpRef<mlir::ModuleOp> original, calibrated;
  int64_t calibrationTokens = 0;
};

/// stories15M imported into `context` twice, the second copy calibrated on
/// the built-in text; null (and a failed test) on error.
inline std::unique_ptr<CalibratedPair> importCalibratedPair(mlir::MLIRContext &context) {
  auto ckpt = frontend::readLlama2cCheckpoint(modelDir() + "/stories15M.bin");
  EXPECT_TRUE(ckpt) << ckpt.error().message();
  auto vocab = loadLlama2cTokenizer(modelDir() + "/tokenizer.bin", 32000);
  EXPECT_TRUE(vocab) << vocab.error().message();
  if (!ckpt || !vocab)
    return nullptr;
  auto tokenizer = Tokenizer::create(*vocab);
  EXPECT_TRUE(tokenizer) << tokenizer.error().message();
  if (!tokenizer)
    return nullptr;
  auto pair = std::make_unique<CalibratedPair>();
  pair->checkpoint = ckpt.take();
  pair->original = frontend::importLlama(context, pair->checkpoint, "stories15M");
  pair->calibrated = frontend::importLlama(context, pair->checkpoint, "stories15M");
  auto stats =
      compiler::calibrate(*pair->calibrated, *tokenizer, compiler::defaultCalibrationText());
  EXPECT_TRUE(stats) << stats.error().message();
  if (!stats)
    return nullptr;
  pair->calibrationTokens = stats->tokens;
  return pair;
}

/// A tfm module lowered for the CPU and loaded as an artifact in memory,
/// without generating code.
struct InMemoryModel {
  codegen::LoweredModel lowered;
  std::shared_ptr<const artifact::Artifact> artifact;
};

inline InMemoryModel lowerInMemory(mlir::ModuleOp module) {
  InMemoryModel m;
  auto lowered = codegen::buildKernelPlan(module, "cpu");
  EXPECT_TRUE(mlir::succeeded(lowered));
  if (mlir::failed(lowered))
    return m;
  m.lowered = std::move(*lowered);
  artifact::ArtifactContents contents;
  contents.config = m.lowered.config;
  contents.tensors = m.lowered.tensors;
  contents.schedules.push_back(m.lowered.plan);
  auto a = artifact::Artifact::fromContents(contents, "in memory");
  EXPECT_TRUE(a) << a.error().message();
  if (a)
    m.artifact = *a;
  return m;
}

/// How many tensors of `b` hold other bytes than the same tensor of `a`.
inline size_t changedTensors(const InMemoryModel &a, const InMemoryModel &b) {
  EXPECT_EQ(a.lowered.tensors.size(), b.lowered.tensors.size());
  size_t changed = 0;
  for (size_t i = 0; i < std::min(a.lowered.tensors.size(), b.lowered.tensors.size()); ++i) {
    auto x = a.lowered.tensors[i].bytes, y = b.lowered.tensors[i].bytes;
    EXPECT_EQ(x.size(), y.size());
    changed += x.size() != y.size() || std::memcmp(x.data(), y.data(), x.size()) != 0;
  }
  return changed;
}

/// That `b` computes the function `a` does, up to float rounding: on every
/// reference prompt, logits within `tolerance` on each kernel path in
/// `paths` (1e-4 for logits of magnitude ~20: far above the rounding of a
/// reordered sum, far below any real change; 0: the same bits), and b's
/// first 50 greedy ids the reference's.
inline void expectSameFunction(const InMemoryModel &a, const InMemoryModel &b,
                               std::initializer_list<KernelPath> paths = {KernelPath::Fast},
                               float tolerance = 1e-4f) {
  nlohmann::json ref = loadReference();
  for (const auto &p : ref["prompts"]) {
    std::vector<int32_t> prompt = p["prompt_ids"];
    for (KernelPath path : paths) {
      SessionOptions options;
      options.kernels = path;
      auto sa = Session::create(a.artifact, options), sb = Session::create(b.artifact, options);
      ASSERT_TRUE(sa && sb);
      auto la = sa->forward(prompt);
      ASSERT_TRUE(la);
      std::vector<float> first(la->begin(), la->end());
      auto lb = sb->forward(prompt);
      ASSERT_TRUE(lb);
      ASSERT_EQ(first.size(), lb->size());
      for (size_t v = 0; v < first.size(); ++v) {
        if (tolerance == 0)
          ASSERT_EQ(std::bit_cast<uint32_t>(first[v]), std::bit_cast<uint32_t>((*lb)[v]))
              << "token " << v << " on the "
              << (path == KernelPath::Fast ? "fast" : "reference") << " path";
        else
          ASSERT_NEAR(first[v], (*lb)[v], tolerance) << "token " << v;
      }
    }
    std::vector<int32_t> expected = p["greedy_ids"];
    GenerationOptions g;
    g.maxNewTokens = 50;
    g.stopAtEndOfText = false;
    std::vector<int32_t> got;
    auto sb = Session::create(b.artifact);
    ASSERT_TRUE(sb);
    ASSERT_TRUE(generate(*sb, prompt, g, [&](int32_t t) { got.push_back(t); }));
    EXPECT_EQ(got, std::vector<int32_t>(expected.begin(), expected.begin() + 50));
  }
}

} // namespace lathe::test
