//===- TransformerOps.cpp - tfm op verifiers ------------------------------===//
//
// Verifiers check what kernels will rely on: matching widths between
// operands, head counts that divide the widths, and weight shapes. Row counts
// are dynamic (tokens per step) and are only compared when both are static.
//
//===----------------------------------------------------------------------===//
#include "dialects/Transformer/TransformerDialect.h"

#include "runtime/plan/RopeFrequencies.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributeInterfaces.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace lathe::tfm;

#define GET_OP_CLASSES
#include "dialects/Transformer/TransformerOps.cpp.inc"

namespace {

int64_t rows(Value v) { return cast<RankedTensorType>(v.getType()).getDimSize(0); }
int64_t width(Value v) { return cast<RankedTensorType>(v.getType()).getDimSize(1); }
ArrayRef<int64_t> shape(Value v) {
  return cast<RankedTensorType>(v.getType()).getShape();
}

/// Row counts agree unless one of them is dynamic.
bool rowsCompatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

LogicalResult verifyRowsMatch(Operation *op, Value a, StringRef aName, Value b,
                              StringRef bName) {
  if (!rowsCompatible(rows(a), rows(b)))
    return op->emitOpError() << "expects " << aName << " and " << bName
                             << " to have the same number of rows, got "
                             << rows(a) << " and " << rows(b);
  return success();
}

/// Widths are static: kernels and the artifact bake them in.
LogicalResult verifyStaticWidth(Operation *op, Value v, StringRef name) {
  if (ShapedType::isDynamic(width(v)))
    return op->emitOpError() << "expects " << name << " to have a static width";
  return success();
}

/// The shared check of linear and logits: [t, k] x [n, k] -> [t, n].
LogicalResult verifyMatmulShapes(Operation *op, Value input, Value weight,
                                 Value result, StringRef weightName) {
  if (failed(verifyStaticWidth(op, input, "input")))
    return failure();
  ArrayRef<int64_t> w = shape(weight);
  if (w.size() != 2 || ShapedType::isDynamicShape(w))
    return op->emitOpError() << "expects " << weightName
                             << " to be a static 2-D tensor [out, in]";
  if (w[1] != width(input))
    return op->emitOpError() << "expects " << weightName << " input width "
                             << w[1] << " to equal the input width "
                             << width(input);
  if (width(result) != w[0])
    return op->emitOpError() << "expects result width " << w[0] << " (rows of "
                             << weightName << "), got " << width(result);
  return verifyRowsMatch(op, input, "input", result, "result");
}

} // namespace

LogicalResult WeightOp::verify() {
  auto resultType = cast<RankedTensorType>(getResult().getType());
  if (!resultType.hasStaticShape())
    return emitOpError() << "expects a static shape, got " << resultType;
  auto valueType = cast<ShapedType>(getValue().getType());
  if (isa<QuantizedTypeInterface>(resultType.getElementType())) {
    // Packed formats: the bytes as laid out by runtime/formats. Their exact
    // count depends on the format and is checked when the plan is built.
    if (valueType.getRank() != 1 || !valueType.getElementType().isInteger(8) ||
        !valueType.hasStaticShape() || valueType.getNumElements() == 0)
      return emitOpError() << "expects the packed bytes of a "
                           << resultType.getElementType()
                           << " weight as a non-empty 1-D i8 value, got " << valueType;
    if (resultType.getRank() != 2)
      return emitOpError() << "expects a quantized weight to be 2-D [out, in]";
    return success();
  }
  if (valueType != resultType)
    return emitOpError() << "expects value of type " << resultType << ", got "
                         << valueType;
  if (getSymName().empty())
    return emitOpError() << "expects a non-empty name";
  return success();
}

LogicalResult EmbeddingOp::verify() {
  ArrayRef<int64_t> table = shape(getTable());
  if (table.size() != 2)
    return emitOpError() << "expects table to be 2-D [vocab, width], got rank "
                         << table.size();
  if (width(getResult()) != table[1])
    return emitOpError() << "expects result width " << table[1]
                         << " (table width), got " << width(getResult());
  int64_t tokens = shape(getTokens())[0];
  if (!rowsCompatible(tokens, rows(getResult())))
    return emitOpError() << "expects one result row per token, got " << tokens
                         << " tokens and " << rows(getResult()) << " rows";
  return success();
}

LogicalResult RMSNormOp::verify() {
  if (failed(verifyStaticWidth(*this, getInput(), "input")))
    return failure();
  ArrayRef<int64_t> gain = shape(getGain());
  if (gain.size() != 1 || gain[0] <= 0 || width(getInput()) % gain[0] != 0)
    return emitOpError() << "expects a gain whose length divides the input width "
                         << width(getInput()) << ", got " << getGain().getType();
  if (isa<QuantizedTypeInterface>(getGain().getType().getElementType()))
    return emitOpError() << "expects a float gain, got " << getGain().getType();
  if (getInput().getType() != getResult().getType())
    return emitOpError() << "expects result type " << getInput().getType()
                         << ", got " << getResult().getType();
  float eps = getEpsilon().convertToFloat();
  if (!(eps > 0.0f))
    return emitOpError() << "expects a positive epsilon, got " << eps;
  return success();
}

LogicalResult LinearOp::verify() {
  return verifyMatmulShapes(*this, getInput(), getWeight(), getResult(),
                            "weight");
}

LogicalResult LogitsOp::verify() {
  return verifyMatmulShapes(*this, getInput(), getClassifier(), getResult(),
                            "classifier");
}

LogicalResult RopeOp::verify() {
  if (failed(verifyStaticWidth(*this, getInput(), "input")))
    return failure();
  int64_t headDim = getHeadDim();
  if (headDim <= 0 || headDim % 2 != 0)
    return emitOpError() << "expects a positive even head_dim, got " << headDim;
  if (width(getInput()) % headDim != 0)
    return emitOpError() << "expects input width " << width(getInput())
                         << " to be a multiple of head_dim " << headDim;
  if (getInput().getType() != getResult().getType())
    return emitOpError() << "expects result type " << getInput().getType()
                         << ", got " << getResult().getType();
  if (!(getTheta().convertToFloat() > 0.0f))
    return emitOpError() << "expects a positive theta";
  if (!rowsCompatible(shape(getPositions())[0], rows(getInput())))
    return emitOpError() << "expects one position per input row";
  if (const char *problem = lathe::plan::ropeScalingProblem(getScaling()))
    return emitOpError() << problem;
  if (const char *problem =
          lathe::plan::pairOrderProblem(getPairOrderVector(), headDim, width(getInput()) / headDim))
    return emitOpError() << problem;
  return success();
}

LogicalResult BiasAddOp::verify() {
  if (failed(verifyStaticWidth(*this, getInput(), "input")))
    return failure();
  ArrayRef<int64_t> bias = shape(getBias());
  if (bias.size() != 1 || bias[0] != width(getInput()))
    return emitOpError() << "expects bias of shape [" << width(getInput()) << "], got "
                         << getBias().getType();
  if (isa<QuantizedTypeInterface>(getBias().getType().getElementType()))
    return emitOpError() << "expects a float bias, got " << getBias().getType();
  if (getInput().getType() != getResult().getType())
    return emitOpError() << "expects result type " << getInput().getType() << ", got "
                         << getResult().getType();
  return success();
}

LogicalResult AttentionOp::verify() {
  auto cache = cast<KVCacheType>(getCache().getType());
  int64_t headDim = cache.getHeadDim();
  int64_t heads = getHeads();
  int64_t layer = getLayer();
  if (layer < 0 || layer >= cache.getLayers())
    return emitOpError() << "expects layer in [0, " << cache.getLayers()
                         << "), got " << layer;
  if (heads <= 0 || heads % cache.getKvHeads() != 0)
    return emitOpError() << "expects heads (" << heads
                         << ") to be a positive multiple of the cache's kv_heads ("
                         << cache.getKvHeads() << ")";
  for (auto [v, name] : {std::pair{getQueries(), "queries"},
                         std::pair{getKeys(), "keys"},
                         std::pair{getValues(), "values"}})
    if (failed(verifyStaticWidth(*this, v, name)))
      return failure();
  if (width(getQueries()) != heads * headDim)
    return emitOpError() << "expects queries width " << heads * headDim
                         << " (heads x head_dim), got " << width(getQueries());
  int64_t kvWidth = cache.getKvHeads() * headDim;
  if (width(getKeys()) != kvWidth || width(getValues()) != kvWidth)
    return emitOpError() << "expects keys and values width " << kvWidth
                         << " (kv_heads x head_dim), got " << width(getKeys())
                         << " and " << width(getValues());
  if (getResult().getType() != getQueries().getType())
    return emitOpError() << "expects result type " << getQueries().getType()
                         << ", got " << getResult().getType();
  if (failed(verifyRowsMatch(*this, getQueries(), "queries", getKeys(), "keys")) ||
      failed(verifyRowsMatch(*this, getKeys(), "keys", getValues(), "values")))
    return failure();
  if (!rowsCompatible(shape(getPositions())[0], rows(getQueries())))
    return emitOpError() << "expects one position per query row";
  return success();
}
