//===- TransformerTypes.cpp - tfm type verifiers --------------------------===//
#include "dialects/Transformer/TransformerDialect.h"

using namespace mlir;
using namespace lathe::tfm;

LogicalResult KVCacheType::verify(function_ref<InFlightDiagnostic()> emitError,
                                  int64_t layers, int64_t kvHeads,
                                  int64_t headDim, int64_t capacity,
                                  Type elementType) {
  if (layers <= 0 || kvHeads <= 0 || headDim <= 0 || capacity <= 0)
    return emitError() << "expects positive layers, kv_heads, head_dim and "
                          "capacity, got "
                       << layers << ", " << kvHeads << ", " << headDim << ", "
                       << capacity;
  if (!elementType.isF32() && !elementType.isF16() && !elementType.isBF16())
    return emitError() << "expects an f32, f16 or bf16 cache element type, got "
                       << elementType;
  return success();
}
