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
  if (auto quant = llvm::dyn_cast<KVQuantType>(elementType)) {
    // Blocks tile each head, so attention decodes a head's slice of a row
    // on its own (int8: one scale per head).
    if (headDim % quant.getBlock() != 0)
      return emitError() << "expects a block that divides head_dim " << headDim << ", got "
                         << quant.getBlock();
    if (quant.getKind() == KVQuantKind::int8 && quant.getBlock() != headDim)
      return emitError() << "expects an int8 block equal to head_dim " << headDim
                         << ", got " << quant.getBlock();
    return success();
  }
  if (!elementType.isF32() && !elementType.isF16() && !elementType.isBF16())
    return emitError() << "expects an f32, f16, bf16 or !tfm.kv_quant cache element type, got "
                       << elementType;
  return success();
}

LogicalResult KVQuantType::verify(function_ref<InFlightDiagnostic()> emitError,
                                  KVQuantKind kind, int64_t block, int64_t keyGroup,
                                  int64_t window) {
  if (block <= 0)
    return emitError() << "expects a positive block, got " << block;
  // Only KIVI kinds quantize keys over groups of tokens behind a window.
  const bool kivi = kind != KVQuantKind::int8 && kind != KVQuantKind::bfp8 &&
                    kind != KVQuantKind::bfp4;
  if (!kivi && keyGroup != 0)
    return emitError() << "expects no group for " << stringifyKVQuantKind(kind) << ", got group "
                       << keyGroup;
  if (!kivi && window < 0)
    return emitError() << "expects a window of at least 0 tokens, got " << window;
  if (kivi && (keyGroup < 2 || window < 0))
    return emitError() << "expects a group of at least 2 tokens and a window of at least 0, "
                          "got group "
                       << keyGroup << " and window " << window;
  if (kind == KVQuantKind::bfp4 && block % 2 != 0)
    return emitError() << "expects an even bfp4 block (two mantissas a byte), got " << block;
  return success();
}

// The format names below follow runtime/formats/FormatSpec.h (docs/formats.md);
// the dialect only prints them, runtime/formats parses and checks them.

LogicalResult BfpType::verify(function_ref<InFlightDiagnostic()> emitError,
                              int64_t mantissa, int64_t block) {
  if (mantissa != 8 && mantissa != 6 && mantissa != 4)
    return emitError() << "expects a mantissa of 8, 6 or 4 bits, got " << mantissa;
  if (block != 16 && block != 32 && block != 64)
    return emitError() << "expects a block of 16, 32 or 64 values, got " << block;
  return success();
}

std::string BfpType::getFormatName() const {
  return "bfp" + std::to_string(getMantissa()) + ":block=" + std::to_string(getBlock());
}

std::string MxType::getFormatName() const {
  return "mx" + stringifyMxElement(getElement()).str();
}

LogicalResult Fp6SplitType::verify(function_ref<InFlightDiagnostic()> emitError,
                                   int64_t group) {
  if (group != 0 && group != 32 && group != 64 && group != 128)
    return emitError() << "expects group 0 (one scale per row), 32, 64 or 128, got "
                       << group;
  return success();
}

std::string Fp6SplitType::getFormatName() const {
  return getGroup() == 0 ? "fp6_4p2" : "fp6_4p2:group=" + std::to_string(getGroup());
}

LogicalResult IntType::verify(function_ref<InFlightDiagnostic()> emitError,
                              int64_t bits, int64_t group, bool symmetric) {
  if (bits != 8 && bits != 4)
    return emitError() << "expects 8 or 4 bits, got " << bits;
  if (group != 32 && group != 64 && group != 128)
    return emitError() << "expects a group of 32, 64 or 128 values, got " << group;
  return success();
}

std::string IntType::getFormatName() const {
  return "int" + std::to_string(getBits()) + ":group=" + std::to_string(getGroup()) +
         (getSymmetric() ? "" : ":asym");
}
