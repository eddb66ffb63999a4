// Per-target (Highway foreach_target) building blocks of the matmul kernels:
// a register tile of dot products between RT activation rows and RN weight
// rows, and the weight-row loaders it reads through. Included by the kernel
// .cpp files once per target; not a public header.
//
// The tile keeps RT*RN vector accumulators; every step over K loads one
// vector of each weight row and of each activation row and issues RT*RN
// FMAs, so a 4x4 tile does two FMAs per load. Weights reach the tile through
// a loader, so that 16-bit weights are widened in registers on the way in.

#if defined(LATHE_KERNELS_SIMD_DOT_TILE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef LATHE_KERNELS_SIMD_DOT_TILE_INL_H_
#undef LATHE_KERNELS_SIMD_DOT_TILE_INL_H_
#else
#define LATHE_KERNELS_SIMD_DOT_TILE_INL_H_
#endif

#include "hwy/highway.h"
#include "runtime/formats/ElementType.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

HWY_BEFORE_NAMESPACE();
namespace lathe::kernels::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// Tile shape: RT activation rows x RN weight rows. AVX-512 has 32 vector
// registers: 16 accumulators + 4 weight vectors + 1 activation fit. Other
// targets have 16: 8 accumulators + 4 + 1.
#if HWY_TARGET <= HWY_AVX3
inline constexpr int kTileT = 4;
#else
inline constexpr int kTileT = 2;
#endif
inline constexpr int kTileN = 4;

/// Float32 rows: row r at base + r * stride.
struct F32Rows {
  const float *base;
  int64_t stride;
  HWY_INLINE VF load(DF d, int r, int64_t k) const {
    return hn::LoadU(d, base + r * stride + k);
  }
  HWY_INLINE float scalar(int r, int64_t k) const { return base[r * stride + k]; }
};

/// bfloat16 rows: the bits go to the top half of a float32, exactly.
struct BF16Rows {
  const uint16_t *base;
  int64_t stride;
  HWY_INLINE VF load(DF d, int r, int64_t k) const {
    const hn::RebindToUnsigned<DF> du;
    const hn::Rebind<uint16_t, DF> du16;
    const auto bits = hn::PromoteTo(du, hn::LoadU(du16, base + r * stride + k));
    return hn::BitCast(d, hn::ShiftLeft<16>(bits));
  }
  HWY_INLINE float scalar(int r, int64_t k) const {
    return bf16ToFloat(base[r * stride + k]);
  }
};

/// IEEE binary16 rows, widened by the hardware (F16C) where there is one.
struct F16Rows {
  const uint16_t *base;
  int64_t stride;
  HWY_INLINE VF load(DF d, int r, int64_t k) const {
    const hn::Rebind<hwy::float16_t, DF> dh;
    return hn::PromoteTo(
        d, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t *>(base + r * stride + k)));
  }
  HWY_INLINE float scalar(int r, int64_t k) const {
    return f16ToFloat(base[r * stride + k]);
  }
};

HWY_INLINE float reduceSum(DF d, VF v) { return hn::GetLane(hn::SumOfLanes(d, v)); }

/// y[t*yStride + r] = dot(x row t, weight row r) for t < RT, r < RN, over K
/// values. Columns past the last whole vector are summed in scalar code.
template <int RT, int RN, class Rows>
HWY_INLINE void dotTile(const float *x, int64_t xStride, const Rows &rows,
                        int64_t K, float *y, int64_t yStride) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  VF acc[RT][RN];
  for (int t = 0; t < RT; ++t)
    for (int r = 0; r < RN; ++r) acc[t][r] = hn::Zero(d);
  int64_t k = 0;
  for (; k + lanes <= K; k += lanes) {
    VF wv[RN];
    for (int r = 0; r < RN; ++r) wv[r] = rows.load(d, r, k);
    for (int t = 0; t < RT; ++t) {
      const VF xv = hn::LoadU(d, x + t * xStride + k);
      for (int r = 0; r < RN; ++r) acc[t][r] = hn::MulAdd(xv, wv[r], acc[t][r]);
    }
  }
  for (int t = 0; t < RT; ++t)
    for (int r = 0; r < RN; ++r) {
      float tail = 0.0f;
      for (int64_t j = k; j < K; ++j) tail += x[t * xStride + j] * rows.scalar(r, j);
      y[t * yStride + r] = reduceSum(d, acc[t][r]) + tail;
    }
}

/// One weight row (row 0 of `rows`) against one activation row, with four
/// accumulators over K: for streaming a matrix from DRAM, where reading
/// four rows side by side halves the bandwidth this CPU sustains (its
/// prefetchers follow one sequential stream better than four interleaved
/// ones; measured on Zen 4: 1.7 ms vs 3.4 ms for 32000 x 288 float32).
template <class Rows>
HWY_INLINE float dotRowStreaming(const float *x, const Rows &rows, int64_t K) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  VF a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  int64_t k = 0;
  for (; k + 4 * lanes <= K; k += 4 * lanes) {
    a0 = hn::MulAdd(hn::LoadU(d, x + k), rows.load(d, 0, k), a0);
    a1 = hn::MulAdd(hn::LoadU(d, x + k + lanes), rows.load(d, 0, k + lanes), a1);
    a2 = hn::MulAdd(hn::LoadU(d, x + k + 2 * lanes), rows.load(d, 0, k + 2 * lanes), a2);
    a3 = hn::MulAdd(hn::LoadU(d, x + k + 3 * lanes), rows.load(d, 0, k + 3 * lanes), a3);
  }
  for (; k + lanes <= K; k += lanes) a0 = hn::MulAdd(hn::LoadU(d, x + k), rows.load(d, 0, k), a0);
  float tail = 0.0f;
  for (; k < K; ++k) tail += x[k] * rows.scalar(0, k);
  return reduceSum(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))) + tail;
}

/// Activation rows one streaming call takes at once (below): RT rows x four
/// chains of accumulators, plus a step's four weight vectors, fit in
/// AVX-512's 32 registers.
inline constexpr int kStreamTokens = 4;

/// Batches up to this many tokens read each weight row once, in order
/// (dotRowAllTokensStreaming); larger ones take the register tiles. Measured
/// on Zen 4, stories15M f32 on 2 threads, decode steps of 2-16 tokens: the
/// 32000 x 288 classifier streamed from DRAM in 0.84 ms (2 tokens) and
/// 1.6 ms (8) against 1.6 and 2.6 ms through the tiles, whose four
/// interleaved row streams the prefetchers follow badly; 16 sequences
/// decoding together, 1920 against 1760 tokens/s; 32, 1780 against 2090.
inline constexpr int64_t kStreamMaxTokens = 16;

/// One weight row (row 0 of `rows`) against RT activation rows, each summed
/// in exactly dotRowStreaming's order (four chains over K in steps of four
/// vectors, the leftover whole vectors into the first, the scalar tail
/// last), so that a token's output is bit for bit the same whether it runs
/// alone (decode) or with others (several sequences, a speculative tree's
/// nodes): greedy speculative decoding then picks plain decoding's tokens
/// by construction, not up to rounding.
template <int RT, class Rows>
HWY_INLINE void dotRowTokensStreaming(const float *x, int64_t xStride, const Rows &rows,
                                      int64_t K, float *y, int64_t yStride) {
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  VF acc[RT][4];
  for (int t = 0; t < RT; ++t)
    for (int c = 0; c < 4; ++c) acc[t][c] = hn::Zero(d);
  int64_t k = 0;
  for (; k + 4 * lanes <= K; k += 4 * lanes) {
    VF wv[4];
    for (int c = 0; c < 4; ++c) wv[c] = rows.load(d, 0, k + c * lanes);
    for (int t = 0; t < RT; ++t)
      for (int c = 0; c < 4; ++c)
        acc[t][c] = hn::MulAdd(hn::LoadU(d, x + t * xStride + k + c * lanes), wv[c], acc[t][c]);
  }
  for (; k + lanes <= K; k += lanes) {
    const VF wv = rows.load(d, 0, k);
    for (int t = 0; t < RT; ++t)
      acc[t][0] = hn::MulAdd(hn::LoadU(d, x + t * xStride + k), wv, acc[t][0]);
  }
  for (int t = 0; t < RT; ++t) {
    float tail = 0.0f;
    for (int64_t j = k; j < K; ++j) tail += x[t * xStride + j] * rows.scalar(0, j);
    y[t * yStride] =
        reduceSum(d, hn::Add(hn::Add(acc[t][0], acc[t][1]), hn::Add(acc[t][2], acc[t][3]))) +
        tail;
  }
}

/// All T rows of x (row t at x + t * xStride) against one weight row,
/// kStreamTokens at a time (the row stays in L1 after the first).
/// Covers tokens [0, T) in blocks, calling fn.template operator()<RT>(t)
/// for block [t, t + RT): kStreamTokens at a time, then the 1-3 left.
template <class Fn> HWY_INLINE void forTokenBlocks(int64_t T, const Fn &fn) {
  static_assert(kStreamTokens == 4, "the remainder cases below");
  int64_t t = 0;
  for (; t + kStreamTokens <= T; t += kStreamTokens)
    fn.template operator()<kStreamTokens>(t);
  switch (T - t) {
  case 3: fn.template operator()<3>(t); break;
  case 2: fn.template operator()<2>(t); break;
  case 1: fn.template operator()<1>(t); break;
  default: break;
  }
}

template <class Rows>
HWY_INLINE void dotRowAllTokensStreaming(const float *x, int64_t xStride, int64_t T, int64_t K,
                                         const Rows &rows, float *y, int64_t N) {
  forTokenBlocks(T, [&]<int RT>(int64_t t) HWY_ATTR {
    dotRowTokensStreaming<RT>(x + t * xStride, xStride, rows, K, y + t * N, N);
  });
}

/// dotTile with RT <= kTileT and RN <= kTileN given at run time.
template <class Rows>
HWY_INLINE void dotTileAny(int rt, int rn, const float *x, int64_t xStride,
                           const Rows &rows, int64_t K, float *y, int64_t yStride) {
#define LATHE_TILE_CASE(RT_, RN_)                                              \
  if (rt == RT_ && rn == RN_)                                                  \
    return dotTile<RT_, RN_>(x, xStride, rows, K, y, yStride);
#define LATHE_TILE_ROW(RT_)                                                    \
  LATHE_TILE_CASE(RT_, 1)                                                      \
  LATHE_TILE_CASE(RT_, 2) LATHE_TILE_CASE(RT_, 3) LATHE_TILE_CASE(RT_, 4)
  static_assert(kTileN == 4 && (kTileT == 4 || kTileT == 2));
  LATHE_TILE_ROW(1)
  LATHE_TILE_ROW(2)
  if constexpr (kTileT == 4) {
    LATHE_TILE_ROW(3)
    LATHE_TILE_ROW(4)
  }
#undef LATHE_TILE_ROW
#undef LATHE_TILE_CASE
}

/// All T rows of x against weight rows [n, n + rn), rn <= kTileN, which
/// `rows` addresses from row n on. Weight rows stay in L1 while x streams.
template <class Rows>
HWY_INLINE void dotRowsAllTokens(const float *x, int64_t T, int64_t K,
                                 const Rows &rows, int rn, float *y, int64_t N) {
  for (int64_t t = 0; t < T; t += kTileT) {
    const int rt = static_cast<int>(std::min<int64_t>(kTileT, T - t));
    dotTileAny(rt, rn, x + t * K, K, rows, K, y + t * N, N);
  }
}

} // namespace HWY_NAMESPACE
} // namespace lathe::kernels::simd
HWY_AFTER_NAMESPACE();

#endif // include guard toggle
