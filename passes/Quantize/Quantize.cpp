//===- Quantize.cpp - pack tfm.linear weights into a number format --------===//
#include "passes/Passes.h"
#include "passes/Quantize/PackWeights.h"

namespace lathe {
#define GEN_PASS_DEF_QUANTIZE
#include "passes/Passes.h.inc"
} // namespace lathe

using namespace mlir;

namespace lathe {
namespace {

struct QuantizePass : impl::QuantizeBase<QuantizePass> {
  using QuantizeBase::QuantizeBase;

  void runOnOperation() override {
    Expected<formats::FormatSpec> spec = formats::parseFormatSpec(format);
    if (!spec) {
      getOperation().emitError() << "lathe-quantize: " << spec.error().message();
      return signalPassFailure();
    }
    Expected<formats::FormatSpec> classifierSpec =
        classifierFormat.empty() ? spec : formats::parseFormatSpec(classifierFormat);
    if (!classifierSpec) {
      getOperation().emitError() << "lathe-quantize: classifier-format: "
                                 << classifierSpec.error().message();
      return signalPassFailure();
    }
    FailureOr<std::vector<LinearWeight>> weights =
        collectLinearWeights(getOperation(), classifier, /*values=*/!shapesOnly);
    if (failed(weights))
      return signalPassFailure();
    // One packed copy per weight, shared by every linear that reads it.
    for (LinearWeight &w : *weights) {
      if (!w.classifier && !linears)
        continue;
      const formats::FormatSpec &format = w.classifier ? *classifierSpec : *spec;
      if (shapesOnly) {
        replaceWithPacked(w, format, nullptr);
        continue;
      }
      FailureOr<PackedMatrix> packed = packMatrix(w, format);
      if (failed(packed))
        return signalPassFailure();
      replaceWithPacked(w, format, &*packed);
    }
  }
};

} // namespace
} // namespace lathe
