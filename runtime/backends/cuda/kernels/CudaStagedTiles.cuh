// The wide tiles of bf16 weights with bf16 activations, staged through
// shared memory: a long prompt's products as a GEMM should run them. The
// same blocks as tiledProduct's wide ones (128 weight rows by 64 tokens, a
// warp 32 rows by 32 tokens, the same epilogue and fusions), the same sums
// in the same order (so the same floats), but the operands travel by
// cp.async, 32 values of k a stage, several stages ahead, into shared
// memory that the block's warps share: the weights are read from memory
// once per block instead of once per warp through L1, and no warp waits on
// a load it just issued. Part of LatheCudaKernels.cuh.
//
// Layout of a stage:
// - each weight's 128 rows by 32 k as bf16, 64 bytes a row, whose four
//   16-byte chunks are XOR-swizzled by bit 1 of the row (chunk c of row r
//   at c ^ (r & 2)): a warp's 8-byte fragment loads, lane (g, q) reading
//   values 4q .. 4q + 3 of a 16-k step of rows g and g + 8 (the permuted k
//   order of CudaTiledProducts.cuh), then hit 32 distinct banks per half
//   warp;
// - the block's token fragments as splitTokens wrote them (one part:
//   partsAt's part 0 of its 4 16-token tiles by 2 steps by 2 halves, 256
//   bytes each), which the warps read as they are.
#pragma once

#include "CudaTiledProducts.cuh"

namespace lathe_cuda {

/// The weights of a product the staged tiles take, by kind of rows: one
/// weight (PlainRows) or two (GatedRows: gate and up), bf16 rows of whole
/// 16-byte chunks.
template <class Rows> struct StagedWeights;
template <int K, int N, int64_t RowBytes, bool Residual>
struct StagedWeights<PlainRows<BF16, K, N, RowBytes, Residual>> {
  static constexpr int kCount = 1;
  static constexpr int64_t kRowBytes = RowBytes;
  __device__ static const uint8_t *base(const PlainRows<BF16, K, N, RowBytes, Residual> &r, int) {
    return r.at(0);
  }
};
template <int K, int N, int64_t RowBytes>
struct StagedWeights<GatedRows<BF16, BF16, K, N, RowBytes, RowBytes>> {
  static constexpr int kCount = 2;
  static constexpr int64_t kRowBytes = RowBytes;
  __device__ static const uint8_t *base(const GatedRows<BF16, BF16, K, N, RowBytes, RowBytes> &r,
                                        int c) {
    return c == 0 ? r.gate : r.up;
  }
};

/// The stages of every staged product of a kernel: one array, as the
/// products of one launch (q, k and v; gate and up) each hand out blocks of
/// the kernel in turn (a static array per instantiation would add up).
constexpr int kStagedBytes = 48 * 1024;
__shared__ __align__(16) uint8_t stagedShared[kStagedBytes];

/// Byte offset of chunk c (16 bytes) of row r in a stage's weight tile.
__device__ inline int stagedChunk(int r, int c) { return r * 64 + ((c ^ (r & 2)) * 16); }

/// Block (blockX, blockIdx.y) of a wide tiled product of bf16 weights
/// (Rows: PlainRows or GatedRows of BF16) whose bf16 token rows splitTokens
/// left at f.tokenParts: weight rows 128 blockX .. by the 64 tokens of
/// 16-token tiles tokenTile .. tokenTile + 3, its stages at `shared`
/// (kStagedBytes); Gather as in tiledProduct.
template <int K, bool Gather, class Rows>
__device__ void stagedProduct(const LatheCudaFrame &f, const Rows &rows, int blockX,
                              int tokenTile, uint8_t *shared) {
  using SW = StagedWeights<Rows>;
  constexpr int C = SW::kCount, N = Rows::kN;
  static_assert(K % 32 == 0 && SW::kRowBytes % 16 == 0, "staged tiles take whole 32-k stages");
  static_assert(kWideRows == 128 && kWideTokens == 64 && kThreads == 256,
                "the staged tiles' copies are laid out for 128 by 64 blocks of 8 warps");
  constexpr int kWeightBytes = kWideRows * 64;      // a weight's 128 rows by 32 k
  constexpr int kTokenBytes = 4 * 2 * 2 * 256;      // 4 tiles by 2 steps by 2 halves
  constexpr int kStageBytes = C * kWeightBytes + kTokenBytes;
  constexpr int kStages = kStagedBytes / kStageBytes > 4 ? 4 : kStagedBytes / kStageBytes;
  static_assert(kStages >= 2, "two stages at least");
  constexpr int kTiles = K / 32;
  auto stages = reinterpret_cast<uint8_t(*)[kStageBytes]>(shared);

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, q = lane % 4;
  const int rowGroup = warp % 4, tokenGroup = warp / 4; // 32 rows by 32 tokens a warp
  const int first = blockX * kWideRows;
  const int n0 = first + rowGroup * 32;
  const int tt0 = tokenTile + tokenGroup * 2; // the warp's first 16-token tile
  const int tokens = Gather ? f.logitCount : f.rows;

  // Copies of a stage: thread i takes chunk i % 4 of row i / 4 (and row
  // 64 + i / 4) of each weight, and 16 bytes of the token fragments.
  const int copyRow = threadIdx.x / 4, copyChunk = threadIdx.x % 4;
  const uint8_t *weightRows[C][2];
#pragma unroll
  for (int c = 0; c < C; ++c)
#pragma unroll
    for (int h = 0; h < 2; ++h)
      weightRows[c][h] = SW::base(rows, c) +
                         int64_t(min(first + copyRow + 64 * h, N - 1)) * SW::kRowBytes +
                         copyChunk * 16;
  auto copyWeights = [&](int tile, int stage) {
#pragma unroll
    for (int c = 0; c < C; ++c)
#pragma unroll
      for (int h = 0; h < 2; ++h)
        copyAsync16(stages[stage] + c * kWeightBytes + stagedChunk(copyRow + 64 * h, copyChunk),
                    weightRows[c][h] + tile * 64);
  };
  // Token fragments: 16 runs of 256 bytes (tile, step, half), 16 threads a run.
  const int run = threadIdx.x / 16, piece = threadIdx.x % 16;
  const int runTile = run / 4, runStep = (run / 2) % 2, runHalf = run % 2;
  const uint8_t *parts = reinterpret_cast<const uint8_t *>(inputParts(f, rows));
  auto copyTokens = [&](int tile, int stage) {
    const int64_t at = partsAt<K>(tokenTile + runTile, tile * 2 + runStep, runHalf, 0, 0);
    copyAsync16(stages[stage] + C * kWeightBytes + run * 256 + piece * 16,
                parts + at * 8 + piece * 16);
  };

  // Weights never depend on the kernel before: the first stages' are asked
  // for before waiting for it, the tokens' after.
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s)
    if (s < kTiles)
      copyWeights(s, s);
  startStep();
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < kTiles)
      copyTokens(s, s);
    commitCopies();
  }

  TileRows<Rows, 2, 2, TokenCodes::Bf16> sums(rows, n0 + g);
  for (int tile = 0; tile < kTiles; ++tile) {
    waitCopies<kStages - 2>();
    __syncthreads(); // the stage is in; the stage refilled next was used by all
    const int next = tile + kStages - 1;
    if (next < kTiles) {
      copyWeights(next, next % kStages);
      copyTokens(next, next % kStages);
    }
    commitCopies();
    const uint8_t *stage = stages[tile % kStages];
#pragma unroll
    for (int s = 0; s < 2; ++s) {
      uint32_t b[2][2][3][2];
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const uint2 v = *reinterpret_cast<const uint2 *>(
              stage + C * kWeightBytes + (((tokenGroup * 2 + i) * 2 + s) * 2 + j) * 256 + lane * 8);
          b[i][j][0][0] = v.x, b[i][j][0][1] = v.y;
        }
#pragma unroll
      for (int c = 0; c < C; ++c) {
        const uint8_t *weights = stage + c * kWeightBytes;
#pragma unroll
        for (int m = 0; m < 2; ++m) {
          const int r = rowGroup * 32 + m * 16 + g;
          const int chunk = s * 2 + q / 2, offset = (q % 2) * 8;
          const uint2 low = *reinterpret_cast<const uint2 *>(weights + stagedChunk(r, chunk) + offset);
          const uint2 high =
              *reinterpret_cast<const uint2 *>(weights + stagedChunk(r + 8, chunk) + offset);
          const uint32_t a[4] = {low.x, high.x, low.y, high.y};
          float(&acc)[2][4][4] = sums.acc(c);
#pragma unroll
          for (int j = 0; j < 4; ++j)
            mma16816(acc[m][j], a, b[j / 2][j % 2][0][0], b[j / 2][j % 2][0][1]);
        }
      }
    }
  }
  waitCopies<0>();
  sums.template finish<false>(n0, tt0 * 16, tokens);
}

/// The same for block (blockX, blockIdx.y) of a launch of such blocks:
/// tokens 64 blockIdx.y .., the stages in stagedShared.
template <int K, bool Gather, class Rows>
__device__ void stagedProduct(const LatheCudaFrame &f, const Rows &rows, int blockX) {
  stagedProduct<K, Gather>(f, rows, blockX, blockIdx.y * 4, stagedShared);
}

} // namespace lathe_cuda
