// Attention of steps of many tokens on the tensor cores (mma.sync, sm_80
// and newer), in the manner of FlashAttention-2: a block takes a query tile
// (up to 128 / HeadsPerBlock consecutive tokens of one sequence, sharing its
// row list; LatheCudaFrame::queryTiles) and a group of query heads sharing
// a KV head, and goes through the rows the tile sees in chunks: the chunk's
// key and value rows are read once into shared memory for all the tile's
// tokens and heads (the per-token kernel of CudaAttention.cuh reads them
// once per token), then each warp multiplies its 16 query rows (16 tokens
// of one head) by them: scores Q K^T, online softmax in registers, P V.
// The host launches it instead of attention() when the step's tiles hold
// LATHE_CUDA_FLASH_TOKENS tokens or more on average (prompts); decoding
// sequences and token-tree nodes keep the per-token kernel.
// Part of LatheCudaKernels.cuh.
//
// Numerics, as in CudaTiledProducts.cuh: every operand is split exactly
// into bf16 parts (queries and probabilities, floats, into three; cached
// keys and values into as many as their type needs: float 3, half 2, bf16
// 1), and the products of parts down to 2^-16 of the whole are summed in
// float; what is dropped is below float rounding, so the results agree
// with the reference kernels as closely as attention()'s.
//
// Layout: a lane holds the m16n8k16 fragments of its rows g and g + 8 (g =
// lane / 4): the query fragments in registers for the whole kernel, the
// score accumulators of a chunk, which are the A fragments of P V as they
// stand (the C layout of two n8 tiles is the A layout of one k16 step).
// Keys sit in shared memory row by row (B of Q K^T: a lane reads two words
// of key row g), values transposed (B of P V: two words of dimension row
// g), both rows padded by 4 words so that the 32 lanes hit 32 banks.
#pragma once

#include "CudaAttention.cuh"
#include "CudaMma.cuh"

namespace lathe_cuda {

/// The bf16 parts a cache element splits into exactly: a float's 24
/// significant bits take three, a half's 11 two, a bf16 one.
template <typename E> constexpr int kCacheParts = 3;
template <> constexpr int kCacheParts<__half> = 2;
template <> constexpr int kCacheParts<__nv_bfloat16> = 1;

/// Keys per chunk: the most (64, 32 or 16) whose parts of keys and values
/// fit (CudaFrame.h).
template <int Parts, int HeadDim>
constexpr int kFlashChunk =
    LATHE_CUDA_FLASH_SHARED(Parts, HeadDim, 64) <= LATHE_CUDA_FLASH_SHARED_LIMIT   ? 64
    : LATHE_CUDA_FLASH_SHARED(Parts, HeadDim, 32) <= LATHE_CUDA_FLASH_SHARED_LIMIT ? 32
                                                                                   : 16;

/// Tile blockIdx.x of f.queryTiles, heads HeadsPerBlock * blockIdx.y ..:
/// warp w takes head w % HeadsPerBlock of them for tokens 16 (w /
/// HeadsPerBlock) .. + 15 of the tile.
template <typename E, int Heads, int KvHeads, int HeadDim, int HeadsPerBlock>
__device__ void flashAttention(const LatheCudaFrame &f, int queries, int out, int layer) {
  constexpr int G = HeadsPerBlock;
  constexpr int kParts = kCacheParts<E>;
  static_assert(LATHE_CUDA_FLASH_FITS(kParts, HeadDim, G), "the emitter checks the shapes");
  static_assert(LATHE_CUDA_FLASH_QUERY_TILE(G) == 16 * (kWarps / G), "16 tokens a warp");
  static_assert((Heads / KvHeads) % G == 0, "a block's heads share one KV head");
  constexpr int C = kFlashChunk<kParts, HeadDim>;
  constexpr int kKeyWords = HeadDim / 2 + 4, kValueWords = C / 2 + 4;
  constexpr int kvWidth = KvHeads * HeadDim;
  constexpr int kSteps = HeadDim / 16; // k16 steps of Q K^T
  __shared__ uint32_t keys[kParts][C][kKeyWords];       // key row, then pairs of dimensions
  __shared__ uint32_t values[kParts][HeadDim][kValueWords]; // dimension, then pairs of keys
  startStep();
  // A graph's launch has a block per token (the most tiles a step has).
  if (int(blockIdx.x) >= f.queryTileCount)
    return;
  const int32_t *tile = f.queryTiles + 3 * blockIdx.x;
  const int first = tile[0], tokens = tile[1];
  const VisibleRows rows(f, tile[2]); // the tile's tokens read the rows it lists
  const int count = rows.count;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const int head = blockIdx.y * G + warp % G;
  const int kvOffset = (blockIdx.y * G / (Heads / KvHeads)) * HeadDim;
  // The lane's rows: tokens r and r + 8 of the warp's 16; past the tile's
  // end, its last token again (computed, not stored).
  const int r[2] = {(warp / G) * 16 + g, (warp / G) * 16 + g + 8};
  int token[2], seen[2];
  for (int i = 0; i < 2; ++i) {
    token[i] = first + min(r[i], tokens - 1);
    seen[i] = VisibleRows(f, token[i]).count;
  }

  // The queries' A fragments, split: qa[s][part] for dimensions 16 s ..
  uint32_t qa[kSteps][3][4];
  {
    const float *q[2];
    for (int i = 0; i < 2; ++i)
      q[i] = f.buffers[queries] + (int64_t(token[i]) * Heads + head) * HeadDim;
#pragma unroll
    for (int s = 0; s < kSteps; ++s)
#pragma unroll
      for (int e = 0; e < 4; ++e) { // a0: row g, k 2c; a1: row g + 8; a2, a3: k 2c + 8
        const float2 v = *reinterpret_cast<const float2 *>(q[e % 2] + 16 * s + 2 * c + 8 * (e / 2));
        uint32_t p[3];
        splitPair(v.x, v.y, p);
#pragma unroll
        for (int i = 0; i < 3; ++i)
          qa[s][i][e] = p[i];
      }
  }
  const float scale = float(1.0 / sqrt(double(HeadDim)));
  float o[HeadDim / 8][4] = {};
  float best[2] = {-INFINITY, -INFINITY}, sum[2] = {0, 0}; // per row: running max, lane's sum

  for (int p0 = 0; p0 < count; p0 += C) {
    __syncthreads(); // the warps are done with the last chunk
    for (int i = threadIdx.x; i < C * HeadDim / 2; i += kThreads) {
      const int key = i / (HeadDim / 2), pair = i % (HeadDim / 2);
      float a = 0, b = 0;
      if (p0 + key < count) {
        const E *k = cacheRow<E, kvWidth>(f, layer, false, rows[p0 + key]) + kvOffset;
        a = fromCache(k[2 * pair]), b = fromCache(k[2 * pair + 1]);
      }
      uint32_t p[3];
      splitPair(a, b, p);
#pragma unroll
      for (int j = 0; j < kParts; ++j)
        keys[j][key][pair] = p[j];
    }
    for (int i = threadIdx.x; i < C / 2 * HeadDim; i += kThreads) {
      const int d = i % HeadDim, pair = i / HeadDim, p = p0 + 2 * pair;
      // Zeros past the rows seen: a probability of 0 times garbage could be NaN.
      const float a = p < count ? fromCache(cacheRow<E, kvWidth>(f, layer, true, rows[p])[kvOffset + d]) : 0;
      const float b =
          p + 1 < count ? fromCache(cacheRow<E, kvWidth>(f, layer, true, rows[p + 1])[kvOffset + d]) : 0;
      uint32_t parts[3];
      splitPair(a, b, parts);
#pragma unroll
      for (int j = 0; j < kParts; ++j)
        values[j][d][pair] = parts[j];
    }
    __syncthreads();

    // Scores: s[n] is the lane's part of keys 8 n .. 8 n + 7 of the chunk.
    float s[C / 8][4];
#pragma unroll
    for (int n = 0; n < C / 8; ++n) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0;
#pragma unroll
      for (int st = 0; st < kSteps; ++st)
#pragma unroll
        for (int j = 0; j < kParts; ++j) {
          const uint32_t b0 = keys[j][8 * n + g][8 * st + c], b1 = keys[j][8 * n + g][8 * st + c + 4];
#pragma unroll
          for (int i = 0; i + j <= 2; ++i)
            mma16816(s[n], qa[st][i], b0, b1);
        }
    }
    // Online softmax: each row's maximum over the chunk (its four lanes),
    // the running sums and values rescaled to the new one.
    float chunkBest[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < C / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int p = p0 + 8 * n + 2 * c + e % 2;
        s[n][e] = p < seen[e / 2] ? s[n][e] * scale : -INFINITY;
        chunkBest[e / 2] = fmaxf(chunkBest[e / 2], s[n][e]);
      }
    float rescale[2], ref[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      chunkBest[i] = fmaxf(chunkBest[i], __shfl_xor_sync(0xffffffffu, chunkBest[i], 1));
      chunkBest[i] = fmaxf(chunkBest[i], __shfl_xor_sync(0xffffffffu, chunkBest[i], 2));
      const float next = fmaxf(best[i], chunkBest[i]);
      // Every token sees row 0, so a row's maximum is finite from the
      // first chunk on; the guard keeps a row that saw nothing at 0, not NaN.
      ref[i] = next == -INFINITY ? 0.0f : next;
      rescale[i] = expf(best[i] - ref[i]); // 0 on the first chunk
      best[i] = next;
      sum[i] *= rescale[i];
    }
#pragma unroll
    for (int n = 0; n < C / 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[n][e] = expf(s[n][e] - ref[e / 2]);
        sum[e / 2] += s[n][e];
      }
#pragma unroll
    for (int n = 0; n < HeadDim / 8; ++n)
      o[n][0] *= rescale[0], o[n][1] *= rescale[0], o[n][2] *= rescale[1], o[n][3] *= rescale[1];

    // P V: the probabilities of keys 16 kk .. + 15 as an A fragment, split.
#pragma unroll
    for (int kk = 0; kk < C / 16; ++kk) {
      uint32_t pa[3][4];
#pragma unroll
      for (int e = 0; e < 4; ++e) { // a0: row g, keys 2c..; a1: row g + 8; a2, a3: keys + 8
        const float *v = s[2 * kk + e / 2] + 2 * (e % 2);
        uint32_t p[3];
        splitPair(v[0], v[1], p);
#pragma unroll
        for (int i = 0; i < 3; ++i)
          pa[i][e] = p[i];
      }
#pragma unroll
      for (int n = 0; n < HeadDim / 8; ++n)
#pragma unroll
        for (int j = 0; j < kParts; ++j) {
          const uint32_t b0 = values[j][8 * n + g][8 * kk + c], b1 = values[j][8 * n + g][8 * kk + c + 4];
#pragma unroll
          for (int i = 0; i + j <= 2; ++i)
            mma16816(o[n], pa[i], b0, b1);
        }
    }
  }

#pragma unroll
  for (int i = 0; i < 2; ++i) {
    sum[i] += __shfl_xor_sync(0xffffffffu, sum[i], 1);
    sum[i] += __shfl_xor_sync(0xffffffffu, sum[i], 2);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    if (r[i] >= tokens)
      continue;
    float *y = f.buffers[out] + (int64_t(token[i]) * Heads + head) * HeadDim + 2 * c;
#pragma unroll
    for (int n = 0; n < HeadDim / 8; ++n)
      *reinterpret_cast<float2 *>(y + 8 * n) =
          make_float2(o[n][2 * i] / sum[i], o[n][2 * i + 1] / sum[i]);
  }
}

} // namespace lathe_cuda
