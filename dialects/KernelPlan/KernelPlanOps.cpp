//===- KernelPlanOps.cpp - plan op verifiers ------------------------------===//
//
// Each kernel checks that its buffers and weights agree in width, so that a
// plan that verifies can be serialized and run without further checks of
// shape (the runtime still validates what it loads from an artifact).
//
//===----------------------------------------------------------------------===//
#include "dialects/KernelPlan/KernelPlanDialect.h"
#include "runtime/formats/FormatSpec.h"
#include "runtime/plan/RopeFrequencies.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace lathe::kplan;

#define GET_OP_CLASSES
#include "dialects/KernelPlan/KernelPlanOps.cpp.inc"

namespace {

int64_t widthOf(Value buffer) { return cast<BufferType>(buffer.getType()).getWidth(); }

RankedTensorType tensorOf(Value weight) { return cast<RankedTensorType>(weight.getType()); }

/// A product's weight is [out, in]: `in` must be the input's width and
/// `out` the output's.
LogicalResult verifyProduct(Operation *op, Value input, Value weight, Value out,
                            StringRef what) {
  RankedTensorType w = tensorOf(weight);
  if (w.getRank() != 2)
    return op->emitOpError() << "expects a 2-D " << what << ", got rank " << w.getRank();
  if (w.getDimSize(1) != widthOf(input))
    return op->emitOpError() << "input width " << widthOf(input) << " differs from the "
                             << what << "'s " << w.getDimSize(1) << " columns";
  if (w.getDimSize(0) != widthOf(out))
    return op->emitOpError() << "output width " << widthOf(out) << " differs from the "
                             << what << "'s " << w.getDimSize(0) << " rows";
  if (input == out)
    return op->emitOpError() << "output buffer is also the input";
  return success();
}

/// int8 activations need a weight format with integer codes
/// (runtime/formats hasIntegerCodes: the one definition).
LogicalResult verifyActivations(Operation *op, Activations activations, Value weight) {
  if (activations != Activations::int8)
    return success();
  Type element = tensorOf(weight).getElementType();
  auto quantized = dyn_cast<lathe::tfm::QuantizedTypeInterface>(element);
  lathe::Expected<lathe::formats::FormatSpec> spec =
      quantized ? lathe::formats::parseFormatSpec(quantized.getFormatName())
                : lathe::Expected<lathe::formats::FormatSpec>(lathe::Error("not packed"));
  if (!spec || !lathe::formats::hasIntegerCodes(*spec))
    return op->emitOpError() << "asks for int8 activations, but its weight is " << element
                             << ", not a packed format with integer codes";
  return success();
}

/// A float gain of the input's width, or, where `slices` allows it, of a
/// width that divides it (each slice of a row normalized on its own).
LogicalResult verifyGain(Operation *op, Value gain, Value input, bool slices = false) {
  RankedTensorType g = tensorOf(gain);
  const int64_t width = widthOf(input);
  if (g.getRank() != 1 || g.getDimSize(0) <= 0 ||
      (slices ? width % g.getDimSize(0) != 0 : g.getDimSize(0) != width))
    return op->emitOpError() << "expects a gain of " << (slices ? "a divisor of " : "")
                             << width << " elements, got " << g;
  if (isa<lathe::tfm::QuantizedTypeInterface>(g.getElementType()))
    return op->emitOpError() << "expects a float gain, got " << g.getElementType();
  return success();
}

} // namespace

LogicalResult EmbeddingOp::verify() {
  RankedTensorType t = tensorOf(getTable());
  if (t.getRank() != 2 || t.getDimSize(1) != widthOf(getOut()))
    return emitOpError() << "expects a [vocab, " << widthOf(getOut()) << "] table, got " << t;
  return success();
}

LogicalResult RMSNormOp::verify() {
  if (widthOf(getInput()) != widthOf(getOut()))
    return emitOpError() << "input and output widths differ";
  if (!(getEpsilon().convertToFloat() > 0.0f))
    return emitOpError() << "expects a positive epsilon";
  return verifyGain(*this, getGain(), getInput(), /*slices=*/true);
}

LogicalResult BiasAddOp::verify() {
  if (widthOf(getInput()) != widthOf(getOut()))
    return emitOpError() << "input and output widths differ";
  RankedTensorType b = tensorOf(getBias());
  if (b.getRank() != 1 || b.getDimSize(0) != widthOf(getInput()))
    return emitOpError() << "expects a bias of " << widthOf(getInput()) << " elements, got "
                         << b;
  if (isa<lathe::tfm::QuantizedTypeInterface>(b.getElementType()))
    return emitOpError() << "expects a float bias, got " << b.getElementType();
  return success();
}

LogicalResult MatmulOp::verify() {
  if (failed(verifyProduct(*this, getInput(), getWeight(), getOut(), "weight")))
    return failure();
  return verifyActivations(*this, getActivations(), getWeight());
}

LogicalResult MatmulsOp::verify() {
  if (getWeights().size() != getOuts().size() || getWeights().size() < 2)
    return emitOpError() << "expects as many outputs as weights, at least two; got "
                         << getWeights().size() << " weights and " << getOuts().size()
                         << " outputs";
  llvm::SmallPtrSet<Value, 4> seen;
  for (auto [weight, out] : llvm::zip(getWeights(), getOuts())) {
    if (failed(verifyProduct(*this, getInput(), weight, out, "weight")) ||
        failed(verifyActivations(*this, getActivations(), weight)))
      return failure();
    if (!seen.insert(out).second)
      return emitOpError() << "writes one buffer twice";
  }
  return success();
}

LogicalResult RopeOp::verify() {
  int64_t headDim = getHeadDim();
  if (headDim <= 0 || headDim % 2 != 0 || widthOf(getInput()) % headDim != 0)
    return emitOpError() << "head_dim " << headDim << " does not split width "
                         << widthOf(getInput()) << " into even heads";
  if (widthOf(getInput()) != widthOf(getOut()))
    return emitOpError() << "input and output widths differ";
  if (!(getTheta().convertToFloat() > 0.0f))
    return emitOpError() << "expects a positive theta";
  if (const char *problem = lathe::plan::ropeScalingProblem(getScaling()))
    return emitOpError() << problem;
  if (const char *problem =
          lathe::plan::pairOrderProblem(getPairOrderVector(), headDim, widthOf(getInput()) / headDim))
    return emitOpError() << problem;
  return success();
}

LogicalResult AttentionOp::verify() {
  int64_t heads = getHeads(), kvHeads = getKvHeads(), dim = getHeadDim();
  if (heads <= 0 || kvHeads <= 0 || dim <= 0 || heads % kvHeads != 0)
    return emitOpError() << heads << " heads and " << kvHeads
                         << " kv heads do not group";
  if (widthOf(getQueries()) != heads * dim || widthOf(getOut()) != heads * dim)
    return emitOpError() << "queries and output must be " << heads << " heads of " << dim;
  if (widthOf(getKeys()) != kvHeads * dim || widthOf(getValues()) != kvHeads * dim)
    return emitOpError() << "keys and values must be " << kvHeads << " heads of " << dim;
  auto cache = getCache().getType();
  if (getLayer() < 0 || getLayer() >= cache.getLayers() || cache.getKvHeads() != kvHeads ||
      cache.getHeadDim() != dim)
    return emitOpError() << "layer " << getLayer() << " and " << kvHeads << " kv heads of "
                         << dim << " do not fit the cache " << cache;
  if (getOut() == getQueries() || getOut() == getKeys() || getOut() == getValues())
    return emitOpError() << "output buffer is also an input";
  if (getActivations() == Activations::int8)
    return emitOpError() << "takes float or bf16 queries, not int8";
  return success();
}

static LogicalResult verifyElementwise(Operation *op, Value lhs, Value rhs, Value out) {
  if (widthOf(lhs) != widthOf(rhs) || widthOf(lhs) != widthOf(out))
    return op->emitOpError() << "operand widths " << widthOf(lhs) << ", " << widthOf(rhs)
                             << " and " << widthOf(out) << " differ";
  return success();
}

LogicalResult SiluMulOp::verify() { return verifyElementwise(*this, getLhs(), getRhs(), getOut()); }
LogicalResult AddOp::verify() { return verifyElementwise(*this, getLhs(), getRhs(), getOut()); }

LogicalResult AddRMSNormOp::verify() {
  if (failed(verifyElementwise(*this, getLhs(), getRhs(), getSum())) ||
      failed(verifyElementwise(*this, getLhs(), getRhs(), getOut())))
    return failure();
  if (getSum() == getOut())
    return emitOpError() << "sum and output must be different buffers";
  if (!(getEpsilon().convertToFloat() > 0.0f))
    return emitOpError() << "expects a positive epsilon";
  return verifyGain(*this, getGain(), getLhs());
}

LogicalResult LogitsOp::verify() {
  if (failed(verifyProduct(*this, getInput(), getClassifier(), getOut(), "classifier")))
    return failure();
  return verifyActivations(*this, getActivations(), getClassifier());
}
