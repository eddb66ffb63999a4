// SIMD causal attention over the KV cache, for decode (one query row) and
// prefill (a block of rows), written once with Highway and dispatched at run
// time like the matmul kernels. Same contract as kernels::attendHeads (the
// float64 reference it is tested against): query row t attends to the cache
// rows visible[t] lists, head h reads KV head h / (heads / kvHeads), and
// heads [h0, h1) are written, so callers split heads across threads.
//
// Numerics: scores, the softmax and the weighted sum of values are computed
// in float32 (vector accumulators, Lathe's exp of
// runtime/kernels/Transcendentals.h lane by lane); against the float64
// reference each output's relative error stays near 1e-6 on random inputs
// (test/unit/runtime/backends/cpu/kernels/AttentionTest.cpp).
#pragma once

#include "runtime/kernels/ReferenceKernels.h"

#include <cstdint>
#include <span>

namespace lathe::kernels::simd {

/// `scratch` holds at least (h1 - h0) * cache.capacity floats: one score row
/// per head of the range.
void attendHeads(const float *q, std::span<const backend::VisibleRows> visible, int64_t heads,
                 int64_t kvHeads, int64_t headDim, KVLayerView cache, int64_t h0,
                 int64_t h1, float *scratch, float *out);

} // namespace lathe::kernels::simd
