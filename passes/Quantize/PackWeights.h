// Packing linear weights into a number format: shared by lathe-quantize (one
// format for all) and lathe-select-formats (a format per tensor).
#pragma once

#include "dialects/Transformer/TransformerDialect.h"
#include "runtime/formats/FormatSpec.h"

#include "mlir/IR/BuiltinOps.h"

#include <vector>

namespace lathe {

/// Attributes recording, on a packed tfm.weight, how much it lost:
/// ||W - Q(W)|| / ||W||, and the same weighted by the calibrated input rms
/// (sqrt(sum rms_k^2 (w - q)^2 / sum rms_k^2 w^2)) when calibration ran.
inline constexpr const char *kQuantErrorAttr = "tfm.quant_error";
inline constexpr const char *kQuantOutputErrorAttr = "tfm.quant_output_error";

/// A float weight read by tfm.linear ops, with its values and the squared
/// calibrated rms of its input channels (all 1 without calibration).
struct LinearWeight {
  tfm::WeightOp op;
  llvm::SmallVector<tfm::LinearOp> readers;
  /// Read by tfm.logits: packed for it (and for a tfm.embedding sharing it).
  bool classifier = false;
  std::vector<float> values;
  std::vector<double> rms2;
  bool calibrated = false;
  int64_t rows = 0, cols = 0;
};

/// Every float tfm.weight of `module` that tfm.linear ops read, in IR order;
/// with `classifiers`, also those that tfm.logits reads. Without `values`,
/// their shapes and readers only (LinearWeight::values stays empty).
mlir::FailureOr<std::vector<LinearWeight>> collectLinearWeights(mlir::ModuleOp module,
                                                                bool classifiers = false,
                                                                bool values = true);

struct PackedMatrix {
  std::vector<uint8_t> bytes;
  double error = 0;         // relative weight error
  double outputError = 0;   // calibrated relative output error
  double bitsPerWeight = 0;
};

/// Quantizes the weight row by row; fails with a diagnostic naming the row.
mlir::FailureOr<PackedMatrix> packMatrix(const LinearWeight &weight,
                                         const formats::FormatSpec &spec);

/// Points the weight's linear readers at a new packed tfm.weight holding
/// `packed` (with the error attributes) and erases the float weight when
/// nothing else reads it. Without `packed`, the new weight's bytes are
/// zeros never written (createUnfilledPackedWeight: lathe-quantize's
/// shapes-only).
void replaceWithPacked(LinearWeight &weight, const formats::FormatSpec &spec,
                       const PackedMatrix *packed);

} // namespace lathe
