// Lowers the `tfm` forward function to the kernel plan the runtime executes:
// every op becomes one kernel step, every SSA activation a buffer (buffers
// are reused once their value is dead), every tfm.weight a tensor of the
// artifact in its storage layout.
#pragma once

#include "runtime/artifact/ArtifactWriter.h"
#include "runtime/plan/KernelPlan.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace lathe::codegen {

struct LoweredModel {
  plan::ModelConfig config;
  plan::KernelPlan plan;
  /// Weight tensors; their bytes point into the module's attributes or into
  /// `ownedBytes` and stay valid while both live.
  std::vector<artifact::TensorData> tensors;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> ownedBytes;
  /// The op each plan step was lowered from (same order as plan.steps).
  std::vector<mlir::Operation *> stepOps;
};

/// Finds @forward in `module` and lowers it for `target`. Reports unsupported
/// or malformed IR as diagnostics on the offending op.
mlir::FailureOr<LoweredModel> buildKernelPlan(mlir::ModuleOp module,
                                              llvm::StringRef target);

/// Prints the plan one step per line, for tests and --emit=plan.
void printKernelPlan(const LoweredModel &model, llvm::raw_ostream &os);

} // namespace lathe::codegen
