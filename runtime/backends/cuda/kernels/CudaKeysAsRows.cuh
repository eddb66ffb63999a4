// The one-token attention's arithmetic of a chunk of 16 cache rows with the
// keys as the rows of the m16n8k16 mma and a block's heads (at most 8) as
// its columns: S^T = K Q^T, then O^T = V^T P^T (m16: 16 keys, or 16 head
// dimensions; n8: the heads). Part of LatheCudaKernels.cuh; the kernels
// (CudaTokenAttentionMma.cuh, CudaTokenAttentionNibbles.cuh) load and
// widen the rows and give the fragments.
//
// Why: with the heads as the rows (Q K^T, P V), a block of G <= 8 heads
// fills at most half of an m16 tile (a group of 4 heads a quarter) and
// every mma is half zeros; with the keys as the rows the same chunk takes
// half the mma (heads of 64, bf16 queries: 12 a chunk in place of 24) and
// half the output accumulators (HeadDim / 16 tiles in place of HeadDim /
// 8), which gives registers back (ptxas, bfp4 heads of 64: 80 in place of
// 103).
//
// The fragments (lane = 4 g + c):
// - scores, the accumulators of S^T: s[0], s[1] = key g at heads 2c, 2c +
//   1; s[2], s[3] = key g + 8 at the same heads. A head's scores are thus
//   spread over the 8 lanes of one c (softmaxKeysAsRows).
// - Q^T as B: b0 = head g at dimensions 2c, 2c + 1 of the step, b1 = 2c +
//   8, 2c + 9: the a0 and a2 of the queries' A fragment with the heads as
//   the rows.
// - P^T as B: keys 2c, 2c + 1 (and 2c + 8, 2c + 9) at head g, the
//   transpose of the scores' 8x8 halves (probabilityColumns).
// - the outputs, the accumulators of O^T for dimensions 16 m ..: o[m][0],
//   o[m][1] = tile row g at heads 2c, 2c + 1; o[m][2], o[m][3] = row g + 8.
#pragma once

#include "CudaFlashAttention.cuh"
#include "CudaMma.cuh"

/* Which blocks of at most 8 heads take the keys as the mma's rows: 1 (the
 * default) those of the caches whose kernel path says so (kKeysAsRows), 0
 * none, 2 every one (to compare). Measured on an H100 (2026-12-07,
 * scripts/cuda-attention-check.cu, 16 sequences x 4096 rows, 32 heads over
 * 8 KV heads of 64; "steady": 16 layers launched back to back as a decode
 * step does, per layer; docs/benchmarks.md, 15:57 UTC), keys as rows
 * against heads as rows: bf16 50.7 against 53.7 us steady (65.6 against
 * 68.4 alone), so bf16 caches take it; bfp4 31.7 against 24.8 steady
 * (34.3 against 34.1 alone) and bfp8 43.5 against 32.5, so those keep the
 * heads; int8 32.0 against 32.4, within the calls' spread, keeps them as
 * it was. The compressed caches' loss comes with their fewer registers:
 * at 76-80 three blocks fit an SM, and the next layer's blocks wait beside
 * the running ones; capped at two blocks an SM (-DEXTRA_SMEM=40960 in the
 * check) keys as rows took bfp4 25.1 against 25.0 steady. */
#ifndef LATHE_CUDA_KEYS_AS_ROWS
#define LATHE_CUDA_KEYS_AS_ROWS 1
#endif

namespace lathe_cuda {

/// Whether a block of G heads takes the keys as the mma's rows, its cache's
/// kernel path saying `pathTakesIt` (LATHE_CUDA_KEYS_AS_ROWS, above).
template <int G, bool pathTakesIt> constexpr bool kKeysAsRows =
    G <= 8 && (LATHE_CUDA_KEYS_AS_ROWS == 2 || (LATHE_CUDA_KEYS_AS_ROWS == 1 && pathTakesIt));

/// The transpose of the 8x8 matrix of 16-bit values whose fragment the
/// warp holds (lane 4 g + c: row g, columns 2c and 2c + 1), in the same
/// layout: lane 4 g + c gets rows 2c and 2c + 1 of column g.
__device__ inline uint32_t transposeMatrix(uint32_t m) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  uint32_t t;
  asm("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(t) : "r"(m));
  return t;
#else
  __trap();
  return m;
#endif
}

/// Online softmax of a chunk's scores with the keys as rows (s: keys p0 +
/// g and p0 + g + 8 at heads 2c and 2c + 1, every head seeing `seen`
/// rows): scaled, masked past the rows seen, each head's maximum over the
/// chunk (the 8 lanes of its c); the running sums (each lane's part)
/// rescaled to the new maximum, s made the chunk's probabilities, and in
/// `rescale` what each head's outputs so far are to be multiplied by
/// (rescaleColumns). As softmaxChunk, transposed.
__device__ inline void softmaxKeysAsRows(float (&s)[4], int p0, int seen, float scale, float (&best)[2],
                                         float (&sum)[2], float (&rescale)[2]) {
  const int g = threadIdx.x % 32 / 4;
  float chunkBest[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    s[e] = p0 + g + 8 * (e / 2) < seen ? s[e] * scale : -INFINITY;
    chunkBest[e % 2] = fmaxf(chunkBest[e % 2], s[e]);
  }
  float ref[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int x = 4; x < 32; x *= 2)
      chunkBest[i] = fmaxf(chunkBest[i], __shfl_xor_sync(0xffffffffu, chunkBest[i], x));
    ref[i] = raiseMaximum(chunkBest[i], best[i], sum[i], rescale[i]);
  }
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    s[e] = exp2Approx(s[e] - ref[e % 2]);
    sum[e % 2] += s[e];
  }
}

/// The outputs of heads 2c and 2c + 1 times softmaxKeysAsRows' rescale.
template <int HeadDim> __device__ void rescaleColumns(float (&o)[HeadDim / 16][4], const float (&rescale)[2]) {
#pragma unroll
  for (int m = 0; m < HeadDim / 16; ++m)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      o[m][e] *= rescale[e % 2];
}

/// The probabilities (softmaxKeysAsRows' s) as P^T's B fragments, split
/// into Parts bf16 parts: pb[part][0] keys 2c, 2c + 1 at head g, pb[part][1]
/// keys 2c + 8, 2c + 9. Each 8x8 half of the scores, rounded to its parts,
/// is transposed in registers.
template <int Parts> __device__ void probabilityColumns(const float (&s)[4], uint32_t (&pb)[Parts][2]) {
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    uint32_t p[3];
    splitPair(s[2 * half], s[2 * half + 1], p);
#pragma unroll
    for (int i = 0; i < Parts; ++i)
      pb[i][half] = transposeMatrix(p[i]);
  }
}

/// A row-scaled cache's scores or probabilities (keys g and g + 8) times
/// their rows' scales.
__device__ inline void scaleKeyRows(float (&s)[4], const float *scales) {
  const int g = threadIdx.x % 32 / 4;
#pragma unroll
  for (int e = 0; e < 4; ++e)
    s[e] *= scales[g + 8 * (e / 2)];
}

} // namespace lathe_cuda
