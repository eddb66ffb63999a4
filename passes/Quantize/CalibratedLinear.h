// A tfm.linear's float weight with the calibration statistics of its input
// channels, and the calibrated error of quantizing it: what the passes that
// transform channels before quantization (lathe-reorder-channels,
// lathe-equalize-channels) measure their candidates with.
#pragma once

#include "dialects/Transformer/TransformerDialect.h"
#include "runtime/formats/FormatSpec.h"

#include "mlir/IR/Operation.h"

#include <cstdint>
#include <vector>

namespace lathe {

/// Per input channel of a tfm.linear, written by calibration
/// (compiler/Calibration): root mean square and largest magnitude.
inline constexpr const char *kCalibRmsAttr = "tfm.calib_rms";
inline constexpr const char *kCalibAbsMaxAttr = "tfm.calib_absmax";

struct CalibratedLinear {
  std::vector<float> w; // [rows, cols], row-major
  int64_t rows = 0, cols = 0;
  std::vector<double> rms2; // squared input rms per channel (1 without calibration)
  std::vector<float> rms, absMax; // as calibrated; empty without calibration
};

/// An f32 vector attribute of `op` (empty when absent).
std::vector<float> readF32Attr(mlir::Operation *op, llvm::StringRef name);
/// Sets `name` on `op` to the f32 vector `values`.
void writeF32Attr(mlir::Operation *op, llvm::StringRef name, llvm::ArrayRef<float> values);

/// The weights of `linears` (tfm.weight ops holding floats) with their
/// calibration; statistics of the wrong length count as absent.
mlir::FailureOr<std::vector<CalibratedLinear>>
loadCalibratedLinears(llvm::ArrayRef<tfm::LinearOp> linears);

/// sum_k rms_k^2 (w_k - q(w)_k)^2 / sum_k rms_k^2 w_k^2 over every row: the
/// calibrated relative error of quantizing the weight in `spec`. Columns
/// are taken in `order` (position i holds column order[i]; empty: as
/// stored), and column k is divided by 2^exponents[k] before quantizing
/// (empty: not scaled), its input channel then being 2^exponents[k] times
/// larger, so the error is weighted back by that. INFINITY when a row
/// cannot be quantized.
double calibratedWeightError(const CalibratedLinear &linear, const formats::FormatSpec &spec,
                             llvm::ArrayRef<int64_t> order, llvm::ArrayRef<int> exponents);

/// A token's largest |x| over an int8 activation block, in units of the
/// block's largest channel rms: about what 32 Gaussian channels reach.
inline constexpr double kActivationBlockPeak = 2.0;

/// The calibrated error of rounding the linear's inputs to int8 with one
/// scale per `block` consecutive columns, as int8-activation products do
/// (max|x| / 127 per weight block, the peak estimated as
/// kActivationBlockPeak x the block's largest input rms): step^2 / 12 per
/// value, reaching the output through the squared weights of its column,
/// relative to sum_k rms_k^2 w_k^2. Columns are taken in `order` (empty: as
/// stored); column k's input is 2^exponents[k] times larger and its weights
/// that much smaller (empty: not scaled).
double calibratedActivationError(const CalibratedLinear &linear, int64_t block,
                                 llvm::ArrayRef<int64_t> order, llvm::ArrayRef<int> exponents);

} // namespace lathe
