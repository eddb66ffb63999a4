// The one-token attention over a 4-bit BFP cache with the codes widened
// straight into the mma's fragments, and the one-token attention the
// generated code calls (attention(), below). Part of LatheCudaKernels.cuh.
//
// CudaTokenAttentionMma.cuh widens a chunk's rows into shared memory and
// reads the fragments back with ldmatrix: a bfp4 chunk of 16 rows cost a
// warp about 368 instructions, 110 of them widening, the rest the stores,
// the ldmatrix reads, their barriers and register moves, and the launch
// issued on 45% of its cycles (16 sequences at 4096 rows: 34.6 us a layer
// against bf16's 48.8, H200, scripts/cuda-attention-check.cu). Here each
// lane loads exactly the codes its fragments hold and widens them in
// registers; shared memory is used only where the warps meet at the end.
//
// The fragments (m16n8k16, lane = 4 g + c):
// - Q K^T: B is k16 x n8, b0 = keys' dimensions k 2c, 2c + 1 of key row g,
//   b1 = k 2c + 8, 2c + 9. A head's dimensions may be taken in any order
//   (the queries are read in the same one), so lane c takes the HeadDim / 4
//   dimensions from c HeadDim / 4 on of key rows g and g + 8 (the two n8
//   tiles of the chunk's 16 keys): 8 bytes a row for HeadDim 64, one load.
//   widenNibblePairs turns a word of 8 codes into the pairs (0, 4), (1, 5),
//   (2, 6), (3, 7): pairs 0 and 1 are b0 and b1 of step 2 w, pairs 2 and 3
//   those of step 2 w + 1 (word w of the lane's).
// - P V: B is k16 x n8, b0 = value rows 2c, 2c + 1 at output column g, b1 =
//   rows 2c + 8, 2c + 9. Output columns may be permuted too (undone where
//   the warps meet): column g of tile j is dimension g HeadDim / 8 + j, so
//   lane g takes HeadDim / 8 dimensions from g HeadDim / 8 on of 4 value
//   rows (4 bytes a row for HeadDim 64), and a byte permute puts rows 2c
//   and 2c + 1 (or 2c + 8 and 2c + 9) side by side, so that the same
//   widening makes each pair (row 2c, row 2c + 1) at one dimension.
// Every widened value is a code times its block's power of two, exact in
// bf16 (as the shared-memory path's): the same sums as that kernel's, in
// the same float arithmetic, up to the order of a dot product's terms.
// Blocks of at most 8 heads take the keys as the mma's rows
// (CudaKeysAsRows.cuh, kKeysAsRows) with the same fragments: the B
// fragments of key rows g and g + 8 are A's rows, the queries' A fragments
// of head g Q^T's B, and P V's B fragments of output tiles 2m and 2m + 1
// the rows of O^T's tile m.
#pragma once

#include "CudaTokenAttentionMma.cuh"

/* 1 takes every bfp4 cache through this path; 0 (the default) only heads
 * whose widened tiles do not fit the shared-memory path (HeadDim > 80),
 * which would otherwise run on the CUDA cores. Measured on an H100
 * (2026-12-05, scripts/cuda-attention-check.cu, 16 sequences x 4096 rows,
 * 32 heads over 8 KV heads; outputs within 8e-6 of float64 both ways, and
 * CudaBackendTest passing on five bfp4-cache artifacts built with
 * LATHE_NVCC_FLAGS=-DLATHE_CUDA_NIBBLE_FRAGMENTS=1, a head-128 model among
 * them): heads of 128, 113.4 us on the CUDA cores -> 97.0 here (bf16's
 * 142.6); heads of 64, 38.4-39.0 us by the shared-memory tiles against
 * 45.3 here, so those keep the tiles. */
#ifndef LATHE_CUDA_NIBBLE_FRAGMENTS
#define LATHE_CUDA_NIBBLE_FRAGMENTS 0
#endif

namespace lathe_cuda {

/// How a cache codec C takes the fragment path (kFits), and its lane's
/// loads (load) and widening (keys, values).
template <class C, int HeadDim> struct NibbleFragments {
  template <int KvWidth> static constexpr bool kFits = false;
};

template <int Block, int HeadDim> struct NibbleFragments<PackedKv<false, 4, Block>, HeadDim> {
  using C = PackedKv<false, 4, Block>;
  static constexpr int kKeyWords = HeadDim / 32;   // a lane's words of a key row
  static constexpr int kValueWords = HeadDim / 64; // ... of a value row
  static constexpr int kSteps = HeadDim / 16;
  // Rows of whole 16 bytes and a head's headers within one word (TokenMmaKv's
  // kAligned); whole words a lane; at most 128 dimensions (registers).
  template <int KvWidth>
  static constexpr bool kFits = TokenMmaKv<C, HeadDim>::template kAligned<KvWidth> && HeadDim % 64 == 0 &&
                                HeadDim <= 128 && Block % 8 == 0;
  // Chunks in flight beside the one multiplied (HeadDim 64: 14 registers
  // a chunk): with two, ptxas (CUDA 13) took 144 registers, one block an
  // SM, or spilled 72 bytes under __launch_bounds__(256, 2); one fits 128.
  static constexpr int kAhead = 1;
  // Keys as the mma's rows (CudaKeysAsRows.cuh) for blocks of at most 8
  // heads: heads of 128 (H100, scripts/cuda-attention-check.cu, 16
  // sequences x 4096 rows) 123.4 against 126.1 us alone, 114.2 against
  // 116.9 in layers back to back; 157 registers against 202.
  static constexpr bool kKeysAsRows = true;

  struct Raw {
    uint32_t keys[2][kKeyWords];     // key rows g, g + 8: the lane's words
    uint32_t values[4][kValueWords]; // value rows 2c, 2c + 1, 2c + 8, 2c + 9
    uint32_t keyHeaders[2], valueHeaders[4]; // the aligned words holding their heads' headers
  };

  /// Byte `at` of a head's headers from the word that holds them, shifted
  /// down to its first (loadRow).
  __device__ static uint32_t exponent(uint32_t word, int at) { return (word >> 8 * at) & 0xFF; }
  /// A block's scale and the -136 scale of widenNibblePairs' ordinary path
  /// as bf16 bits (TokenMmaKv's: 2^(e - 129), subnormal for e < 3).
  __device__ static uint32_t scaleBits(uint32_t e) { return e >= 3 ? (e - 2) << 7 : 0x10u << e; }
  __device__ static uint32_t offsetBits(uint32_t e) { return ((e + 5) << 7) | 0x8008u; }
  /// A word of codes whose low and high halves have exponents ea and eb
  /// widened into four bf16 pairs (widenNibblePairs), exactly.
  __device__ static uint4 widen(uint32_t word, uint32_t ea, uint32_t eb) {
    if (ea < 250 && eb < 250) // every block of ordinary values
      return widenNibblePairs<false>(word, asBf16Pair(scaleBits(ea) | scaleBits(eb) << 16),
                                     asBf16Pair(offsetBits(ea) | offsetBits(eb) << 16));
    // Scales from 2^121 on (or NaN, 255): subtract first.
    struct Byte {
      uint32_t e;
      __device__ uint32_t byte(int) const { return e; }
    };
    const __nv_bfloat162 s = __floats2bfloat162_rn(C::scale(Byte{ea}, 0), C::scale(Byte{eb}, 0));
    return widenNibblePairs<true>(word, s, s);
  }

  /// Lane (g, c)'s loads of a chunk: `row` is lane l's cache row of chunk
  /// row l % 16 (-1 past the rows seen); rows not seen read as zeros (codes
  /// 0 of exponent 0: widened to 0).
  template <int KvWidth>
  __device__ static void load(const KvCacheRef &cache, int layer, int kvHead, int32_t row, Raw &raw) {
    const int lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
#pragma unroll
    for (int n = 0; n < 2; ++n)
      loadRow<KvWidth>(cache, layer, kvHead, false, __shfl_sync(0xffffffffu, row, g + 8 * n), c, raw.keys[n],
                       raw.keyHeaders[n]);
#pragma unroll
    for (int i = 0; i < 4; ++i)
      loadRow<KvWidth>(cache, layer, kvHead, true, __shfl_sync(0xffffffffu, row, 2 * c + i % 2 + 8 * (i / 2)), g,
                       raw.values[i], raw.valueHeaders[i]);
  }
  /// N words from word `part` N of a head's codes in cache row `at`, and
  /// the word holding the head's headers.
  template <int KvWidth, int N>
  __device__ static void loadRow(const KvCacheRef &cache, int layer, int kvHead, bool value, int32_t at, int part,
                                 uint32_t (&words)[N], uint32_t &header) {
    if (at < 0) {
#pragma unroll
      for (int w = 0; w < N; ++w)
        words[w] = 0;
      header = 0;
      return;
    }
    const typename C::Head head = cacheHead<C, KvWidth, HeadDim>(cache, layer, value, at, kvHead);
    const uint32_t *codes = reinterpret_cast<const uint32_t *>(head.codes) + part * N;
    if constexpr (N == 1) {
      words[0] = __ldg(codes);
    } else if constexpr (N == 2) {
      const uint2 w = __ldg(reinterpret_cast<const uint2 *>(codes));
      words[0] = w.x, words[1] = w.y;
    } else {
      static_assert(N == 4, "HeadDim 64 or 128");
      const uint4 w = __ldg(reinterpret_cast<const uint4 *>(codes));
      words[0] = w.x, words[1] = w.y, words[2] = w.z, words[3] = w.w;
    }
    // Where a row's headers sit in their word varies with the row
    // (PackedKv's layout): shifted down to the first.
    const uintptr_t headers = reinterpret_cast<uintptr_t>(head.headers);
    header = __ldg(reinterpret_cast<const uint32_t *>(headers & ~uintptr_t(3))) >> 8 * uint32_t(headers & 3);
  }

  /// The B fragments of Q K^T: kb[st][n] for keys 8 n .. 8 n + 7 at step st.
  __device__ static void keys(const Raw &raw, uint32_t (&kb)[kSteps][2][2]) {
    const int c = threadIdx.x % 4;
#pragma unroll
    for (int n = 0; n < 2; ++n)
#pragma unroll
      for (int w = 0; w < kKeyWords; ++w) {
        const uint32_t e = exponent(raw.keyHeaders[n], (c * HeadDim / 4 + 8 * w) / Block);
        const uint4 p = widen(raw.keys[n][w], e, e);
        kb[2 * w][n][0] = p.x, kb[2 * w][n][1] = p.y;
        kb[2 * w + 1][n][0] = p.z, kb[2 * w + 1][n][1] = p.w;
      }
  }
  /// The B fragments of P V: vb[j] for output tile j (b0, b1).
  __device__ static void values(const Raw &raw, uint32_t (&vb)[HeadDim / 8][2]) {
    const int g = threadIdx.x % 32 / 4;
#pragma unroll
    for (int half = 0; half < 2; ++half) // rows 2c, 2c + 1; then 2c + 8, 2c + 9
#pragma unroll
      for (int w = 0; w < kValueWords; ++w) {
        const int block = (g * HeadDim / 8 + 8 * w) / Block;
        const uint32_t ea = exponent(raw.valueHeaders[2 * half], block);
        const uint32_t eb = exponent(raw.valueHeaders[2 * half + 1], block);
        const uint32_t a = raw.values[2 * half][w], b = raw.values[2 * half + 1][w];
        const uint4 low = widen(__byte_perm(a, b, 0x5410), ea, eb);  // codes 0-3 of both rows
        const uint4 high = widen(__byte_perm(a, b, 0x7632), ea, eb); // codes 4-7
        const uint32_t p[8] = {low.x, low.y, low.z, low.w, high.x, high.y, high.z, high.w};
#pragma unroll
        for (int i = 0; i < 8; ++i)
          vb[8 * w + i][half] = p[i];
      }
  }
};

/// Per-token attention over a 4-bit BFP cache, the codes widened into the
/// fragments (above); the launch and the warps' chunks as tokenAttentionMma's.
template <class C, int Heads, int KvHeads, int HeadDim, int HeadsPerBlock, bool Bf16Queries>
__device__ void tokenAttentionNibbles(const LatheCudaFrame &f, int queries, int out, int layer,
                                      float *partials, unsigned *arrivals, const OutputRows &outputRows) {
  using Kv = NibbleFragments<C, HeadDim>;
  constexpr int G = HeadsPerBlock;
  static_assert(G <= 16, "a block's heads are the rows of one m16 tile");
  static_assert((Heads / KvHeads) % G == 0, "a block's heads share one KV head");
  constexpr int kvWidth = KvHeads * HeadDim;
  constexpr int kSteps = Kv::kSteps;
  constexpr int kQueryParts = Bf16Queries ? 1 : 3, kProbabilityParts = Bf16Queries ? 2 : 3;
  constexpr int kRows = 16, kScratch = G * (HeadDim + 2);
  __shared__ float scratch[kWarps * kScratch];
  const int t = blockIdx.x, h0 = blockIdx.y * G;
  const int kvHead = h0 / (Heads / KvHeads);
  const VisibleRows rows(f, t);
  const SplitRun run(rows.count);
  prefetchFirstRows<C, kvWidth, HeadDim>(f, layer, rows, run, kvHead);
  startStep();
  if (!run.active())
    return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const KvCacheRef cache(f);

  // The queries' A fragments in the keys' order: step st's a0 (row g) and
  // a2 hold pairs 2 (st % 2) and 2 (st % 2) + 1 of word st / 2 of lane
  // c's key dimensions, pair i of a word being its dimensions i and i + 4.
  uint32_t qa[kSteps][kQueryParts][4];
  const float *query = f.buffers[queries] + int64_t(t) * Heads * HeadDim + h0 * HeadDim;
#pragma unroll
  for (int s = 0; s < kSteps; ++s)
#pragma unroll
    for (int e = 0; e < 4; ++e) { // a0: row g, b0's pair; a1: row g + 8; a2, a3: b1's pair
      const int head = g + 8 * (e % 2);
      float2 v = make_float2(0, 0);
      if (head < G) {
        const float *at = query + head * HeadDim + c * HeadDim / 4 + 8 * (s / 2) + 2 * (s % 2) + e / 2;
        v = make_float2(at[0], at[4]);
      }
      uint32_t p[3];
      splitPair(v.x, v.y, p); // p[0] alone: the pair rounded to bf16
#pragma unroll
      for (int i = 0; i < kQueryParts; ++i)
        qa[s][i][e] = p[i];
    }
  const float scale = base2Scale<HeadDim>();
  // Blocks of at most 8 heads take the keys as the mma's rows
  // (CudaKeysAsRows.cuh); larger ones the heads, rows g and g + 8.
  constexpr bool kKeysAsRows = lathe_cuda::kKeysAsRows<G, Kv::kKeysAsRows>;
  constexpr int kHalves = G <= 8 ? 1 : 2; // heads as rows: tiles of at most 8 leave rows g + 8 empty
  const int seen[2] = {run.end, run.end};
  float o[kKeysAsRows ? HeadDim / 16 : HeadDim / 8][4] = {};
  float best[2] = {-INFINITY, -INFINITY}, sum[2] = {0, 0}; // heads as rows: rows g, g + 8; else heads 2c, 2c + 1

  const auto multiply = [&](int p0, const typename Kv::Raw &raw) {
    if constexpr (kKeysAsRows) {
      // Key rows g and g + 8 are A's rows: kb[st][n] (b0, b1) of key row
      // g + 8 n are its a[n] and a[2 + n].
      float s[4] = {};
      {
        uint32_t kb[kSteps][2][2];
        Kv::keys(raw, kb);
#pragma unroll
        for (int st = 0; st < kSteps; ++st) {
          const uint32_t a[4] = {kb[st][0][0], kb[st][1][0], kb[st][0][1], kb[st][1][1]};
#pragma unroll
          for (int i = 0; i < kQueryParts; ++i)
            mma16816(s, a, qa[st][i][0], qa[st][i][2]);
        }
      }
      float rescale[2];
      softmaxKeysAsRows(s, p0, run.end, scale, best, sum, rescale);
      if (__any_sync(0xffffffffu, rescale[0] != 1.0f || rescale[1] != 1.0f))
        rescaleColumns<HeadDim>(o, rescale);
      uint32_t pb[kProbabilityParts][2];
      probabilityColumns<kProbabilityParts>(s, pb);
      uint32_t vb[HeadDim / 8][2];
      Kv::values(raw, vb);
      // Tile row r of O^T's tile m is output column r % 8 of the heads-as-rows
      // tile 2 m + r / 8: vb[2 m] (b0, b1) and vb[2 m + 1] are A's rows g and g + 8.
#pragma unroll
      for (int m = 0; m < HeadDim / 16; ++m) {
        const uint32_t a[4] = {vb[2 * m][0], vb[2 * m + 1][0], vb[2 * m][1], vb[2 * m + 1][1]};
#pragma unroll
        for (int i = 0; i < kProbabilityParts; ++i)
          mma16816(o[m], a, pb[i][0], pb[i][1]);
      }
    } else {
      float s[kRows / 8][4] = {};
      {
        uint32_t kb[kSteps][2][2];
        Kv::keys(raw, kb);
#pragma unroll
        for (int st = 0; st < kSteps; ++st)
#pragma unroll
          for (int n = 0; n < 2; ++n)
#pragma unroll
            for (int i = 0; i < kQueryParts; ++i)
              mma16816(s[n], qa[st][i], kb[st][n][0], kb[st][n][1]);
      }
      float rescale[2];
      softmaxChunk<kRows, kHalves>(s, p0, seen, scale, best, sum, rescale);
      if (__any_sync(0xffffffffu, rescale[0] != 1.0f || rescale[1] != 1.0f))
        rescaleOutputs<HeadDim, kHalves>(o, rescale);
      uint32_t pa[kProbabilityParts][4];
      probabilityFragments<kRows, kProbabilityParts, kHalves>(s, 0, pa);
      uint32_t vb[HeadDim / 8][2];
      Kv::values(raw, vb);
#pragma unroll
      for (int j = 0; j < HeadDim / 8; ++j)
#pragma unroll
        for (int i = 0; i < kProbabilityParts; ++i)
          mma16816(o[j], pa[i], vb[j][0], vb[j][1]);
    }
  };
  // Each warp's chunks of 16 rows (warp w: rows 16 w .., then 16 (w + 8)
  // ..), the loads of the next kAhead in flight and the cache rows of the
  // one after them read a chunk earlier still, as tokenAttentionMma's.
  constexpr int kAhead = Kv::kAhead, stride = kRows * kWarps;
  const int first = run.begin + kRows * warp + lane % 16;
  const ChunkRowIndex rowAt{rows, run.end};
  typename Kv::Raw raw[kAhead];
  int32_t ahead = loadFirstChunks<Kv, kvWidth>(cache, layer, kvHead, rowAt, first, stride, raw);
  for (int p0 = run.begin + kRows * warp; p0 < run.end; p0 += kAhead * stride)
#pragma unroll
    for (int a = 0; a < kAhead; ++a) {
      const int p = p0 + a * stride;
      if (p >= run.end)
        break;
      const typename Kv::Raw current = raw[a];
      if (p + kAhead * stride < run.end) {
        Kv::template load<kvWidth>(cache, layer, kvHead, ahead, raw[a]);
        ahead = rowAt(p + lane % 16 + (kAhead + 1) * stride);
      }
      multiply(p, current);
    }

  // Column col of output tile n is dimension col HeadDim / 8 + n.
  const auto dimension = [](int n, int column) { return column * (HeadDim / 8) + n; };
  meetWarps<G, HeadDim>(scratch, kScratch, o, best, sum, dimension, f, out, t, h0, Heads, run, partials,
                        arrivals, outputRows);
}

/// The one-token attention the generated code calls: a 4-bit BFP cache
/// widened into the fragments, the other caches that widen to bf16
/// exactly on the tensor cores through shared memory, else on the CUDA
/// cores. rowsFrom: OutputRows'.
template <class C, int Heads, int KvHeads, int HeadDim, int HeadsPerBlock, bool Bf16Queries>
__device__ void attention(const LatheCudaFrame &f, int queries, int out, int layer,
                          float *partials, unsigned *arrivals, int rowsFrom = 0) {
  const OutputRows rows(f, rowsFrom, Heads * HeadDim);
  constexpr bool kTilesFit = TokenMmaKv<C, HeadDim>::kSupported && HeadDim % 16 == 0 &&
                            kWarps * sizeof(TokenTiles<HeadDim>) <= 48 * 1024;
  if constexpr (LATHE_CUDA_TOKEN_ATTENTION_MMA && (LATHE_CUDA_NIBBLE_FRAGMENTS || !kTilesFit) &&
                NibbleFragments<C, HeadDim>::template kFits<KvHeads * HeadDim> && HeadsPerBlock <= 16)
    tokenAttentionNibbles<C, Heads, KvHeads, HeadDim, HeadsPerBlock, Bf16Queries>(f, queries, out, layer,
                                                                                   partials, arrivals, rows);
  else if constexpr (LATHE_CUDA_TOKEN_ATTENTION_MMA && kTilesFit &&
                     HeadsPerBlock <= 16) // static shared memory: HeadDim <= 80
    tokenAttentionMma<C, Heads, KvHeads, HeadDim, HeadsPerBlock, Bf16Queries>(f, queries, out, layer,
                                                                               partials, arrivals, rows);
  else
    attentionOnCores<C, Heads, KvHeads, HeadDim, HeadsPerBlock, Bf16Queries>(f, queries, out, layer,
                                                                              partials, arrivals, rows);
}

} // namespace lathe_cuda
