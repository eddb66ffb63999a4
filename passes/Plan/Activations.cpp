//===- Activations.cpp - each product's activation precision -------------===//
#include "passes/Passes.h"

#include "runtime/formats/FormatSpec.h"

namespace lathe {
#define GEN_PASS_DEF_PLANACTIVATIONS
#include "passes/Passes.h.inc"
} // namespace lathe

using namespace mlir;

namespace lathe {
namespace {

/// Whether the weight's format has integer codes (runtime/formats).
bool hasIntegerCodes(Value weight) {
  auto quantized = dyn_cast<tfm::QuantizedTypeInterface>(
      cast<RankedTensorType>(weight.getType()).getElementType());
  if (!quantized)
    return false;
  Expected<formats::FormatSpec> spec = formats::parseFormatSpec(quantized.getFormatName());
  return spec && formats::hasIntegerCodes(*spec);
}

struct PlanActivationsPass : impl::PlanActivationsBase<PlanActivationsPass> {
  using PlanActivationsBase::PlanActivationsBase;

  void runOnOperation() override {
    if (precision != "int8" && precision != "float") {
      getOperation().emitError() << "lathe-plan-activations: precision must be int8 or "
                                    "float, got '"
                                 << precision << "'";
      return signalPassFailure();
    }
    MLIRContext *context = &getContext();
    if (maxInt8Width < 0) {
      getOperation().emitError() << "lathe-plan-activations: max-int8-width must be 0 (any) "
                                    "or positive, got "
                                 << std::to_string(int64_t(maxInt8Width));
      return signalPassFailure();
    }
    // The weights' input width: their shape's last dimension.
    auto narrow = [&](Value weight) {
      ArrayRef<int64_t> shape = cast<RankedTensorType>(weight.getType()).getShape();
      return maxInt8Width == 0 || (!shape.empty() && shape.back() <= maxInt8Width);
    };
    auto choose = [&](ValueRange weights) {
      bool int8 = precision == "int8" && llvm::all_of(weights, hasIntegerCodes) &&
                  llvm::all_of(weights, narrow);
      return kplan::ActivationsAttr::get(
          context, int8 ? kplan::Activations::int8 : kplan::Activations::float_);
    };
    getOperation().walk([&](Operation *op) {
      if (auto m = dyn_cast<kplan::MatmulOp>(op))
        m.setActivationsAttr(choose(m.getWeight()));
      else if (auto g = dyn_cast<kplan::MatmulsOp>(op))
        g.setActivationsAttr(choose(g.getWeights()));
      else if (auto l = dyn_cast<kplan::LogitsOp>(op))
        l.setActivationsAttr(choose(l.getClassifier()));
    });
  }
};

} // namespace
} // namespace lathe
