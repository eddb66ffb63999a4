// Turns a Llama-family checkpoint (from any frontend) into `tfm` IR: one
// function @forward(tokens, positions, cache) -> logits over a variable
// number of tokens. Weights are referenced, not copied, when their bytes are
// suitably aligned: the checkpoint must outlive the module.
#pragma once

#include "compiler/Frontend/LlamaCheckpoint.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"

namespace lathe::frontend {

mlir::OwningOpRef<mlir::ModuleOp> importLlama(mlir::MLIRContext &context,
                                              const LlamaCheckpoint &checkpoint,
                                              llvm::StringRef modelName);

} // namespace lathe::frontend
