// From the tfm forward function to the kernel plan: the module is lowered to
// the `plan` dialect (dialects/KernelPlan) and its passes run (activation
// precision, grouped products, add + RMSNorm fusion, buffer reuse:
// planPipeline), then the plan IR is serialized into the runtime's schedule
// (runtime/plan/KernelPlan.h): every plan.buffer an activation buffer, every
// tfm.weight a tensor of the artifact in its storage layout, every kernel
// one step (a grouped product one step per weight, a fused add + RMSNorm
// its two steps: the runtime's interpreter computes the same values, the
// generated code, which reads the plan IR, runs them fused).
#pragma once

#include "runtime/artifact/ArtifactWriter.h"
#include "runtime/plan/KernelPlan.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/DenseMap.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace lathe::codegen {

struct PlanOptions {
  /// What products round their inputs to, where their formats allow it
  /// (lathe-plan-activations' precision)...
  plan::Activations activations = plan::Activations::Float;
  /// ...and what the others take when that is Int8: Float or Bf16.
  plan::Activations fallback = plan::Activations::Float;
  /// The widest product inputs that take int8 and bf16 activations (0: any).
  int64_t maxInt8Width = 0, maxBf16Width = 0;
  /// Group products of one input and fuse add + RMSNorm (off: one kernel
  /// per tfm op, as calibration wants it).
  bool fuse = true;
  /// The token tree the decode step verifies (lathe-plan-spec-tree's
  /// shape: "4x2x2", "default"); empty: none recorded.
  std::string specTree;
  /// The layers in contiguous groups (lathe-group-layers): this many
  /// groups, or groups of at most this many weight bytes; both 0: none.
  int64_t prefillGroups = 0;
  int64_t groupBytes = 0;
};

/// The plan passes, in order, on a module holding tfm IR.
void buildPlanPipeline(mlir::OpPassManager &pm, const PlanOptions &options);

struct LoweredModel {
  plan::ModelConfig config;
  plan::KernelPlan plan;
  /// Weight tensors; their bytes point into the module's attributes or into
  /// `ownedBytes` and stay valid while both live.
  std::vector<artifact::TensorData> tensors;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> ownedBytes;
  /// The plan IR the schedule was serialized from, and the index of each of
  /// its buffers and weights in the schedule and the artifact.
  mlir::OwningOpRef<mlir::ModuleOp> planModule;
  llvm::DenseMap<mlir::Value, uint32_t> bufferIndex, tensorIndex;
  /// The index of each kernel's step in the schedule.
  llvm::DenseMap<mlir::Operation *, uint32_t> stepIndex;
  mlir::func::FuncOp forward() const;
};

/// Lowers a copy of `module`'s @forward (tfm) for `target`; `module` is not
/// changed. Reports unsupported or malformed IR as diagnostics on the
/// offending op.
mlir::FailureOr<LoweredModel> buildKernelPlan(mlir::ModuleOp module, llvm::StringRef target,
                                              const PlanOptions &options = {});

/// Serializes a module whose @forward is already plan IR.
mlir::FailureOr<LoweredModel> serializeKernelPlan(mlir::OwningOpRef<mlir::ModuleOp> planModule,
                                                  llvm::StringRef target);

/// Prints the plan IR (weights elided), for tests and --emit=plan.
void printKernelPlan(const LoweredModel &model, llvm::raw_ostream &os);

} // namespace lathe::codegen
