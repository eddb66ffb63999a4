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
    MLIRContext *context = &getContext();
    const std::optional<kplan::Activations> asked = kplan::symbolizeActivations(precision);
    if (!asked) {
      getOperation().emitError() << "lathe-plan-activations: precision must be int8, bf16 or "
                                    "float, got '"
                                 << precision << "'";
      return signalPassFailure();
    }
    const std::optional<kplan::Activations> other = kplan::symbolizeActivations(fallback);
    if (!other || *other == kplan::Activations::int8) {
      getOperation().emitError() << "lathe-plan-activations: fallback must be float or bf16, "
                                    "got '"
                                 << fallback << "'";
      return signalPassFailure();
    }
    for (auto [name, width] : {std::pair<const char *, int64_t>{"int8", maxInt8Width},
                               {"bf16", maxBf16Width}})
      if (width < 0) {
        getOperation().emitError() << "lathe-plan-activations: max-" << name
                                   << "-width must be 0 (any) or positive, got "
                                   << std::to_string(width);
        return signalPassFailure();
      }
    // Whether the weight's input width (its shape's last dimension) is at
    // most `most` (0: any).
    auto narrow = [&](int64_t most) {
      return [most](Value weight) {
        ArrayRef<int64_t> shape = cast<RankedTensorType>(weight.getType()).getShape();
        return most == 0 || (!shape.empty() && shape.back() <= most);
      };
    };
    auto choose = [&](ValueRange weights) {
      kplan::Activations a = *asked;
      if (a == kplan::Activations::int8 && !(llvm::all_of(weights, hasIntegerCodes) &&
                                             llvm::all_of(weights, narrow(maxInt8Width))))
        a = *other;
      if (a == kplan::Activations::bf16 && !llvm::all_of(weights, narrow(maxBf16Width)))
        a = kplan::Activations::float_;
      return kplan::ActivationsAttr::get(context, a);
    };
    // Attention's queries take the precision of the products that cannot
    // take int8: bf16 where those do (int8 is no attention precision).
    const kplan::Activations queries =
        *asked == kplan::Activations::int8 ? *other : *asked;
    getOperation().walk([&](Operation *op) {
      if (auto a = dyn_cast<kplan::AttentionOp>(op))
        a.setActivationsAttr(kplan::ActivationsAttr::get(context, queries));
      else if (auto m = dyn_cast<kplan::MatmulOp>(op))
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
