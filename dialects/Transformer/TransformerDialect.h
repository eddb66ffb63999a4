//===- TransformerDialect.h - the tfm dialect -------------------*- C++ -*-===//
#pragma once

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/Transformer/TransformerOpsDialect.h.inc"
#include "dialects/Transformer/TransformerEnums.h.inc"
#include "dialects/Transformer/TransformerTypeInterfaces.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/Transformer/TransformerAttrs.h.inc"

#define GET_TYPEDEF_CLASSES
#include "dialects/Transformer/TransformerOpsTypes.h.inc"

#define GET_OP_CLASSES
#include "dialects/Transformer/TransformerOps.h.inc"
