#include "compiler/Calibration/Calibration.h"

#include "codegen/KernelPlan/BuildKernelPlan.h"
#include "dialects/Transformer/TransformerDialect.h"
#include "runtime/artifact/Artifact.h"
#include "runtime/engine/Generation.h"
#include "runtime/engine/Session.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace lathe::compiler {
namespace {

struct ChannelStats {
  std::vector<double> sumSquares;
  std::vector<float> absMax;
  int64_t rows = 0;
};

} // namespace

Expected<CalibrationStats> calibrate(mlir::ModuleOp module, const Tokenizer &tokenizer,
                                     std::string_view text, int64_t maxTokens) {
  Expected<std::vector<TextSequence>> lines = tokenizeLines(text, tokenizer);
  if (!lines)
    return lines.error();
  return calibrateOn(module, *lines, maxTokens);
}

Expected<CalibrationStats> calibrate(mlir::ModuleOp module, const TextTokenizer &tokenizer,
                                     std::string_view text, int64_t maxTokens) {
  Expected<std::vector<TextSequence>> lines = tokenizeLines(text, tokenizer);
  if (!lines)
    return lines.error();
  return calibrateOn(module, *lines, maxTokens);
}

Expected<CalibrationStats> calibrateOn(mlir::ModuleOp module,
                                       const std::vector<TextSequence> &sequences,
                                       int64_t maxTokens) {
  // One step per tfm op (no grouping or fusion), float activations: the
  // i-th matmul step is the i-th tfm.linear of the module.
  codegen::PlanOptions planOptions;
  planOptions.fuse = false;
  mlir::FailureOr<codegen::LoweredModel> lowered =
      codegen::buildKernelPlan(module, "cpu", planOptions);
  if (mlir::failed(lowered))
    return Error("calibration: cannot lower the model to a kernel plan");
  artifact::ArtifactContents contents;
  contents.config = lowered->config;
  contents.tensors = lowered->tensors;
  contents.schedules.push_back(lowered->plan);
  auto model = artifact::Artifact::fromContents(contents, "calibration model");
  if (!model)
    return model.error();
  // Calibration runs on the reference kernels: the numerics every other
  // kernel is tested against.
  SessionOptions options;
  options.kernels = KernelPath::Reference;
  auto session = Session::create(*model, options);
  if (!session)
    return session.error();

  std::map<size_t, ChannelStats> stats; // by plan step
  Status observed = session->setMatMulObserver([&](size_t step, const float *x, int64_t rows,
                                                   int64_t width) {
    ChannelStats &s = stats[step];
    if (s.sumSquares.empty()) {
      s.sumSquares.assign(width, 0.0);
      s.absMax.assign(width, 0.0f);
    }
    for (int64_t t = 0; t < rows; ++t)
      for (int64_t k = 0; k < width; ++k) {
        float v = x[t * width + k];
        s.sumSquares[k] += double(v) * v;
        s.absMax[k] = std::max(s.absMax[k], std::fabs(v));
      }
    s.rows += rows;
  });
  if (!observed)
    return observed.error();

  CalibrationStats result;
  const int64_t context = lowered->config.context;
  for (const TextSequence &sequence : sequences) {
    if (result.tokens >= maxTokens)
      break;
    const std::vector<int32_t> &ids = sequence.ids;
    for (size_t begin = 0; begin < ids.size() && result.tokens < maxTokens;
         begin += context) {
      size_t n = std::min<size_t>({ids.size() - begin, size_t(context),
                                   size_t(maxTokens - result.tokens)});
      session->reset();
      auto logits = session->forward(std::span<const int32_t>(ids.data() + begin, n));
      if (!logits)
        return Error("calibration: " + logits.error().message());
      result.tokens += static_cast<int64_t>(n);
    }
    ++result.sequences;
  }
  if (result.tokens == 0)
    return Error("calibration: the calibration text is empty");

  std::vector<mlir::Operation *> linears;
  module.walk([&](tfm::LinearOp linear) { linears.push_back(linear); });
  std::map<size_t, mlir::Operation *> linearOfStep;
  for (size_t i = 0, matmuls = 0; i < lowered->plan.steps.size(); ++i)
    if (std::holds_alternative<plan::MatMulStep>(lowered->plan.steps[i]) &&
        matmuls < linears.size())
      linearOfStep[i] = linears[matmuls++];
  mlir::Builder b(module.getContext());
  for (auto &[step, s] : stats) {
    auto found = linearOfStep.find(step);
    if (found == linearOfStep.end())
      continue;
    mlir::Operation *op = found->second;
    std::vector<float> rms(s.sumSquares.size());
    for (size_t k = 0; k < rms.size(); ++k)
      rms[k] = static_cast<float>(std::sqrt(s.sumSquares[k] / double(s.rows)));
    auto type = mlir::RankedTensorType::get({int64_t(rms.size())}, b.getF32Type());
    op->setAttr(kCalibRmsAttr, mlir::DenseElementsAttr::get(type, llvm::ArrayRef(rms)));
    op->setAttr(kCalibAbsMaxAttr,
                mlir::DenseElementsAttr::get(type, llvm::ArrayRef(s.absMax)));
  }
  return result;
}

} // namespace lathe::compiler
