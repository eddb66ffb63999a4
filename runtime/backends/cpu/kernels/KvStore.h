// The CPU store step of a compressed KV cache, written once with Highway and
// dispatched at run time: each new key and value row is quantized into the
// cache's format as it is written (runtime/formats/KvFormat.h). Same
// contract and the same bytes as kernels::storeKV, the scalar reference it
// is tested against (KvStoreTest): a block's scale or exponent comes from
// the codecs of runtime/formats (intGroupScale, bfpSharedExponent), and only
// the per-value division or scaling and round-half-even run in vectors of
// doubles, which are exact, so every code is the one the codec picks.
#pragma once

#include "runtime/kernels/ReferenceKernels.h"

#include <cstdint>
#include <span>

namespace lathe::kernels::simd {

/// Writes row t of k and v (cache.width values each) to cache row rows[t],
/// in cache.format; plain formats go to kernels::storeKV.
void storeKV(const float *k, const float *v, std::span<const int32_t> rows, KVLayerView cache);

} // namespace lathe::kernels::simd
