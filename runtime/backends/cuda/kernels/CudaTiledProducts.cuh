// Products of steps of many tokens on the tensor cores (mma.sync, sm_80 and
// newer): y[t, n] = sum_k x[t, k] * W[n, k] in tiles of 16 weight rows by
// 16 tokens, a warp's each, with the same fusions as CudaProducts.cuh's
// warp-per-row products (an RMSNorm of the input, a residual add, SwiGLU of
// gate and up). A step of LATHE_CUDA_TILE_MIN_TOKENS tokens or more takes
// this path (CudaFrame.h): the host then launches splitTokens, which splits
// the product's input rows (normalized, where the norm is fused) once for
// every block, and the product's tile kernel instead of its row kernel.
// Part of LatheCudaKernels.cuh.
//
// Numerics: products sum in float, as the warp path's do. The tensor cores
// multiply bf16, so operands are split into bf16 parts that add up to them
// exactly: a token value (a float) into three, v = hi + mid + lo (with
// bf16 activations it is a bf16 already: one part; int8 ones, codes); a weight
// value into one where its format's values are bf16 already (bf16 rows;
// INT codes, whose group scale multiplies the group's float sums after),
// else three. A tile sums the products of the parts down to 2^-16 of the
// whole into float accumulators (what it drops is below float rounding), so
// results agree with the reference kernels as closely as the warp path's.
//
// Layout: the 16 rows by 16 k of the m16n8k16 A operand come straight from
// the weight rows into registers (a weight is read once per 16 tokens, no
// shared memory), and the k order inside each 16 is permuted so that a lane
// reads 4 consecutive values of a row (one 8-byte load of a bf16 row; the
// B operand, the token rows, is permuted alike, so the sum is the same);
// the B fragments come split from f.tokenParts, 6 coalesced 8-byte loads
// per lane and step, no conversions in the tiles.
// A block's 8 warps either split K over one tile (warp w takes every 8th
// step of 16, and the block adds the 8 partial tiles in a fixed order, no
// atomics: results do not vary from run to run), or take 32 rows by 32
// tokens each of a 128 by 64 block (long prompts); see tiledProduct.
#pragma once

#include "CudaElementwise.cuh"
#include "CudaFormats.cuh"
#include "CudaMma.cuh"
#include "CudaProducts.cuh"

namespace lathe_cuda {

constexpr int kTileRows = LATHE_CUDA_TILE_ROWS;     // weight rows per block: one m16 tile
constexpr int kTileTokens = LATHE_CUDA_TILE_TOKENS; // tokens per block: two n8 tiles
constexpr int kWideRows = LATHE_CUDA_WIDE_ROWS;     // weight rows per wide block
constexpr int kWideTokens = LATHE_CUDA_WIDE_TOKENS; // tokens per wide block
/// Steps of 16 k a warp loads before it multiplies any, per weight of one
/// bf16 part: the tiles stream weights at about one block per SM (N / 16
/// blocks of 8 warps), so each warp must keep several kilobytes in flight;
/// weights of three parts and gate/up pairs take fewer (registers).
constexpr int kTileUnroll = 8;
/// Bf16 parts of a float token value (splitTokens writes three, which sum
/// to it exactly); bf16 and int8 activations take one (TokenCodes).
constexpr int kTokenParts = 3;

/// Four consecutive values (k .. k + 3, k a multiple of 4) of a weight row
/// as bf16 pairs, exactly: part[i][0] holds (k, k + 1), part[i][1]
/// (k + 2, k + 3), and the values are the sum of the kParts parts, times
/// `scale` where kScaled (one float per group of kGroup values, applied to
/// the group's sums after the tensor cores: the codes alone are exact in
/// bf16, code * scale is not). Any format: its values as at() decodes them,
/// in three parts.
template <class W, int64_t RowBytes, class Enable = void> struct TileQuad {
  static constexpr int kParts = 3;
  static constexpr bool kScaled = false;
  __device__ static void read(const uint8_t *row, int k, uint32_t (&part)[kParts][2], float &) {
    uint32_t p[2][3];
    splitPair(W::at(row, k), W::at(row, k + 1), p[0]);
    splitPair(W::at(row, k + 2), W::at(row, k + 3), p[1]);
#pragma unroll
    for (int i = 0; i < kParts; ++i)
      part[i][0] = p[0][i], part[i][1] = p[1][i];
  }
};
/// bf16 rows as they are: one 8-byte load.
template <int64_t RowBytes>
struct TileQuad<BF16, RowBytes, std::enable_if_t<RowBytes % 8 == 0>> {
  static constexpr int kParts = 1;
  static constexpr bool kScaled = false;
  __device__ static void read(const uint8_t *row, int k, uint32_t (&part)[1][2], float &) {
    const uint2 raw = __ldg(reinterpret_cast<const uint2 *>(row) + k / 4);
    part[0][0] = raw.x, part[0][1] = raw.y;
  }
};
/// Codes j .. j + 3 of a group's two's complement INT8/INT4 codes as bf16
/// pairs (exact).
template <int Bits>
__device__ inline void codeQuad(const uint8_t *codes, int j, uint32_t (&pair)[2]) {
  int q[4];
  if constexpr (Bits == 8) {
    const uint32_t w = __ldg(reinterpret_cast<const uint32_t *>(codes + j));
#pragma unroll
    for (int i = 0; i < 4; ++i)
      q[i] = int(int8_t(w >> (8 * i)));
  } else {
    const uint32_t w = __ldg(reinterpret_cast<const uint16_t *>(codes + j / 2));
#pragma unroll
    for (int i = 0; i < 4; ++i)
      q[i] = int((w >> (4 * i)) & 15u ^ 8u) - 8;
  }
  pair[0] = bf16Pair(float(q[0]), float(q[1]));
  pair[1] = bf16Pair(float(q[2]), float(q[3]));
}

/// Symmetric INT8/INT4 groups of a multiple of 16 values: the codes (exact
/// in bf16), the group's scale after.
template <int Bits, int G, int64_t RowBytes>
struct TileQuad<IntGroup<Bits, G, true>, RowBytes,
                std::enable_if_t<G % 16 == 0 && IntGroup<Bits, G, true>::kGroupBytes % 4 == 0 &&
                                 RowBytes % 4 == 0>> {
  static constexpr int kParts = 1;
  static constexpr bool kScaled = true;
  static constexpr int kGroup = G;
  using F = IntGroup<Bits, G, true>;
  __device__ static void read(const uint8_t *row, int k, uint32_t (&part)[1][2], float &scale) {
    const uint8_t *group = row + (k / G) * F::kGroupBytes;
    scale = __ldg(reinterpret_cast<const float *>(group));
    codeQuad<Bits>(group + 4, k % G, part[0]);
  }
};

/// The same groups in the lane layout (IntLanes): a quad's four codes lie
/// in one 32-bit word (CudaWeightLayouts.h).
template <int Bits, int G, bool E2M1, int64_t RowBytes>
struct TileQuad<IntLanes<Bits, G, E2M1>, RowBytes, std::enable_if_t<G % 16 == 0>> {
  using W = IntLanes<Bits, G, E2M1>;
  static constexpr int kParts = 1;
  static constexpr bool kScaled = true;
  static constexpr int kGroup = G;
  __device__ static void read(const uint8_t *row, int k, uint32_t (&part)[1][2], float &scale) {
    scale = __ldg(reinterpret_cast<const float *>(row + latheLanesScaleAt(Bits, G, k)));
    if constexpr (E2M1) { // doubled E2M1 values: integers up to 12, exact in bf16
      const uint32_t word =
          __ldg(reinterpret_cast<const uint32_t *>(row + latheLanesWordAt(Bits, G, k)));
      const int j = k % W::kPerWord;
      part[0][0] = bf16Pair(W::code(word, j), W::code(word, j + 1));
      part[0][1] = bf16Pair(W::code(word, j + 2), W::code(word, j + 3));
    } else {
      codeQuad<Bits>(row + latheLanesWordAt(Bits, G, k), k % W::kPerWord, part[0]);
    }
  }
};

/// FP6 4+2 groups in the lane layout (Fp6Lanes): a quad's four values lie
/// in one low word and one high word; their E3M2 values (three significant
/// bits, exact in bf16), the group's scale after.
template <int G, int64_t RowBytes>
struct TileQuad<Fp6Lanes<G>, RowBytes, std::enable_if_t<G % 16 == 0>> {
  using W = Fp6Lanes<G>;
  static constexpr int kParts = 1;
  static constexpr bool kScaled = true;
  static constexpr int kGroup = G;
  __device__ static void read(const uint8_t *row, int k, uint32_t (&part)[1][2], float &scale) {
    scale = __ldg(reinterpret_cast<const float *>(row + latheFp6ScaleAt(G, k)));
    const uint32_t low = __ldg(reinterpret_cast<const uint32_t *>(row + latheFp6LowAt(G, k)));
    const uint32_t high = __ldg(reinterpret_cast<const uint32_t *>(row + latheFp6HighAt(G, k)));
    const int w = k % 1024 / 256, j = k % 8;
    float v[4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
      v[i] = W::value(low, high, w, j + i) * 4096.0f;
    part[0][0] = bf16Pair(v[0], v[1]);
    part[0][1] = bf16Pair(v[2], v[3]);
  }
};

/// The A operand of one step of 16 k for the lane's two rows (g and g + 8
/// of the tile), in parts: a0/a2 from row g, a1/a3 from row g + 8, k
/// permuted as the file's comment says; the rows' scales where kScaled.
template <class W, int64_t RowBytes> struct TileA {
  using Quad = TileQuad<W, RowBytes>;
  uint32_t part[Quad::kParts][4];
  float scale[2];
  __device__ void read(const uint8_t *rowLow, const uint8_t *rowHigh, int k) {
    uint32_t p[Quad::kParts][2];
    Quad::read(rowLow, k, p, scale[0]);
#pragma unroll
    for (int i = 0; i < Quad::kParts; ++i)
      part[i][0] = p[i][0], part[i][2] = p[i][1];
    Quad::read(rowHigh, k, p, scale[1]);
#pragma unroll
    for (int i = 0; i < Quad::kParts; ++i)
      part[i][1] = p[i][0], part[i][3] = p[i][1];
  }
};

/// The token rows of a tiled product, split once per step for every block
/// of the launch after (LATHE_CUDA_GRID_SPLIT: blocks (t, y) per token, y
/// taking 1024 values of the row; the last tile's missing tokens written
/// as zeros): each value, plain or through
/// the RMSNorm of a NormedInput (the same floats as the rms_norm kernel),
/// into three bf16 parts at f.tokenParts, k permuted as the tiles read A;
/// a Bf16Input's rounded to bf16 (one part); an Int8Input's as its int8
/// codes (one part) and each step's block scales (CudaProductInputs.cuh);
/// before a launch of wgmma tiles, which it takes from RowsFrom tokens on
/// (its wideMinTokens; 0: none), where this code runs them
/// (LATHE_CUDA_WGMMA_CODE), a Bf16Input's rows row-major instead, K values
/// a row, which their TMA loads (the host schedule decides the same way:
/// schedule/CudaScheduleAbi.h's lathe_cuda_schedule_product).
/// Gather: token t is row f.logitTokens[t] (the classifier). Next: at
/// f.nextParts instead, for a launch whose tiles write the next one's
/// token rows at f.tokenParts as they finish (inputParts).
template <int K, bool Gather, bool Next, int RowsFrom = 0, class Input>
__device__ void splitTokens(const LatheCudaFrame &f, int in, Input input) {
  static_assert(K % 16 == 0, "tiled products take K in steps of 16");
  startStep();
  const int t = blockIdx.x, tokens = Gather ? f.logitCount : f.rows;
  const bool rowMajor = rowMajorTokenRows(RowsFrom, tokens);
  uint2 *out = reinterpret_cast<uint2 *>(Next ? f.nextParts : f.tokenParts);
  const int tt = t / 16, j = (t % 16) / 8, g = t % 8;
  const float *x = t < tokens ? f.buffers[in] + int64_t(Gather ? f.logitTokens[t] : t) * K
                              : nullptr;
  float scale = 1;
  const uint8_t *gain = nullptr;
  if constexpr (IsNormed<Input>::value) {
    // Every block of the token sums its row's squares (K values, as the
    // rms_norm kernel does): cheaper than a launch more to share them.
    if (x)
      scale = rmsScale<K>(x, input.epsilon);
    gain = f.weights[input.gain];
  }
  // The same passes on every lane: int8 activations round a block over
  // the lanes of its quads (shuffles).
  for (int base = blockIdx.y * kThreads; base < K / 4; base += gridDim.y * kThreads) {
    const int quad = base + threadIdx.x, k = 4 * quad;
    const bool live = quad < K / 4;
    float v[4] = {0, 0, 0, 0};
    if (x && live) {
      const float4 xv = *reinterpret_cast<const float4 *>(x + k);
      v[0] = xv.x, v[1] = xv.y, v[2] = xv.z, v[3] = xv.w;
      if constexpr (IsNormed<Input>::value)
        for (int i = 0; i < 4; ++i)
          v[i] = Input::Gain::at(gain, k + i) * (scale * v[i]);
    }
    const int lane = g * 4 + (k % 16) / 4;
    if constexpr (kInt8Block<Input> > 0) {
      // Int8 activations: the codes q (exact in bf16) as part 0, and the
      // step's block scale of token t in part 1's slot, at word t % 2 of
      // lane (t % 8) / 2 (where a C fragment's lane finds its two tokens').
      static_assert(kInt8Block<Input> % 16 == 0, "a step of 16 k in one int8 block");
      const Int8Block<kInt8Block<Input>, 4> block(v);
      if (!live)
        continue;
      out[partsAt<K>(tt, k / 16, j, 0, lane)] =
          make_uint2(bf16Pair(block.code(v[0]), block.code(v[1])),
                     bf16Pair(block.code(v[2]), block.code(v[3])));
      if (k % 16 == 0)
        reinterpret_cast<float *>(out + partsAt<K>(tt, k / 16, j, 1, g / 2))[g % 2] = block.scale;
      continue;
    }
    if (!live)
      continue;
    if constexpr (kBf16<Input>) { // bf16 activations: the rounded values, one part
      const uint2 rounded = make_uint2(bf16Pair(v[0], v[1]), bf16Pair(v[2], v[3]));
      if (rowMajor) // for the wgmma tiles' TMA
        out[(int64_t(t) * K + k) / 4] = rounded;
      else
        out[partsAt<K>(tt, k / 16, j, 0, lane)] = rounded;
      continue;
    }
    uint32_t low[3], high[3];
    splitPair(v[0], v[1], low);
    splitPair(v[2], v[3], high);
    for (int p = 0; p < 3; ++p)
      out[partsAt<K>(tt, k / 16, j, p, lane)] = make_uint2(low[p], high[p]);
  }
}

/// One weight's running sums for a warp's tile of 16 MT weight rows by 16
/// TT tokens: acc[m][j] is the lane's part of the m16n8 accumulator of rows
/// 16 m .. and tokens 8 j .. 8 j + 7. A step multiplies the parts whose
/// product is at least 2^-16 of the whole (weight part a, token part b,
/// a + b <= 2): the rest is below float rounding. C: how the token rows
/// come (TokenCodes): bf16 and int8 activations in one part.
template <class W, int64_t RowBytes, int MT = 1, int TT = 1, TokenCodes C = TokenCodes::Float>
struct TileSums {
  using Quad = TileQuad<W, RowBytes>;
  // Int8 activations: one token part (the codes), each step's sums times
  // the tokens' block scales (in b's part 1, splitTokens).
  static constexpr bool Int8 = C == TokenCodes::Int8;
  static constexpr int kParts = C == TokenCodes::Float ? kTokenParts : 1;
  static constexpr int kBaseUnroll = Quad::kParts == 1 ? kTileUnroll : kTileUnroll / 2;
  // Larger warp tiles load more a step: fewer steps in flight.
  static constexpr int kUnroll = MT * TT == 1 ? kBaseUnroll : kBaseUnroll / 2;
  const uint8_t *low[MT], *high[MT]; // the lane's rows g and g + 8 of each m16 tile
  float acc[MT][2 * TT][4] = {};
  TileA<W, RowBytes> a[kUnroll][MT];
  /// Rows first, first + 16, ..., RowBytes apart, clamped to `last`.
  __device__ TileSums(const uint8_t *base, int first, int last) {
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      low[m] = base + int64_t(min(first + 16 * m, last)) * RowBytes;
      high[m] = base + int64_t(min(first + 16 * m + 8, last)) * RowBytes;
    }
  }
  __device__ void read(int u, int k) {
#pragma unroll
    for (int m = 0; m < MT; ++m)
      a[u][m].read(low[m], high[m], k);
  }
  __device__ void multiply(int u, const uint32_t (&b)[TT][2][3][2]) {
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int j = 0; j < 2 * TT; ++j) {
        float d[4] = {};
        float(&sums)[4] = Quad::kScaled || Int8 ? d : acc[m][j];
#pragma unroll
        for (int wa = 0; wa < Quad::kParts; ++wa)
#pragma unroll
          for (int xb = 0; xb < kParts && xb + wa <= 2; ++xb)
            mma16816(sums, a[u][m].part[wa], b[j / 2][j % 2][xb][0], b[j / 2][j % 2][xb][1]);
        if constexpr (Quad::kScaled || Int8) {
          // C element e: row g + 8 (e / 2), token 2 (lane % 4) + e % 2.
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            float scale = 1;
            if constexpr (Quad::kScaled)
              scale = a[u][m].scale[e / 2];
            if constexpr (Int8)
              scale *= __uint_as_float(b[j / 2][j % 2][1][e % 2]);
            acc[m][j][e] += scale * d[e];
          }
        }
      }
  }
};

/// Adds the 8 warps' partial tiles of the block (in warp order) and hands
/// each of the tile's 256 sums to finish(row in tile, token in tile, sums,
/// before(row, token)) on thread (row, token). Values: one tile per weight (Count of them),
/// 16 rows by 16 tokens.
template <int Count, class Finish, class Before>
__device__ void reduceTiles(const float (*const (&acc)[Count])[2][4], Finish &&finish,
                            Before &&before) {
  // In the launch's dynamic shared memory (LATHE_CUDA_TILE_SHARED bytes),
  // which the warp path sizes for itself: a static array would cost that
  // path occupancy and room.
  static_assert(kWarps * Count * 2 * 4 * 32 * sizeof(float) <= LATHE_CUDA_TILE_SHARED);
  extern __shared__ float shared[];
  auto partial = reinterpret_cast<float(*)[Count][2][4][32]>(shared);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int c = 0; c < Count; ++c)
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        partial[warp][c][j][e][lane] = acc[c][0][j][e];
  __syncthreads();
  // Thread (r, t): accumulator element e of tile t / 8 on lane 4 (r % 8) +
  // (t % 8) / 2, where e = (r >= 8) * 2 + t % 2 (the m16n8 C layout).
  const int r = threadIdx.x / kTileTokens, t = threadIdx.x % kTileTokens;
  const int j = t / 8, e = (r >= 8) * 2 + t % 2, from = (r % 8) * 4 + (t % 8) / 2;
  float sums[Count];
#pragma unroll
  for (int c = 0; c < Count; ++c) {
    float s = 0;
    for (int w = 0; w < kWarps; ++w)
      s += partial[w][c][j][e][from];
    sums[c] = s;
  }
  finish(r, t, sums, before(r, t));
}

/// A warp's own tile of 16 MT rows by 16 TT tokens, whole (the wide
/// blocks, whose warps do not split K): each lane hands its accumulator
/// elements to finish(row in tile, token in tile, sums, before(row,
/// token)) itself, reading the four befores of an mma tile before it
/// finishes any (a residual read after an earlier store waits for it).
template <int MT, int TT, int Count, class Finish, class Before>
__device__ void ownTiles(const float (*const (&acc)[Count])[2 * TT][4], Finish &&finish,
                         Before &&before) {
  const int lane = threadIdx.x % 32;
  const auto row = [&](int m, int e) { return 16 * m + lane / 4 + 8 * (e / 2); };
  const auto token = [&](int j, int e) { return 8 * j + 2 * (lane % 4) + e % 2; };
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int j = 0; j < 2 * TT; ++j) {
      float read[4];
#pragma unroll
      for (int e = 0; e < 4; ++e)
        read[e] = before(row(m, e), token(j, e));
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float sums[Count];
#pragma unroll
        for (int c = 0; c < Count; ++c)
          sums[c] = acc[c][m][j][e];
        finish(row(m, e), token(j, e), sums, read[e]);
      }
    }
}

/// The sums of a warp's tile, added over the block's warps (Split: one
/// tile of 16 by 16) or the warp's own (the wide blocks), handed to finish.
template <bool Split, int MT, int TT, int Count, class Finish, class Before>
__device__ void finishTiles(const float (*const (&acc)[Count])[2 * TT][4], Finish &&finish,
                            Before &&before) {
  if constexpr (Split) {
    static_assert(MT == 1 && TT == 1, "split blocks add 16 by 16 tiles");
    reduceTiles<Count>(acc, finish, before);
  } else {
    ownTiles<MT, TT, Count>(acc, finish, before);
  }
}

/// What a tiled product sums and stores per kind of rows (CudaProducts.cuh):
/// PlainRows one weight's tile, then y = (residual +) sum...
template <class Rows, int MT, int TT, TokenCodes C> struct TileRows;
template <class W, int K, int N, int64_t RowBytes, bool Residual, int MT, int TT, TokenCodes C>
struct TileRows<PlainRows<W, K, N, RowBytes, Residual>, MT, TT, C> {
  static constexpr int kUnroll = TileSums<W, RowBytes, MT, TT, C>::kUnroll;
  const PlainRows<W, K, N, RowBytes, Residual> &rows;
  TileSums<W, RowBytes, MT, TT, C> w;
  /// The lane's rows of the warp's tile from row `first` on (row g of it).
  __device__ TileRows(const PlainRows<W, K, N, RowBytes, Residual> &r, int first)
      : rows(r), w(r.at(0), first, N - 1) {}
  __device__ void read(int u, int k) { w.read(u, k); }
  __device__ void multiply(int u, const uint32_t (&b)[TT][2][3][2]) { w.multiply(u, b); }
  /// Weight c's running sums (CudaStagedTiles.cuh fills them itself).
  __device__ float (&acc(int))[MT][2 * TT][4] { return w.acc; }
  template <bool Split> __device__ void finish(int n0, int t0, int tokens) {
    const float(*acc[1])[2 * TT][4] = {w.acc};
    const auto inside = [&](int r, int t) { return n0 + r < N && t0 + t < tokens; };
    finishTiles<Split, MT, TT, 1>(
        acc,
        [&](int r, int t, const float *s, float before) {
          if (inside(r, t))
            rows.store(t0 + t, n0 + r, s[0], before);
        },
        [&](int r, int t) { return inside(r, t) ? rows.residualAt(t0 + t, n0 + r) : 0.0f; });
  }
};
/// ...GatedRows the gate's and the up's, then y = silu(g) * u.
template <class WG, class WU, int K, int N, int64_t RowBytesG, int64_t RowBytesU, int MT, int TT,
          TokenCodes C>
struct TileRows<GatedRows<WG, WU, K, N, RowBytesG, RowBytesU>, MT, TT, C> {
  using Gate = TileSums<WG, RowBytesG, MT, TT, C>;
  using Up = TileSums<WU, RowBytesU, MT, TT, C>;
  // Half the smaller of the two: each step loads both weights.
  static constexpr int kUnroll = (Gate::kUnroll < Up::kUnroll ? Gate::kUnroll : Up::kUnroll) / 2;
  static_assert(kUnroll > 0, "a step of both weights at least");
  const GatedRows<WG, WU, K, N, RowBytesG, RowBytesU> &rows;
  Gate gate;
  Up up;
  __device__ TileRows(const GatedRows<WG, WU, K, N, RowBytesG, RowBytesU> &r, int first)
      : rows(r), gate(r.gate, first, N - 1), up(r.up, first, N - 1) {}
  __device__ void read(int u, int k) {
    gate.read(u, k);
    up.read(u, k);
  }
  __device__ void multiply(int u, const uint32_t (&b)[TT][2][3][2]) {
    gate.multiply(u, b);
    up.multiply(u, b);
  }
  /// The gate's (c = 0) or the up's running sums.
  __device__ float (&acc(int c))[MT][2 * TT][4] { return c == 0 ? gate.acc : up.acc; }
  template <bool Split> __device__ void finish(int n0, int t0, int tokens) {
    const float(*acc[2])[2 * TT][4] = {gate.acc, up.acc};
    finishTiles<Split, MT, TT, 2>(
        acc,
        [&](int r, int t, const float *s, float) {
          if (n0 + r < N && t0 + t < tokens) {
            if constexpr (Split) // narrow blocks: the down projection's token rows too
              rows.storeWithParts(t0 + t, n0 + r, s[0], s[1]);
            else
              rows.store(t0 + t, n0 + r, s[0], s[1]);
          }
        },
        [](int, int) { return 0.0f; }); // no residual
  }
};

/// Block (blockX, blockIdx.y) of a tiled product, whose token rows
/// splitTokens left split at f.tokenParts (Gather: the logits' tokens, as
/// in product(); C: how, TokenCodes: bf16 activations in one part, one mma
/// a weight part and step; int8 ones as codes and block scales, the step's
/// sums scaled).
/// Rows: PlainRows or GatedRows. Two shapes of block:
/// - Wide = false: weight rows 16 blockX .. +15 by tokens 16 blockIdx.y ..
///   +15, the 8 warps splitting K (warp w takes steps w, w + 8, ...) and
///   adding their tiles in order: many blocks, for steps of few tokens,
///   which stream the weights;
/// - Wide = true: rows 128 blockX .. +127 by tokens 64 blockIdx.y .. +63,
///   warp w the 32 rows 32 (w % 4) .. by the 32 tokens 32 (w / 4) .. over
///   all of K, for long prompts (LATHE_CUDA_WIDE_MIN_TOKENS, CudaFrame.h):
///   a weight row is read once per 64 tokens and a token row once per 128
///   weight rows, and a step's 16 loads a lane feed 24 mma (a 16 by 16
///   warp tile's 8 feed 6), while the 4 warps of a token group share their
///   fragments through L1.
template <int K, bool Gather, bool Wide, TokenCodes C, class Rows>
__device__ void tiledProduct(const LatheCudaFrame &f, const Rows &rows, int blockX) {
  static_assert(K % 16 == 0, "tiled products take K in steps of 16");
  constexpr int N = Rows::kN;
  constexpr int kSteps = K / 16;
  constexpr int kStride = Wide ? 1 : kWarps;     // between a warp's steps
  constexpr int MT = Wide ? 2 : 1, TT = Wide ? 2 : 1; // a warp's m16 and 16-token tiles
  constexpr int kRowGroups = kWideRows / (16 * MT);
  static_assert(!Wide || (kRowGroups * (kWideTokens / (16 * TT)) == kWarps),
                "a wide block's warps cover its rows and tokens");
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, q = lane % 4;
  const int n0 = Wide ? blockX * kWideRows + (warp % kRowGroups) * 16 * MT : blockX * kTileRows;
  // The warp's first 16-token tile of the step's (16 tokens each).
  const int tt0 = Wide ? blockIdx.y * (kWideTokens / 16) + (warp / kRowGroups) * TT : blockIdx.y;
  {
    const int first = Wide ? blockX * kWideRows : n0;
    const int last = min(first + (Wide ? kWideRows : kTileRows), N);
    const uint8_t *begin = rows.at(min(first, N)), *end = rows.at(last);
    if (begin < end)
      prefetchL2(begin, end - begin < kPrefetchBytes ? end : begin + kPrefetchBytes);
  }
  startStep();
  const int tokens = Gather ? f.logitCount : f.rows;
  const uint2 *parts = reinterpret_cast<const uint2 *>(inputParts(f, rows));
  TileRows<Rows, MT, TT, C> sums(rows, n0 + g);

  // U steps loaded, then used. Whole rounds of U steps per warp first,
  // with no bounds to check (so that every load of a round is issued
  // before the first multiply), then what is left, step by step.
  constexpr int U = TileRows<Rows, MT, TT, C>::kUnroll;
  constexpr int kRounds = kSteps / (kStride * U);
  const int first = Wide ? 0 : warp;
  auto load = [&](int step, uint32_t(&b)[TT][2][3][2]) {
#pragma unroll
    for (int i = 0; i < TT; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j)
        if constexpr (C == TokenCodes::Int8) { // the codes, and the scales of the lane's C tokens
          const uint2 v = __ldg(parts + partsAt<K>(tt0 + i, step, j, 0, lane));
          const uint2 scale = __ldg(parts + partsAt<K>(tt0 + i, step, j, 1, lane % 4));
          b[i][j][0][0] = v.x, b[i][j][0][1] = v.y;
          b[i][j][1][0] = scale.x, b[i][j][1][1] = scale.y;
        } else {
#pragma unroll
          for (int p = 0; p < (C == TokenCodes::Float ? kTokenParts : 1); ++p) {
            const uint2 v = __ldg(parts + partsAt<K>(tt0 + i, step, j, p, lane));
            b[i][j][p][0] = v.x, b[i][j][p][1] = v.y;
          }
        }
  };
  if (!Wide || (n0 < N && tt0 * 16 < tokens)) {
#pragma unroll 1
    for (int round = 0; round < kRounds; ++round) {
      const int s0 = round * kStride * U + first;
      uint32_t b[U][TT][2][3][2];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        sums.read(u, (s0 + u * kStride) * 16 + 4 * q);
        load(s0 + u * kStride, b[u]);
      }
#pragma unroll
      for (int u = 0; u < U; ++u)
        sums.multiply(u, b[u]);
    }
#pragma unroll 1
    for (int step = kRounds * kStride * U + first; step < kSteps; step += kStride) {
      uint32_t b[1][TT][2][3][2];
      sums.read(0, step * 16 + 4 * q);
      load(step, b[0]);
      sums.multiply(0, b[0]);
    }
  }
  sums.template finish<!Wide>(n0, tt0 * 16, tokens);
}

} // namespace lathe_cuda
