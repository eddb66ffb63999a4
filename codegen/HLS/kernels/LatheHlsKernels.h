// The kernels of a generated HLS project (lathe-compile --target=hls): one
// template per kernel of the plan, its sizes and weight format template
// arguments, so that every loop has a static trip count. lathe-compile
// copies this file, and runtime/formats/PackedCodes.h beside it, into the
// project; the generated lathe_model.cpp calls them (docs/hls.md).
//
// The numerics are the CPU backend's reference kernels
// (runtime/kernels/ReferenceKernels.cpp, --kernels=reference), operation
// for operation, so that the C simulation gives the same floats:
//   - weights decode with PackedCodes.h, the functions the runtime's
//     format decoders call;
//   - a product row (float activations) is a dot product in double in
//     four interleaved accumulators, summed (s0 + s1) + (s2 + s3), rounded
//     to float; with int8 activations (productsInt8) it is the CPU's integer
//     kernel instead, bit for bit;
//   - RMSNorm sums squares the same way; rotary angles come from tables of
//     cos and sin that lathe-compile computed in double (the values the
//     CPU computes at run time); softmax and SiLU use lathe_exp_f32 and
//     RMSNorm lathe_inverse_sqrt, Lathe's own (Transcendentals.h, copied
//     into the project too), which the CPU's kernels call as well.
// Build it with -ffp-contract=off: a fused multiply-add would round
// differently.
//
// Schedules come from the plan (lathe-hls-schedule's attributes): every
// kernel takes the II of its pipelined loops as its template argument II
// (#plan.hls_loop); the products' local arrays, their partitions and their
// dataflow are declared by the generated lathe_model.cpp, which calls
// decodeRows and dotRows, or quantizeActivations and productsInt8, with
// them.
//
// Synthesizable subset only: fixed-size arrays, static loop bounds (the
// attention's row loops stop at the token's position, within CONTEXT, and
// say so with LOOP_TRIPCOUNT; every other trip count is static), no
// dynamic memory, recursion, virtual calls or function pointers; sub-byte
// codes through explicit masks (PackedCodes.h). lathe-hls-lint checks it.
#ifndef LATHE_HLS_KERNELS_H
#define LATHE_HLS_KERNELS_H

#include "PackedCodes.h"
#include "Transcendentals.h"

#include <math.h>
#include <stdint.h>

namespace lathe_hls {

// Weight formats (template argument KIND); P1 and P2 are the format's
// parameters.
enum {
  kF32 = 0,  // plain float32
  kF16 = 1,  // plain IEEE binary16
  kBF16 = 2, // plain bfloat16
  kInt = 3,  // INT groups: P1 bits (8 or 4), P2 symmetric (1) or not (0)
  kBfp = 4,  // BFP blocks: P1 mantissa bits
  kMx = 5,   // MX blocks: P1 the element (below)
  kFp6 = 6   // FP6 e3m2 in the 4+2 split, a float32 scale per group
};
// MX elements (P1 of kMx).
enum { kMxInt8 = 0, kMxE4M3 = 1, kMxE5M2 = 2, kMxE3M2 = 3, kMxE2M3 = 4, kMxE2M1 = 5 };

template <int ELEMENT> inline float mxElement(uint32_t code) {
  if (ELEMENT == kMxInt8)
    return lathe_mxint8_value(code);
  if (ELEMENT == kMxE4M3)
    return lathe_minifloat_value(code, 8, 4, 3, 7, 0, 1);
  if (ELEMENT == kMxE5M2)
    return lathe_minifloat_value(code, 8, 5, 2, 15, 1, 2);
  if (ELEMENT == kMxE3M2)
    return lathe_minifloat_value(code, 6, 3, 2, 3, 0, 0);
  if (ELEMENT == kMxE2M3)
    return lathe_minifloat_value(code, 6, 2, 3, 1, 0, 0);
  return lathe_minifloat_value(code, 4, 2, 1, 1, 0, 0);
}

template <int ELEMENT> struct MxBits {
  static const uint32_t value = ELEMENT == kMxInt8 || ELEMENT == kMxE4M3 || ELEMENT == kMxE5M2 ? 8
                                : ELEMENT == kMxE2M1                                        ? 4
                                                                                            : 6;
};

// Value `i` (< BLOCK) of a packed block at `block`.
template <int KIND, int P1, int P2, int BLOCK>
inline float blockValue(const uint8_t *block, uint32_t i) {
  if (KIND == kInt) {
    const float scale = lathe_load_f32(block);
    const int32_t zero = P2 ? 0 : (int32_t)block[4];
    return lathe_int_group_value(lathe_unpack_bits(block + (P2 ? 4 : 5), i, P1), P1, P2, zero,
                                 scale);
  }
  if (KIND == kBfp) {
    if (block[0] == 0xFFu) // the reserved exponent: the block is NaN
      return lathe_f32_from_bits(0x7FC00000u);
    return lathe_bfp_value(lathe_unpack_bits(block + 1, i, P1), P1,
                           (int32_t)block[0] - 127 - (P1 - 2));
  }
  if (KIND == kMx) {
    if (block[0] == 0xFFu) // an E8M0 scale of NaN
      return lathe_f32_from_bits(0x7FC00000u);
    return lathe_mx_scaled(mxElement<P1>(lathe_unpack_bits(block + 1, i, MxBits<P1>::value)),
                           block[0]);
  }
  // kFp6: scale, the low-bit plane (BLOCK / 2 bytes), the high-bit plane.
  return lathe_fp6_e3m2_value(lathe_fp6_split_code(block + 4, block + 4 + BLOCK / 2, i)) *
         lathe_load_f32(block);
}

// Decodes one weight row of COLS values (ROW_BYTES bytes at `row`): plain
// elements, or blocks of BLOCK values in BLOCK_BYTES bytes, the last block
// padded. II: the target initiation interval (#plan.hls_loop).
template <int COLS, int KIND, int P1, int P2, int BLOCK, int BLOCK_BYTES, int II>
void decodeRow(const uint8_t *row, float out[COLS]) {
  if (KIND == kF32 || KIND == kF16 || KIND == kBF16) {
  plain:
    for (int i = 0; i < COLS; ++i) {
#pragma HLS PIPELINE II=II
      if (KIND == kF32)
        out[i] = lathe_load_f32(row + 4 * i);
      else if (KIND == kF16)
        out[i] = lathe_f16_to_f32((uint16_t)(row[2 * i] | (row[2 * i + 1] << 8)));
      else
        out[i] = lathe_bf16_to_f32((uint16_t)(row[2 * i] | (row[2 * i + 1] << 8)));
    }
    return;
  }
  const int kBlocks = (COLS + BLOCK - 1) / BLOCK;
blocks:
  for (int b = 0; b < kBlocks; ++b)
  values:
    for (int i = 0; i < BLOCK; ++i) {
#pragma HLS PIPELINE II=II
      if (b * BLOCK + i < COLS)
        out[b * BLOCK + i] = blockValue<KIND, P1, P2, BLOCK>(row + b * BLOCK_BYTES, i);
    }
}

// sum a[i] * b[i] in double, four interleaved sums (the reference's dot).
template <int N, int II> double dot(const float *a, const float *b) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  const int kQuads = N / 4;
quads:
  for (int i = 0; i < kQuads; ++i) {
#pragma HLS PIPELINE II=II
    s0 += (double)a[4 * i] * b[4 * i];
    s1 += (double)a[4 * i + 1] * b[4 * i + 1];
    s2 += (double)a[4 * i + 2] * b[4 * i + 2];
    s3 += (double)a[4 * i + 3] * b[4 * i + 3];
  }
tail:
  for (int i = kQuads * 4; i < N; ++i)
    s0 += (double)a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

// The float product out[n] = dot(x, W[n]) over the rows of a weight
// matrix of COLS columns at byte `offset` of `weights`, in row groups of
// UNROLL rows (#plan.hls_loop's unroll, which divides the rows), in two
// stages per group that the generated code calls in turn, as a dataflow
// pipeline where the plan says so (#plan.hls_dataflow): decodeRows decodes
// group `group`'s rows into `rows`, one row each; dotRows takes their dot
// products with x into out. `rows` is declared, and partitioned
// (#plan.hls_array_partition "rows"), by the caller. Rows are independent,
// so any UNROLL gives the same floats.
template <int UNROLL, int COLS, int KIND, int P1, int P2, int BLOCK, int BLOCK_BYTES,
          int ROW_BYTES, int II>
void decodeRows(const uint8_t *weights, uint64_t offset, int32_t group,
                float rows[UNROLL][COLS]) {
lanes:
  for (int u = 0; u < UNROLL; ++u) {
#pragma HLS UNROLL
    decodeRow<COLS, KIND, P1, P2, BLOCK, BLOCK_BYTES, II>(
        weights + offset + ((uint64_t)group * UNROLL + u) * ROW_BYTES, rows[u]);
  }
}

template <int UNROLL, int COLS, int II>
void dotRows(const float rows[UNROLL][COLS], const float x[COLS], int32_t group, float *out) {
lanes:
  for (int u = 0; u < UNROLL; ++u) {
#pragma HLS UNROLL
    out[group * UNROLL + u] = (float)dot<COLS, II>(x, rows[u]);
  }
}

// Int8-activation products (lathe-compile --activations=int8), for weights
// whose codes are small integers: symmetric INT8/INT4 groups, BFP8/BFP4,
// MXINT8, MXFP4 (KIND, P1 as above; P2 is 1). The numerics are the CPU's
// panel kernel (runtime/backends/cpu/kernels/PanelMatmul.h, which its
// decode and prefill run for these formats on AVX-512 VNNI machines), so
// each output has the CPU's bits: x is rounded to int8 per weight block as
// quantizeActivations rounds it, each block's products are summed exactly
// in int32, and the row's float sum takes one fused multiply-add per
// block, blocks in order:
// acc = fmaf(float(block sum), weight scale * activation scale, acc).
// (The CPU's row kernels, on other machines, sum per SIMD lane first: the
// same products to float rounding, not bit for bit.)

// Signed code `i` of a weight block: two's complement INT/BFP/MXINT8
// codes; for MXFP4, twice the E2M1 value (an integer in [-12, 12]; the
// block's scale carries the half).
template <int KIND, int P1> inline int32_t intCode(const uint8_t *block, uint32_t i) {
  if (KIND == kInt)
    return lathe_sign_extend(lathe_unpack_bits(block + 4, i, P1), P1);
  if (KIND == kBfp || P1 == kMxInt8)
    return lathe_sign_extend(lathe_unpack_bits(block + 1, i, KIND == kBfp ? P1 : 8),
                             KIND == kBfp ? P1 : 8);
  const int32_t twice[8] = {0, 1, 2, 3, 4, 6, 8, 12};
  const uint32_t code = lathe_unpack_bits(block + 1, i, 4);
  return (code & 8u) ? -twice[code & 7u] : twice[code & 7u];
}

// The value of one unit of a block's codes: INT's float scale, or
// 2^(exponent - 127 - shift) for BFP and MX (exact; NaN for the reserved
// exponent 255).
template <int KIND, int P1> inline float intScale(const uint8_t *block) {
  if (KIND == kInt)
    return lathe_load_f32(block);
  if (block[0] == 0xFFu)
    return lathe_f32_from_bits(0x7FC00000u);
  const int32_t shift = KIND == kBfp ? P1 - 2 : (P1 == kMxInt8 ? 6 : 1);
  return (float)lathe_pow2((int32_t)block[0] - 127 - shift);
}

// x rounded to int8 per block of BLOCK values (the last padded with
// zeros), as the CPU's quantizeActivations rounds it: scale = max|x| / 127,
// code = x * (127 / max|x|) rounded to nearest even; a block of zeros gets
// scale 0, a block holding NaN or infinity scale NaN (its outputs are NaN),
// both with zero codes.
template <int COLS, int BLOCK, int II>
void quantizeActivations(const float x[COLS], int8_t codes[], float scales[]) {
  const int kBlocks = (COLS + BLOCK - 1) / BLOCK;
blocks:
  for (int b = 0; b < kBlocks; ++b) {
    float m = 0.0f;
    int finite = 1;
  amax:
    for (int i = 0; i < BLOCK; ++i) {
#pragma HLS PIPELINE II=II
      const float v = b * BLOCK + i < COLS ? x[b * BLOCK + i] : 0.0f;
      if (!(v * 0.0f == 0.0f)) // NaN for NaN and infinity
        finite = 0;
      const float a = fabsf(v);
      m = a > m ? a : m;
    }
    const int usable = finite && m > 0.0f;
    const float inverse = usable ? 127.0f / m : 0.0f;
  round:
    for (int i = 0; i < BLOCK; ++i) {
#pragma HLS PIPELINE II=II
      const float v = b * BLOCK + i < COLS ? x[b * BLOCK + i] : 0.0f;
      // Adding and taking away 1.5 * 2^23 rounds to the nearest integer,
      // ties to even, for |v * inverse| <= 127.
      const float r = (v * inverse + 12582912.0f) - 12582912.0f;
      codes[b * BLOCK + i] = usable ? (int8_t)(int32_t)r : (int8_t)0;
    }
    scales[b] = usable ? m / 127.0f : (finite ? 0.0f : lathe_f32_from_bits(0x7FC00000u));
  }
}

// out[n] = the int8-activation product of x, rounded by
// quantizeActivations<COLS, BLOCK, II> into `codes` and `scales`, with
// row n of ROWS weight rows (template arguments as decodeRows', P2
// unused). Each row's blocks go one per iteration, the block's BLOCK
// products summed in int32 (exact, so in any order: the loop unrolls into
// a tree), its scale applied with one fmaf. UNROLL rows at a time, each
// with its own hardware. `codes` is declared, and partitioned
// (#plan.hls_array_partition "codes"), by the caller.
template <int ROWS, int COLS, int KIND, int P1, int P2, int BLOCK, int BLOCK_BYTES, int ROW_BYTES,
          int II, int UNROLL>
void productsInt8(const uint8_t *weights, uint64_t offset, const int8_t codes[],
                  const float scales[], float out[ROWS]) {
  const int kBlocks = (COLS + BLOCK - 1) / BLOCK;
rows:
  for (int n = 0; n < ROWS; n += UNROLL) {
  lanes:
    for (int u = 0; u < UNROLL; ++u) {
#pragma HLS UNROLL
      const uint8_t *row = weights + offset + (uint64_t)(n + u) * ROW_BYTES;
      float acc = 0.0f;
    blocks:
      for (int b = 0; b < kBlocks; ++b) {
#pragma HLS PIPELINE II=II
        const uint8_t *block = row + b * BLOCK_BYTES;
        int32_t sum = 0;
      products:
        for (int i = 0; i < BLOCK; ++i)
          sum += intCode<KIND, P1>(block, i) * (int32_t)codes[b * BLOCK + i];
        acc = fmaf((float)sum, intScale<KIND, P1>(block) * scales[b], acc);
      }
      out[n + u] = acc;
    }
  }
}

// The embedding: row `token` of the table at byte `offset` of `weights`.
// II: the target initiation interval of every kernel below
// (#plan.hls_loop).
template <int COLS, int KIND, int P1, int P2, int BLOCK, int BLOCK_BYTES, int ROW_BYTES, int II>
void embedding(const uint8_t *weights, uint64_t offset, int32_t token, float out[COLS]) {
  decodeRow<COLS, KIND, P1, P2, BLOCK, BLOCK_BYTES, II>(
      weights + offset + (uint64_t)token * ROW_BYTES, out);
}

template <int N, int II> double sumSquares(const float *r) { return dot<N, II>(r, r); }

// RMSNorm of each SLICE-wide slice of a WIDTH-wide row with its gain.
template <int WIDTH, int SLICE, int II>
void rmsNorm(const float *x, const float g[SLICE], float eps, float *out) {
slices:
  for (int s = 0; s < WIDTH / SLICE; ++s) {
    const float *r = x + s * SLICE;
    const float scale = (float)lathe_inverse_sqrt(sumSquares<SLICE, II>(r) / (double)SLICE + eps);
  scale_row:
    for (int i = 0; i < SLICE; ++i) {
#pragma HLS PIPELINE II=II
      out[s * SLICE + i] = g[i] * (scale * r[i]);
    }
  }
}

// sum = a + b, then out = RMSNorm(sum).
template <int WIDTH, int II>
void addRmsNorm(const float *a, const float *b, const float g[WIDTH], float eps, float *sum,
                float *out) {
add:
  for (int i = 0; i < WIDTH; ++i) {
#pragma HLS PIPELINE II=II
    sum[i] = a[i] + b[i];
  }
  rmsNorm<WIDTH, WIDTH, II>(sum, g, eps, out);
}

// Rotary embedding of one token at `position`: the angle of pair i of head
// group g is position * freq[g * HEAD_DIM / 2 + i]; its cos and sin come
// from tables of CONTEXT rows at double `offset` of `tables`: cos rows,
// then sin rows, GROUPS * HEAD_DIM / 2 doubles a row.
template <int WIDTH, int HEAD_DIM, int GROUPS, int INTERLEAVED, int CONTEXT, int II>
void rope(const double *tables, uint64_t offset, int32_t position, const float *x, float *out) {
  const int kHalf = HEAD_DIM / 2;
  const int kSpan = WIDTH / GROUPS;
  const double *cosRow = tables + offset + (uint64_t)position * GROUPS * kHalf;
  const double *sinRow = tables + offset + ((uint64_t)CONTEXT + position) * GROUPS * kHalf;
groups:
  for (int g = 0; g < GROUPS; ++g)
  pairs:
    for (int i = 0; i < kHalf; ++i) {
      const double c = cosRow[g * kHalf + i], s = sinRow[g * kHalf + i];
    heads:
      for (int j = 0; j < kSpan / HEAD_DIM; ++j) {
#pragma HLS PIPELINE II=II
        const int h = g * kSpan + j * HEAD_DIM;
        const int a = INTERLEAVED ? h + 2 * i : h + i;
        const int b = INTERLEAVED ? a + 1 : a + kHalf;
        const double x0 = x[a], x1 = x[b];
        out[a] = (float)(x0 * c - x1 * s);
        out[b] = (float)(x0 * s + x1 * c);
      }
    }
}

// out = x + bias.
template <int WIDTH, int II> void biasAdd(const float *x, const float bias[WIDTH], float *out) {
add:
  for (int i = 0; i < WIDTH; ++i) {
#pragma HLS PIPELINE II=II
    out[i] = x[i] + bias[i];
  }
}

// out = silu(g) * u.
template <int N, int II> void siluMul(const float *g, const float *u, float *out) {
silu:
  for (int i = 0; i < N; ++i) {
#pragma HLS PIPELINE II=II
    out[i] = g[i] / (1.0f + lathe_exp_f32(-g[i])) * u[i];
  }
}

// out = a + b.
template <int N, int II> void add(const float *a, const float *b, float *out) {
add:
  for (int i = 0; i < N; ++i) {
#pragma HLS PIPELINE II=II
    out[i] = a[i] + b[i];
  }
}

// One token's attention at `position` over layer LAYER of the cache (f32
// rows of KV_WIDTH: for each layer its CONTEXT key rows, then its CONTEXT
// value rows): stores its key and value at row `position`, then each head
// attends to rows 0..position, as the reference kernels do.
template <int LAYER, int HEADS, int KV_HEADS, int HEAD_DIM, int CONTEXT, int II>
void attention(float *cache, int32_t position, const float *q, const float *k, const float *v,
               float *out) {
  const int kKvWidth = KV_HEADS * HEAD_DIM;
  const int kGroup = HEADS / KV_HEADS;
  float *keys = cache + (uint64_t)LAYER * 2 * CONTEXT * kKvWidth;
  float *values = keys + (uint64_t)CONTEXT * kKvWidth;
store:
  for (int i = 0; i < kKvWidth; ++i) {
#pragma HLS PIPELINE II=II
    keys[(uint64_t)position * kKvWidth + i] = k[i];
    values[(uint64_t)position * kKvWidth + i] = v[i];
  }
  const double invSqrt = lathe_inverse_sqrt((double)HEAD_DIM);
  float scores[CONTEXT];
  float row[HEAD_DIM];
  double acc[HEAD_DIM];
heads:
  for (int h = 0; h < HEADS; ++h) {
    const float *qh = q + h * HEAD_DIM;
    const int kvOffset = (h / kGroup) * HEAD_DIM;
    float best = -INFINITY;
  score:
    for (int p = 0; p < CONTEXT; ++p) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=CONTEXT avg=CONTEXT/2
      if (p > position)
        break;
    load_key:
      for (int d = 0; d < HEAD_DIM; ++d)
        row[d] = keys[(uint64_t)p * kKvWidth + kvOffset + d];
      scores[p] = (float)(dot<HEAD_DIM, II>(qh, row) * invSqrt);
      best = scores[p] > best ? scores[p] : best;
    }
    double sum = 0;
  softmax:
    for (int p = 0; p < CONTEXT; ++p) {
#pragma HLS PIPELINE II=II
#pragma HLS LOOP_TRIPCOUNT min=1 max=CONTEXT avg=CONTEXT/2
      if (p > position)
        break;
      scores[p] = lathe_exp_f32(scores[p] - best);
      sum += scores[p];
    }
  clear:
    for (int d = 0; d < HEAD_DIM; ++d)
      acc[d] = 0.0;
  weigh:
    for (int p = 0; p < CONTEXT; ++p) {
#pragma HLS LOOP_TRIPCOUNT min=1 max=CONTEXT avg=CONTEXT/2
      if (p > position)
        break;
      const double weight = scores[p];
    accumulate:
      for (int d = 0; d < HEAD_DIM; ++d) {
#pragma HLS PIPELINE II=II
        acc[d] += weight * values[(uint64_t)p * kKvWidth + kvOffset + d];
      }
    }
  write:
    for (int d = 0; d < HEAD_DIM; ++d)
      out[h * HEAD_DIM + d] = (float)(acc[d] / sum);
  }
}

} // namespace lathe_hls

#endif
