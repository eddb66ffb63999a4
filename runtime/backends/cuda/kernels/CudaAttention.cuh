// The CUDA target's attention over the paged KV cache: one block per token
// and group of query heads sharing a KV head, online softmax over chunks of
// the visible rows, accumulation in float. Part of LatheCudaKernels.cuh.
#pragma once

#include "CudaElementwise.cuh"
#include "CudaMma.cuh"
#include "CudaProductInputs.cuh"

namespace lathe_cuda {

/// The cache rows one token sees (backend::VisibleRows): its sequence's
/// first `prefix` rows, then its `extras` (ancestors in a token tree).
struct VisibleRows {
  const int32_t *rows, *extras;
  int prefix, count;
  __device__ VisibleRows(const LatheCudaFrame &f, int64_t t) {
    const int32_t *v = f.visible + 4 * t;
    rows = f.visibleRows + v[0];
    prefix = v[1];
    extras = f.visibleRows + v[2];
    count = v[1] + v[3];
  }
  __device__ int64_t operator[](int p) const {
    return p < prefix ? rows[p] : extras[p - prefix];
  }
  /// Where row p's index is: a load from it that nothing uses at once
  /// does not wait (operator[]'s select waits for both).
  __device__ const int32_t *at(int p) const { return p < prefix ? rows + p : extras + (p - prefix); }
};

/// The plain format a KV cache element type is stored as (Chunk decodes it).
template <typename E> struct CacheFormat;
template <> struct CacheFormat<float> { using type = F32; };
template <> struct CacheFormat<__half> { using type = F16; };
template <> struct CacheFormat<__nv_bfloat16> { using type = BF16; };

/// sum_d q[g][d] * k[d] over a key row for each of G query heads, the row
/// read once for all of them: 16-byte loads (the row's head starts 16-byte
/// aligned when HeadDim is a multiple of the values per load).
template <typename E, int HeadDim, int G>
__device__ void dotKey(const E *k, const float (*q)[HeadDim], float (&dot)[G]) {
  using Format = typename CacheFormat<E>::type;
  constexpr int per = Chunk<Format>::kPer;
  for (int g = 0; g < G; ++g)
    dot[g] = 0;
  if constexpr (HeadDim % per == 0) {
    const uint4 *chunks = reinterpret_cast<const uint4 *>(k);
#pragma unroll
    for (int c = 0; c < HeadDim / per; ++c) {
      float v[per];
      Chunk<Format>::decode(__ldg(chunks + c), v);
      for (int g = 0; g < G; ++g)
        for (int i = 0; i < per; ++i)
          dot[g] += q[g][c * per + i] * v[i];
    }
  } else {
    for (int d = 0; d < HeadDim; ++d) {
      const float v = fromCache(k[d]);
      for (int g = 0; g < G; ++g)
        dot[g] += q[g][d] * v;
    }
  }
}

/// Asks L2 for the 128-byte lines of [p, p + bytes).
__device__ inline void prefetchLines(const uint8_t *p, int64_t bytes) {
  for (const uint8_t *line = p - reinterpret_cast<uintptr_t>(p) % 128; line < p + bytes; line += 128)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(line));
}

/// How attention reads a KV cache of plain elements E: a head's slice of a
/// row is HeadDim elements (kv::KVLayout). The value rows go by in parts
/// of kPer values, a 16-byte load each (decodePart).
template <typename E> struct PlainKv {
  static constexpr bool kLocatesRows = false; // rows where cacheRowBytes says
  using Format = typename CacheFormat<E>::type;
  static constexpr int kPer = Chunk<Format>::kPer;
  template <int HeadDim> static constexpr bool kParts = HeadDim % kPer == 0;
  template <int KvWidth> static constexpr int64_t kRowBytes = int64_t(KvWidth) * sizeof(E);
  template <int HeadDim> static constexpr int64_t kHeadBytes = int64_t(HeadDim) * sizeof(E);
  /// A KV head's slice of a row: its first element.
  using Head = const uint8_t *;
  template <int KvWidth, int HeadDim> __device__ static Head head(const uint8_t *row, int kvHead) {
    return row + int64_t(kvHead) * kHeadBytes<HeadDim>;
  }
  template <int HeadDim> __device__ static void prefetch(Head head) {
    prefetchLines(head, kHeadBytes<HeadDim>);
  }
  template <int HeadDim, int G>
  __device__ static void dot(const uint8_t *head, const float (*q)[HeadDim], float (&out)[G]) {
    dotKey<E, HeadDim, G>(reinterpret_cast<const E *>(head), q, out);
  }
  template <int HeadDim> __device__ static float at(const uint8_t *head, int d) {
    return fromCache(reinterpret_cast<const E *>(head)[d]);
  }
  /// Values part * kPer .. of a head's slice (16-byte aligned when kParts).
  __device__ static void decodePart(const uint8_t *head, int part, float (&v)[kPer]) {
    Chunk<Format>::decode(__ldg(reinterpret_cast<const uint4 *>(head) + part), v);
  }
};

/// Bytes [p, p + Bytes) of global memory in words, from aligned 4-byte
/// loads and funnel shifts: a compressed cache's codes and headers start at
/// any byte (stories15M's bfp4 rows are 162 bytes), and byte loads would
/// take one load a byte. Reads
/// up to 4 bytes past the range (the KV buffer has slack for it,
/// kv::PagedKVCache).
template <int Bytes> struct ByteStream {
  static constexpr int kWords = (Bytes + 3) / 4;
  uint32_t w[kWords];
  ByteStream() = default;
  __device__ explicit ByteStream(const uint8_t *p) {
    const uintptr_t at = reinterpret_cast<uintptr_t>(p);
    const uint32_t *base = reinterpret_cast<const uint32_t *>(at & ~uintptr_t(3));
    const uint32_t shift = uint32_t(at & 3) * 8;
    uint32_t raw[kWords + 1];
#pragma unroll
    for (int i = 0; i <= kWords; ++i)
      raw[i] = __ldg(base + i);
#pragma unroll
    for (int i = 0; i < kWords; ++i)
      w[i] = __funnelshift_r(raw[i], raw[i + 1], shift);
  }
  /// Byte i (a constant after unrolling, so w stays in registers).
  __device__ uint32_t byte(int i) const { return (w[i / 4] >> (8 * (i % 4))) & 0xFF; }
  __device__ float word(int i) const { return __uint_as_float(w[i]); }
};

/// A format block's bytes in the cache: its header and its codes.
struct BlockBytes {
  uint8_t *header, *codes;
};

/// A KV cache of compressed rows: the values of runtime/formats/KvFormat.h
/// (blocks of Block values along head_dim, each a header and its codes),
/// laid out for the GPU by the paged cache's blocks of 16 rows (kRows
/// rows, 16 row sizes of bytes): each KV head's codes for the block's 16
/// rows, head after head, then each head's headers for the 16 rows, head
/// after head. A warp's chunk of 16 rows of one KV head (the one-token
/// attention's) is then 16 x kHeadCodes contiguous bytes (512 for a head of
/// 64 bfp4 values) and 16 x kHeadHeaders (32): every sector it reads is
/// its own. With rows kept whole (a row's codes, then its headers), a
/// head's 32 bytes of codes straddled two sectors on every other row and
/// its two exponent bytes shared a sector with the seven other heads',
/// read by other blocks: 16 sequences at 4096 rows took 45.8 us a layer in
/// bfp4 against 35.7 (bfp8 59.9 against 45.4, int8 57.4 against 45.7;
/// bf16 69.0), H100, scripts/cuda-attention-check.cu, 2026-12-07.
/// Int8: a float32 scale, int8 codes (value = code * scale). Else BFP of
/// Bits-bit two's-complement mantissas: an exponent byte e + 127 (255:
/// NaN), the mantissas two a byte, low nibble first, for Bits 4 (value =
/// mantissa * 2^(e - (Bits - 2))). Blocks never cross a head; a head's row
/// is read in place (in word loads, ByteStream), a block's partial dot
/// product scaled once.
template <bool Int8, int Bits, int Block> struct PackedKv {
  static constexpr bool kLocatesRows = true; // rows where locate says
  static constexpr int kRows = 16;           // rows a block of the layout (the paged cache's)
  static constexpr int kPer = 8; // values a part: 8 codes of one block
  template <int HeadDim> static constexpr bool kParts = Block % kPer == 0;
  static constexpr int kHeaderBytes = Int8 ? 4 : 1, kCodeBytes = Block * Bits / 8;
  static constexpr int kBlockBytes = kHeaderBytes + kCodeBytes;
  template <int KvWidth> static constexpr int64_t kRowBytes = int64_t(KvWidth / Block) * kBlockBytes;
  /// Bytes of a head's codes and of its headers.
  template <int HeadDim> static constexpr int kHeadCodes = HeadDim / Block * kCodeBytes;
  template <int HeadDim> static constexpr int kHeadHeaders = HeadDim / Block * kHeaderBytes;
  static_assert(Block * Bits % 8 == 0, "whole bytes of codes a block");

  /// A KV head's slice of a row: where its codes and its headers start.
  struct Head {
    const uint8_t *codes, *headers;
  };
  /// KV head kvHead of row `row` of layer `layer`'s keys (value = false)
  /// or values, in the layout above. A block of rows starts 16-byte
  /// aligned (kvRows is whole blocks), so a head's codes do wherever
  /// kHeadCodes is a multiple of 16, and its headers sit within one word
  /// wherever kHeadHeaders is 1, 2 or 4. (On the host too, for
  /// scripts/cuda-attention-check.cu's copy of a cache.)
  template <int KvWidth, int HeadDim>
  __host__ __device__ static Head locate(uint8_t *kv, int64_t kvRows, int layer, bool value, int64_t row, int kvHead) {
    const uint8_t *block = kv + ((int64_t(layer) * 2 + (value ? 1 : 0)) * kvRows + (row & ~int64_t(kRows - 1))) *
                                    kRowBytes<KvWidth>;
    const int at = kvHead * kRows + int(row & (kRows - 1));
    constexpr int64_t kAllCodes = kRows * int64_t(KvWidth / Block) * kCodeBytes;
    return {block + at * kHeadCodes<HeadDim>, block + kAllCodes + at * kHeadHeaders<HeadDim>};
  }
  /// Where format block b of a row (Block values; b / (HeadDim / Block) its
  /// KV head) keeps its header and its codes.
  template <int KvWidth, int HeadDim>
  __device__ static BlockBytes blockAt(uint8_t *kv, int64_t kvRows, int layer, bool value, int64_t row, int b) {
    constexpr int kPerHead = HeadDim / Block;
    const Head h = locate<KvWidth, HeadDim>(kv, kvRows, layer, value, row, b / kPerHead);
    return {const_cast<uint8_t *>(h.headers) + (b % kPerHead) * kHeaderBytes,
            const_cast<uint8_t *>(h.codes) + (b % kPerHead) * kCodeBytes};
  }
  template <int HeadDim> __device__ static void prefetch(Head head) {
    prefetchLines(head.codes, kHeadCodes<HeadDim>);
    prefetchLines(head.headers, kHeadHeaders<HeadDim>);
  }
  /// What code 1 of a block is worth, from its header (bytes at `at` of s).
  template <class S> __device__ static float scale(const S &s, int at) {
    if constexpr (Int8) {
      return __uint_as_float(s.byte(at) | s.byte(at + 1) << 8 | s.byte(at + 2) << 16 |
                             s.byte(at + 3) << 24);
    } else {
      // 2^(e - 127) from its bits (e = 0: 2^-127, a subnormal), times the
      // mantissas' 2^-(Bits - 2): ldexpf(1, e - 127 - (Bits - 2)) exactly.
      const uint32_t e = s.byte(at);
      const float power = __uint_as_float(e == 0 ? 0x00400000u : e << 23);
      return e == 0xFF ? NAN : power * (1.0f / (1 << (Bits - 2)));
    }
  }
  /// Code i of the codes starting at byte `at` of s, sign-extended.
  template <class S> __device__ static int code(const S &s, int at, int i) {
    if constexpr (Bits == 8)
      return int(int8_t(s.byte(at + i)));
    else
      return int(s.byte(at + i / 2) << (28 - 4 * (i % 2))) >> 28;
  }
  /// Each of G query heads' dot product with a key row, the row read and
  /// its codes widened once for all of them.
  template <int HeadDim, int G>
  __device__ static void dot(Head head, const float (*q)[HeadDim], float (&out)[G]) {
    const ByteStream<kHeadCodes<HeadDim>> codes(head.codes);
    const ByteStream<kHeadHeaders<HeadDim>> headers(head.headers);
    for (int g = 0; g < G; ++g)
      out[g] = 0;
#pragma unroll
    for (int b = 0; b < HeadDim / Block; ++b) {
      float partial[G] = {};
#pragma unroll
      for (int i = 0; i < Block; ++i) {
        const float c = float(code(codes, b * kCodeBytes, i));
        for (int g = 0; g < G; ++g)
          partial[g] += c * q[g][b * Block + i];
      }
      const float blockScale = scale(headers, b * kHeaderBytes);
      for (int g = 0; g < G; ++g)
        out[g] += partial[g] * blockScale;
    }
  }
  template <int HeadDim> __device__ static float at(Head head, int d) {
    const ByteStream<kCodeBytes> codes(head.codes + (d / Block) * kCodeBytes);
    const ByteStream<kHeaderBytes> header(head.headers + (d / Block) * kHeaderBytes);
    float v = 0;
#pragma unroll
    for (int i = 0; i < Block; ++i)
      if (i == d % Block)
        v = float(code(codes, 0, i));
    return v * scale(header, 0);
  }
  /// Values part * kPer .. of a head's slice, scaled: kPer codes of one
  /// block and its header.
  __device__ static void decodePart(Head head, int part, float (&v)[kPer]) {
    constexpr int codeBytes = kPer * Bits / 8;
    const int first = part * kPer;
    const ByteStream<kHeaderBytes> header(head.headers + (first / Block) * kHeaderBytes);
    const ByteStream<codeBytes> codes(head.codes + first * Bits / 8);
    const float s = scale(header, 0);
#pragma unroll
    for (int i = 0; i < kPer; ++i)
      v[i] = float(code(codes, 0, i)) * s;
  }
};

/// The KV cache buffer and its rows a layer's key (or value) array
/// (LatheCudaFrame's kv, kvRows), copied out of the frame: a kernel whose
/// asm clobbers memory (ldmatrix) would otherwise load them from the frame
/// again before every row it reads.
struct KvCacheRef {
  uint8_t *kv;
  int64_t kvRows;
  __device__ explicit KvCacheRef(const LatheCudaFrame &f) : kv(f.kv), kvRows(f.kvRows) {}
};

/// Row `row` of layer `layer`'s keys (value = false) or values in the
/// cache codec C (kv::KVLayout): its first byte. Cache: LatheCudaFrame or
/// KvCacheRef.
template <class C, int KvWidth, class Cache>
__device__ uint8_t *cacheRowBytes(const Cache &f, int layer, bool value, int64_t row) {
  return f.kv + ((int64_t(layer) * 2 + (value ? 1 : 0)) * f.kvRows + row) * C::template kRowBytes<KvWidth>;
}
/// That row's slice of KV head `kvHead` (C::Head); a codec whose rows
/// are not all alike (CudaWindowedKv.cuh's) locates it itself.
template <class C, int KvWidth, int HeadDim, class Cache>
__device__ typename C::Head cacheHead(const Cache &f, int layer, bool value, int64_t row, int kvHead) {
  if constexpr (C::kLocatesRows)
    return C::template locate<KvWidth, HeadDim>(f.kv, f.kvRows, layer, value, row, kvHead);
  else
    return C::template head<KvWidth, HeadDim>(cacheRowBytes<C, KvWidth>(f, layer, value, row), kvHead);
}

/// Stores the block's token's key and value rows at its cache row, in a
/// compressed format (PackedKv's layout): a warp per block of Block values
/// (KvBlockEncoder), the token's blocks spread over gridDim.y thread blocks
/// (the emitter's launch: a warp each), each warp loading all of its
/// values before it writes any.
template <bool Int8, int Bits, int Block, int KvWidth, int HeadDim>
__device__ void storeKVPacked(const LatheCudaFrame &f, int keys, int values, int layer) {
  using C = PackedKv<Int8, Bits, Block>;
  using E = KvBlockEncoder<Int8, Bits, Block>;
  startStep();
  constexpr int blocks = KvWidth / Block, kBatch = 4;
  const int t = blockIdx.x;
  const int64_t row = f.storeRows[t];
  const int warps = int(gridDim.y) * kWarps;
  for (int first = int(blockIdx.y) * kWarps + int(threadIdx.x) / 32; first < 2 * blocks;
       first += kBatch * warps) {
    typename E::Values x[kBatch];
#pragma unroll
    for (int n = 0; n < kBatch; ++n) {
      const int i = first + n * warps;
      if (i < 2 * blocks)
        x[n] = E::load(f.buffers[i >= blocks ? values : keys] + int64_t(t) * KvWidth +
                       (i % blocks) * Block);
    }
#pragma unroll
    for (int n = 0; n < kBatch; ++n) {
      const int i = first + n * warps;
      if (i < 2 * blocks) {
        const BlockBytes to =
            C::template blockAt<KvWidth, HeadDim>(f.kv, f.kvRows, layer, i >= blocks, row, i % blocks);
        E::store(x[n], to.header, to.codes);
      }
    }
  }
}

/// Copies row `from` of a compressed cache to row `to` (keys for
/// blockIdx.y 0, else values, of layer blockIdx.x): its blocks' headers and
/// codes, a thread per format block (PackedKv keeps a block of rows by KV
/// head, so a row's bytes are apart).
template <bool Int8, int Bits, int Block, int KvWidth, int HeadDim>
__device__ void copyKvRow(uint8_t *kv, int64_t kvRows, int64_t to, int64_t from) {
  using C = PackedKv<Int8, Bits, Block>;
  const int layer = blockIdx.x;
  const bool value = blockIdx.y == 1;
  for (int b = threadIdx.x; b < KvWidth / Block; b += kThreads) {
    const BlockBytes src = C::template blockAt<KvWidth, HeadDim>(kv, kvRows, layer, value, from, b);
    const BlockBytes dst = C::template blockAt<KvWidth, HeadDim>(kv, kvRows, layer, value, to, b);
    for (int i = 0; i < C::kHeaderBytes; ++i)
      dst.header[i] = src.header[i];
    for (int i = 0; i < C::kCodeBytes; ++i)
      dst.codes[i] = src.codes[i];
  }
}

/// The run of a token's `count` visible rows that this block's split
/// (blockIdx.z) takes, [begin, end): a token that sees more than
/// LATHE_CUDA_ATTENTION_SPLIT_ROWS rows splits them over up to gridDim.z
/// blocks (LATHE_CUDA_ATTENTION_SPLITS), one split per that many rows; the
/// others' blocks return at once.
struct SplitRun {
  int splits, begin, end;
  __device__ explicit SplitRun(int count) {
    constexpr int kRows = LATHE_CUDA_ATTENTION_SPLIT_ROWS;
    splits = max(1, min(int(gridDim.z), (count + kRows - 1) / kRows));
    const int perSplit = (count + splits - 1) / splits;
    begin = int(blockIdx.z) * perSplit;
    end = min(count, begin + perSplit);
  }
  __device__ bool active() const { return int(blockIdx.z) < splits; }
};

/// Before the wait, L2 is asked for the key and value rows of the run's
/// first kThreads rows, a row a thread: all but the step's own rows are
/// already in the cache, and L2 is where writes meet, so a row the kernel
/// before is still writing is read after the wait as written. (At a short
/// context attention is a chain of dependent loads: 8 blocks for the
/// Llama-3.2-1B shape's batch-1 step.)
template <class C, int KvWidth, int HeadDim>
__device__ void prefetchFirstRows(const LatheCudaFrame &f, int layer, const VisibleRows &rows,
                                  const SplitRun &run, int kvHead) {
  if (!run.active() || run.begin + int(threadIdx.x) >= run.end)
    return;
  const int64_t row = rows[run.begin + threadIdx.x];
  for (int value = 0; value < 2; ++value)
    C::template prefetch<HeadDim>(cacheHead<C, KvWidth, HeadDim>(f, layer, value, row, kvHead));
}

/// Where attention also leaves its output as the bf16 token rows of the
/// product launch after it, which then has no split launch (the emitter's
/// emitProducts: a launch less in each step of several tokens): in a step
/// whose products take their tiles (LATHE_CUDA_TILE_MIN_TOKENS tokens on),
/// as splitTokens would write them for that launch, whose wgmma tiles take
/// them from `rowsFrom` tokens on (its wideMinTokens; 0: attention writes
/// none): row-major where those run, else in the tiles' parts (bf16PartAt).
/// A token's row is its heads one after another, `width` values. Rows past
/// the step's tokens in the tiles' last block are left as they are (the
/// split writes zeros there): the tiles never store those tokens' sums.
/// Made once where each attention entry point starts, and handed down.
struct OutputRows {
  __nv_bfloat16 *rows = nullptr;
  int64_t width = 0;
  bool rowMajor = false;
  __device__ OutputRows(const LatheCudaFrame &f, int rowsFrom, int64_t width) : width(width) {
    if (rowsFrom > 0 && LATHE_CUDA_USE_TILES(1, f.rows)) {
      rows = reinterpret_cast<__nv_bfloat16 *>(f.tokenParts);
      rowMajor = rowMajorTokenRows(rowsFrom, f.rows);
    }
  }
  __device__ int64_t at(int t, int k) const {
    return rowMajor ? int64_t(t) * width + k : bf16PartAtOf(width, t, k);
  }
  /// Value k of token t.
  __device__ void put(int t, int k, float v) const {
    if (rows)
      rows[at(t, k)] = __float2bfloat16_rn(v);
  }
  /// Values k and k + 1 of token t (k even: one word in either layout).
  __device__ void putPair(int t, int k, float a, float b) const {
    if (rows)
      *reinterpret_cast<uint32_t *>(rows + at(t, k)) = bf16Pair(a, b);
  }
};

/// Where a block's G heads' attention goes: the output (one split), or its
/// split's partials (`partials`: G x (HeadDim + 2) floats a block, each
/// head's unnormalized weighted sums of values, then its running maximum
/// and sum); merge() then lets the split that arrives last (counted in
/// `arrivals`, a counter per token and head group that it resets) merge
/// them, as the online softmax merges chunks. Each output value also goes
/// to the next product's token rows where OutputRows asks.
template <int G, int HeadDim> struct SplitOutput {
  static constexpr int kPartialFloats = G * (HeadDim + 2);
  float *tokenPartials, *mine, *o;
  OutputRows rows;
  int splits, t, k0;
  __device__ SplitOutput(const LatheCudaFrame &f, int out, int t, int h0, int heads,
                         const SplitRun &run, float *partials, const OutputRows &rows)
      : tokenPartials(partials + (int64_t(t) * gridDim.y + blockIdx.y) * gridDim.z * kPartialFloats),
        mine(run.splits > 1 ? tokenPartials + blockIdx.z * kPartialFloats : nullptr),
        o(f.buffers[out] + int64_t(t) * heads * HeadDim + h0 * HeadDim),
        rows(rows), splits(run.splits), t(t), k0(h0 * HeadDim) {}
  /// Output value j of the block's heads (head j / HeadDim).
  __device__ void store(int j, float v) const {
    o[j] = v;
    rows.put(t, k0 + j, v);
  }
  /// Head g's weighted sum of values at dimension d, over its sum `total`.
  __device__ void put(int g, int d, float weighted, float total) const {
    if (mine)
      mine[g * (HeadDim + 2) + d] = weighted;
    else
      store(g * HeadDim + d, weighted / total);
  }
  /// Head g's running maximum (natural units) and sum, for the merge.
  __device__ void putTotals(int g, float maximum, float total) const {
    if (mine) {
      mine[g * (HeadDim + 2) + HeadDim] = maximum;
      mine[g * (HeadDim + 2) + HeadDim + 1] = total;
    }
  }
  /// After every put: the last split to arrive merges every split's sums.
  __device__ void merge(unsigned *arrivals) const {
    if (!mine)
      return;
    __threadfence(); // this block's partials before its arrival is counted
    __syncthreads();
    __shared__ bool last;
    if (threadIdx.x == 0)
      last = lastToArrive(arrivals + int64_t(blockIdx.x) * gridDim.y + blockIdx.y, splits);
    __syncthreads();
    if (!last)
      return;
    for (int j = threadIdx.x; j < G * HeadDim; j += kThreads) {
      const int g = j / HeadDim, d = j % HeadDim;
      float m = -INFINITY;
      for (int sp = 0; sp < splits; ++sp)
        m = fmaxf(m, __ldcg(tokenPartials + sp * kPartialFloats + g * (HeadDim + 2) + HeadDim));
      float sum = 0, weight = 0;
      for (int sp = 0; sp < splits; ++sp) {
        const float *split = tokenPartials + sp * kPartialFloats + g * (HeadDim + 2);
        const float w = expf(__ldcg(split + HeadDim) - m); // 0 for a split of no rows
        sum += w * __ldcg(split + d);
        weight += w * __ldcg(split + HeadDim + 1);
      }
      store(j, sum / weight);
    }
  }
};

/// Attention of one token (blockIdx.x) for HeadsPerBlock query heads that
/// share a KV head (block y takes heads y * HeadsPerBlock ..): each key and
/// value row is read once for all of them (grouped-query attention reads
/// 1 / group of what a block per head reads). The visible rows go by in
/// chunks of kThreads, a thread per row: the chunk's scores, then each
/// head's running maximum, sum and weighted sum of values rescaled to it
/// (online softmax), so shared memory does not grow with the context. The
/// value rows, where a head's row is whole 16-byte loads that a warp's
/// lanes divide (HeadDim 64 in bf16: 8 lanes a row, 32 rows at once): each
/// thread one load of a row at a time, a few rows' loads in flight, the
/// sums of the rows meeting across the warp's lanes, then across warps in
/// shared memory. Otherwise the block's threads in kThreads / HeadDim
/// groups over the chunk's rows, a thread per dimension, the groups' sums
/// meeting in shared memory. (A thread per dimension walked a 128-row
/// context in 32 dependent loads: 14 us a layer for the Llama-3.2-1B shape.)
///
/// A token that sees more than kThreads rows splits them over up to
/// gridDim.z blocks (LATHE_CUDA_ATTENTION_SPLITS), a run of rows each:
/// without it, 16 sequences at a 4096-token context were 128 blocks of 16
/// chunks each, one after another, for the GPU's 132 SMs. Each split
/// leaves its heads' running maximum, sum and unnormalized weighted sum of
/// values in `partials` (G x (HeadDim + 2) floats a block); the split that
/// arrives last (counted in `arrivals`, a counter per token and head group
/// that it resets) merges them, as the online softmax merges chunks. A
/// token of one split writes its output directly, as before splitting.
/// Bf16Queries: the queries rounded to bf16 first (AttentionStep's
/// activations). Caches that widen to bf16 exactly take the tensor cores
/// instead (CudaTokenAttentionMma.cuh's attention()).
template <class C, int Heads, int KvHeads, int HeadDim, int HeadsPerBlock, bool Bf16Queries>
__device__ void attentionOnCores(const LatheCudaFrame &f, int queries, int out, int layer,
                                 float *partials, unsigned *arrivals, const OutputRows &outputRows) {
  constexpr int G = HeadsPerBlock;
  static_assert((Heads / KvHeads) % G == 0, "a block's heads share one KV head");
  constexpr int kvWidth = KvHeads * HeadDim;
  constexpr int groups = HeadDim >= kThreads ? 1 : kThreads / HeadDim;
  constexpr int passes = (HeadDim + kThreads - 1) / kThreads; // dimensions per thread
  // The wide value path: a head's row in parts of C::kPer values.
  constexpr int per = C::kPer;
  constexpr int lanesPerRow = C::template kParts<HeadDim> ? HeadDim / per : 0;
  constexpr bool kWide = lanesPerRow > 0 && lanesPerRow <= 32 && 32 % lanesPerRow == 0;
  __shared__ float q[G][HeadDim];
  __shared__ float scores[G][kThreads];
  // Wide: the warps' sums of up to kHeadsAtOnce heads at once (16 KiB).
  constexpr int kHeadsAtOnce =
      (4096 / (kWarps * HeadDim)) < 1 ? 1 : (4096 / (kWarps * HeadDim)) < G ? 4096 / (kWarps * HeadDim) : G;
  __shared__ float partial[kWide ? kWarps : groups > 1 ? groups : 1][kWide ? kHeadsAtOnce : G]
                          [HeadDim];
  const int t = blockIdx.x, h0 = blockIdx.y * G;
  const int kvHead = h0 / (Heads / KvHeads);
  const VisibleRows rows(f, t); // the step's lists: readable before the wait
  const SplitRun run(rows.count);
  const int begin = run.begin, end = run.end;
  prefetchFirstRows<C, kvWidth, HeadDim>(f, layer, rows, run, kvHead);
  startStep();
  if (!run.active())
    return;
  const SplitOutput<G, HeadDim> result(f, out, t, h0, Heads, run, partials, outputRows);
  const float *query = f.buffers[queries] + int64_t(t) * Heads * HeadDim + h0 * HeadDim;
  for (int i = threadIdx.x; i < G * HeadDim; i += kThreads)
    q[i / HeadDim][i % HeadDim] = Bf16Queries ? bf16Rounded(query[i]) : query[i];
  __syncthreads();
  const float scale = float(1.0 / sqrt(double(HeadDim)));

  const int group = threadIdx.x / HeadDim, lane = groups > 1 ? threadIdx.x % HeadDim : threadIdx.x;
  // Wide: the thread's row slot in a pass over the chunk's rows, and its
  // part of a row (values part * per ..).
  constexpr int rowsAtOnce = kWide ? kThreads / lanesPerRow : 1;
  const int slot = kWide ? threadIdx.x / lanesPerRow : 0;
  const int part = kWide ? threadIdx.x % lanesPerRow : 0;
  float maxScore[G], total[G], acc[passes][G], wide[G][kWide ? per : 1];
  for (int g = 0; g < G; ++g) {
    maxScore[g] = -INFINITY, total[g] = 0;
    for (int i = 0; i < passes; ++i)
      acc[i][g] = 0;
    for (int i = 0; i < (kWide ? per : 1); ++i)
      wide[g][i] = 0;
  }
  for (int p0 = begin; p0 < end; p0 += kThreads) {
    const int p = p0 + threadIdx.x, rowsHere = min(kThreads, end - p0);
    float s[G];
    if (p < end) {
      C::template dot<HeadDim, G>(cacheHead<C, kvWidth, HeadDim>(f, layer, false, rows[p], kvHead),
                                  q, s);
      for (int g = 0; g < G; ++g)
        s[g] *= scale;
    }
    // Every head's chunk maximum and sum in one exchange each.
    float chunkMax[G], e[G], sums[G], rescale[G];
    for (int g = 0; g < G; ++g)
      e[g] = p < end ? s[g] : -INFINITY;
    blockMaxEach<G>(e, chunkMax);
    for (int g = 0; g < G; ++g) {
      const float newMax = fmaxf(maxScore[g], chunkMax[g]);
      e[g] = p < end ? expf(s[g] - newMax) : 0.0f;
      scores[g][threadIdx.x] = e[g];
      rescale[g] = expf(maxScore[g] - newMax); // 0 on the first chunk
      maxScore[g] = newMax;
    }
    blockSumEach<G>(e, sums); // its first barrier orders the writes above
    for (int g = 0; g < G; ++g) {
      total[g] = total[g] * rescale[g] + sums[g];
      for (int i = 0; i < passes; ++i)
        acc[i][g] *= rescale[g];
      for (int i = 0; i < (kWide ? per : 1); ++i)
        wide[g][i] *= rescale[g];
    }
    if constexpr (kWide) {
#pragma unroll 4
      for (int r = slot; r < rowsHere; r += rowsAtOnce) {
        float vd[per];
        C::decodePart(cacheHead<C, kvWidth, HeadDim>(f, layer, true, rows[p0 + r], kvHead),
                      part, vd);
        for (int g = 0; g < G; ++g) {
          const float w = scores[g][r];
          for (int i = 0; i < per; ++i)
            wide[g][i] += w * vd[i];
        }
      }
    } else if (group < groups)
      for (int r = group; r < rowsHere; r += groups) {
        const auto v = cacheHead<C, kvWidth, HeadDim>(f, layer, true, rows[p0 + r], kvHead);
        for (int i = 0; i < passes; ++i) {
          const int d = i * kThreads + lane;
          if (d < HeadDim) {
            const float vd = C::template at<HeadDim>(v, d);
            for (int g = 0; g < G; ++g)
              acc[i][g] += scores[g][r] * vd;
          }
        }
      }
    __syncthreads(); // before the next chunk's scores
  }
  // Head g's weighted sum of values at dimension d: the output, or this
  // split's share of it.
  const auto put = [&](int g, int d, float sum) { result.put(g, d, sum, total[g]); };
  if constexpr (kWide) {
    // The row slots' sums: across the warp's slots (lanes lanesPerRow
    // apart), then across warps, kHeadsAtOnce heads a barrier.
    for (int g0 = 0; g0 < G; g0 += kHeadsAtOnce) {
      for (int g = g0; g < g0 + kHeadsAtOnce && g < G; ++g) {
        for (int i = 0; i < per; ++i)
          for (int step = lanesPerRow; step < 32; step *= 2)
            wide[g][i] += __shfl_xor_sync(0xffffffffu, wide[g][i], step);
        if (threadIdx.x % 32 < lanesPerRow)
          for (int i = 0; i < per; ++i)
            partial[threadIdx.x / 32][g - g0][part * per + i] = wide[g][i];
      }
      __syncthreads();
      const int heads = min(kHeadsAtOnce, G - g0);
      for (int j = threadIdx.x; j < heads * HeadDim; j += kThreads) {
        float sum = 0;
        for (int w = 0; w < kWarps; ++w)
          sum += partial[w][j / HeadDim][j % HeadDim];
        put(g0 + j / HeadDim, j % HeadDim, sum);
      }
      if (g0 + kHeadsAtOnce < G)
        __syncthreads(); // before the next heads' sums
    }
  } else {
    for (int i = 0; i < passes; ++i) {
      const int d = i * kThreads + lane;
      if (groups > 1) {
        if (group < groups)
          for (int g = 0; g < G; ++g)
            partial[group][g][d] = acc[i][g];
        __syncthreads();
        for (int j = threadIdx.x; j < G * HeadDim; j += kThreads) {
          float sum = 0;
          for (int r = 0; r < groups; ++r)
            sum += partial[r][j / HeadDim][j % HeadDim];
          put(j / HeadDim, j % HeadDim, sum);
        }
      } else if (d < HeadDim) {
        for (int g = 0; g < G; ++g)
          put(g, d, acc[i][g]);
      }
    }
  }
  // Split: leave the heads' maxima and totals (every thread holds them),
  // then the last split to arrive merges every split's sums.
  if (threadIdx.x < G)
    result.putTotals(threadIdx.x, maxScore[threadIdx.x], total[threadIdx.x]);
  result.merge(arrivals);
}

} // namespace lathe_cuda
