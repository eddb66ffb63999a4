//===- KernelPlanDialect.h - the plan dialect -------------------*- C++ -*-===//
#pragma once

#include "dialects/Transformer/TransformerDialect.h"
#include "runtime/speculative/TreeShape.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/KernelPlan/KernelPlanOpsDialect.h.inc"
#include "dialects/KernelPlan/KernelPlanEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/KernelPlan/KernelPlanAttrs.h.inc"

#define GET_TYPEDEF_CLASSES
#include "dialects/KernelPlan/KernelPlanOpsTypes.h.inc"

#define GET_OP_CLASSES
#include "dialects/KernelPlan/KernelPlanOps.h.inc"
