// The staged wide tiles on Hopper's warpgroup MMA (wgmma, sm_90a): a long
// prompt's bf16 products (bf16 weights, bf16 activations) as a GEMM runs
// them. A block multiplies up to 128 tokens by 128 output rows: rows n ..
// n + 127 of a PlainRows (m64n128k16), or the gate's and the up's rows n ..
// n + 127 of a GatedRows (one m64n256k16 operand of both), or pairs of
// 128-row tiles of a PlainRows (LATHE_CUDA_WGMMA_PAIRED). Warp-specialized:
// one thread of a third warpgroup loads stages of 64 values of k into a
// ring of shared memory by TMA, the weights and the split token rows
// (tensor maps the runtime encodes, LatheCudaTmaWeight and
// LatheCudaTmaTokens), counted on mbarriers (CudaTma.cuh), laid out as
// wgmma's 128-byte swizzle reads them;
// the two others each multiply 64 tokens by the stage's rows, one group of
// wgmma in flight, and hand the stage back. Blocks of 64 tokens (for
// launches that would otherwise have too few blocks to fill the GPU:
// LATHE_CUDA_WGMMA_TOKENS) give each multiplying warpgroup half of each
// stage's k, and add the two warpgroups' sums at the end. Same fusions and
// epilogue as the other tiles (Rows::store). Part of LatheCudaKernels.cuh.
//
// Why (H200, 2026-12-04, boost clocks, the Llama-3.2-1B shape's 2048-token
// products): the same blocks with every thread copying by cp.async and a
// __syncthreads a stage took gate/up 261 us, down 125, q/k/v 80, output 44;
// these 209, 88 (in pairs), 47 and 28 (in pairs) (cuBLAS 185, 84, 39, 26).
// 128 rows a block for q/k/v, not 256: more blocks, fewer idle SMs in the
// last wave (52 against 44 us with 256).
//
// Numerics: the products of bf16 values are exact in float, summed in
// float by the tensor cores in their own order: results agree with the
// mma.sync tiles to float rounding, not bit for bit.
//
// Elsewhere (an sm_90 build without its "a" features, PTX for other
// architectures: LATHE_CUDA_WGMMA_CODE 0) the same blocks run as the
// mma.sync staged tiles, 128 rows by 64 tokens at a time, launched with
// 256 threads.
#pragma once

#include "CudaStagedTiles.cuh"

namespace lathe_cuda {

/// The weight rows of a wgmma block, by kind of rows: Tiles (1 or 2)
/// 128-row tiles of a PlainRows, rows n .. n + 128 Tiles - 1 (m64n128 or
/// m64n256: LATHE_CUDA_WGMMA_PAIRED), or the gate's and the up's rows n ..
/// n + 127 of a GatedRows (their 256 rows one m64n256 operand); kTiles
/// tiles a stage, each from maps[c] at row n + kTileStep c, 64 kTiles
/// accumulators a thread.
template <class Rows, int Tiles> struct WgmmaTiles;
template <int K, int N, int64_t RowBytes, bool Residual, int Tiles>
struct WgmmaTiles<PlainRows<BF16, K, N, RowBytes, Residual>, Tiles> {
  static constexpr int kTiles = Tiles, kTileStep = 128, kRows = 128 * Tiles;
  static constexpr int64_t kRowBytes = RowBytes;
  using Rows = PlainRows<BF16, K, N, RowBytes, Residual>;
  /// What storePair adds, read first (PlainRows::residualPair).
  struct Before {
    float2 pair[kTiles];
  };
  __device__ static void load(const Rows &r, int t, int n, Before &b) {
#pragma unroll
    for (int c = 0; c < kTiles; ++c)
      if (Residual && N % 2 == 0 && n + 128 * c + 1 < N)
        b.pair[c] = r.residualPair(t, n + 128 * c);
  }
  /// Stores the sums of output rows n + 128 c (s[c], tile c) and the rows
  /// after them (next), their residuals `b`.
  __device__ static void storePair(const Rows &r, int t, int n, const float (&s)[kTiles],
                                   const float (&next)[kTiles], const Before &b) {
#pragma unroll
    for (int c = 0; c < kTiles; ++c) {
      const int row = n + 128 * c;
      if (N % 2 == 0 && row + 1 < N) {
        r.storePair(t, row, s[c], next[c], b.pair[c]);
        continue;
      }
      if (row < N)
        r.store(t, row, s[c]);
      if (row + 1 < N)
        r.store(t, row + 1, next[c]);
    }
  }
};
template <int K, int N, int64_t RowBytes>
struct WgmmaTiles<GatedRows<BF16, BF16, K, N, RowBytes, RowBytes>, 1> {
  static constexpr int kTiles = 2, kTileStep = 0, kRows = 128;
  static constexpr int64_t kRowBytes = RowBytes;
  using Rows = GatedRows<BF16, BF16, K, N, RowBytes, RowBytes>;
  struct Before {};
  __device__ static void load(const Rows &, int, int, Before &) {}
  /// SwiGLU's outputs n and n + 1 (GatedRows::storePair: floats, or the
  /// down projection's row-major bf16 rows). (Written as bf16 in the narrow
  /// tiles' fragment order, for the down projection's loads by cp.async, a
  /// 512-token prompt ran at 115k tokens/s against 122k: H200, 2026-12-04.)
  __device__ static void storePair(const Rows &r, int t, int n, const float (&s)[kTiles],
                                   const float (&next)[kTiles], const Before &) {
    if (N % 2 == 0 && n + 1 < N) {
      r.storePair(t, n, s[0], s[1], next[0], next[1]);
      return;
    }
    if (n < N)
      r.store(t, n, s[0], s[1]);
    if (n + 1 < N)
      r.store(t, n + 1, next[0], next[1]);
  }
};
/// The tensor maps of a wgmma block's weight tiles (LatheCudaTmaWeight):
/// the plain weight's (twice for paired tiles), or the gate's and the up's;
/// and of its token rows (LatheCudaTmaTokens).
struct WgmmaMaps {
  const void *map[2];
  const void *tokens;
};
/// The tensor map of weight `tensor` (the frame's weightMaps).
__device__ inline const void *tensorMap(const LatheCudaFrame &f, int tensor) {
  return f.weightMaps + int64_t(tensor) * LATHE_CUDA_TENSOR_MAP_BYTES;
}
/// Token map `index` (the frame's tokenMaps).
__device__ inline const void *tokenMap(const LatheCudaFrame &f, int index) {
  return f.tokenMaps + int64_t(index) * LATHE_CUDA_TENSOR_MAP_BYTES;
}
/// A stage: 64 values of k, one 128-byte row of each token and weight row.
constexpr int kWgmmaStageK = 64;
/// A tile of 128 rows of one stage.
constexpr int kWgmmaTileBytes = 128 * 128;

/// Byte offset of 16-byte chunk c of row r in a tile of 128-byte rows in
/// wgmma's 128-byte swizzle: chunk c of row r at c ^ (r % 8), the tile
/// 1024-byte aligned.
__device__ inline int wgmmaChunk(int r, int c) { return r * 128 + ((c ^ (r & 7)) << 4); }

/// The shared memory descriptor of a K-major operand of 128-byte swizzled
/// rows from `rows` on (8-row groups 1024 bytes apart); + 2 per 16 values
/// of k.
__device__ inline uint64_t wgmmaDescriptor(const void *rows) {
  const uint64_t address = unsigned(__cvta_generic_to_shared(rows));
  return ((address & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) |
         (uint64_t(1) << 62);
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/// d += a * b for 64 tokens (a) by 128 weight rows (b), k 16: the
/// warpgroup's accumulator fragment, thread (warp w, lane l) holding in
/// d[4 j + e] token 16 w + l / 4 + 8 (e / 2), row 8 j + 2 (l % 4) + e % 2.
__device__ inline void wgmma64x128(float (&d)[64], uint64_t a, uint64_t b) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
               "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
               "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
               "%64, %65, p, 1, 1, 0, 0;\n}\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                 "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                 "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                 "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                 "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                 "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                 "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                 "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
               : "l"(a), "l"(b), "r"(1));
}
/// The same for 256 weight rows (two tiles of 128, one operand): d[4 j + e]
/// row 8 j + 2 (l % 4) + e % 2 of the 256.
__device__ inline void wgmma64x256(float (&d)[128], uint64_t a, uint64_t b) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
               "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
               "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
               "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
               "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "
               "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "
               "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "
               "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "
               "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
               "%128, %129, p, 1, 1, 0, 0;\n}\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                 "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                 "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                 "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                 "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                 "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                 "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                 "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
                 "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
                 "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
                 "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
                 "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
                 "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
                 "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
                 "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
                 "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
               : "l"(a), "l"(b), "r"(1));
}
/// wgmma of a block's 128 (one tile) or 256 rows (two).
__device__ inline void wgmmaRows(float (&d)[64], uint64_t a, uint64_t b) { wgmma64x128(d, a, b); }
__device__ inline void wgmmaRows(float (&d)[128], uint64_t a, uint64_t b) { wgmma64x256(d, a, b); }
__device__ inline void wgmmaFence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ inline void wgmmaCommit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N> __device__ inline void wgmmaWait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
/// Keeps the compiler from moving reads or writes of v across the wgmma
/// that use it (its register is the instruction's, in flight).
__device__ inline void wgmmaKeep(float &v) { asm volatile("" : "+f"(v)::"memory"); }
/// Orders this thread's generic-proxy writes to shared memory (cp.async
/// included) before later reads by wgmma (the async proxy).
__device__ inline void fenceProxyAsync() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
#endif

/// Dynamic shared memory of a wgmma block: its stages (192 KiB) and room
/// to align them to 1024 bytes.
constexpr int kWgmmaStagedBytes = LATHE_CUDA_WGMMA_SHARED - 1024;
constexpr int kWgmmaSharedBytes = LATHE_CUDA_WGMMA_SHARED;
static_assert(LATHE_CUDA_WGMMA_FALLBACK_SHARED >= kStagedBytes + 1024,
              "the fallback's stages fit its shared memory");

// (Declared in the host pass too, for programs that compile these headers
// whole for sm_90a: scripts/cuda-wgmma-check.cu.)
#if defined(__CUDA_ARCH_FEAT_SM90_ALL) || !defined(__CUDA_ARCH__)
/// The partial sums of the split-k blocks of a wgmma launch
/// (LATHE_CUDA_WGMMA_SPLITS): slot (tile, split) of a tile x + y gridDim.x
/// holds a 64-token block's up to 64 x 256 sums (each multiplying
/// thread's half of the tile, float4 j of thread t at j 256 + t), and a
/// tile's arrivals count its blocks done.
/// One module's launches run one after another (each waits for the one
/// before), so they share both; the last block of a tile puts its count
/// back to 0.
__device__ float wgmmaPartials[LATHE_CUDA_WGMMA_SPLIT_SLOTS * 64 * 256];
__device__ unsigned wgmmaArrivals[LATHE_CUDA_WGMMA_SPLIT_SLOTS];
#endif

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)

/// Split `split` of `splits` of this block's tile hands its sums `acc`
/// (each multiplying thread its half of the tile's: the warpgroups' sums
/// already added) to the tile's slot; the last of the tile's blocks to
/// arrive returns true with the whole sums in acc, added in split order
/// (the same floats whichever block is last), the others false. Warps
/// whose 16 tokens are all past the step's (`live` false) neither write
/// nor read theirs: a step of 16 tokens moves a quarter of the sums.
template <int A> __device__ bool wgmmaSplitSums(float (&acc)[A], int split, int splits, bool live) {
  static_assert(A % 4 == 0 && A <= 64 * 256 / 256, "a slot holds a block's sums");
  constexpr int kThreadsSumming = 256;
  constexpr int64_t kSlot = 64 * 256 / 4; // float4s
  const int tile = int(blockIdx.x + blockIdx.y * gridDim.x), t = threadIdx.x;
  float4 *const slots = reinterpret_cast<float4 *>(wgmmaPartials) + int64_t(tile) * splits * kSlot;
  if (live) {
    float4 *const mine = slots + split * kSlot;
#pragma unroll
    for (int j = 0; j < A / 4; ++j)
      mine[j * kThreadsSumming + t] =
          make_float4(acc[4 * j], acc[4 * j + 1], acc[4 * j + 2], acc[4 * j + 3]);
  }
  __threadfence(); // the sums before the count that announces them
  namedBarrier(2, kThreadsSumming);
  __shared__ unsigned last;
  if (t == 0)
    last = lastToArrive(&wgmmaArrivals[tile], splits);
  namedBarrier(2, kThreadsSumming);
  if (!last)
    return false;
  if (!live)
    return true;
  // Every split's sums from the slots, this block's too (the same order
  // whichever block is last; no sums held across the loads).
  const float4 *from = slots + t;
#pragma unroll
  for (int j = 0; j < A / 4; ++j) {
    const float4 v = __ldcg(from + j * kThreadsSumming);
    acc[4 * j] = v.x, acc[4 * j + 1] = v.y, acc[4 * j + 2] = v.z, acc[4 * j + 3] = v.w;
  }
  for (int z = 1; z < splits; ++z) {
    from += kSlot;
#pragma unroll
    for (int j = 0; j < A / 4; ++j) {
      const float4 v = __ldcg(from + j * kThreadsSumming);
      acc[4 * j] += v.x, acc[4 * j + 1] += v.y, acc[4 * j + 2] += v.z, acc[4 * j + 3] += v.w;
    }
  }
  return true;
}

/// Stores a wgmma block's sums: `v[Count c + k]` is the thread's
/// accumulator iBase + k of tile c, which (warp w, lane l) holds for token
/// tBase + 16 w + l / 4 + 8 (i % 4 / 2), output row first + 8 (i / 4) +
/// 2 (l % 4) + i % 2 (i = iBase + k): rows n and n + 1 in turn. Eight
/// pairs' residuals (four for pairs of tiles: registers) are read before
/// any of them is stored. Read and stored one pair at a time (the residual
/// may be the output, so no load passes a store), a thread's 32 loads
/// waited one after another: 10-20 us a block, the most of a step of a few
/// dozen tokens (H200, Nsight Compute's stall samples, 2026-12-04).
template <class WT, int Count, class Rows>
__device__ void wgmmaStore(const Rows &rows, const float (&v)[Count * WT::kTiles], int iBase,
                           int tBase, int first, int tokens) {
  constexpr int C = WT::kTiles;
  constexpr int kAhead = C == 1 ? 8 : 4;
  const int lane = threadIdx.x % 32, warp = (threadIdx.x / 32) % 4;
  const auto place = [&](int i, int &t, int &n) {
    t = tBase + 16 * warp + lane / 4 + 8 * ((i % 4) / 2);
    n = first + 8 * (i / 4) + 2 * (lane % 4);
  };
#pragma unroll
  for (int k0 = 0; k0 < Count; k0 += 2 * kAhead) {
    typename WT::Before before[kAhead];
#pragma unroll
    for (int p = 0; p < kAhead; ++p) {
      int t, n;
      place(iBase + k0 + 2 * p, t, n);
      if (t < tokens)
        WT::load(rows, t, n, before[p]);
    }
#pragma unroll
    for (int p = 0; p < kAhead; ++p) {
      const int k = k0 + 2 * p;
      int t, n;
      place(iBase + k, t, n);
      float sums[C], next[C];
#pragma unroll
      for (int c = 0; c < C; ++c)
        sums[c] = v[Count * c + k], next[c] = v[Count * c + k + 1];
      if (t < tokens)
        WT::storePair(rows, t, n, sums, next, before[p]);
    }
  }
}
#endif

/// Block (blockX, blockY) of a wgmma product of bf16 weights (Rows:
/// PlainRows or GatedRows of BF16) whose bf16 token rows splitTokens left
/// row-major at f.tokenParts (or f.nextParts): output rows from kRows
/// blockX on, Tokens (64 or 128) tokens from Tokens blockY on; Gather as in
/// tiledProduct. Its
/// LATHE_CUDA_WGMMA_THREADS threads: warpgroups 0 and 1 multiply, 2 loads.
///
/// The loading warpgroup's first thread fills stages of shared memory in a
/// ring by TMA: each stage's weight tiles and token rows (`maps`: the split
/// launch wrote the rows row-major, splitTokens' RowsFrom), counted on the
/// stage's `full` barrier (one arrival that expects the stage's bytes).
/// The multiplying warps wait on it, run the stage's wgmma, and once the
/// group after has been issued and the stage's is done (one group in
/// flight), release the stage on its `empty` barrier (one arrival a warp),
/// which the loader waits on before refilling it. No __syncthreads in the
/// loop: loads and products overlap across stages. (Tokens copied by
/// cp.async from the narrow tiles' fragment order, by the loading
/// warpgroup's 128 threads, left the products as slow as the tiles before:
/// q/k/v of 2048 tokens 82 us, TMA for both operands 44.)
template <int K, bool Gather, int Tokens, int Tiles, class Rows>
__device__ void wgmmaBlock(const LatheCudaFrame &f, const Rows &rows, const WgmmaMaps &maps,
                           int blockX, int blockY) {
  using WT = WgmmaTiles<Rows, Tiles>;
  static_assert(Tokens == 64 || Tokens == 128, "blocks of 64 or 128 tokens");
  static_assert(K % kWgmmaStageK == 0 && WT::kRowBytes % 16 == 0,
                "wgmma tiles take whole 64-k stages");
  static_assert(kThreads == 256 && LATHE_CUDA_WGMMA_THREADS == 384,
                "two warpgroups multiply, one loads");
  extern __shared__ __align__(1024) uint8_t wgmmaShared[];
  uint8_t *const base =
      wgmmaShared + ((1024 - (unsigned(__cvta_generic_to_shared(wgmmaShared)) & 1023)) & 1023);
  const int first = blockX * WT::kRows;
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int C = WT::kTiles; // 128-row weight tiles a stage
  // A stage: the tokens' 64 or 128 rows, then each weight tile's 128.
  constexpr int kTokenBytes = Tokens * 128;
  constexpr int kWeightBytes = C * kWgmmaTileBytes;
  constexpr int kStageBytes = kTokenBytes + kWeightBytes;
  constexpr int kStages = kWgmmaStagedBytes / kStageBytes > 8 ? 8 : kWgmmaStagedBytes / kStageBytes;
  static_assert(kStages >= 3, "a stage multiplied, one in flight and one loading");
  constexpr int kTiles = K / kWgmmaStageK;
  // The block's run of the stages: all of them, or split z's of a launch
  // whose k is split (64-token blocks only: LATHE_CUDA_WGMMA_SPLITS).
  const int splits = Tokens == 64 ? int(gridDim.z) : 1, split = Tokens == 64 ? int(blockIdx.z) : 0;
  const int tileBegin = split * kTiles / splits;
  const int tileCount = (split + 1) * kTiles / splits - tileBegin;
  __shared__ __align__(8) uint64_t full[kStages], empty[kStages];
  const int t0 = blockY * Tokens;
  const int tokens = Gather ? f.logitCount : f.rows;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      barrierInit(&full[s], 1);
      barrierInit(&empty[s], kThreads / 32);
    }
    fenceBarrierInits();
  }
  __syncthreads();

  if (threadIdx.x >= kThreads) { // the loading warpgroup's first thread
    if (threadIdx.x != kThreads)
      return;
    auto loadWeights = [&](int tile, int stage) {
#pragma unroll
      for (int c = 0; c < C; ++c)
        tensorLoad(base + stage * kStageBytes + kTokenBytes + c * kWgmmaTileBytes, maps.map[c],
                   &full[stage], tile * kWgmmaStageK, first + WT::kTileStep * c);
    };
    // The split launch's bf16 token rows (row-major), 64 a box.
    auto loadTokens = [&](int tile, int stage) {
#pragma unroll
      for (int h = 0; h < Tokens / LATHE_CUDA_TMA_BOX_TOKENS; ++h)
        tensorLoad(base + stage * kStageBytes + h * LATHE_CUDA_TMA_BOX_TOKENS * 128, maps.tokens,
                   &full[stage], tile * kWgmmaStageK, t0 + LATHE_CUDA_TMA_BOX_TOKENS * h);
    };
    // The maps were written by copies to global memory, which TMA's reads
    // of them (the tensormap proxy) must see.
#pragma unroll
    for (int c = 0; c < C; ++c)
      acquireTensorMap(maps.map[c]);
    acquireTensorMap(maps.tokens);
    // Weights never depend on the kernel before: the first stages' are
    // asked for before waiting for it, the tokens' after.
    for (int s = 0; s < kStages && s < tileCount; ++s) {
      barrierArriveExpecting(&full[s], kStageBytes);
      loadWeights(tileBegin + s, s);
    }
    startStep();
    int stage = 0;
    unsigned phase = 0;
    for (int tile = 0; tile < tileCount; ++tile) {
      if (tile >= kStages) {
        barrierWait(&empty[stage], phase ^ 1); // the multiplying warps are done with it
        barrierArriveExpecting(&full[stage], kStageBytes);
        loadWeights(tileBegin + tile, stage);
      }
      loadTokens(tileBegin + tile, stage);
      if (++stage == kStages)
        stage = 0, phase ^= 1;
    }
    return;
  }

  startStep();
  // 128-token blocks: warpgroup w takes tokens 64 w .. and every step of
  // 16 k; 64-token blocks: both take the 64 tokens, warpgroup w steps 2 w
  // and 2 w + 1 of each stage.
  const int warpgroup = threadIdx.x / 128, lane = threadIdx.x % 32, warp = (threadIdx.x / 32) % 4;
  constexpr int kSteps = Tokens == 128 ? 4 : 2;
  const int tokenRow = Tokens == 128 ? 64 * warpgroup : 0;
  const int step0 = Tokens == 128 ? 0 : 2 * warpgroup;
  float acc[64 * C];
#pragma unroll
  for (int i = 0; i < 64 * C; ++i)
    acc[i] = 0, wgmmaKeep(acc[i]);
  int stage = 0, previous = 0;
  unsigned phase = 0;
  for (int tile = 0; tile < tileCount; ++tile) {
    barrierWait(&full[stage], phase);
    const uint8_t *at = base + stage * kStageBytes;
    const uint64_t a = wgmmaDescriptor(at + tokenRow * 128), b = wgmmaDescriptor(at + kTokenBytes);
    wgmmaFence();
#pragma unroll
    for (int s = 0; s < kSteps; ++s)
      wgmmaRows(acc, a + 2 * (step0 + s), b + 2 * (step0 + s));
    wgmmaCommit();
    wgmmaWait<1>(); // the stage before's group is done: its stage is free
    if (tile > 0 && lane == 0)
      barrierArrive(&empty[previous]);
    previous = stage;
    if (++stage == kStages)
      stage = 0, phase ^= 1;
  }
  wgmmaWait<0>();
#pragma unroll
  for (int i = 0; i < 64 * C; ++i)
    wgmmaKeep(acc[i]);
  if constexpr (Tokens == 64) {
    // The warpgroups share the tile's rows out: warpgroup h adds and stores
    // accumulators 32 h .. 32 h + 31 of each tile (rows 64 h .. 64 h + 63),
    // handing the other warpgroup its half through the stages, which every
    // copy has filled and every wgmma read by now.
    constexpr int kHalf = 32;
    float *partial = reinterpret_cast<float *>(base);
    const int slot = threadIdx.x % 128;
    float mine[kHalf * C];
    namedBarrier(1, kThreads);
    // (Constant indices in both branches: acc stays in registers.)
    if (warpgroup == 0) {
#pragma unroll
      for (int c = 0; c < C; ++c)
#pragma unroll
        for (int k = 0; k < kHalf; ++k) {
          partial[(kHalf * C + kHalf * c + k) * 128 + slot] = acc[64 * c + kHalf + k];
          mine[kHalf * c + k] = acc[64 * c + k];
        }
    } else {
#pragma unroll
      for (int c = 0; c < C; ++c)
#pragma unroll
        for (int k = 0; k < kHalf; ++k) {
          partial[(kHalf * c + k) * 128 + slot] = acc[64 * c + k];
          mine[kHalf * c + k] = acc[64 * c + kHalf + k];
        }
    }
    namedBarrier(1, kThreads);
#pragma unroll
    for (int i = 0; i < kHalf * C; ++i)
      mine[i] += partial[(kHalf * C * warpgroup + i) * 128 + slot];
    if (splits > 1 && !wgmmaSplitSums(mine, split, splits, t0 + 16 * warp < tokens))
      return; // another split's block stores the tile
    wgmmaStore<WT, kHalf>(rows, mine, kHalf * warpgroup, t0, first, tokens);
  } else {
    wgmmaStore<WT, 64>(rows, acc, 0, t0 + tokenRow, first, tokens);
  }
#else
  // No wgmma: the mma.sync staged tiles, 128 rows by 64 tokens at a time,
  // in the same shared memory; the host schedule launches kThreads threads here
  // (lathe_cuda_wgmma_code 0).
  (void)maps;
  for (int r = 0; r < WT::kRows / 128; ++r)
    for (int h = 0; h < Tokens / 64; ++h) {
      stagedProduct<K, Gather>(f, rows, first / 128 + r, blockY * (Tokens / 16) + 4 * h, base);
      __syncthreads();
    }
#endif
}

/// A block of a wgmma launch: x its weight tiles (the launch's products'
/// in turn), y its tokens.
struct WgmmaBlockIndex {
  int x, y;
};
/// The order of a launch's blocks. With more weight tiles than token
/// blocks (gate and up: 64 tiles for 16 blocks of a 2048-token prompt),
/// token-major: consecutive blocks take the same weight tiles and the next
/// tokens, so the blocks resident at once (one an SM) read a few weight
/// tiles and all the tokens, which L2 keeps, rather than every weight tile
/// for a few tokens, which it cannot (the gate and up weights of the
/// Llama-3.2-1B shape are 64 MB, L2 50 MB). Otherwise the grid's own order:
/// the blocks resident at once cover all the weight tiles either way (a
/// tile of 256 weight rows is twice the bytes of one of 128 tokens).
/// H200, Llama-3.2-1B shape, 2048 tokens (2026-12-04): gate/up 301 -> 261 us
/// (scripts/cuda-wgmma-check.cu, boost clocks), 370 -> 346 us (Nsight
/// Compute, base clocks, in the model); the others moved a few percent
/// either way in either order (down 132 -> 124 us in the first, 186 -> 199
/// in the second).
__device__ inline WgmmaBlockIndex wgmmaBlockIndex() {
  if (gridDim.x <= gridDim.y)
    return {int(blockIdx.x), int(blockIdx.y)};
  const unsigned id = blockIdx.x + blockIdx.y * gridDim.x;
  return {int(id / gridDim.y), int(id % gridDim.y)};
}

/// Block (blockX, blockY) of a launch of wgmma products: blocks of Tiles
/// 128-row weight tiles (2: LatheCudaLaunch::wgmmaPairBlocks) by
/// LATHE_CUDA_WGMMA_TOKENS tokens for the launch's grid, as the host chose.
template <int K, bool Gather, int Tiles = 1, class Rows>
__device__ void wgmmaProduct(const LatheCudaFrame &f, const Rows &rows, const WgmmaMaps &maps,
                             int blockX, int blockY) {
  const int tokens = Gather ? f.logitCount : f.rows;
  if (LATHE_CUDA_WGMMA_TOKENS(int(gridDim.x), tokens) == 128)
    wgmmaBlock<K, Gather, 128, Tiles>(f, rows, maps, blockX, blockY);
  else
    wgmmaBlock<K, Gather, 64, Tiles>(f, rows, maps, blockX, blockY);
}

} // namespace lathe_cuda
