// The staged wide tiles on Hopper's warpgroup MMA (wgmma, sm_90a): a long
// prompt's bf16 products (bf16 weights, bf16 activations) as a GEMM runs
// them. A block multiplies up to 128 tokens by two tiles of 128 weight
// rows: the gate's and the up's rows n .. n + 127 of a GatedRows, rows n ..
// n + 255 of a PlainRows. Its operands travel by cp.async, 64 values of k a
// stage, into shared memory laid out as wgmma's 128-byte swizzle reads
// them, stages ahead; each of its two warpgroups multiplies 64 tokens by
// both tiles (m64n128k16), one group of wgmma in flight while the next
// stage's copies are issued. Blocks of 64 tokens (for launches that would
// otherwise have too few blocks to fill the GPU: LATHE_CUDA_WGMMA_TOKENS)
// give each warpgroup half of each stage's k, and add the two warpgroups'
// sums at the end. Same fusions and epilogue as the other tiles
// (Rows::store). Part of LatheCudaKernels.cuh.
//
// Why these shapes (H200, 2026-12-03, scripts/cuda-wgmma-check.cu): the
// operands come from L2, whose bandwidth bounds a block's stage rate; a
// 128-token block by 256 rows reads 48 KiB a stage for 4 MFLOP (the
// mma.sync staged tiles, 128 rows by 64 tokens, 12 KiB for 0.5).
//
// Numerics: the products of bf16 values are exact in float, summed in
// float by the tensor cores in their own order: results agree with the
// mma.sync tiles to float rounding, not bit for bit.
//
// Elsewhere (PTX for other architectures; wgmma exists only on sm_90a) the
// same blocks run as the mma.sync staged tiles, 128 rows by 64 tokens at a
// time.
#pragma once

#include "CudaStagedTiles.cuh"

namespace lathe_cuda {

/// The two 128-row weight tiles of a wgmma block, by kind of rows: the
/// gate's and the up's rows n .. n + 127 (GatedRows), or rows n .. n + 127
/// and n + 128 .. n + 255 of one weight (PlainRows): row `r` of tile c.
template <class Rows> struct WgmmaTiles;
template <int K, int N, int64_t RowBytes, bool Residual>
struct WgmmaTiles<PlainRows<BF16, K, N, RowBytes, Residual>> {
  static constexpr int kRows = LATHE_CUDA_WGMMA_ROWS(false); // a block's rows
  static constexpr int64_t kRowBytes = RowBytes;
  using Rows = PlainRows<BF16, K, N, RowBytes, Residual>;
  __device__ static const uint8_t *row(const Rows &r, int c, int n) {
    return r.at(min(n + 128 * c, N - 1));
  }
  /// Stores the sums of output row n of tile 0 (s[0]) and of tile 1.
  __device__ static void store(const Rows &r, int t, int n, const float (&s)[2]) {
    if (n < N)
      r.store(t, n, s[0]);
    if (n + 128 < N)
      r.store(t, n + 128, s[1]);
  }
};
template <int K, int N, int64_t RowBytes>
struct WgmmaTiles<GatedRows<BF16, BF16, K, N, RowBytes, RowBytes>> {
  static constexpr int kRows = LATHE_CUDA_WGMMA_ROWS(true);
  static constexpr int64_t kRowBytes = RowBytes;
  using Rows = GatedRows<BF16, BF16, K, N, RowBytes, RowBytes>;
  __device__ static const uint8_t *row(const Rows &r, int c, int n) {
    return (c == 0 ? r.gate : r.up) + int64_t(min(n, N - 1)) * RowBytes;
  }
  __device__ static void store(const Rows &r, int t, int n, const float (&s)[2]) {
    if (n < N)
      r.store(t, n, s[0], s[1]);
  }
};
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

/// Block (blockX, blockY) of a wgmma product of bf16 weights (Rows:
/// PlainRows or GatedRows of BF16) whose bf16 token rows splitTokens left
/// at f.tokenParts: WgmmaTiles' rows from blockX kRows on, Tokens (64 or
/// 128) tokens from Tokens blockY on; Gather as in tiledProduct.
template <int K, bool Gather, int Tokens, class Rows>
__device__ void wgmmaBlock(const LatheCudaFrame &f, const Rows &rows, int blockX, int blockY) {
  using WT = WgmmaTiles<Rows>;
  static_assert(Tokens == 64 || Tokens == 128, "blocks of 64 or 128 tokens");
  static_assert(K % kWgmmaStageK == 0 && WT::kRowBytes % 16 == 0,
                "wgmma tiles take whole 64-k stages");
  static_assert(kThreads == 256, "two warpgroups a block");
  extern __shared__ __align__(1024) uint8_t wgmmaShared[];
  uint8_t *const base =
      wgmmaShared + ((1024 - (unsigned(__cvta_generic_to_shared(wgmmaShared)) & 1023)) & 1023);
  const int first = blockX * WT::kRows;
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int C = 2; // weight tiles
  // A stage: the tokens' 64 or 128 rows, then each weight tile's 128.
  constexpr int kTokenBytes = Tokens * 128;
  constexpr int kStageBytes = kTokenBytes + C * kWgmmaTileBytes;
  constexpr int kStages = kWgmmaStagedBytes / kStageBytes > 8 ? 8 : kWgmmaStagedBytes / kStageBytes;
  static_assert(kStages >= 3, "a stage in use, one in flight and one loading");
  // Stages loading ahead of the one multiplied: one more is still read by
  // the wgmma group in flight.
  constexpr int kAhead = kStages - 2;
  constexpr int kTiles = K / kWgmmaStageK;
  const int warpgroup = threadIdx.x / 128, t0 = blockY * Tokens;
  const int tokens = Gather ? f.logitCount : f.rows;

  // Copies of a stage: thread i takes chunk i % 8 of rows i / 8 + 32 r.
  const int copyRow = threadIdx.x / 8, copyChunk = threadIdx.x % 8;
  const uint8_t *weightRows[C][4];
#pragma unroll
  for (int c = 0; c < C; ++c)
#pragma unroll
    for (int r = 0; r < 4; ++r)
      weightRows[c][r] = WT::row(rows, c, first + copyRow + 32 * r) + copyChunk * 16;
  auto copyWeights = [&](int tile, int stage) {
#pragma unroll
    for (int c = 0; c < C; ++c)
#pragma unroll
      for (int r = 0; r < 4; ++r)
        copyAsync16(base + stage * kStageBytes + kTokenBytes + c * kWgmmaTileBytes +
                        wgmmaChunk(copyRow + 32 * r, copyChunk),
                    weightRows[c][r] + tile * 128);
  };
  // Token t's 8 values from 8 h of step s sit at partsAt(t / 16, s, (t % 16)
  // / 8, 0, 4 (t % 8) + 2 h) (splitTokens' fragments, bf16: one part).
  const uint8_t *parts = reinterpret_cast<const uint8_t *>(inputParts(f, rows));
  auto copyTokens = [&](int tile, int stage) {
#pragma unroll
    for (int r = 0; r < Tokens / 32; ++r) {
      const int row = copyRow + 32 * r, t = t0 + row;
      const int64_t at = partsAt<K>(t / 16, tile * 4 + copyChunk / 2, (t % 16) / 8, 0,
                                    (t % 8) * 4 + 2 * (copyChunk % 2));
      copyAsync16(base + stage * kStageBytes + wgmmaChunk(row, copyChunk), parts + at * 8);
    }
  };

  // Weights never depend on the kernel before: the first stages' are asked
  // for before waiting for it, the tokens' after.
#pragma unroll
  for (int s = 0; s < kAhead; ++s)
    if (s < kTiles)
      copyWeights(s, s);
  startStep();
#pragma unroll
  for (int s = 0; s < kAhead; ++s) {
    if (s < kTiles)
      copyTokens(s, s);
    commitCopies();
  }
  // 128-token blocks: warpgroup w takes tokens 64 w .. and every step of
  // 16 k; 64-token blocks: both take the 64 tokens, warpgroup w steps 2 w
  // and 2 w + 1 of each stage.
  constexpr int kSteps = Tokens == 128 ? 4 : 2;
  const int tokenRow = Tokens == 128 ? 64 * warpgroup : 0;
  const int step0 = Tokens == 128 ? 0 : 2 * warpgroup;
  float acc[C][64];
#pragma unroll
  for (int c = 0; c < C; ++c)
#pragma unroll
    for (int i = 0; i < 64; ++i)
      acc[c][i] = 0, wgmmaKeep(acc[c][i]);
  for (int tile = 0; tile < kTiles; ++tile) {
    waitCopies<kAhead - 1>();
    fenceProxyAsync();
    __syncthreads(); // the stage is in; the stage refilled next is read by no wgmma
    const int next = tile + kAhead;
    if (next < kTiles) {
      copyWeights(next, next % kStages);
      copyTokens(next, next % kStages);
    }
    commitCopies();
    const uint8_t *stage = base + (tile % kStages) * kStageBytes;
    const uint64_t a = wgmmaDescriptor(stage + tokenRow * 128);
    wgmmaFence();
#pragma unroll
    for (int s = 0; s < kSteps; ++s)
#pragma unroll
      for (int c = 0; c < C; ++c)
        wgmma64x128(acc[c], a + 2 * (step0 + s),
                    wgmmaDescriptor(stage + kTokenBytes + c * kWgmmaTileBytes) + 2 * (step0 + s));
    wgmmaCommit();
    wgmmaWait<1>();
  }
  wgmmaWait<0>();
#pragma unroll
  for (int c = 0; c < C; ++c)
#pragma unroll
    for (int i = 0; i < 64; ++i)
      wgmmaKeep(acc[c][i]);
  waitCopies<0>();
  const int lane = threadIdx.x % 32, warp = (threadIdx.x / 32) % 4;
  if constexpr (Tokens == 64) {
    // Warpgroup 1 hands its sums to warpgroup 0 through the stages.
    float *partial = reinterpret_cast<float *>(base);
    __syncthreads(); // every wgmma has read its stages
    if (warpgroup == 1)
#pragma unroll
      for (int c = 0; c < C; ++c)
#pragma unroll
        for (int i = 0; i < 64; ++i)
          partial[(c * 64 + i) * 128 + threadIdx.x % 128] = acc[c][i];
    __syncthreads();
    if (warpgroup == 1)
      return;
#pragma unroll
    for (int c = 0; c < C; ++c)
#pragma unroll
      for (int i = 0; i < 64; ++i)
        acc[c][i] += partial[(c * 64 + i) * 128 + threadIdx.x];
  }
#pragma unroll
  for (int i = 0; i < 64; ++i) {
    const int t = t0 + tokenRow + 16 * warp + lane / 4 + 8 * ((i % 4) / 2);
    const float sums[2] = {acc[0][i], acc[1][i]};
    if (t < tokens)
      WT::store(rows, t, first + 8 * (i / 4) + 2 * (lane % 4) + i % 2, sums);
  }
#else
  // No wgmma: the mma.sync staged tiles, 128 rows by 64 tokens at a time,
  // in the same shared memory.
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

/// Block (blockX, blockY) of a launch of wgmma products: blocks of
/// LATHE_CUDA_WGMMA_TOKENS tokens for the launch's grid, as the host chose.
template <int K, bool Gather, class Rows>
__device__ void wgmmaProduct(const LatheCudaFrame &f, const Rows &rows, int blockX, int blockY) {
  const int tokens = Gather ? f.logitCount : f.rows;
  if (LATHE_CUDA_WGMMA_TOKENS(int(gridDim.x), tokens) == 128)
    wgmmaBlock<K, Gather, 128>(f, rows, blockX, blockY);
  else
    wgmmaBlock<K, Gather, 64>(f, rows, blockX, blockY);
}

} // namespace lathe_cuda
