// Attention of prompts on Hopper's warpgroup MMA (wgmma, sm_90a), for a
// bf16 cache, bf16 queries and heads of 64 dimensions: the tiles, rows and
// softmax of flashAttention (CudaFlashAttention.cuh), with its two matrix
// products made wgmma's. A block takes a query tile and a group of query
// heads sharing a KV head (warp w: head w % G, tokens 16 (w / G) .. of the
// tile, as there); each of its two warpgroups multiplies its 64 query rows
// by a chunk of 64 keys, then the 64 rows' probabilities by the chunk's
// values, the queries and probabilities as A fragments in registers (the
// mma.sync m16n8k16 layout, a warp's 16 rows) and the chunk's key and
// value rows read by wgmma from shared memory where cp.async put them as
// they are in the cache, 128 bytes a row in wgmma's 128-byte swizzle, the
// next chunk in flight while this one is multiplied. Keys are the K-major
// B of Q K^T (as the wgmma tiles' weights), values the N-major
// (transposed) B of P V: the same rows, read down their columns.
// Part of LatheCudaKernels.cuh.
//
// Why: the mma.sync kernel loads every B fragment into registers by
// ldmatrix, per warp. H200, Llama-3.2-1B shape, a 2048-token prompt's
// attention a layer (Nsight Compute, base clocks, 2026-12-04): 246 us
// there, 158 us here (two blocks an SM; 185 with one; 185 with each
// probability in two parts as the mma.sync kernel has them; 153 with the
// next chunk's scores issued while this chunk's values are multiplied,
// which cost registers and gained nothing end to end).
//
// Numerics: a query is one bf16 part (as flashAttention's with bf16
// queries), and so is a probability, rounded to bf16 (within 2^-9, as the
// build's product inputs are; flashAttention keeps two parts); products
// exact, sums in float in the tensor cores' order. Elsewhere (PTX for
// other architectures) the kernel runs flashAttention itself.
#pragma once

#include "CudaFlashAttention.cuh"
#include "CudaWgmmaTiles.cuh"

namespace lathe_cuda {

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/// d += a * b for 64 rows by 64 columns, k 16: a the warpgroup's A in
/// registers (each warp its 16 rows, the m16n8k16 A fragment), b a
/// descriptor, K-major (Transposed false) or N-major; d the m16n8
/// accumulators of 8 n8 tiles, d[j][e] row 16 w + l / 4 + 8 (e / 2),
/// column 8 j + 2 (l % 4) + e % 2 (warp w, lane l).
template <bool Transposed>
__device__ inline void wgmma64x64(float (&d)[8][4], const uint32_t (&a)[4], uint64_t b) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %38, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
               "{%32, %33, %34, %35}, %36, p, 1, 1, %37;\n}\n"
               : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]),
                 "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]),
                 "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]),
                 "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),
                 "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]),
                 "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]),
                 "+f"(d[7][2]), "+f"(d[7][3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "n"(Transposed ? 1 : 0), "n"(1));
}
/// Keeps the compiler from moving reads or writes of an operand's
/// registers across the wgmma in flight that use them.
template <int N> __device__ inline void wgmmaKeep(float (&v)[N][4]) {
#pragma unroll
  for (int n = 0; n < N; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      wgmmaKeep(v[n][e]);
}
/// The same for A fragments of one part (uint32_t[N][1][4]).
template <int N> __device__ inline void wgmmaKeep(uint32_t (&v)[N][1][4]) {
#pragma unroll
  for (int n = 0; n < N; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      asm volatile("" : "+r"(v[n][0][e])::"memory");
}
#endif

/// Keys a chunk: 64 rows of 128 bytes (a wgmma tile of one 64-value stage).
constexpr int kWgmmaAttentionChunk = 64;

template <typename E, int Heads, int KvHeads, int HeadDim, int HeadsPerBlock, bool Bf16Queries>
__device__ void wgmmaAttention(const LatheCudaFrame &f, int queries, int out, int layer,
                               int rowsFrom = 0) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  const OutputRows outputRows(f, rowsFrom, Heads * HeadDim);
  static_assert(std::is_same_v<E, __nv_bfloat16> && Bf16Queries && HeadDim == 64,
                "the emitter takes this kernel for bf16 caches and queries, 64-dimension heads");
  static_assert(kThreads == 256 && (kWarps / HeadsPerBlock) * HeadsPerBlock == kWarps,
                "two warpgroups, each warp 16 rows of one head");
  constexpr int G = HeadsPerBlock, C = kWgmmaAttentionChunk;
  constexpr int kvWidth = KvHeads * HeadDim;
  constexpr int kChunkBytes = C * 128;
  // Two buffers of a chunk's keys, then two of its values, 1024-byte aligned.
  __shared__ __align__(1024) uint8_t shared[4 * kChunkBytes + 1024];
  uint8_t *const base =
      shared + ((1024 - (unsigned(__cvta_generic_to_shared(shared)) & 1023)) & 1023);
  auto keys = [&](int chunk) { return base + (chunk % 2) * kChunkBytes; };
  auto values = [&](int chunk) { return base + (2 + chunk % 2) * kChunkBytes; };
  startStep();
  if (int(blockIdx.x) >= f.queryTileCount) // a graph's launch: a block per token
    return;
  const int32_t *tile = f.queryTiles + 3 * (f.queryTileCount - 1 - blockIdx.x);
  const int first = tile[0], tokens = tile[1];
  const VisibleRows rows(f, tile[2]);
  const int count = rows.count, chunks = (count + C - 1) / C;
  const int warp = threadIdx.x / 32;
  const int head = blockIdx.y * G + warp % G;
  const int kvOffset = (blockIdx.y * G / (Heads / KvHeads)) * HeadDim;

  // Copies of a chunk's key (value false) or value rows: thread i takes
  // 16-byte chunk i % 8 of rows i / 8 and i / 8 + 32 (rows past those seen
  // zeros: a probability of 0 times garbage could be NaN).
  const int copyRow = threadIdx.x / 8, copyChunk = threadIdx.x % 8;
  auto load = [&](bool value, int chunk) {
    uint8_t *to = value ? values(chunk) : keys(chunk);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int key = copyRow + 32 * h, p = chunk * C + key;
      if (p < count)
        copyAsync16(to + wgmmaChunk(key, copyChunk),
                    cacheRow<__nv_bfloat16, kvWidth>(f, layer, value, rows[p]) + kvOffset +
                        8 * copyChunk);
      else
        *reinterpret_cast<uint4 *>(to + wgmmaChunk(key, copyChunk)) = make_uint4(0, 0, 0, 0);
    }
  };
  auto loadBoth = [&](int chunk) {
    load(false, chunk);
    load(true, chunk);
    commitCopies();
  };
  loadBoth(0);
  int seen[2];
  uint32_t qa[HeadDim / 16][1][4];
  {
    int r[2], token[2];
    laneRows(f, first, tokens, (warp / G) * 16, r, token, seen);
    queryFragments<Heads, HeadDim, 1>(f, queries, token, head, qa);
  }
  const float scale = base2Scale<HeadDim>();
  float o[HeadDim / 8][4] = {};
  float best[2] = {-INFINITY, -INFINITY}, sum[2] = {0, 0}, rescale[2];
  for (int j = 0; j < chunks; ++j) {
    if (j + 1 < chunks) { // the next chunk's copies go out before this one's are waited for
      loadBoth(j + 1);
      waitCopies<1>();
    } else {
      waitCopies<0>();
    }
    fenceProxyAsync(); // the copies and zeros, for wgmma's reads
    __syncthreads();
    // Scores: s[n] the lane's part of keys 8 n .. 8 n + 7 of the chunk.
    float s[C / 8][4] = {};
    wgmmaKeep(s);
    wgmmaFence();
#pragma unroll
    for (int st = 0; st < HeadDim / 16; ++st)
      wgmma64x64<false>(s, qa[st][0], wgmmaDescriptor(keys(j)) + 2 * st);
    wgmmaCommit();
    wgmmaWait<0>();
    wgmmaKeep(s);
    softmaxChunk<C>(s, j * C, seen, scale, best, sum, rescale);
    rescaleOutputs<HeadDim>(o, rescale);
    // P V: keys 16 kk .. as k, 16 value rows (2048 bytes) a step.
    uint32_t pa[C / 16][1][4];
#pragma unroll
    for (int kk = 0; kk < C / 16; ++kk)
      probabilityFragments<C, 1>(s, kk, pa[kk]);
    wgmmaKeep(o);
    wgmmaFence();
#pragma unroll
    for (int kk = 0; kk < C / 16; ++kk)
      wgmma64x64<true>(o, pa[kk][0], wgmmaDescriptor(values(j)) + 128 * kk);
    wgmmaCommit();
    wgmmaWait<0>();
    wgmmaKeep(o);
    wgmmaKeep(pa);
    __syncthreads(); // every wgmma is done with the buffers the next copies fill
  }
  wgmmaKeep(qa);
  int r[2], token[2]; // again, not held in registers through the loop
  laneRows(f, first, tokens, (warp / G) * 16, r, token, seen);
  storeAttention<Heads, HeadDim>(f, out, r, tokens, token, head, o, sum, outputRows);
#else
  flashAttention<E, Heads, KvHeads, HeadDim, HeadsPerBlock, Bf16Queries>(f, queries, out, layer,
                                                                          rowsFrom);
#endif
}

} // namespace lathe_cuda
