//===- LowerToPlan.cpp - tfm -> plan (DialectConversion) ------------------===//
//
// One pattern per tfm op. Activation tensors become buffers through the
// type converter; each pattern creates the buffer its kernel writes and
// replaces the op's result with it.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Func/Transforms/FuncConversions.h"
#include "mlir/Transforms/DialectConversion.h"

namespace lathe {
#define GEN_PASS_DEF_LOWERTOPLAN
#include "passes/Passes.h.inc"
} // namespace lathe

using namespace mlir;

namespace lathe {
namespace {

/// tensor<?xNxf32> (one row per token of the step) -> !plan.buffer<N, f32>;
/// every other type (weights, token ids, the KV cache) stays.
class PlanTypeConverter : public TypeConverter {
public:
  PlanTypeConverter() {
    addConversion([](Type type) { return type; });
    addConversion([](RankedTensorType type) -> Type {
      if (type.getRank() == 2 && type.isDynamicDim(0) && !type.isDynamicDim(1) &&
          type.getElementType().isF32())
        return kplan::BufferType::get(type.getContext(), type.getDimSize(1),
                                      type.getElementType());
      return type;
    });
  }
};

/// A pattern that writes `Op`'s result into a new buffer.
template <typename Op> struct ToKernel : OpConversionPattern<Op> {
  using OpConversionPattern<Op>::OpConversionPattern;
  using Adaptor = typename OpConversionPattern<Op>::OpAdaptor;

  LogicalResult matchAndRewrite(Op op, Adaptor adaptor,
                                ConversionPatternRewriter &rewriter) const final {
    Type bufferType = this->getTypeConverter()->convertType(op.getResult().getType());
    if (!isa_and_nonnull<kplan::BufferType>(bufferType))
      return rewriter.notifyMatchFailure(op, "result is not an activation");
    Value out = kplan::BufferOp::create(rewriter, op.getLoc(), bufferType);
    build(op, adaptor, out, rewriter);
    rewriter.replaceOp(op, out);
    return success();
  }

  /// Creates the kernel of `op` that writes `out`.
  void build(Op op, Adaptor a, Value out, ConversionPatternRewriter &rewriter) const;
};

kplan::ActivationsAttr floatActivations(MLIRContext *context) {
  return kplan::ActivationsAttr::get(context, kplan::Activations::float_);
}

template <>
void ToKernel<tfm::EmbeddingOp>::build(tfm::EmbeddingOp op, Adaptor a, Value out,
                                       ConversionPatternRewriter &r) const {
  kplan::EmbeddingOp::create(r, op.getLoc(), a.getTable(), a.getTokens(), out);
}
template <>
void ToKernel<tfm::RMSNormOp>::build(tfm::RMSNormOp op, Adaptor a, Value out,
                                     ConversionPatternRewriter &r) const {
  kplan::RMSNormOp::create(r, op.getLoc(), a.getInput(), a.getGain(), op.getEpsilonAttr(), out);
}
template <>
void ToKernel<tfm::LinearOp>::build(tfm::LinearOp op, Adaptor a, Value out,
                                    ConversionPatternRewriter &r) const {
  kplan::MatmulOp::create(r, op.getLoc(), a.getInput(), a.getWeight(),
                          floatActivations(op.getContext()), out);
}
template <>
void ToKernel<tfm::RopeOp>::build(tfm::RopeOp op, Adaptor a, Value out,
                                  ConversionPatternRewriter &r) const {
  kplan::RopeOp::create(r, op.getLoc(), a.getInput(), a.getPositions(), op.getHeadDimAttr(),
                        op.getThetaAttr(), op.getLayoutAttr(), op.getScalingFactorAttr(),
                        op.getLowFreqFactorAttr(), op.getHighFreqFactorAttr(),
                        op.getOriginalContextAttr(), op.getPairOrderAttr(), out);
}
template <>
void ToKernel<tfm::BiasAddOp>::build(tfm::BiasAddOp op, Adaptor a, Value out,
                                     ConversionPatternRewriter &r) const {
  kplan::BiasAddOp::create(r, op.getLoc(), a.getInput(), a.getBias(), out);
}
template <>
void ToKernel<tfm::AttentionOp>::build(tfm::AttentionOp op, Adaptor a, Value out,
                                       ConversionPatternRewriter &r) const {
  auto cache = op.getCache().getType();
  kplan::AttentionOp::create(r, op.getLoc(), a.getQueries(), a.getKeys(), a.getValues(),
                             a.getPositions(), a.getCache(), op.getLayer(), op.getHeads(),
                             cache.getKvHeads(), cache.getHeadDim(),
                             kplan::Activations::float_, out);
}
template <>
void ToKernel<tfm::SiluMulOp>::build(tfm::SiluMulOp op, Adaptor a, Value out,
                                     ConversionPatternRewriter &r) const {
  kplan::SiluMulOp::create(r, op.getLoc(), a.getGate(), a.getUp(), out);
}
template <>
void ToKernel<tfm::AddOp>::build(tfm::AddOp op, Adaptor a, Value out,
                                 ConversionPatternRewriter &r) const {
  kplan::AddOp::create(r, op.getLoc(), a.getLhs(), a.getRhs(), out);
}
template <>
void ToKernel<tfm::LogitsOp>::build(tfm::LogitsOp op, Adaptor a, Value out,
                                    ConversionPatternRewriter &r) const {
  kplan::LogitsOp::create(r, op.getLoc(), a.getInput(), a.getClassifier(),
                          floatActivations(op.getContext()), out);
}

struct LowerToPlanPass : impl::LowerToPlanBase<LowerToPlanPass> {
  void runOnOperation() override {
    // An op with no kernel gets one clear error of its own, not the
    // conversion driver's "failed to legalize".
    WalkResult unsupported = getOperation().walk([](Operation *op) {
      if (isa<ModuleOp, func::FuncOp, func::ReturnOp>(op) ||
          isa<tfm::TransformerDialect, kplan::PlanDialect>(op->getDialect()))
        return WalkResult::advance();
      op->emitOpError() << "cannot be lowered to a kernel plan: the plan has no kernel for it";
      return WalkResult::interrupt();
    });
    if (unsupported.wasInterrupted())
      return signalPassFailure();
    MLIRContext *context = &getContext();
    PlanTypeConverter converter;
    ConversionTarget target(*context);
    target.addLegalDialect<kplan::PlanDialect>();
    target.addLegalOp<ModuleOp, tfm::WeightOp>();
    target.addIllegalDialect<tfm::TransformerDialect>();
    target.addDynamicallyLegalOp<func::FuncOp>([&](func::FuncOp fn) {
      return converter.isSignatureLegal(fn.getFunctionType()) &&
             converter.isLegal(&fn.getBody());
    });
    target.addDynamicallyLegalOp<func::ReturnOp>(
        [&](func::ReturnOp ret) { return converter.isLegal(ret); });

    RewritePatternSet patterns(context);
    patterns.add<ToKernel<tfm::EmbeddingOp>, ToKernel<tfm::RMSNormOp>,
                 ToKernel<tfm::LinearOp>, ToKernel<tfm::RopeOp>, ToKernel<tfm::AttentionOp>,
                 ToKernel<tfm::SiluMulOp>, ToKernel<tfm::AddOp>, ToKernel<tfm::LogitsOp>,
                 ToKernel<tfm::BiasAddOp>>(
        converter, context);
    populateFunctionOpInterfaceTypeConversionPattern<func::FuncOp>(patterns, converter);
    populateReturnOpTypeConversionPattern(patterns, converter);
    if (failed(applyFullConversion(getOperation(), target, std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
} // namespace lathe
