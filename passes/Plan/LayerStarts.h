//===- LayerStarts.h - where each layer of a plan step begins ---*- C++ -*-===//
//
// lathe-group-layers cuts the step between layers, and the serializer
// turns those cuts into step indices of the artifact's schedule: both ask
// this one function where a layer begins, so that they cannot disagree.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/SmallVector.h"

namespace lathe {

/// The kernel at which each layer of a plan step begins, in layer order.
/// Layer i is the one whose plan.attention has `layer = i`; the attentions
/// must come in layer order. A layer begins with the kernel that writes the
/// input of the product computing its attention's queries (followed back
/// through ropes, bias adds and per-head norms): its attention norm, or an
/// add_rms_norm that also finishes the previous layer's residual add. That
/// kernel must come after the previous layer's attention. Anything else is
/// an error on the function or the attention, led by `pass` (the caller's
/// name).
mlir::FailureOr<llvm::SmallVector<mlir::Operation *>> layerStarts(mlir::func::FuncOp fn,
                                                                  llvm::StringRef pass);

} // namespace lathe
