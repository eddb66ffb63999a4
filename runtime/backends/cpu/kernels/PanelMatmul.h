// Decode-time (GEMV) integer matmul over weights repacked into row panels,
// for AVX-512 VNNI. The row kernel of Int8Matmul.h reads weights in their
// artifact layout (row by row, block by block), so each 64 codes of a row
// cost a dozen instructions of unpacking, scaling and reducing. A panel
// instead interleaves 16 rows so that one 64-byte load feeds one vpdpbusd
// whose 16 lanes are 16 rows: the activation bytes are broadcast, nothing is
// shuffled, one conversion and two float operations per block serve 16 rows,
// and no horizontal reduction is left at the end. llama.cpp repacks its
// Q4_0/Q8_0 weights at load time for the same reason.
//
// Layout of PanelWeights::data: panel p (rows 16p .. 16p + 15; rows past N
// are padding) holds the blocks of its rows in groups of G blocks, each
// group a 64-byte line of scales followed by the G blocks' codes:
//   scales: BFP8 and MXINT8 (G = 4): the exponent bytes, 16 per block,
//     turned into floats in registers (8% less for their memory-bound
//     decode to read); the other formats (G = 1): 16 floats, row r's at
//     index r;
//   codes: unsigned bytes u = q + offset (IntCodes.h) in groups of four
//     columns: 8-bit formats, group g (columns 4g .. 4g + 3) as 64 bytes,
//     byte 4r + j = u(row r, column 4g + j); 4-bit formats, two groups per
//     64 bytes, group g in the low nibbles and group g + B/8 in the high
//     ones (MXFP4 keeps its E2M1 codes, looked up in registers).
//
// Numerics: the int8 rounding of x of matmulPackedInt8, with exact integer
// block sums (offset included) and outputs summed block by block in
// float32; the row kernel subtracts the offset in float and sums in another
// order, so the two agree to float32 rounding, not bit for bit.
#pragma once

#include "runtime/formats/FormatSpec.h"
#include "runtime/backends/cpu/kernels/Int8Matmul.h"

#include <cstdint>
#include <cstdlib>
#include <memory>

namespace lathe::kernels::simd {

struct PanelWeights {
  static constexpr int64_t kRows = 16;
  int64_t rows = 0, cols = 0;
  int64_t blockSize = 0, blocksPerRow = 0;
  int64_t panels = 0;         // ceil(rows / kRows)
  bool exponentScales = false;
  int64_t codeBytes = 0;      // one block's codes in a panel
  int64_t panelBytes = 0;

  /// G above: blocks per 64-byte line of scales.
  int64_t blocksPerGroup() const { return exponentScales ? 4 : 1; }
  /// Where block b's scales (16 floats, or 16 exponent bytes) and codes
  /// start inside a panel; both are 16- and 64-byte aligned. The static
  /// forms take G as an argument, so that a kernel with G as a constant
  /// computes them without a division.
  static constexpr int64_t scaleOffsetOf(int64_t b, int64_t G, int64_t codeBytes) {
    return (b / G) * (64 + G * codeBytes) + (b % G) * (64 / G);
  }
  static constexpr int64_t codeOffsetOf(int64_t b, int64_t G, int64_t codeBytes) {
    return (b / G) * (64 + G * codeBytes) + 64 + (b % G) * codeBytes;
  }
  int64_t scaleOffset(int64_t b) const { return scaleOffsetOf(b, blocksPerGroup(), codeBytes); }
  int64_t codeOffset(int64_t b) const { return codeOffsetOf(b, blocksPerGroup(), codeBytes); }
  formats::FormatSpec spec;
  uint8_t *data = nullptr;          // panels * panelBytes, 64-byte aligned
  std::shared_ptr<uint8_t> storage; // keeps the memory `data` points into
};

/// Whether this machine runs the panel kernel (Highway's AVX3_DL target:
/// AVX-512 with VNNI, VBMI2 and BITALG, i.e. Ice Lake, Zen 4 and later) and
/// `spec` is one of its formats: symmetric INT8/INT4, BFP8/BFP4, MXINT8,
/// MXFP4.
bool panelsSupported(const formats::FormatSpec &spec);

/// Bytes packPanels needs for N x K weights in `spec` (a multiple of 64),
/// or 0 when it would return false.
size_t panelStorageBytes(const formats::FormatSpec &spec, int64_t N, int64_t K);

/// Repacks N rows of K weights packed by formats::quantizeRow in `spec`
/// (row n at w + n * formats::packedRowBytes(spec, K)). The panels go to
/// arena + offset (64-byte aligned, panelStorageBytes long), which `out`
/// then shares, or with no arena to memory of their own (huge pages from
/// 2 MiB on). Returns false, leaving `out` empty, when panelsSupported(spec)
/// is false, K or N is not positive, the offset is misaligned, or memory
/// runs out.
bool packPanels(const uint8_t *w, const formats::FormatSpec &spec, int64_t N, int64_t K,
                PanelWeights &out, std::shared_ptr<uint8_t> arena = nullptr,
                size_t offset = 0);

/// y[t*N + n] = sum_k x~[t, k] * w[n, k] for the rows n of panels [p0, p1)
/// (n < N) and every t < x.rows. x must be quantized for w.spec in
/// CodeOrder::Columns; otherwise (or for empty panels) the outputs are NaN.
/// Disjoint panel ranges may run concurrently; outputs do not depend on the
/// split.
void matmulPanels(const Int8Activations &x, const PanelWeights &w, float *y, int64_t p0,
                  int64_t p1);

} // namespace lathe::kernels::simd
