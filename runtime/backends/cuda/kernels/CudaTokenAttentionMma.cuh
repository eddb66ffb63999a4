// The one-token attention (a decoding sequence, a tree node; CudaAttention.cuh
// describes the launch: a block per token, group of query heads sharing a
// KV head and split of the token's visible rows) on the tensor cores, for
// bf16 caches and the compressed ones whose rows widen to bf16 exactly.
// Part of LatheCudaKernels.cuh.
//
// The block's G query heads are the rows of an m16n8k16 tile (rows G .. 15
// zeros), so that a key row meets every head of its group in one mma and
// the CUDA cores only widen codes and run the softmax; or, for blocks of
// at most 8 heads where the cache's path says so (TokenMmaKv::kKeysAsRows:
// bf16 rows), the keys are the rows and the heads the columns, half the
// mma a chunk (CudaKeysAsRows.cuh). Each warp takes its
// own chunks of 16 visible rows (warp w: rows 16 w .., then 16 (w + 8) ..):
// it loads the chunk's key and value rows a few chunks ahead into
// registers, widens them into its own tiles in shared memory as bf16 (a
// bf16 cache's as they are; BFP codes times their block's power of two,
// exact; int8 codes, with the row's scale beside them), then scores Q K^T,
// the online softmax in registers (CudaFlashAttention.cuh's) and P V from
// ldmatrix fragments. The warps' running maxima, sums and weighted sums of
// values meet once at the end, in shared memory, then the splits as
// attentionOnCores' do (SplitOutput).
//
// Why: on the CUDA cores the work per row (widening codes, a dot product
// per head, the softmax's exchanges) cost more than reading the row, so a
// 4-bit cache decoded no faster than a bf16 one (16 sequences at a
// 4096-row context: 70.6 us a layer in bfp4 against 71.0 in bf16,
// docs/cuda-backend.md).
//
// Numerics as the flash kernel's: queries and probabilities as exact sums
// of bf16 parts (one part for bf16 queries, three for float ones; two for
// the probabilities with bf16 queries, three without), keys and values
// exact in bf16 (int8 codes are integers; an int8 row's scale multiplies
// its scores after the mma and its probabilities before P V).
#pragma once

#include "CudaAttention.cuh"
#include "CudaFlashAttention.cuh"
#include "CudaKeysAsRows.cuh"
#include "CudaMma.cuh"

/* 0 keeps every cache on attentionOnCores (to compare the two). */
#ifndef LATHE_CUDA_TOKEN_ATTENTION_MMA
#define LATHE_CUDA_TOKEN_ATTENTION_MMA 1
#endif

namespace lathe_cuda {

/// A warp's chunk of 16 rows in shared memory: keys and values of a head,
/// bf16, each row padded by 16 bytes (ldmatrix's 8 rows of 16 bytes then
/// hit 32 banks), and each row's scale where the codec keeps one (int8).
template <int HeadDim> struct TokenTiles {
  static constexpr int kRows = 16, kRow = HeadDim + 8;
  __nv_bfloat16 keys[kRows][kRow];
  __nv_bfloat16 values[kRows][kRow];
  float scales[2][kRows]; // keys', values'
};

/// How the one-token mma attention takes a cache codec C: kSupported where
/// its head rows widen to bf16 exactly; kRowScales where a row's values are
/// codes times one float (int8 blocks of a whole head); kAhead, the chunks
/// whose loads are in flight while a warp multiplies one. A chunk comes in
/// two halves: load() issues lane l's loads of the chunk into registers
/// (Raw: the key (l < 16) or value row l % 16, or for a bf16 cache parts
/// of rows spread over the lanes; `row`, lane l's, is the cache row of
/// chunk row l % 16, -1 past the rows seen), store() widens them into the
/// warp's tiles (rows past the ones seen zeros: a probability of 0 times
/// garbage could be NaN).
/// kKeysAsRows: whether blocks of at most 8 heads take the keys as the
/// mma's rows (CudaKeysAsRows.cuh), where LATHE_CUDA_KEYS_AS_ROWS leaves it
/// to the cache.
/// kPairs: each 8 dimensions of a tile row hold dimensions 0, 4, 1, 5, 2, 6,
/// 3, 7 of the head, the order in which 4-bit codes widen (widenNibblePairs):
/// the queries are read in that order and the outputs put back.
template <class C, int HeadDim> struct TokenMmaKv {
  static constexpr bool kSupported = false;
};

/// The lane's row of a chunk (0-15), and whether it loads its value row.
struct ChunkRow {
  int row;
  bool value;
  __device__ ChunkRow() : row(threadIdx.x % 16), value(threadIdx.x % 32 >= 16) {}
};

/// A bf16 cache: the chunk's 32 head rows (16 keys, then 16 values) in
/// 16-byte parts spread over the lanes so that each load instruction reads
/// whole rows: part q = 32 i + lane of the chunk (load i of the lane) is
/// part q % kParts of row q / kParts (HeadDim 64: 8 lanes a row, 4 rows a
/// load). A lane reading its own row touched 32 rows' lines a load, 8
/// times the lines the bytes need: 16 sequences at 4096 rows took 57.6 us
/// a layer against 48.7 (H200, scripts/cuda-attention-check.cu). The
/// compressed rows keep a row a lane: spread the same way (a part and its
/// row's header word each), bfp4 took 41.2 us against 34.5, int8 44.6
/// against 42.0 (more instructions a row, and their rows' headers).
template <int HeadDim> struct TokenMmaKv<PlainKv<__nv_bfloat16>, HeadDim> {
  using C = PlainKv<__nv_bfloat16>;
  static constexpr bool kSupported = true, kRowScales = false, kPairs = false;
  static constexpr bool kKeysAsRows = true; // CudaKeysAsRows.cuh's measures
  static constexpr int kAhead = 1; // 32 registers a chunk already
  static constexpr int kParts = HeadDim / 8; // 16-byte parts of a head's row
  struct Raw {
    uint4 w[kParts];
    uint32_t seen; // bit i: part i's row is one the token sees
  };
  /// `row`: the cache row of chunk row lane % 16 (-1 past the rows seen).
  template <int KvWidth>
  __device__ static void load(const KvCacheRef &f, int layer, int kvHead, int64_t row, Raw &raw) {
    const int lane = threadIdx.x % 32;
    // The layer's keys at the KV head; its values kvRows rows further.
    const uint4 *keys = reinterpret_cast<const uint4 *>(cacheHead<C, KvWidth, HeadDim>(f, layer, false, 0, kvHead));
    constexpr int64_t kRow = C::template kRowBytes<KvWidth> / 16; // uint4s a cache row
    raw.seen = 0;
#pragma unroll
    for (int i = 0; i < kParts; ++i) {
      const int q = 32 * i + lane, r = q / kParts;
      const int32_t at = __shfl_sync(0xffffffffu, int32_t(row), r % 16);
      if (at >= 0) {
        raw.w[i] = __ldg(keys + ((r >= 16 ? f.kvRows : 0) + at) * kRow + q % kParts);
        raw.seen |= 1u << i;
      }
    }
  }
  __device__ static void store(const Raw &raw, TokenTiles<HeadDim> &tiles) {
    const int lane = threadIdx.x % 32;
#pragma unroll
    for (int i = 0; i < kParts; ++i) {
      const int q = 32 * i + lane, r = q / kParts;
      reinterpret_cast<uint4 *>((r >= 16 ? tiles.values : tiles.keys)[r % 16])[q % kParts] =
          raw.seen >> i & 1 ? raw.w[i] : make_uint4(0, 0, 0, 0);
    }
  }
};

/// A bf16 pair from its bits.
__device__ inline __nv_bfloat162 asBf16Pair(uint32_t bits) {
  return *reinterpret_cast<const __nv_bfloat162 *>(&bits);
}

/// Eight 4-bit two's-complement codes (a word, the lowest nibble first)
/// times `scale` (a bf16 pair of one power of two) as bf16 pairs, exactly,
/// in the order they come out: codes (0, 4), (1, 5), (2, 6), (3, 7)
/// (TokenMmaKv's kPairs). Each nibble goes into the mantissa of 128 with
/// its sign bit flipped (one lop3 a pair: 128 + code + 8), then one fma a
/// pair, x scale + offset with offset -136 scale. Huge: scales from 2^121
/// on, whose -136 scale overflows, subtract first: (x - 136) scale.
template <bool Huge>
__device__ inline uint4 widenNibblePairs(uint32_t word, __nv_bfloat162 scale, __nv_bfloat162 offset) {
  uint32_t p[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    uint32_t bits; // (mask ? word ^ magic : magic), bitwise
    asm("lop3.b32 %0, %1, %2, %3, 0x6A;" : "=r"(bits) : "r"(word >> (4 * i)), "r"(0x000F000Fu), "r"(0x43084308u));
    const __nv_bfloat162 x = asBf16Pair(bits);
    const __nv_bfloat162 v = Huge ? __hmul2(__hsub2(x, __floats2bfloat162_rn(136.0f, 136.0f)), scale)
                                  : __hfma2(x, scale, offset);
    p[i] = *reinterpret_cast<const uint32_t *>(&v);
  }
  return make_uint4(p[0], p[1], p[2], p[3]);
}
/// Four 8-bit two's-complement codes (a word, the lowest byte first) times
/// `scale` as two bf16 pairs in order, exactly (at most 8 significant
/// bits): each byte made 2^23 + (code + 128) in a float's mantissa.
__device__ inline uint2 widenBytes(uint32_t word, float scale) {
  const uint32_t u = word ^ 0x80808080u;
  float v[4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
    v[i] = (__uint_as_float(__byte_perm(u, 0x4B000000u, 0x7540 + i)) - 8388736.0f) * scale;
  return make_uint2(bf16Pair(v[0], v[1]), bf16Pair(v[2], v[3]));
}

template <bool Int8, int Bits, int Block, int HeadDim>
struct TokenMmaKv<PackedKv<Int8, Bits, Block>, HeadDim> {
  using C = PackedKv<Int8, Bits, Block>;
  // Int8 codes times a float are exact in bf16 only as codes: one scale a
  // head row, applied outside the mma. BFP codes times their block's power
  // of two have at most Bits significant bits: exact.
  static constexpr bool kRowScales = Int8, kPairs = Bits == 4;
  static constexpr bool kKeysAsRows = false; // CudaKeysAsRows.cuh's measures
  static constexpr bool kSupported =
      (!Int8 || Block == HeadDim) && (Bits == 4 || Bits == 8) && Block % 8 == 0;
  static constexpr int kCodes = C::template kHeadCodes<HeadDim>, kHeaders = C::template kHeadHeaders<HeadDim>;
  // Chunks in flight beside the one multiplied: one. With whole rows in the
  // cache (before PackedKv's blocks of rows by head) a 4-bit cache took two
  // (H200, 16 sequences at 4096 rows, 2026-12-04: 34.6 against 37.0 us a
  // layer with three, 178 registers with four); with a chunk's codes one
  // contiguous run, one is faster (H100, scripts/cuda-attention-check.cu,
  // 2026-12-07: 34.5 against 35.6 us with two and 36.7 with three; 103
  // registers against 127). A bf16 cache took no more from two either
  // (64.3 against 57.5 us).
  static constexpr int kAhead = 1;
  /// Whether every head's codes start 16-byte aligned and its headers sit
  /// within one word (PackedKv::locate: heads' codes of whole 16 bytes,
  /// headers of 1, 2 or 4 bytes).
  template <int KvWidth>
  static constexpr bool kAligned = kCodes % 16 == 0 && (kHeaders == 1 || kHeaders == 2 || kHeaders == 4);
  struct Raw {
    ByteStream<kCodes> codes;     // in words from the first code on
    ByteStream<kHeaders> headers; // from the first header on, once shifted right by:
    uint32_t headerShift;         // (applied in store(): a shift right after the load waited for it)
    bool seen;
  };
  template <int KvWidth>
  __device__ static void load(const KvCacheRef &f, int layer, int kvHead, int64_t row, Raw &raw) {
    raw.seen = row >= 0;
    if (!raw.seen)
      return;
    const typename C::Head head = cacheHead<C, KvWidth, HeadDim>(f, layer, ChunkRow().value, row, kvHead);
    if constexpr (kAligned<KvWidth>) {
      const uint4 *codes = reinterpret_cast<const uint4 *>(head.codes);
#pragma unroll
      for (int i = 0; i < kCodes / 16; ++i) {
        const uint4 w = __ldg(codes + i);
        raw.codes.w[4 * i] = w.x, raw.codes.w[4 * i + 1] = w.y;
        raw.codes.w[4 * i + 2] = w.z, raw.codes.w[4 * i + 3] = w.w;
      }
      const uintptr_t at = reinterpret_cast<uintptr_t>(head.headers);
      raw.headers.w[0] = __ldg(reinterpret_cast<const uint32_t *>(at & ~uintptr_t(3)));
      raw.headerShift = 8 * uint32_t(at & 3);
    } else {
      raw.codes = ByteStream<kCodes>(head.codes);
      raw.headers = ByteStream<kHeaders>(head.headers);
      raw.headerShift = 0;
    }
  }
  /// Word j of the codes of block b (whole words: Block % 8 == 0).
  __device__ static uint32_t codeWord(const Raw &raw, int b, int j) {
    return raw.codes.w[b * C::kCodeBytes / 4 + j];
  }
  __device__ static void store(const Raw &raw, TokenTiles<HeadDim> &tiles) {
    const ChunkRow at;
    uint4 *to = reinterpret_cast<uint4 *>((at.value ? tiles.values : tiles.keys)[at.row]);
    if (!raw.seen) {
#pragma unroll
      for (int c = 0; c < HeadDim / 8; ++c)
        to[c] = make_uint4(0, 0, 0, 0);
      if (Int8)
        tiles.scales[at.value][at.row] = 0;
      return;
    }
    ByteStream<kHeaders> headers = raw.headers;
    headers.w[0] >>= raw.headerShift;
    if constexpr (Bits == 4) {
      // Exponent codes up to 249 (scales up to 2^120: every block of
      // ordinary values, zeros too): the scale and -136 scale as bf16 bits
      // (the scale subnormal for codes 0-2, 2^-133 times 16 << e), and one
      // fma a pair, exact. Codes 250-254, whose -136 scale would overflow,
      // and 255 (NaN): the whole row subtracts first.
      bool ordinary = true;
#pragma unroll
      for (int b = 0; b < HeadDim / Block; ++b)
        ordinary &= headers.byte(b) < 250;
      if (ordinary) {
#pragma unroll
        for (int b = 0; b < HeadDim / Block; ++b) {
          const uint32_t e = headers.byte(b);
          const uint32_t s = (e >= 3 ? (e - 2) << 7 : 0x10u << e) * 0x10001u; // 2^(e - 129), twice
          const uint32_t o = (((e + 5) << 7) | 0x8008u) * 0x10001u; // -1.0625 2^(e - 122)
#pragma unroll
          for (int j = 0; j < Block / 8; ++j)
            to[b * Block / 8 + j] = widenNibblePairs<false>(codeWord(raw, b, j), asBf16Pair(s), asBf16Pair(o));
        }
      } else {
#pragma unroll
        for (int b = 0; b < HeadDim / Block; ++b) {
          const __nv_bfloat162 s2 = __float2bfloat162_rn(C::scale(headers, b));
#pragma unroll
          for (int j = 0; j < Block / 8; ++j)
            to[b * Block / 8 + j] = widenNibblePairs<true>(codeWord(raw, b, j), s2, s2);
        }
      }
    } else {
#pragma unroll
      for (int b = 0; b < HeadDim / Block; ++b) {
        const float scale = C::scale(headers, b * C::kHeaderBytes);
        if constexpr (Int8)
          tiles.scales[at.value][at.row] = scale;
#pragma unroll
        for (int j = 0; j < Block / 8; ++j) {
          const uint2 lo = widenBytes(codeWord(raw, b, 2 * j), Int8 ? 1.0f : scale);
          const uint2 hi = widenBytes(codeWord(raw, b, 2 * j + 1), Int8 ? 1.0f : scale);
          to[b * Block / 8 + j] = make_uint4(lo.x, lo.y, hi.x, hi.y);
        }
      }
    }
  }
};

/// The end of a one-token attention block once each warp has left its
/// heads' maximum (natural units, as the splits' partials keep them), sum
/// and weighted sums of values in its own `stride` floats of `scratch`
/// (head h at h (HeadDim + 2): the sums by dimension, then the maximum and
/// the sum): the block merges the warps and SplitOutput the splits.
template <int G, int HeadDim>
__device__ void mergeWarps(const float *scratch, int stride, const LatheCudaFrame &f, int out, int t, int h0,
                           int heads, const SplitRun &run, float *partials, unsigned *arrivals,
                           const OutputRows &outputRows) {
  __syncthreads();
  SplitOutput<G, HeadDim> result(f, out, t, h0, heads, run, partials, outputRows);
  for (int j = threadIdx.x; j < G * (HeadDim + 1); j += kThreads) {
    const int head = j / (HeadDim + 1), d = j % (HeadDim + 1);
    float m = -INFINITY;
    for (int w = 0; w < kWarps; ++w)
      m = fmaxf(m, scratch[w * stride + head * (HeadDim + 2) + HeadDim]);
    float weighted = 0, total = 0;
    for (int w = 0; w < kWarps; ++w) {
      const float *from = scratch + w * stride + head * (HeadDim + 2);
      const float weight = from[HeadDim] == -INFINITY ? 0.0f : expf(from[HeadDim] - m);
      total += weight * from[HeadDim + 1];
      if (d < HeadDim)
        weighted += weight * from[d];
    }
    if (d < HeadDim)
      result.put(head, d, weighted, total);
    else
      result.putTotals(head, m, total);
  }
  result.merge(arrivals);
}

/// The end of a one-token attention block whose warps each took their own
/// chunks with the heads as the mma's rows (o: a warp's m16n8 accumulators
/// of its heads' weighted sums of values, rows g and g + 8; best and sum:
/// its running maxima in base 2 and its lanes' sums; dimension(n, column):
/// the head dimension of tile n's column): each warp leaves its heads'
/// results in `scratch`, then mergeWarps.
template <int G, int HeadDim, class Dimension>
__device__ void meetWarps(float *scratch, int stride, const float (&o)[HeadDim / 8][4], const float (&best)[2],
                          float (&sum)[2], Dimension dimension, const LatheCudaFrame &f, int out, int t, int h0,
                          int heads, const SplitRun &run, float *partials, unsigned *arrivals,
                          const OutputRows &outputRows) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    sum[i] += __shfl_xor_sync(0xffffffffu, sum[i], 1);
    sum[i] += __shfl_xor_sync(0xffffffffu, sum[i], 2);
  }
  float *left = scratch + warp * stride;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int head = g + 8 * i;
    if (head >= G)
      continue;
    float *at = left + head * (HeadDim + 2);
#pragma unroll
    for (int n = 0; n < HeadDim / 8; ++n)
      at[dimension(n, 2 * c)] = o[n][2 * i], at[dimension(n, 2 * c + 1)] = o[n][2 * i + 1];
    if (c == 0) {
      at[HeadDim] = best[i] * 0.6931471805599453f; // base 2 to natural
      at[HeadDim + 1] = sum[i];
    }
  }
  mergeWarps<G, HeadDim>(scratch, stride, f, out, t, h0, heads, run, partials, arrivals, outputRows);
}
/// The same with the keys as the mma's rows (CudaKeysAsRows.cuh: o[m] the
/// accumulators of O^T for tile rows 16 m .., heads 2c and 2c + 1; best
/// and sum of heads 2c and 2c + 1): tile row 16 m + r is dimension(2 m + r
/// / 8, r % 8), as tile n's column r % 8 of the heads-as-rows layout.
template <int G, int HeadDim, class Dimension>
__device__ void meetWarps(float *scratch, int stride, const float (&o)[HeadDim / 16][4], const float (&best)[2],
                          float (&sum)[2], Dimension dimension, const LatheCudaFrame &f, int out, int t, int h0,
                          int heads, const SplitRun &run, float *partials, unsigned *arrivals,
                          const OutputRows &outputRows) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int x = 4; x < 32; x *= 2)
      sum[i] += __shfl_xor_sync(0xffffffffu, sum[i], x);
  float *left = scratch + warp * stride;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int head = 2 * c + i;
    if (head >= G)
      continue;
    float *at = left + head * (HeadDim + 2);
#pragma unroll
    for (int m = 0; m < HeadDim / 16; ++m)
      at[dimension(2 * m, g)] = o[m][i], at[dimension(2 * m + 1, g)] = o[m][2 + i];
    if (g == 0) {
      at[HeadDim] = best[i] * 0.6931471805599453f; // base 2 to natural
      at[HeadDim + 1] = sum[i];
    }
  }
  mergeWarps<G, HeadDim>(scratch, stride, f, out, t, h0, heads, run, partials, arrivals, outputRows);
}

/// Row p's cache row in a one-token attention's visible rows, as loaded
/// (-1 past the run): nothing uses it until the chunk's loads a chunk later
/// (widening it to 64 bits at once had each chunk wait for its load: most
/// of a bf16 launch's stalls, H200).
struct ChunkRowIndex {
  const VisibleRows &rows;
  int end;
  __device__ int32_t operator()(int p) const {
    int32_t row = -1;
    if (p < end)
      row = __ldg(rows.at(p));
    return row;
  }
};

/// A warp's first kAhead chunks of 16 rows loaded into `raw` (lane l's row
/// of chunk a at first + a * stride) and the cache row of the chunk after
/// them returned, read a chunk early: a chunk's loads then wait on no
/// dependent load of the row list.
template <class Kv, int KvWidth, int kAhead>
__device__ int32_t loadFirstChunks(const KvCacheRef &cache, int layer, int kvHead,
                                   const ChunkRowIndex &rowAt, int first, int stride,
                                   typename Kv::Raw (&raw)[kAhead]) {
#pragma unroll
  for (int a = 0; a < kAhead; ++a)
    Kv::template load<KvWidth>(cache, layer, kvHead, rowAt(first + a * stride), raw[a]);
  return rowAt(first + kAhead * stride);
}

/// Whether the warp's first kAhead chunks (lane l's row of chunk a at
/// first + a * stride, by rowAt, left in at[a] for the chunks' loads) hold
/// no row that this step writes, so that they may be read before the wait
/// for the kernel that writes the step's keys and values: asked only of
/// steps of at most kSettledTokens tokens (a decoding sequence's step, a
/// few sequences'), whose attention is short and latency-bound; larger
/// ones keep their loads after the wait.
constexpr int kSettledTokens = 16;
template <int kAhead>
__device__ inline bool settledRows(const LatheCudaFrame &f, int first, int stride,
                                   const ChunkRowIndex &rowAt, int32_t (&at)[kAhead]) {
  if (f.rows > kSettledTokens)
    return false;
  bool settled = true;
#pragma unroll
  for (int a = 0; a < kAhead; ++a) {
    at[a] = rowAt(first + a * stride);
    for (int i = 0; i < f.rows; ++i)
      settled = settled && at[a] != f.storeRows[i];
  }
  return __all_sync(0xffffffffu, settled);
}

/// Per-token attention on the tensor cores (above): the arguments and the
/// launch of attentionOnCores.
template <class C, int Heads, int KvHeads, int HeadDim, int HeadsPerBlock, bool Bf16Queries>
__device__ void tokenAttentionMma(const LatheCudaFrame &f, int queries, int out, int layer,
                                  float *partials, unsigned *arrivals, const OutputRows &outputRows) {
  using Kv = TokenMmaKv<C, HeadDim>;
  constexpr int G = HeadsPerBlock;
  static_assert(G <= 16 && HeadDim % 16 == 0, "a block's heads are the rows of one m16 tile");
  static_assert((Heads / KvHeads) % G == 0, "a block's heads share one KV head");
  constexpr int kvWidth = KvHeads * HeadDim;
  constexpr int kSteps = HeadDim / 16; // k16 steps of Q K^T
  constexpr int kQueryParts = Bf16Queries ? 1 : 3, kProbabilityParts = Bf16Queries ? 2 : 3;
  constexpr int kRows = TokenTiles<HeadDim>::kRows;
  __shared__ __align__(16) TokenTiles<HeadDim> tiles[kWarps];
  const int t = blockIdx.x, h0 = blockIdx.y * G;
  const int kvHead = h0 / (Heads / KvHeads);
  const VisibleRows rows(f, t);
  const SplitRun run(rows.count);
  prefetchFirstRows<C, kvWidth, HeadDim>(f, layer, rows, run, kvHead);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const KvCacheRef cache(f);
  TokenTiles<HeadDim> &mine = tiles[warp];
  // Each warp's chunks, with the loads of the next Kv::kAhead in flight
  // (in registers, unrolled so that they stay there), and the cache row of
  // the one after them read a chunk earlier still.
  constexpr int kAhead = Kv::kAhead, stride = kRows * kWarps;
  const int first = run.begin + kRows * warp + lane % 16;
  const ChunkRowIndex rowAt{rows, run.end};
  typename Kv::Raw raw[kAhead];
  int32_t ahead = -1;
  // The first chunks before the wait where no row of them is one this
  // step writes (a short context is a chain of dependent loads, the row
  // list's then the rows': this way it overlaps the kernel before).
  int32_t firstRows[kAhead];
  const bool early = run.active() && settledRows(f, first, stride, rowAt, firstRows);
  if (early) { // loadFirstChunks, with the row indices settledRows read
#pragma unroll
    for (int a = 0; a < kAhead; ++a)
      Kv::template load<kvWidth>(cache, layer, kvHead, firstRows[a], raw[a]);
    ahead = rowAt(first + kAhead * stride);
  }
  startStep();
  if (!run.active())
    return;

  // The queries' A fragments: rows g and g + 8 are heads h0 + g, h0 + g + 8
  // (zeros from G on); qa[s][part] for dimensions 16 s .. (Keys as rows
  // take a0 and a2, head g's, as Q^T's B fragment.)
  uint32_t qa[kSteps][kQueryParts][4];
  const float *query = f.buffers[queries] + int64_t(t) * Heads * HeadDim + h0 * HeadDim;
#pragma unroll
  for (int s = 0; s < kSteps; ++s)
#pragma unroll
    for (int e = 0; e < 4; ++e) { // a0: row g, k 2c; a1: row g + 8; a2, a3: k 2c + 8
      const int head = g + 8 * (e % 2);
      float2 v = make_float2(0, 0);
      if (head < G) { // tile columns 2c, 2c + 1 of the 8 at 16 s + 8 (e / 2): kPairs' dimensions c, c + 4
        const float *at = query + head * HeadDim + 16 * s + 8 * (e / 2);
        v = Kv::kPairs ? make_float2(at[c], at[c + 4]) : *reinterpret_cast<const float2 *>(at + 2 * c);
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

  // The chunk at p0 multiplied, its rows in the warp's tiles.
  const auto multiply = [&](int p0) {
    if constexpr (kKeysAsRows) {
      // Scores: keys g, g + 8 at heads 2c, 2c + 1 (ldmatrix gives A's
      // order: reordering its registers cost a move each, 44 a chunk).
      float s[4] = {};
#pragma unroll
      for (int st = 0; st < kSteps; ++st) {
        uint32_t a[4];
        keyRowFragments(mine.keys, st, a);
#pragma unroll
        for (int i = 0; i < kQueryParts; ++i)
          mma16816(s, a, qa[st][i][0], qa[st][i][2]);
      }
      if constexpr (Kv::kRowScales)
        scaleKeyRows(s, mine.scales[0]);
      float rescale[2];
      softmaxKeysAsRows(s, p0, run.end, scale, best, sum, rescale);
      if (__any_sync(0xffffffffu, rescale[0] != 1.0f || rescale[1] != 1.0f))
        rescaleColumns<HeadDim>(o, rescale);
      if constexpr (Kv::kRowScales) // the value rows' scales, past the sums
        scaleKeyRows(s, mine.scales[1]);
      uint32_t pb[kProbabilityParts][2];
      probabilityColumns<kProbabilityParts>(s, pb);
#pragma unroll
      for (int m = 0; m < HeadDim / 16; ++m) {
        uint32_t a[4];
        valueColumnFragments(mine.values, m, a);
#pragma unroll
        for (int i = 0; i < kProbabilityParts; ++i)
          mma16816(o[m], a, pb[i][0], pb[i][1]);
      }
    } else {
      // Scores: s[n] is the lane's part of keys 8 n .. 8 n + 7 of the chunk.
      float s[kRows / 8][4] = {};
#pragma unroll
      for (int st = 0; st < kSteps; ++st) {
        uint32_t b[4]; // keys 0-7 and 8-15 at dimensions 16 st ..
        keyFragments(mine.keys, 0, st, b);
#pragma unroll
        for (int n = 0; n < 2; ++n)
#pragma unroll
          for (int i = 0; i < kQueryParts; ++i)
            mma16816(s[n], qa[st][i], b[2 * n], b[2 * n + 1]);
      }
      if constexpr (Kv::kRowScales)
#pragma unroll
        for (int n = 0; n < 2; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            s[n][e] *= mine.scales[0][8 * n + 2 * c + e % 2];
      float rescale[2];
      softmaxChunk<kRows, kHalves>(s, p0, seen, scale, best, sum, rescale);
      // Once the maxima settle, most chunks leave the outputs as they are.
      if (__any_sync(0xffffffffu, rescale[0] != 1.0f || rescale[1] != 1.0f))
        rescaleOutputs<HeadDim, kHalves>(o, rescale);
      if constexpr (Kv::kRowScales) // the value rows' scales, past the sums
#pragma unroll
        for (int n = 0; n < 2; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e)
            s[n][e] *= mine.scales[1][8 * n + 2 * c + e % 2];
      uint32_t pa[kProbabilityParts][4];
      probabilityFragments<kRows, kProbabilityParts, kHalves>(s, 0, pa);
#pragma unroll
      for (int n = 0; n < HeadDim / 8; n += 2) {
        uint32_t b[4]; // dimensions 8 n .. 8 n + 15 at keys 0-15
        valueFragments(mine.values, 0, n, b);
#pragma unroll
        for (int u = 0; u < 2; ++u)
#pragma unroll
          for (int i = 0; i < kProbabilityParts; ++i)
            mma16816(o[n + u], pa[i], b[2 * u], b[2 * u + 1]);
      }
    }
  };
  if (!early)
    ahead = loadFirstChunks<Kv, kvWidth>(cache, layer, kvHead, rowAt, first, stride, raw);
  for (int p0 = run.begin + kRows * warp; p0 < run.end; p0 += kAhead * stride)
#pragma unroll
    for (int a = 0; a < kAhead; ++a) {
      const int p = p0 + a * stride;
      if (p >= run.end)
        break;
      Kv::store(raw[a], mine);
      __syncwarp();
      if (p + kAhead * stride < run.end) {
        Kv::template load<kvWidth>(cache, layer, kvHead, ahead, raw[a]);
        ahead = rowAt(p + lane % 16 + (kAhead + 1) * stride);
      }
      multiply(p);
      __syncwarp(); // the tiles are read before the next chunk fills them
    }

  static_assert(sizeof(TokenTiles<HeadDim>) >= G * (HeadDim + 2) * sizeof(float), "room to meet");
  // Tile column 8 n + 2c (+ 1) of the outputs: kPairs' dimension 8 n + c (+ 4).
  const auto dimension = [&](int n, int column) {
    return Kv::kPairs ? 8 * n + column / 2 + 4 * (column % 2) : 8 * n + column;
  };
  meetWarps<G, HeadDim>(reinterpret_cast<float *>(tiles), sizeof(TokenTiles<HeadDim>) / sizeof(float), o, best,
                        sum, dimension, f, out, t, h0, Heads, run, partials, arrivals, outputRows);
}

} // namespace lathe_cuda
