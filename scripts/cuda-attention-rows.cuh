// A prototype of the one-token attention that streams whole cache rows
// through shared memory, a block per token and split of its visible rows,
// every head of the model in one block; scripts/cuda-attention-check.cu
// runs it with -DROWS=1 (bfp4 caches) or -DROWS=2 (bf16 too). Measured
// slower than the runtime's kernels (docs/benchmarks.md, "Whole cache rows
// through a cp.async ring", 2026-12-07): kept as the record of the design,
// not used by the compiler.
//
// The runtime's one-token kernels (CudaTokenAttentionMma.cuh,
// CudaTokenAttentionNibbles.cuh) take a block per (token, KV head, split),
// and each lane loads the few bytes its fragments hold: a lane keeps one
// chunk's loads in flight, and a KV head's exponent bytes share a sector
// with the other heads', read by blocks far apart. Nsight Compute found
// the bfp4 kernel DRAM-busy 30% of its time, waiting on its loads. Here the
// block's threads copy each stage's 16 key and 16 value rows whole (codes
// and exponents of every head; 272 bytes a row for the Llama-3.2-1B shape
// in bfp4) with cp.async, kStages - 1 stages ahead, into a ring in shared
// memory, and each warp reads its KV head's fragments from there. The row
// indices travel a stage further ahead in the same copies, so no load
// waits on another.
//
// Warps: KvHeads divides kWarps; warp w takes KV head w / W (W = kWarps /
// KvHeads warps a head) and the stages i with i % W == w % W. A warp's
// G = Heads / KvHeads query heads are the rows of one m16 tile, as in the
// other kernels, and its Q K^T, online softmax and P V are theirs: a 4-bit
// BFP cache widened into the fragments (NibbleFragments), a bf16 cache
// read with ldmatrix from rows padded by 16 bytes. At the end each warp's
// sums go to shared memory, the warps of a head meet, and the splits merge
// as the other kernels' do (SplitOutput, with G = Heads).
#pragma once

#include "runtime/backends/cuda/kernels/LatheCudaKernels.cuh"

/* Stages of 16 rows in the ring, copied that many stages ahead less one. */
#ifndef LATHE_CUDA_ROWS_STAGES
#define LATHE_CUDA_ROWS_STAGES 4
#endif
/* The ring's bytes for rows of `rowBytes`: the rows, then each stage's 16
 * row indices. */
#define LATHE_CUDA_ROWS_RING_BYTES(rowBytes) \
  (LATHE_CUDA_ROWS_STAGES * 2 * 16 * (rowBytes) + LATHE_CUDA_ROWS_STAGES * 16 * 4)

namespace lathe_cuda {

/// cp.async of 4 bytes, global to shared.
__device__ inline void copyAsync4(void *shared, const void *global) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned to = unsigned(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(to), "l"(global));
#endif
}

/// How a warp takes its KV head's fragments from whole rows in shared
/// memory (kStride bytes apart; kRowBytes of them copied from a cache
/// row): B fragments of Q K^T (kb[st][n]: keys 8 n .. at step st) and of
/// P V (vb[j]: output tile j), the queries' A fragments in the same order
/// of dimensions (query), and the dimension of column `column` of output
/// tile n. kFits: whether the cache codec and shape take this kernel.
template <class C, int KvWidth, int HeadDim> struct RowFragments {
  static constexpr bool kFits = false;
};

/// A 4-bit BFP cache: NibbleFragments' widening and order of dimensions.
template <int Block, int KvWidth, int HeadDim> struct RowFragments<PackedKv<false, 4, Block>, KvWidth, HeadDim> {
  using C = PackedKv<false, 4, Block>;
  using Kv = NibbleFragments<C, HeadDim>;
  static constexpr bool kFits = Kv::template kFits<KvWidth>;
  static constexpr int kRowBytes = int(C::template kRowBytes<KvWidth>), kStride = kRowBytes;
  static constexpr int kHeadBlocks = C::template kHeadCodes<HeadDim> / C::kCodeBytes;
  int codes, headers; // where the head's codes start in a row, and the word of its exponents
  uint32_t shift;     // its first exponent in that word, in bits
  __device__ explicit RowFragments(int kvHead)
      : codes(int(C::codesAt(int64_t(kvHead) * kHeadBlocks))),
        headers(int(C::template headerAt<KvWidth>(int64_t(kvHead) * kHeadBlocks)) & ~3),
        shift(Kv::template headerShift<KvWidth>(kvHead)) {}
  /// Dimensions i and i + 4 of A fragment element e at step s.
  __device__ static float2 query(const float *head, int s, int e) {
    const float *at = head + threadIdx.x % 4 * HeadDim / 4 + 8 * (s / 2) + 2 * (s % 2) + e / 2;
    return make_float2(at[0], at[4]);
  }
  __device__ void fragments(const uint8_t *keys, const uint8_t *values, uint32_t (&kb)[HeadDim / 16][2][2],
                            uint32_t (&vb)[HeadDim / 8][2]) const {
    const int lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
    typename Kv::Raw raw;
#pragma unroll
    for (int n = 0; n < 2; ++n) { // key rows g, g + 8: the lane's kKeyWords words
      const uint8_t *row = keys + (g + 8 * n) * kStride;
      const uint32_t *words = reinterpret_cast<const uint32_t *>(row + codes) + c * Kv::kKeyWords;
#pragma unroll
      for (int w = 0; w < Kv::kKeyWords; ++w)
        raw.keys[n][w] = words[w];
      raw.keyHeaders[n] = *reinterpret_cast<const uint32_t *>(row + headers);
    }
#pragma unroll
    for (int v = 0; v < 4; ++v) { // value rows 2c, 2c + 1, 2c + 8, 2c + 9
      const uint8_t *row = values + (2 * c + v % 2 + 8 * (v / 2)) * kStride;
      const uint32_t *words = reinterpret_cast<const uint32_t *>(row + codes) + g * Kv::kValueWords;
#pragma unroll
      for (int w = 0; w < Kv::kValueWords; ++w)
        raw.values[v][w] = words[w];
      raw.valueHeaders[v] = *reinterpret_cast<const uint32_t *>(row + headers);
    }
    Kv::keys(raw, shift, kb);
    Kv::values(raw, shift, vb);
  }
  __device__ static int dimension(int n, int column) { return column * (HeadDim / 8) + n; }
};

/// A bf16 cache: ldmatrix from rows padded by 16 bytes (the 8 rows of a
/// fragment then start 4 banks apart).
template <int KvWidth, int HeadDim> struct RowFragments<PlainKv<__nv_bfloat16>, KvWidth, HeadDim> {
  static constexpr bool kFits = HeadDim % 16 == 0 && KvWidth % 8 == 0;
  static constexpr int kRowBytes = 2 * KvWidth, kStride = kRowBytes + 16;
  using Rows = const __nv_bfloat16 (*)[kStride / 2];
  int first; // the head's first value in a row
  __device__ explicit RowFragments(int kvHead) : first(kvHead * HeadDim) {}
  __device__ static float2 query(const float *head, int s, int e) {
    return *reinterpret_cast<const float2 *>(head + 16 * s + 8 * (e / 2) + 2 * (threadIdx.x % 4));
  }
  __device__ void fragments(const uint8_t *keys, const uint8_t *values, uint32_t (&kb)[HeadDim / 16][2][2],
                            uint32_t (&vb)[HeadDim / 8][2]) const {
    const Rows k = reinterpret_cast<Rows>(keys + 2 * first), v = reinterpret_cast<Rows>(values + 2 * first);
#pragma unroll
    for (int st = 0; st < HeadDim / 16; ++st) {
      uint32_t b[4];
      keyFragments(k, 0, st, b);
      kb[st][0][0] = b[0], kb[st][0][1] = b[1], kb[st][1][0] = b[2], kb[st][1][1] = b[3];
    }
#pragma unroll
    for (int n = 0; n < HeadDim / 8; n += 2) {
      uint32_t b[4];
      valueFragments(v, 0, n, b);
      vb[n][0] = b[0], vb[n][1] = b[1], vb[n + 1][0] = b[2], vb[n + 1][1] = b[3];
    }
  }
  __device__ static int dimension(int n, int column) { return 8 * n + column; }
};

/// The ring's layout: kStages stages of 16 key and 16 value rows, then
/// each stage's 16 row indices; what a model's shape asks of it (kBytes:
/// static shared memory up to 48 KB, kStatic, else the launch's dynamic
/// shared memory) and of the warps (kFits).
template <class C, int Heads, int KvHeads, int HeadDim> struct RowRing {
  using Frag = RowFragments<C, KvHeads * HeadDim, HeadDim>;
  static constexpr int kStages = LATHE_CUDA_ROWS_STAGES, kRows = 16;
  static constexpr int kBytes = LATHE_CUDA_ROWS_RING_BYTES(Frag::kStride);
  static constexpr bool kFits = Frag::kFits && kWarps % KvHeads == 0 && Heads % KvHeads == 0 &&
                                Heads / KvHeads <= 16 && kWarps * (Heads / KvHeads) * (HeadDim + 2) * 4 <= kBytes;
  static constexpr bool kStatic = kBytes <= 48 * 1024;
};

/// Per-token attention of every head of token blockIdx.x over split
/// blockIdx.z of its visible rows (above); the arguments of
/// tokenAttentionMma, with one block for all heads (gridDim.y 1).
template <class C, int Heads, int KvHeads, int HeadDim, bool Bf16Queries>
__device__ void tokenAttentionRows(const LatheCudaFrame &f, int queries, int out, int layer, float *partials,
                                   unsigned *arrivals, const OutputRows &outputRows) {
  using Ring = RowRing<C, Heads, KvHeads, HeadDim>;
  using Frag = typename Ring::Frag;
  static_assert(Ring::kFits, "RowRing::kFits");
  constexpr int kvWidth = KvHeads * HeadDim, G = Heads / KvHeads, W = kWarps / KvHeads;
  constexpr int kStages = Ring::kStages, R = Ring::kRows, kStride = Frag::kStride;
  constexpr int kParts = Frag::kRowBytes / 16, kSteps = HeadDim / 16;
  constexpr int kQueryParts = Bf16Queries ? 1 : 3, kProbabilityParts = Bf16Queries ? 2 : 3;
  constexpr int kHalves = G <= 8 ? 1 : 2; // tiles of at most 8 heads leave rows g + 8 empty
  __shared__ __align__(16) uint8_t staticRing[Ring::kStatic ? Ring::kBytes : 16];
  extern __shared__ __align__(16) uint8_t dynamicRing[];
  uint8_t *const ring = Ring::kStatic ? staticRing : dynamicRing;
  const auto rowsAt = [&](int slot, int v) { return ring + (slot * 2 + v) * R * kStride; };
  int32_t *const indices = reinterpret_cast<int32_t *>(ring + kStages * 2 * R * kStride);
  const int t = blockIdx.x;
  const VisibleRows rows(f, t);
  const SplitRun run(rows.count);
  const int stages = (run.end - run.begin + R - 1) / R;
  // Rows past the run read its last row again: their scores are masked.
  const auto indexAt = [&](int s, int r) { return rows.at(min(run.begin + s * R + r, run.end - 1)); };
  // The first stages' row indices: the step's lists may be read before the wait.
  if (run.active())
    for (int i = threadIdx.x; i < (kStages - 1) * R; i += kThreads)
      if (i / R < stages)
        indices[i] = __ldg(indexAt(i / R, i % R));
  startStep();
  if (!run.active())
    return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const int kvHead = warp / W, h0 = kvHead * G;
  const uint8_t *keys = cacheRowBytes<C, kvWidth>(KvCacheRef(f), layer, false, 0);
  const int64_t valuesAt = f.kvRows * int64_t(Frag::kRowBytes);

  // Stage s's rows into slot s % kStages and stage s + kStages - 1's row
  // indices, one group of copies (empty past the last stage, so that every
  // thread counts the same groups).
  const auto issue = [&](int s) {
    if (s < stages) {
      const int slot = s % kStages;
      for (int q = threadIdx.x; q < 2 * R * kParts; q += kThreads) {
        const int v = q / (R * kParts), r = q / kParts % R, part = q % kParts;
        const int64_t row = indices[slot * R + r];
        copyAsync16(rowsAt(slot, v) + r * kStride + 16 * part,
                    keys + v * valuesAt + row * Frag::kRowBytes + 16 * part);
      }
    }
    const int ahead = s + kStages - 1;
    if (ahead < stages && threadIdx.x < R)
      copyAsync4(indices + ahead % kStages * R + threadIdx.x, indexAt(ahead, threadIdx.x));
    commitCopies();
  };
  __syncthreads(); // the first indices
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s)
    issue(s);

  // The queries' A fragments: rows g and g + 8 are heads h0 + g, h0 + g + 8
  // (zeros from G on), in the order of dimensions of Frag's fragments.
  uint32_t qa[kSteps][kQueryParts][4];
  const float *query = f.buffers[queries] + int64_t(t) * Heads * HeadDim + h0 * HeadDim;
#pragma unroll
  for (int s = 0; s < kSteps; ++s)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int head = g + 8 * (e % 2);
      const float2 v = head < G ? Frag::query(query + head * HeadDim, s, e) : make_float2(0, 0);
      uint32_t p[3];
      splitPair(v.x, v.y, p); // p[0] alone: the pair rounded to bf16
#pragma unroll
      for (int i = 0; i < kQueryParts; ++i)
        qa[s][i][e] = p[i];
    }
  const float scale = base2Scale<HeadDim>();
  const int seen[2] = {run.end, run.end};
  float o[HeadDim / 8][4] = {};
  float best[2] = {-INFINITY, -INFINITY}, sum[2] = {0, 0}; // rows g, g + 8
  const Frag frag(kvHead);

  for (int i = 0; i < stages; ++i) {
    waitCopies<kStages - 2>();
    __syncthreads(); // stage i is in; every warp is done with stage i - 1's slot
    issue(i + kStages - 1);
    if (i % W != warp % W)
      continue;
    uint32_t kb[kSteps][2][2], vb[HeadDim / 8][2];
    frag.fragments(rowsAt(i % kStages, 0), rowsAt(i % kStages, 1), kb, vb);
    float s[2][4] = {};
#pragma unroll
    for (int st = 0; st < kSteps; ++st)
#pragma unroll
      for (int n = 0; n < 2; ++n)
#pragma unroll
        for (int q = 0; q < kQueryParts; ++q)
          mma16816(s[n], qa[st][q], kb[st][n][0], kb[st][n][1]);
    float rescale[2];
    softmaxChunk<R, kHalves>(s, run.begin + i * R, seen, scale, best, sum, rescale);
    if (__any_sync(0xffffffffu, rescale[0] != 1.0f || rescale[1] != 1.0f))
      rescaleOutputs<HeadDim, kHalves>(o, rescale);
    uint32_t pa[kProbabilityParts][4];
    probabilityFragments<R, kProbabilityParts, kHalves>(s, 0, pa);
#pragma unroll
    for (int j = 0; j < HeadDim / 8; ++j)
#pragma unroll
      for (int p = 0; p < kProbabilityParts; ++p)
        mma16816(o[j], pa[p], vb[j][0], vb[j][1]);
  }
  waitCopies<0>();
  __syncthreads(); // the ring is free: the warps meet in it

  // Each warp's heads' maxima (natural units), sums and weighted sums in
  // its own G x (HeadDim + 2) floats; then the W warps of each KV head meet
  // and the splits merge.
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    sum[i] += __shfl_xor_sync(0xffffffffu, sum[i], 1);
    sum[i] += __shfl_xor_sync(0xffffffffu, sum[i], 2);
  }
  constexpr int kScratch = G * (HeadDim + 2);
  float *scratch = reinterpret_cast<float *>(ring);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int head = g + 8 * i;
    if (head >= G)
      continue;
    float *at = scratch + warp * kScratch + head * (HeadDim + 2);
#pragma unroll
    for (int n = 0; n < HeadDim / 8; ++n)
#pragma unroll
      for (int e = 0; e < 2; ++e)
        at[Frag::dimension(n, 2 * c + e)] = o[n][2 * i + e];
    if (c == 0) {
      at[HeadDim] = best[i] * 0.6931471805599453f; // base 2 to natural
      at[HeadDim + 1] = sum[i];
    }
  }
  __syncthreads();
  SplitOutput<Heads, HeadDim> result(f, out, t, 0, Heads, run, partials, outputRows);
  for (int j = threadIdx.x; j < Heads * (HeadDim + 1); j += kThreads) {
    const int head = j / (HeadDim + 1), d = j % (HeadDim + 1);
    const float *first = scratch + head / G * W * kScratch + head % G * (HeadDim + 2);
    float m = -INFINITY;
#pragma unroll
    for (int w = 0; w < W; ++w)
      m = fmaxf(m, first[w * kScratch + HeadDim]);
    float weighted = 0, total = 0;
#pragma unroll
    for (int w = 0; w < W; ++w) {
      const float *from = first + w * kScratch;
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

/// The one-token attention of every head in one block (gridDim.y 1),
/// streaming whole rows (above), as a generated kernel would call it.
template <class C, int Heads, int KvHeads, int HeadDim, bool Bf16Queries>
__device__ void attentionRows(const LatheCudaFrame &f, int queries, int out, int layer, float *partials,
                              unsigned *arrivals, int rowsFrom = 0) {
  tokenAttentionRows<C, Heads, KvHeads, HeadDim, Bf16Queries>(f, queries, out, layer, partials, arrivals,
                                                              OutputRows(f, rowsFrom, Heads * HeadDim));
}

} // namespace lathe_cuda
