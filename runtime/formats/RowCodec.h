// Quantizes and dequantizes one row of a row-major [rows, cols] matrix in any
// format: the single entry point through which a quantize pass writes
// weights and a reference kernel reads them back.
//
// A row is cut into consecutive blocks (BFP, MX) or groups (FP6_4P2, INT) of
// rowBlockValues(spec, cols) values, each encoded on its own and stored one
// after another; blocks never cross rows. When cols is not a multiple of the
// block size, the last block is padded with zeros: zeros never change a
// block's max |x| (nor, for asymmetric INT, its range, which always includes
// 0), so the padding leaves the real values' codes exactly as they would be
// in a full block. dequantizeRow writes only the cols real values. A
// per-channel FP6_4P2 row is one group of cols values rounded up to a
// multiple of 4.
#pragma once

#include "runtime/formats/FormatSpec.h"
#include "runtime/support/Expected.h"

#include <cstddef>
#include <cstdint>
#include <span>

namespace lathe::formats {

/// Values per block/group for rows of `cols` values (padding included).
/// 0 for an invalid spec or cols <= 0.
size_t rowBlockValues(const FormatSpec &spec, int64_t cols);

/// Bytes of one block/group (header and payload). 0 when rowBlockValues is.
size_t rowBlockBytes(const FormatSpec &spec, int64_t cols);

/// Bytes of one packed row: ceil(cols / rowBlockValues) * rowBlockBytes.
/// 0 for an invalid spec or cols <= 0.
size_t packedRowBytes(const FormatSpec &spec, int64_t cols);

/// Storage bits per weight, scales/exponents included, for rows that are a
/// whole number of blocks. Per-channel FP6_4P2 gives 6: its 32-bit row scale
/// costs 32 / cols more, which the two-argument form includes.
double bitsPerWeight(const FormatSpec &spec);

/// Exact storage bits per weight for rows of `cols` values, padding and
/// per-row scales included: packedRowBytes * 8 / cols.
double bitsPerWeight(const FormatSpec &spec, int64_t cols);

/// Quantizes `row` into `out`, which must hold exactly
/// packedRowBytes(spec, row.size()) bytes. Fails, naming the column, on
/// NaN/Inf for formats without them (every format but MX, where they make
/// the block's scale NaN), and on an invalid spec or a wrongly sized output.
Status quantizeRow(const FormatSpec &spec, std::span<const float> row,
                   std::span<uint8_t> out);

/// The reference decode: writes out.size() values from `packed`, which must
/// be packedRowBytes(spec, out.size()) bytes. On an invalid spec or a size
/// mismatch out is filled with NaN rather than read out of bounds; loaders
/// check sizes with packedRowBytes before kernels run.
void dequantizeRow(const FormatSpec &spec, std::span<const uint8_t> packed,
                   std::span<float> out);

} // namespace lathe::formats
