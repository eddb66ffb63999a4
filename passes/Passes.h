//===- Passes.h - Lathe's MLIR passes ---------------------------*- C++ -*-===//
#pragma once

#include "dialects/KernelPlan/KernelPlanDialect.h"
#include "dialects/Transformer/TransformerDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace lathe {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

} // namespace lathe
