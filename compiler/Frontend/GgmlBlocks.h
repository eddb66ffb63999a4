// ggml's quantized block formats as Lathe reads them: Q8_0 and Q4_0 move
// onto Lathe's INT8 / INT4 group-32 formats code for code, the others are
// decoded to float32 by ggml's own reference formulas
// (ggml-quants.c, dequantize_row_*).
//
// The mapping (docs/gguf.md):
//   Q8_0 block  [d: fp16][q: 32 x int8]            value d * q
//   -> int8:group=32  [s = float32(d)][q]           value q * s
//   Q4_0 block  [d: fp16][16 bytes: value j in the low nibble of byte j,
//                value j+16 in the high nibble]     value d * (n - 8)
//   -> int4:group=32  [s = float32(d)][16 bytes: value i in nibble i % 2
//                of byte i / 2, two's complement]   code n - 8 = n XOR 8
// fp16 -> float32 is exact and the product of a small integer and s rounds
// once in both, so Lathe's decode gives ggml's dequantized values bit for
// bit. ggml's Q4_0 quantizer maps the value of largest magnitude to n = 0,
// i.e. code -8, and makes d negative when that value is positive: Lathe's
// symmetric INT4 never writes -8 or a negative scale itself, but every
// decoder reads both (two's complement codes, scale as stored).
#pragma once

#include "runtime/formats/FormatSpec.h"
#include "runtime/support/Expected.h"

#include <cstdint>
#include <optional>
#include <span>

namespace lathe::frontend {

/// The Lathe format that holds a ggml type's blocks exactly: Q8_0 ->
/// int8:group=32, Q4_0 -> int4:group=32; nullopt for every other type.
std::optional<formats::FormatSpec> losslessFormat(uint32_t ggmlType);

/// Rewrites `rows` rows of `cols` values in ggml blocks of `ggmlType` (Q8_0
/// or Q4_0) as rows of losslessFormat(ggmlType); `out` holds exactly
/// rows * packedRowBytes bytes. A block whose scale is infinite or NaN is
/// an Error naming the row and block (ggml would compute with NaN).
Status repackGgmlBlocks(uint32_t ggmlType, std::span<const uint8_t> in, int64_t rows,
                        int64_t cols, std::span<uint8_t> out);

/// Whether dequantizeGgml decodes this type: F32, F16, BF16, Q4_0, Q4_1,
/// Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
bool canDequantizeGgml(uint32_t ggmlType);

/// Decodes `out.size()` values (a whole number of blocks) from `in` with
/// ggml's reference formulas. `in` must hold exactly those blocks.
void dequantizeGgml(uint32_t ggmlType, std::span<const uint8_t> in, std::span<float> out);

} // namespace lathe::frontend
