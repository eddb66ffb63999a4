// A plain (f32, f16 or bf16) vector tensor as floats: the norm gains and
// biases the HLS generator writes into its project as constant arrays (the
// CPU target's code asks the runtime for them: its weights may live in a
// parameter file packed after it was compiled), and which kernels read one.
#pragma once

#include "dialects/KernelPlan/KernelPlanDialect.h"
#include "runtime/artifact/ArtifactWriter.h"
#include "runtime/formats/ElementType.h"

#include <cstring>
#include <vector>

namespace lathe::codegen {

/// The vector `op` reads from a weight (an RMSNorm's gain, a bias), or a
/// null value for kernels that read none.
inline mlir::Value vectorOperand(mlir::Operation *op) {
  if (auto n = mlir::dyn_cast<kplan::RMSNormOp>(op))
    return n.getGain();
  if (auto n = mlir::dyn_cast<kplan::AddRMSNormOp>(op))
    return n.getGain();
  if (auto n = mlir::dyn_cast<kplan::BiasAddOp>(op))
    return n.getBias();
  return {};
}

/// The values of `t` (its first dimension), which must not be packed.
inline std::vector<float> plainVector(const artifact::TensorData &t) {
  std::vector<float> values(t.info.shape[0]);
  decodeFloats(t.bytes.data(), int64_t(values.size()), t.info.type, values.data());
  return values;
}

} // namespace lathe::codegen
