// A plain (f32, f16 or bf16) vector tensor as floats: the norm gains and
// biases every code generator writes into its generated code as constant
// arrays, and which kernels read one.
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
  for (size_t i = 0; i < values.size(); ++i) {
    if (t.info.type == ElementType::F32) {
      std::memcpy(&values[i], t.bytes.data() + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, t.bytes.data() + 2 * i, 2);
      values[i] = t.info.type == ElementType::F16 ? f16ToFloat(h) : bf16ToFloat(h);
    }
  }
  return values;
}

} // namespace lathe::codegen
