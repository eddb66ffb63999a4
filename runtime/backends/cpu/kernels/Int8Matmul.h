// Integer matmul for packed weights whose codes are small integers (INT8,
// INT4, BFP8, BFP4, MXINT8, MXFP4): the activations are quantized to int8
// once per matmul input, like llama.cpp's Q8 activations, and every weight
// block becomes one integer dot product (AVX-512 VNNI vpdpbusd where the CPU
// has it, 16-bit multiply-adds elsewhere) scaled once by
// weightScale * activationScale.
//
// Numerics differ from matmulPacked: x is replaced by its int8 rounding
// x~ = s_b * round(x / s_b), s_b = max|x over block b| / 127, one scale per
// weight block. The integer dot products are exact, so against the float64
// product of the decoded weights with the original x each output is off by
// at most sum_k |w_k| * s_b(k) / 2 (the activation rounding) plus float32
// accumulation error (~1e-6 relative). Quantizing activations is what
// llama.cpp's quantized CPU kernels do too; Int8MatmulTest checks the bound.
//
// Use it for decoding (T = 1: ~2x the float kernel on AVX-512 VNNI); for
// prefill (T >= 4) matmulPacked is as fast, and exact. Outputs do not depend
// on how [n0, n1) is split between threads.
#pragma once

#include "runtime/formats/FormatSpec.h"

#include <cstdint>
#include <vector>

namespace lathe::kernels::simd {

/// Activations quantized for the weights of one packed format: T rows of K
/// values in blocks of the format's block size, each block an int8 code
/// vector and a float scale (x ~= scale * code). Codes are stored in the
/// order the weight kernel reads them: column order for 8-bit codes, and
/// for 4-bit codes even columns of the block first, then odd columns (the
/// low and high nibbles of the packed bytes). Each row's codes are padded
/// with zeros to a multiple of 64 (one AVX-512 vector).
struct Int8Activations {
  int64_t rows = 0, cols = 0;
  int64_t blockSize = 0;    // values per block (16..128)
  int64_t blocksPerRow = 0; // ceil(cols / blockSize)
  int64_t codesPerRow = 0;  // blocksPerRow * blockSize rounded up to 64
  bool nibbleOrder = false;
  std::vector<int8_t> codes; // rows * codesPerRow; block b of row t at
                             // t * codesPerRow + b * blockSize
  std::vector<float> scales; // rows * blocksPerRow
  std::vector<int32_t> sums; // rows * blocksPerRow: sum of the block's codes
  // Per group of four codes (rows * codesPerRow / 4), for the VNNI kernel,
  // whose 32-bit lanes each sum four products: the scale of the group's
  // block, and offset * sum * scale / (blockSize / 4) with `offset` the
  // format's fixed code offset (0 for asymmetric INT), so that the lanes of
  // a block together subtract offset * sum * scale.
  std::vector<float> laneScales, laneOffsets;
};

/// Whether matmulPackedInt8 handles `spec` (a valid INT8, INT4, BFP8, BFP4,
/// MXINT8 or MXFP4 spec).
bool supportsInt8Activations(const formats::FormatSpec &spec);

/// The order of each block's codes: the one matmulPackedInt8 reads (4-bit
/// formats: even columns first), or plain column order (the panel kernels
/// of PanelMatmul.h).
enum class CodeOrder { RowKernel, Columns };

/// Quantizes x (T rows of K floats) for weights in `spec`, reusing out's
/// storage. Returns false, leaving out empty, when the format is not
/// supported. A block holding NaN or infinity gets a NaN scale, so the
/// outputs it feeds become NaN.
bool quantizeActivations(const float *x, int64_t T, int64_t K,
                         const formats::FormatSpec &spec, Int8Activations &out,
                         CodeOrder order = CodeOrder::RowKernel);

/// y[t*N + n] = sum_k x~[t, k] * w[n, k] for n in [n0, n1), t < x.rows,
/// with w packed in `spec` (N rows of formats::packedRowBytes(spec, x.cols)
/// bytes) and x quantized for the same spec. Writes NaN to those outputs
/// when the spec is unsupported or x was quantized for another layout.
void matmulPackedInt8(const Int8Activations &x, const uint8_t *w,
                      const formats::FormatSpec &spec, int64_t N, float *y,
                      int64_t n0, int64_t n1);

} // namespace lathe::kernels::simd
