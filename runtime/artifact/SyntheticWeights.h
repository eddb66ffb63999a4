// The weights of a speed model (lathe-compile --synthetic-weights, for
// benchmarks only): an artifact that stores none, whose loader fills every
// tensor here instead, with values that depend only on the tensor's index
// and shape, so every load (and every machine) gets the same model. A norm
// gain is all ones; a matrix of K columns is uniform in +-sqrt(3 / K)
// (variance 1 / K: products keep their inputs' scale), packed into the
// tensor's format by the same quantizeRow as the compiler's passes.
#pragma once

#include "runtime/plan/KernelPlan.h"
#include "runtime/support/Expected.h"

#include <cstdint>
#include <span>

namespace lathe::artifact {

/// Fills `out` (tensor `index`'s storageBytes) with its synthetic values,
/// rows spread over the machine's cores.
Status fillSyntheticTensor(const plan::TensorInfo &info, uint32_t index, std::span<uint8_t> out);

} // namespace lathe::artifact
