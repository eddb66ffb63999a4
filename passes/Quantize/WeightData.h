// Reading and writing the data of tfm.weight ops, shared by the passes that
// rewrite weights (quantization, channel reordering, format selection).
#pragma once

#include "dialects/Transformer/TransformerDialect.h"
#include "runtime/formats/FormatSpec.h"

#include "mlir/IR/Builders.h"

#include <cstdint>
#include <vector>

namespace lathe {

/// The values of an f32/f16/bf16 weight as floats, row-major. Fails (with a
/// diagnostic on the op) for packed weights or values without data.
mlir::FailureOr<std::vector<float>> readWeightFloats(tfm::WeightOp weight);

/// The bytes a weight stores, as the artifact will: packed rows, or plain
/// f32/f16/bf16 elements (a splat expanded). Fails like readWeightFloats on
/// a value without data.
mlir::FailureOr<std::vector<uint8_t>> readWeightBytes(tfm::WeightOp weight);

/// The values of any weight as floats, row-major: plain elements as
/// readWeightFloats reads them, packed rows decoded by runtime/formats.
mlir::FailureOr<std::vector<float>> readWeightValues(tfm::WeightOp weight);

/// A copy of `weight` (same name, type and storage kind, inserted before
/// it) whose row r holds the old row from[r]: whole rows move, packed or
/// not, so the values are unchanged to the bit. A vector's rows are its
/// elements.
mlir::FailureOr<tfm::WeightOp> permuteWeightRows(mlir::OpBuilder &builder, tfm::WeightOp weight,
                                                 llvm::ArrayRef<int64_t> from);

/// Whether multiplying each of `values` by 2^shift and storing the product
/// in `elementType` (f32, f16 or bf16) keeps it exact: false when a product
/// would overflow or lose bits as a subnormal.
bool shiftIsExact(mlir::Type elementType, llvm::ArrayRef<float> values, int shift);

/// A copy of the plain f32/f16/bf16 `weight` (same name and type, inserted
/// before it) whose row r is the old row times 2^shifts[r], exactly where
/// shiftIsExact allows it (the caller's check). A vector's rows are its
/// elements. Fails with a diagnostic for packed weights.
mlir::FailureOr<tfm::WeightOp> shiftWeightRows(mlir::OpBuilder &builder, tfm::WeightOp weight,
                                               llvm::ArrayRef<int> shifts);

/// The format of a packed weight's element type, or std::nullopt for plain
/// f32/f16/bf16 weights.
std::optional<formats::FormatSpec> weightFormat(mlir::Type elementType);

/// The tfm element type for a format, e.g. !tfm.bfp<mantissa = 4, block = 32>.
mlir::Type formatType(mlir::MLIRContext *context, const formats::FormatSpec &spec);

/// Creates a tfm.weight named `name` holding `bytes` (packed rows of `spec`)
/// for a logical [rows, cols] matrix.
tfm::WeightOp createPackedWeight(mlir::OpBuilder &builder, mlir::Location loc,
                                 llvm::StringRef name, const formats::FormatSpec &spec,
                                 int64_t rows, int64_t cols,
                                 llvm::ArrayRef<uint8_t> bytes);

/// The same with zeros for bytes, never written: anonymous pages the kernel
/// shares until something writes them, which nothing does (a build from a
/// config.json alone packs no values; its artifact keeps no weight bytes).
tfm::WeightOp createUnfilledPackedWeight(mlir::OpBuilder &builder, mlir::Location loc,
                                         llvm::StringRef name, const formats::FormatSpec &spec,
                                         int64_t rows, int64_t cols);

/// Creates an f32 tfm.weight named `name` of `shape` holding `values`.
tfm::WeightOp createFloatWeight(mlir::OpBuilder &builder, mlir::Location loc,
                                llvm::StringRef name, llvm::ArrayRef<int64_t> shape,
                                llvm::ArrayRef<float> values);

} // namespace lathe
