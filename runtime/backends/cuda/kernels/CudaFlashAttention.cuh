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
// with the reference kernels as closely as attention()'s. With bf16
// queries (Bf16Queries: AttentionStep's activations, which the reference
// kernels round alike) a query is one part, and each probability two:
// its 16 leading significant bits, within 2^-17 of the float the reference
// multiplies (the build's products round their inputs at 2^-9).
//
// Layout: a lane holds the m16n8k16 fragments of its rows g and g + 8 (g =
// lane / 4): the query fragments in registers for the whole kernel, the
// score accumulators of a chunk, which are the A fragments of P V as they
// stand (the C layout of two n8 tiles is the A layout of one k16 step).
// The chunks' rows reach shared memory in one of two layouts (chunk
// types below): a bf16 cache's key and value rows as they are, copied by
// cp.async into two buffers (the next chunk in flight while the warps
// multiply this one) and read by ldmatrix (values transposed by it); any
// other cache's rows split into parts by the block's threads, keys row by
// row and values transposed, into one buffer.
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

/// A chunk's cached rows in shared memory, split into parts by the block's
/// threads: keys row by row (B of Q K^T: a lane reads two words of key row
/// g), values transposed (B of P V: two words of dimension row g), both
/// rows padded by 4 words so that the 32 lanes hit 32 banks. One buffer:
/// load() stores before it returns.
template <typename E, int HeadDim, int C> struct SplitChunks {
  static constexpr int kParts = kCacheParts<E>;
  static constexpr int kBuffers = 1, kChunk = C;
  uint32_t keys[kParts][C][HeadDim / 2 + 4];       // key row, then pairs of dimensions
  uint32_t values[kParts][HeadDim][C / 2 + 4];     // dimension, then pairs of keys

  template <int KvWidth>
  __device__ void load(const LatheCudaFrame &f, const VisibleRows &rows, int layer, int kvOffset,
                       int p0, int) {
    const int count = rows.count;
    for (int i = threadIdx.x; i < C * HeadDim / 2; i += kThreads) {
      const int key = i / (HeadDim / 2), pair = i % (HeadDim / 2);
      float a = 0, b = 0;
      if (p0 + key < count) {
        const E *k = cacheRow<E, KvWidth>(f, layer, false, rows[p0 + key]) + kvOffset;
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
      const float a = p < count ? fromCache(cacheRow<E, KvWidth>(f, layer, true, rows[p])[kvOffset + d]) : 0;
      const float b =
          p + 1 < count ? fromCache(cacheRow<E, KvWidth>(f, layer, true, rows[p + 1])[kvOffset + d]) : 0;
      uint32_t parts[3];
      splitPair(a, b, parts);
#pragma unroll
      for (int j = 0; j < kParts; ++j)
        values[j][d][pair] = parts[j];
    }
  }
  /// B fragments of part j of keys 8 n .. 8 n + 15 (two n8 tiles: b[0],
  /// b[1] and b[2], b[3]) at dimensions 16 st .. 16 st + 15.
  __device__ void keyFragments(int, int j, int n, int st, uint32_t (&b)[4]) const {
    fragments(keys[j], n, st, b);
  }
  /// B fragments of part j of dimensions 8 n .. 8 n + 15 (two n8 tiles) at
  /// keys 16 kk .. 16 kk + 15.
  __device__ void valueFragments(int, int j, int kk, int n, uint32_t (&b)[4]) const {
    fragments(values[j], n, kk, b);
  }

private:
  /// Rows 8 n + g and 8 n + 8 + g of `rows`, words 8 k + c and 8 k + c + 4.
  template <int Words>
  __device__ static void fragments(const uint32_t (*rows)[Words], int n, int k,
                                   uint32_t (&b)[4]) {
    const int lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
#pragma unroll
    for (int t = 0; t < 2; ++t) {
      b[2 * t] = rows[8 * (n + t) + g][8 * k + c];
      b[2 * t + 1] = rows[8 * (n + t) + g][8 * k + c + 4];
    }
  }
};

/// A bf16 cache's chunk rows as they are, keys and values alike, each row
/// a head's HeadDim values and 16 bytes of padding (a row every 36 words
/// mod 32: ldmatrix's 8 rows of 16 bytes hit 32 banks). Two buffers:
/// load() issues cp.async copies of 16 bytes (rows past the ones seen are
/// zeros: a probability of 0 times garbage could be NaN) and commits them
/// as a group, which the caller waits for.
template <int HeadDim, int C> struct CopiedChunks {
  static constexpr int kParts = 1, kBuffers = 2, kChunk = C, kRow = HeadDim + 8,
                       kCopies = HeadDim / 8;
  __nv_bfloat16 keys[2][C][kRow];
  __nv_bfloat16 values[2][C][kRow];

  template <int KvWidth>
  __device__ void load(const LatheCudaFrame &f, const VisibleRows &rows, int layer, int kvOffset,
                       int p0, int buffer) {
    for (int i = threadIdx.x; i < 2 * C * kCopies; i += kThreads) {
      const bool value = i >= C * kCopies;
      const int j = value ? i - C * kCopies : i, key = j / kCopies, part = j % kCopies;
      __nv_bfloat16 *to = (value ? values : keys)[buffer][key] + 8 * part;
      if (p0 + key < rows.count)
        copyAsync16(to, cacheRow<__nv_bfloat16, KvWidth>(f, layer, value, rows[p0 + key]) +
                            kvOffset + 8 * part);
      else
        *reinterpret_cast<uint4 *>(to) = make_uint4(0, 0, 0, 0);
    }
    commitCopies();
  }
  /// Keys 8 n .. 8 n + 15 at dimensions 16 st .. (CudaMma.cuh's keyFragments).
  __device__ void keyFragments(int buffer, int, int n, int st, uint32_t (&b)[4]) const {
    lathe_cuda::keyFragments(keys[buffer], n, st, b);
  }
  /// Dimensions 8 n .. 8 n + 15 at keys 16 kk .. (valueFragments).
  __device__ void valueFragments(int buffer, int, int kk, int n, uint32_t (&b)[4]) const {
    lathe_cuda::valueFragments(values[buffer], kk, n, b);
  }
};

template <typename E, int HeadDim> struct FlashChunksOf {
  using Type = SplitChunks<E, HeadDim, kFlashChunk<kCacheParts<E>, HeadDim>>;
};
template <int HeadDim> struct FlashChunksOf<__nv_bfloat16, HeadDim> {
  using Type = CopiedChunks<HeadDim, kFlashChunk<1, HeadDim>>;
};

/// Scores in base 2: exp(x) = 2^(x log2 e), the log2 e folded into the
/// scale, so that each probability is one exp2 (the hardware's, within 2
/// ulp) instead of expf's range reduction.
template <int HeadDim> __device__ inline float base2Scale() {
  return float(1.4426950408889634 / sqrt(double(HeadDim)));
}
/// 2^x by the hardware's approximation alone (within 2 ulp; results below
/// 2^-126 flushed to 0, -inf to 0): exp2f adds a test and two multiplies
/// for subnormal results, which no probability beside a maximum of 1 needs
/// (a sixth of a one-token attention chunk's instructions were these).
__device__ inline float exp2Approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/// The online softmax's step for one row (or head): its running maximum
/// `best` (base 2) and sum moved to the chunk's maximum `chunkBest`; returns
/// the maximum the chunk's scores are taken against, and in `rescale` what
/// the outputs so far are to be multiplied by (0 on the first chunk).
/// Every token sees row 0, so a row's maximum is finite from the first
/// chunk on; the guard keeps a row that saw nothing at 0, not NaN.
__device__ inline float raiseMaximum(float chunkBest, float &best, float &sum, float &rescale) {
  const float next = fmaxf(best, chunkBest);
  const float ref = next == -INFINITY ? 0.0f : next;
  rescale = exp2Approx(best - ref);
  best = next;
  sum *= rescale;
  return ref;
}

/// The lane's rows of a warp's 16 tile rows from `from` on (a tile of
/// `tokens` tokens from `first` on): tile rows r = from + g and from + g +
/// 8 (g = lane / 4), their tokens (past the tile's end its last token
/// again: computed, not stored) and the cached rows each sees.
__device__ inline void laneRows(const LatheCudaFrame &f, int first, int tokens, int from,
                                int (&r)[2], int (&token)[2], int (&seen)[2]) {
  const int g = threadIdx.x % 32 / 4;
  for (int i = 0; i < 2; ++i) {
    r[i] = from + g + 8 * i;
    token[i] = first + min(r[i], tokens - 1);
    seen[i] = VisibleRows(f, token[i]).count;
  }
}

/// The lane's A fragments of its rows' queries (tokens token[0] and
/// token[1], one head), split into Parts bf16 parts: qa[s][part] for
/// dimensions 16 s .. 16 s + 15.
template <int Heads, int HeadDim, int Parts>
__device__ void queryFragments(const LatheCudaFrame &f, int queries, const int (&token)[2], int head,
                               uint32_t (&qa)[HeadDim / 16][Parts][4]) {
  const int c = threadIdx.x % 4;
  const float *q[2];
  for (int i = 0; i < 2; ++i)
    q[i] = f.buffers[queries] + (int64_t(token[i]) * Heads + head) * HeadDim;
#pragma unroll
  for (int s = 0; s < HeadDim / 16; ++s)
#pragma unroll
    for (int e = 0; e < 4; ++e) { // a0: row g, k 2c; a1: row g + 8; a2, a3: k 2c + 8
      const float2 v = *reinterpret_cast<const float2 *>(q[e % 2] + 16 * s + 2 * c + 8 * (e / 2));
      uint32_t p[3];
      splitPair(v.x, v.y, p); // p[0] alone: the pair rounded to bf16
#pragma unroll
      for (int i = 0; i < Parts; ++i)
        qa[s][i][e] = p[i];
    }
}

/// Online softmax of a chunk's scores (s[n]: the lane's part of keys p0 +
/// 8 n .., C keys, in the m16n8 accumulator layout; rows g and g + 8,
/// which see seen[0] and seen[1] rows): scaled, masked past the rows seen,
/// each row's maximum over the chunk (its four lanes); the running sums
/// rescaled to the new maximum, s made the chunk's probabilities, and in
/// `rescale` what the outputs so far are to be multiplied by
/// (rescaleOutputs). Halves 1: only rows g hold anything (a tile of at most
/// 8 rows), rows g + 8 are left as they are.
template <int C, int Halves = 2>
__device__ void softmaxChunk(float (&s)[C / 8][4], int p0, const int (&seen)[2], float scale,
                             float (&best)[2], float (&sum)[2], float (&rescale)[2]) {
  static_assert(Halves == 1 || Halves == 2, "rows g, and g + 8");
  const int c = threadIdx.x % 4;
  float chunkBest[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int n = 0; n < C / 8; ++n)
#pragma unroll
    for (int e = 0; e < 2 * Halves; ++e) {
      const int p = p0 + 8 * n + 2 * c + e % 2;
      s[n][e] = p < seen[e / 2] ? s[n][e] * scale : -INFINITY;
      chunkBest[e / 2] = fmaxf(chunkBest[e / 2], s[n][e]);
    }
  float ref[2];
#pragma unroll
  for (int i = 0; i < Halves; ++i) {
    chunkBest[i] = fmaxf(chunkBest[i], __shfl_xor_sync(0xffffffffu, chunkBest[i], 1));
    chunkBest[i] = fmaxf(chunkBest[i], __shfl_xor_sync(0xffffffffu, chunkBest[i], 2));
    ref[i] = raiseMaximum(chunkBest[i], best[i], sum[i], rescale[i]);
  }
  if constexpr (Halves == 1)
    rescale[1] = 1;
#pragma unroll
  for (int n = 0; n < C / 8; ++n)
#pragma unroll
    for (int e = 0; e < 2 * Halves; ++e) {
      s[n][e] = exp2Approx(s[n][e] - ref[e / 2]);
      sum[e / 2] += s[n][e];
    }
}
/// The outputs of rows g and g + 8 times softmaxChunk's rescale (Halves 1:
/// rows g only).
template <int HeadDim, int Halves = 2>
__device__ void rescaleOutputs(float (&o)[HeadDim / 8][4], const float (&rescale)[2]) {
#pragma unroll
  for (int n = 0; n < HeadDim / 8; ++n)
#pragma unroll
    for (int e = 0; e < 2 * Halves; ++e)
      o[n][e] *= rescale[e / 2];
}

/// The probabilities of keys 16 kk .. + 15 (softmaxChunk's s) as an A
/// fragment, split into Parts bf16 parts: the accumulators of two n8
/// tiles are the A fragment of one k16 step as they stand. Halves 1: rows
/// g + 8 zeros.
template <int C, int Parts, int Halves = 2>
__device__ void probabilityFragments(const float (&s)[C / 8][4], int kk,
                                     uint32_t (&pa)[Parts][4]) {
#pragma unroll
  for (int e = 0; e < 4; ++e) { // a0: row g, keys 2c..; a1: row g + 8; a2, a3: keys + 8
    uint32_t p[3] = {0, 0, 0};
    if (Halves == 2 || e % 2 == 0) {
      const float *v = s[2 * kk + e / 2] + 2 * (e % 2);
      splitPair(v[0], v[1], p);
    }
#pragma unroll
    for (int i = 0; i < Parts; ++i)
      pa[i][e] = p[i];
  }
}

/// Writes the lane's rows of the output: o over each row's sum (over its
/// four lanes); rows r[i] past the tile's `tokens` are left out. And the
/// same as the token rows of the product after, where OutputRows asks.
template <int Heads, int HeadDim>
__device__ void storeAttention(const LatheCudaFrame &f, int out, const int (&r)[2], int tokens,
                               const int (&token)[2], int head, const float (&o)[HeadDim / 8][4],
                               float (&sum)[2], const OutputRows &rows) {
  const int c = threadIdx.x % 4;
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
    for (int n = 0; n < HeadDim / 8; ++n) {
      const float2 v = make_float2(o[n][2 * i] / sum[i], o[n][2 * i + 1] / sum[i]);
      *reinterpret_cast<float2 *>(y + 8 * n) = v;
      rows.putPair(token[i], head * HeadDim + 8 * n + 2 * c, v.x, v.y);
    }
  }
}

/// Tile f.queryTileCount - 1 - blockIdx.x of f.queryTiles (the last first:
/// a sequence's later tiles see more rows, and the blocks that start last
/// should finish soonest), heads HeadsPerBlock * blockIdx.y ..: warp w
/// takes head w % HeadsPerBlock of them for tokens 16 (w / HeadsPerBlock)
/// .. + 15 of the tile.
template <typename E, int Heads, int KvHeads, int HeadDim, int HeadsPerBlock, bool Bf16Queries>
__device__ void flashAttention(const LatheCudaFrame &f, int queries, int out, int layer,
                               int rowsFrom = 0) {
  const OutputRows outputRows(f, rowsFrom, Heads * HeadDim);
  using Chunks = typename FlashChunksOf<E, HeadDim>::Type;
  constexpr int G = HeadsPerBlock;
  constexpr int kParts = Chunks::kParts;
  // Parts of a query and of a probability (three: exact).
  constexpr int kQueryParts = Bf16Queries ? 1 : 3, kProbabilityParts = Bf16Queries ? 2 : 3;
  static_assert(LATHE_CUDA_FLASH_FITS(kParts, HeadDim, G), "the emitter checks the shapes");
  static_assert(LATHE_CUDA_FLASH_QUERY_TILE(G) == 16 * (kWarps / G), "16 tokens a warp");
  static_assert((Heads / KvHeads) % G == 0, "a block's heads share one KV head");
  static_assert(sizeof(Chunks) <= LATHE_CUDA_FLASH_SHARED_LIMIT, "CudaFrame.h's sizes");
  constexpr int C = Chunks::kChunk;
  constexpr int kvWidth = KvHeads * HeadDim;
  constexpr int kSteps = HeadDim / 16; // k16 steps of Q K^T
  __shared__ __align__(16) Chunks chunks;
  startStep();
  // A graph's launch has a block per token (the most tiles a step has).
  if (int(blockIdx.x) >= f.queryTileCount)
    return;
  const int32_t *tile = f.queryTiles + 3 * (f.queryTileCount - 1 - blockIdx.x);
  const int first = tile[0], tokens = tile[1];
  const VisibleRows rows(f, tile[2]); // the tile's tokens read the rows it lists
  const int count = rows.count;
  const int warp = threadIdx.x / 32;
  const int head = blockIdx.y * G + warp % G;
  const int kvOffset = (blockIdx.y * G / (Heads / KvHeads)) * HeadDim;
  chunks.template load<kvWidth>(f, rows, layer, kvOffset, 0, 0);
  int r[2], token[2], seen[2];
  laneRows(f, first, tokens, (warp / G) * 16, r, token, seen);

  // The queries' A fragments, split: qa[s][part] for dimensions 16 s ..
  uint32_t qa[kSteps][kQueryParts][4];
  queryFragments<Heads, HeadDim, kQueryParts>(f, queries, token, head, qa);
  const float scale = base2Scale<HeadDim>();
  float o[HeadDim / 8][4] = {};
  float best[2] = {-INFINITY, -INFINITY}, sum[2] = {0, 0}; // per row: running max, lane's sum

  for (int p0 = 0, chunk = 0; p0 < count; p0 += C, ++chunk) {
    const int buffer = chunk % Chunks::kBuffers;
    if constexpr (Chunks::kBuffers == 2) {
      if (p0 + C < count) { // the next chunk's copies go out before this one's are waited for
        chunks.template load<kvWidth>(f, rows, layer, kvOffset, p0 + C, 1 - buffer);
        waitCopies<1>();
      } else {
        waitCopies<0>();
      }
    }
    __syncthreads(); // the chunk is in shared memory

    // Scores: s[n] is the lane's part of keys 8 n .. 8 n + 7 of the chunk.
    float s[C / 8][4];
#pragma unroll
    for (int n = 0; n < C / 8; ++n)
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0;
#pragma unroll
    for (int n = 0; n < C / 8; n += 2)
#pragma unroll
      for (int st = 0; st < kSteps; ++st)
#pragma unroll
        for (int j = 0; j < kParts; ++j) {
          uint32_t b[4];
          chunks.keyFragments(buffer, j, n, st, b);
#pragma unroll
          for (int t = 0; t < 2; ++t)
#pragma unroll
            for (int i = 0; i < kQueryParts && i + j <= 2; ++i)
              mma16816(s[n + t], qa[st][i], b[2 * t], b[2 * t + 1]);
        }
    float rescale[2];
    softmaxChunk<C>(s, p0, seen, scale, best, sum, rescale);
    rescaleOutputs<HeadDim>(o, rescale);

    // P V: the probabilities of keys 16 kk .. + 15 as an A fragment, split.
#pragma unroll
    for (int kk = 0; kk < C / 16; ++kk) {
      uint32_t pa[kProbabilityParts][4];
      probabilityFragments<C, kProbabilityParts>(s, kk, pa);
#pragma unroll
      for (int n = 0; n < HeadDim / 8; n += 2)
#pragma unroll
        for (int j = 0; j < kParts; ++j) {
          uint32_t b[4];
          chunks.valueFragments(buffer, j, kk, n, b);
#pragma unroll
          for (int t = 0; t < 2; ++t)
#pragma unroll
            for (int i = 0; i < kProbabilityParts && i + j <= 2; ++i)
              mma16816(o[n + t], pa[i], b[2 * t], b[2 * t + 1]);
        }
    }
    __syncthreads(); // the warps are done with the chunk (the buffer the next copies fill)
    if constexpr (Chunks::kBuffers == 1)
      if (p0 + C < count)
        chunks.template load<kvWidth>(f, rows, layer, kvOffset, p0 + C, 0);
  }

  storeAttention<Heads, HeadDim>(f, out, r, tokens, token, head, o, sum, outputRows);
}

} // namespace lathe_cuda
