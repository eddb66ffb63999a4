//===- TransformerDialect.h - the tfm dialect -------------------*- C++ -*-===//
#pragma once

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "runtime/plan/RopeFrequencies.h"

#include "dialects/Transformer/TransformerOpsDialect.h.inc"
#include "dialects/Transformer/TransformerEnums.h.inc"
#include "dialects/Transformer/TransformerTypeInterfaces.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/Transformer/TransformerAttrs.h.inc"

#define GET_TYPEDEF_CLASSES
#include "dialects/Transformer/TransformerOpsTypes.h.inc"

#define GET_OP_CLASSES
#include "dialects/Transformer/TransformerOps.h.inc"

#include "runtime/plan/RopeLayout.h"

namespace lathe::tfm {

/// #tfm.rope_layout is the IR's spelling of plan::RopeLayout, the one
/// definition of the layouts (an MLIR-free header).
inline plan::RopeLayout toPlanLayout(RopeLayout layout) {
  return layout == RopeLayout::interleaved ? plan::RopeLayout::Interleaved
                                           : plan::RopeLayout::RotateHalf;
}
inline RopeLayout fromPlanLayout(plan::RopeLayout layout) {
  return layout == plan::RopeLayout::Interleaved ? RopeLayout::interleaved
                                                 : RopeLayout::rotate_half;
}

} // namespace lathe::tfm
