// SIMD matmul micro-kernels for the CPU backend: y = x * w^T over a range
// of output columns, for float32, bfloat16 and float16 weights and for every
// packed format of runtime/formats. Written once with Highway and dispatched
// at run time (AVX-512 with VNNI, AVX-512, AVX2, or a portable 128-bit
// fallback), so the library is built without -march flags.
//
// Shapes, shared by every kernel:
//   x: T rows of K floats (row t at x + t*K)
//   w: N rows of K weights, row-major (a packed format: N rows of
//      formats::packedRowBytes(spec, K) bytes each)
//   y: T rows of N floats; the kernel writes y[t*N + n] for n in [n0, n1)
//      and every t < T, and nothing else.
// The [n0, n1) range is how callers split work across threads: disjoint
// ranges may run concurrently on the same x, w and y.
//
// Numerics: weights are decoded to exactly the floats the reference decoder
// (formats::dequantizeRow, bf16ToFloat, f16ToFloat) produces, and products
// are summed in float32 with several vector accumulators. Against a float64
// dot product of the same decoded weights the relative error of each output
// is about K * 2^-24 * sum|x*w| / |sum x*w|; on random inputs it stays below
// 1e-5 (see test/unit/runtime/backends/cpu/kernels/MatmulTest.cpp). NaN and infinity
// propagate as in the reference (an MX block with a NaN scale gives NaN).
#pragma once

#include "runtime/formats/FormatSpec.h"

#include <cstdint>

namespace lathe::kernels::simd {

/// y[t*N + n] = sum_k x[t*K + k] * w[n*K + k], n in [n0, n1), t < T.
void matmulF32(const float *x, int64_t T, const float *w, int64_t N, int64_t K,
               float *y, int64_t n0, int64_t n1);

/// The same with bfloat16 weights (raw bits, as stored in the artifact).
void matmulBF16(const float *x, int64_t T, const uint16_t *w, int64_t N,
                int64_t K, float *y, int64_t n0, int64_t n1);

/// The same with IEEE binary16 weights (raw bits).
void matmulF16(const float *x, int64_t T, const uint16_t *w, int64_t N,
               int64_t K, float *y, int64_t n0, int64_t n1);

/// The same with weights packed row by row by formats::quantizeRow in
/// `spec`: row n starts at w + n * formats::packedRowBytes(spec, K). Equal to
/// formats::dequantizeRow followed by a float dot product, up to summation
/// order. Blocks are decoded in registers; a format the dispatched target
/// cannot decode that way (decodesInRegisters() false) is decoded one row at
/// a time into a small buffer with formats::dequantizeRow, which is correct
/// but slower. An invalid spec writes NaN to the outputs, like dequantizeRow.
void matmulPacked(const float *x, int64_t T, const uint8_t *w,
                  const formats::FormatSpec &spec, int64_t N, int64_t K,
                  float *y, int64_t n0, int64_t n1);

/// Whether matmulPacked decodes `spec` with SIMD code on the target chosen
/// for this machine (false: the dequantizeRow fallback, or an invalid spec).
bool decodesInRegisters(const formats::FormatSpec &spec);

/// The Highway target the dispatcher picked on this machine, e.g.
/// "AVX3_DL", "AVX3", "AVX2", "EMU128".
const char *simdTargetName();

} // namespace lathe::kernels::simd
