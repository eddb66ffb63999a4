// A tensor's storage made from float values: the rows of a matrix packed
// into its format (formats::quantizeRow, the compiler's packing) or written
// as its element type (f16/bf16 rounded to nearest even), a vector as its
// element type. One definition for everything that makes an artifact's
// tensor bytes outside the compiler: a speed model's synthetic weights
// (SyntheticWeights.h) and a parameter file packed from a checkpoint
// (lathe-pack, compiler/Frontend/PackParameters.h).
#pragma once

#include "runtime/plan/KernelPlan.h"
#include "runtime/support/Expected.h"

#include <cstdint>
#include <functional>
#include <span>

namespace lathe::artifact {

/// Writes row `row` of the tensor as floats into `values` (its columns; a
/// vector is one row). Called from several threads at once, each row once.
using RowValuesFn = std::function<void(int64_t row, std::span<float> values)>;

/// Fills `out` (exactly info.storageBytes()) row by row from `rowValues`,
/// the rows spread over the machine's cores. Fails, naming the tensor, when
/// `out` has another size or a row cannot be packed into the format.
Status encodeTensor(const plan::TensorInfo &info, std::span<uint8_t> out,
                    const RowValuesFn &rowValues);

} // namespace lathe::artifact
