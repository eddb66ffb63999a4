// The integer matmul of Int8Matmul.h, compiled once per Highway target and
// picked at run time with HWY_DYNAMIC_DISPATCH.
//
// Every weight block is turned into unsigned bytes u = q + o (o a per-format
// or per-block offset: 128 for int8 codes flipped at the sign bit, 8 for
// two's complement nibbles, 12 for FP4 looked up as 2 * value + 12, the
// zero point for asymmetric INT) so that vpdpbusd (u8 x s8, four products
// per 32-bit lane) can multiply it with the activation codes; the offset
// comes back out as o * sum(activation codes).
//
// Three kernels:
//   AVX3_DL (AVX-512 VNNI), raw intrinsics: 64 codes per step whatever the
//     block size. Per-lane activation scales and offset corrections are
//     precomputed with the activations (Int8Activations::laneScales,
//     laneOffsets); each block sharing the vector has an accumulator of its
//     own that takes the whole vector times its scale, and only the block's
//     lanes of it are kept at the end (a masked FMA per block would compile
//     to FMA + blend). A step is ~9 instructions per 64 weights and row; at
//     T == 1 four rows share each activation load and one reduction.
//   AVX2 (Int8TileAvx2-inl.h), raw intrinsics: the same scheme, 32 codes
//     per step, vpmaddubsw + vpmaddwd for vpdpbusd (8-bit codes signed,
//     by the sign trick, so that the 16-bit pair sums cannot saturate).
//   every other target: one block per step through Highway ops, 16-bit
//     multiply-adds instead of vpdpbusd, the offset subtracted exactly in
//     the integer accumulator.
// For T >= 4 the float kernel (Matmul.h) is as fast: per 16 lanes the
// integer path still pays a conversion and two or three float operations
// per block, as many as the float path's FMAs.

// AVX3_DL (Ice Lake / Zen 4 and later: AVX-512 VNNI) is opt-in in
// Highway 1.0.3; it is the target this kernel is written for.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL 1
#endif
#include "runtime/backends/cpu/kernels/HighwayTargets.h"

#include "runtime/backends/cpu/kernels/Int8Matmul.h"

#include "runtime/formats/RowCodec.h"
#include "runtime/backends/cpu/kernels/IntCodes.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

// foreach_target.h includes this file again for every target; the plain
// definitions above its include must be seen once.
#ifndef LATHE_KERNELS_SIMD_INT8_MATMUL_DETAIL_
#define LATHE_KERNELS_SIMD_INT8_MATMUL_DETAIL_
namespace lathe::kernels::simd::detail {

struct Int8Args {
  const Int8Activations *x;
  const uint8_t *w;
  size_t rowBytes;
  int64_t N;
  float *y;
  int64_t n0, n1;
  IntCodes kind;
};

} // namespace lathe::kernels::simd::detail
#endif // LATHE_KERNELS_SIMD_INT8_MATMUL_DETAIL_

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/backends/cpu/kernels/Int8Matmul.cpp"
#include "hwy/foreach_target.h" // IWYU pragma: keep

#include "hwy/highway.h"

// Highway 1.0.3's AVX3_DL attributes name AVX-VNNI (the VEX form, which
// Zen 4 lacks) but not AVX512-VNNI (the EVEX form, which every AVX3_DL CPU
// has): add the latter for this file. dotBytes below keeps the compiler from
// picking the VEX form.
#undef LATHE_INT8_ATTR
#if HWY_TARGET == HWY_AVX3_DL
HWY_PUSH_ATTRIBUTES(HWY_TARGET_STR ",avx512vnni");
#define LATHE_INT8_ATTR __attribute__((target(HWY_TARGET_STR ",avx512vnni")))
#else
HWY_BEFORE_NAMESPACE();
#define LATHE_INT8_ATTR HWY_ATTR
#endif
namespace lathe::kernels::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using detail::Int8Args;
using detail::IntCodes;

using DF = hn::ScalableTag<float>;
inline constexpr size_t kMaxBytes = hn::MaxLanes(hn::ScalableTag<uint8_t>());

using detail::kFp4Bytes;

struct BlockScale {
  float scale;    // the value of one unit of (u - offset)
  int32_t offset; // u - offset is the signed code
};

/// A packed block's header and its codes as unsigned bytes, vector by
/// vector (kV bytes each, kV = min(B, vector bytes)), in the order
/// Int8Activations stores x: 8-bit codes in column order, nibbles low (even
/// columns) first.
template <IntCodes C> struct IntWeights {
  static constexpr bool kNibbles = detail::isNibbleKind(C);
  static constexpr size_t kHeader = detail::headerBytes(C);
  static constexpr size_t bytes(size_t B) { return kHeader + (kNibbles ? B / 2 : B); }

  static HWY_INLINE BlockScale scale(const uint8_t *blk) {
    const float scale = detail::blockScale(C, blk);
    if constexpr (detail::isAsymmetric(C))
      return {scale, blk[4]}; // the zero point follows the float scale
    else
      return {scale, detail::fixedOffset(C)};
  }

  template <size_t B, class DB>
  static HWY_INLINE hn::Vec<DB> codes(DB db, const uint8_t *blk, size_t i) {
    constexpr size_t kV = hn::MaxLanes(DB());
    const uint8_t *p = blk + kHeader;
    if constexpr (!kNibbles) {
      const auto v = hn::LoadU(db, p + i * kV);
      if constexpr (C == IntCodes::Int8Asym)
        return v;
      else // two's complement -> offset binary: q + 128
        return hn::Xor(v, hn::Set(db, uint8_t{0x80}));
    } else {
      hn::Vec<DB> nib;
      if constexpr (B == kV) {
        // One vector: the B/2 packed bytes give low nibbles, then high.
        const hn::Half<DB> dh;
        const auto h = hn::LoadU(dh, p);
        nib = hn::Combine(db, hn::ShiftRight<4>(h), hn::And(h, hn::Set(dh, uint8_t{0x0F})));
      } else {
        constexpr size_t kHalf = B / (2 * kV);
        nib = i < kHalf ? hn::And(hn::LoadU(db, p + i * kV), hn::Set(db, uint8_t{0x0F}))
                        : hn::ShiftRight<4>(hn::LoadU(db, p + (i - kHalf) * kV));
      }
      if constexpr (C == IntCodes::Int4Sym || C == IntCodes::Bfp4)
        return hn::Xor(nib, hn::Set(db, uint8_t{8})); // q + 8
      else if constexpr (C == IntCodes::MxFp4)
        return hn::TableLookupBytes(hn::LoadDup128(db, kFp4Bytes), nib);
      else
        return nib;
    }
  }
};

#if HWY_TARGET == HWY_AVX3_DL
// ------------------------------------------------------------ AVX-512 VNNI

/// Chunk p (codes 64p .. 64p + 63 of the row, in activation order) as
/// offset bytes. `present` blocks of the chunk exist (fewer than 64 / B only
/// in a row's last chunk); the bytes of absent ones are left arbitrary:
/// they meet zero activation codes, and their scales are never read.
template <IntCodes C, size_t B>
HWY_INLINE __m512i vnniWeights(const uint8_t *row, int64_t p, int present) {
  using W = IntWeights<C>;
  constexpr size_t kBlockBytes = W::bytes(B);
  __m512i v;
  if constexpr (!W::kNibbles) {
    if constexpr (B >= 64) {
      const uint8_t *q = row + (64 * p / B) * kBlockBytes + W::kHeader + (64 * p) % B;
      v = _mm512_loadu_si512(q);
    } else if constexpr (B == 32) {
      const uint8_t *b0 = row + 2 * p * kBlockBytes + W::kHeader;
      const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b0));
      const __m256i hi = present > 1
                             ? _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b0 + kBlockBytes))
                             : _mm256_setzero_si256();
      v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    } else { // B == 16
      v = _mm512_setzero_si512();
      const uint8_t *b0 = row + 4 * p * kBlockBytes + W::kHeader;
      __m128i q[4];
      for (int j = 0; j < 4; ++j)
        q[j] = j < present ? _mm_loadu_si128(reinterpret_cast<const __m128i *>(b0 + j * kBlockBytes))
                           : _mm_setzero_si128();
      v = _mm512_inserti32x4(_mm512_castsi128_si512(q[0]), q[1], 1);
      v = _mm512_inserti32x4(v, q[2], 2);
      v = _mm512_inserti32x4(v, q[3], 3);
    }
    if constexpr (C != IntCodes::Int8Asym)
      v = _mm512_xor_si512(v, _mm512_set1_epi8(static_cast<char>(0x80)));
    return v;
  } else {
    // Each 128-bit lane gets the packed bytes of its codes twice; shifting
    // the upper copy by 4 (16-bit lanes shift counts) turns the pair into
    // [low nibbles | high nibbles], the activation order.
    if constexpr (B == 128) {
      const uint8_t *q = row + (p / 2) * kBlockBytes + W::kHeader;
      v = _mm512_loadu_si512(q);
      if (p % 2)
        v = _mm512_srli_epi16(v, 4);
    } else if constexpr (B == 64) {
      const uint8_t *q = row + p * kBlockBytes + W::kHeader;
      v = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(q)));
      v = _mm512_srlv_epi16(v, _mm512_set_epi64(0x0004000400040004, 0x0004000400040004,
                                                0x0004000400040004, 0x0004000400040004, 0,
                                                0, 0, 0));
    } else if constexpr (B == 32) {
      const uint8_t *b0 = row + 2 * p * kBlockBytes + W::kHeader;
      const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i *>(b0));
      const __m128i hi = present > 1
                             ? _mm_loadu_si128(reinterpret_cast<const __m128i *>(b0 + kBlockBytes))
                             : _mm_setzero_si128();
      const __m512i both = _mm512_castsi256_si512(
          _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
      v = _mm512_shuffle_i64x2(both, both, _MM_SHUFFLE(1, 1, 0, 0));
      v = _mm512_srlv_epi16(v, _mm512_set_epi64(0x0004000400040004, 0x0004000400040004, 0, 0,
                                                0x0004000400040004, 0x0004000400040004, 0,
                                                0));
    } else { // B == 16: 8 packed bytes per block, one block per 128-bit lane
      const uint8_t *b0 = row + 4 * p * kBlockBytes + W::kHeader;
      __m128i q[4];
      for (int j = 0; j < 4; ++j) {
        uint64_t bits = 0;
        if (j < present)
          std::memcpy(&bits, b0 + j * kBlockBytes, 8);
        q[j] = _mm_set1_epi64x(static_cast<long long>(bits));
      }
      v = _mm512_inserti32x4(_mm512_castsi128_si512(q[0]), q[1], 1);
      v = _mm512_inserti32x4(v, q[2], 2);
      v = _mm512_inserti32x4(v, q[3], 3);
      v = _mm512_srlv_epi16(v, _mm512_set_epi64(0x0004000400040004, 0, 0x0004000400040004, 0,
                                                0x0004000400040004, 0, 0x0004000400040004, 0));
    }
    v = _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
    if constexpr (C == IntCodes::Int4Sym || C == IntCodes::Bfp4)
      v = _mm512_xor_si512(v, _mm512_set1_epi8(8));
    else if constexpr (C == IntCodes::MxFp4)
      v = _mm512_shuffle_epi8(
          _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i *>(kFp4Bytes))), v);
    return v;
  }
}

/// The four sums of the lanes of a, b, c, d: ~14 instructions instead of
/// four separate ~10-instruction reductions.
HWY_INLINE __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
  // Fold each vector to 256 bits, two vectors per register.
  const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(3, 2, 3, 2)));
  // Then to 128 bits: 128-bit lane i holds four partial sums of vector i.
  __m512 v = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(2, 0, 2, 0)),
                           _mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(3, 1, 3, 1)));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));
  v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm512_castps512_ps128(
      _mm512_permutexvar_ps(_mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0), v));
}

/// Weight rows n .. n + RN - 1 against tokens t0 .. t0 + RT - 1, 64 codes
/// per step. The kP blocks of a step (64 / B, or 1) each own a range of the
/// 16 lanes and their own accumulators. Every output is summed in the same
/// order whatever RT and RN are, so results do not depend on how callers
/// split rows between threads.
template <IntCodes C, size_t B, int RT, int RN>
HWY_INLINE void vnniTile(const Int8Args &a, int64_t n, int64_t t0) {
  using W = IntWeights<C>;
  constexpr int kP = B <= 64 ? static_cast<int>(64 / B) : 1;
  constexpr bool kAsym = detail::isAsymmetric(C);
  constexpr size_t kBlockBytes = W::bytes(B);
  static_assert(!kAsym || kP <= 2, "asymmetric INT blocks hold >= 32 codes");
  const Int8Activations &x = *a.x;
  const int64_t chunks = x.codesPerRow / 64;
  // Steps whose blocks all exist; a last step may hold fewer.
  const int64_t fullChunks = B >= 64 ? x.blocksPerRow * static_cast<int64_t>(B / 64)
                                     : x.blocksPerRow / kP;
  const int lastPresent = static_cast<int>(x.blocksPerRow % kP);

  __m512 acc[RT][RN][kP];
  for (int t = 0; t < RT; ++t)
    for (int r = 0; r < RN; ++r)
      for (int j = 0; j < kP; ++j) acc[t][r][j] = _mm512_setzero_ps();

  auto step = [&](int64_t p, int present) LATHE_INT8_ATTR {
    const int64_t firstBlock = B >= 64 ? 64 * p / static_cast<int64_t>(B) : p * kP;
    __m512i u[RN], zeroPoints[RN];
    float sw[RN][kP];
    for (int r = 0; r < RN; ++r) {
      const uint8_t *row = a.w + (n + r) * a.rowBytes;
      u[r] = vnniWeights<C, B>(row, p, present);
      zeroPoints[r] = _mm512_setzero_si512();
      for (int j = 0; j < kP; ++j) {
        sw[r][j] = 0.0f;
        if (j < present) {
          const BlockScale s = W::scale(row + (firstBlock + j) * kBlockBytes);
          sw[r][j] = s.scale;
          if constexpr (kAsym) {
            // The zero point as bytes over the block's 64 / kP codes.
            const __m512i z = _mm512_set1_epi8(static_cast<char>(s.offset));
            zeroPoints[r] = kP == 1 ? z
                                    : _mm512_mask_blend_epi64(j == 0 ? 0x0F : 0xF0, zeroPoints[r], z);
          }
        }
      }
    }
    for (int t = 0; t < RT; ++t) {
      const int64_t xc = (t0 + t) * chunks + p;
      const __m512i xv = _mm512_loadu_si512(x.codes.data() + xc * 64);
      const __m512 scales = _mm512_loadu_ps(x.laneScales.data() + xc * 16);
      const __m512 offsets = _mm512_loadu_ps(x.laneOffsets.data() + xc * 16);
      for (int r = 0; r < RN; ++r) {
        __m512i isum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u[r], xv);
        if constexpr (kAsym) // exact: sum((u - z) * x) = sum(u * x) - sum(z * x)
          isum = _mm512_sub_epi32(isum,
                                  _mm512_dpbusd_epi32(_mm512_setzero_si512(), zeroPoints[r], xv));
        __m512 f = _mm512_cvtepi32_ps(isum);
        if constexpr (kAsym)
          f = _mm512_mul_ps(f, scales);
        else
          f = _mm512_fmsub_ps(f, scales, offsets);
        // Block j's accumulator takes all 16 lanes times block j's scale;
        // only its own lanes are kept at the end (cheaper than masking
        // every FMA, which compilers turn into FMA + blend).
        for (int j = 0; j < kP; ++j)
          acc[t][r][j] = _mm512_fmadd_ps(f, _mm512_set1_ps(sw[r][j]), acc[t][r][j]);
      }
    }
  };

  for (int64_t p = 0; p < fullChunks; ++p) step(p, kP);
  if (fullChunks < chunks && lastPresent > 0)
    step(fullChunks, lastPresent);

  __m512 total[RT][RN];
  for (int t = 0; t < RT; ++t)
    for (int r = 0; r < RN; ++r) {
      total[t][r] = _mm512_setzero_ps();
      for (int j = 0; j < kP; ++j) {
        const __mmask16 lanes = static_cast<__mmask16>(((1u << (16 / kP)) - 1) << (j * 16 / kP));
        total[t][r] = _mm512_add_ps(total[t][r], _mm512_maskz_mov_ps(lanes, acc[t][r][j]));
      }
    }
  if constexpr (RN == 4) {
    for (int t = 0; t < RT; ++t)
      _mm_storeu_ps(a.y + (t0 + t) * a.N + n,
                    reduce4(total[t][0], total[t][1], total[t][2], total[t][3]));
  } else if constexpr (RT == 4 && RN == 1) {
    alignas(16) float sums[4];
    _mm_store_ps(sums, reduce4(total[0][0], total[1][0], total[2][0], total[3][0]));
    for (int t = 0; t < 4; ++t) a.y[(t0 + t) * a.N + n] = sums[t];
  } else {
    // The same summation order as reduce4 above.
    for (int t = 0; t < RT; ++t)
      for (int r = 0; r < RN; ++r)
        a.y[(t0 + t) * a.N + n + r] = _mm_cvtss_f32(
            reduce4(total[t][r], total[t][r], total[t][r], total[t][r]));
  }
}

#elif HWY_TARGET == HWY_AVX2
// ---------------------------------------------------------------------- AVX2
#include "runtime/backends/cpu/kernels/Int8TileAvx2-inl.h"
#else
// ------------------------------------------------------- portable kernel

/// acc += the sums of products of u8 and s8 lanes (pairwise, widened to 16
/// bits: u8 values reach 255, so a saturating u8 x s8 multiply-add would
/// overflow); lanes are mixed, callers only use the total of all lanes.
template <class D32, class VU, class VS>
HWY_INLINE hn::Vec<D32> dotBytes(D32 d32, hn::Vec<D32> acc, VU u, VS s) {
  using DB = hn::DFromV<VU>;
  const hn::Repartition<int16_t, DB> d16;
  const hn::Half<DB> dh;
  const hn::Half<hn::Repartition<int8_t, DB>> dhs;
  auto odd = hn::Zero(d32);
  acc = hn::ReorderWidenMulAccumulate(d32, hn::PromoteTo(d16, hn::LowerHalf(dh, u)),
                                      hn::PromoteTo(d16, hn::LowerHalf(dhs, s)), acc, odd);
  acc = hn::ReorderWidenMulAccumulate(d32, hn::PromoteTo(d16, hn::UpperHalf(dh, u)),
                                      hn::PromoteTo(d16, hn::UpperHalf(dhs, s)), acc, odd);
  return hn::Add(acc, odd);
}

/// Weight row n against tokens t0 .. t0 + RT - 1, one block per step; each
/// block is turned into bytes once for all RT tokens. Successive blocks
/// take turns at kChains float accumulators per token, whatever RT: a
/// token's sum must not depend on how many tokens share its step (a tree
/// step's rows then match a one-token step's bit for bit, which greedy
/// speculative decoding relies on; with 4 / RT chains they did not, and a
/// 4-bit build's speculative output left plain decoding's on AVX2).
template <IntCodes C, size_t B, int RT>
HWY_INLINE void rowTile(const Int8Args &a, int64_t n, int64_t t0) {
  using W = IntWeights<C>;
  constexpr size_t kV = std::min(B, kMaxBytes);
  constexpr size_t kVecs = B / kV;
  constexpr int kChains = 2;
  const hn::CappedTag<uint8_t, kV> db;
  const hn::Repartition<int8_t, decltype(db)> ds;
  const hn::Repartition<int32_t, decltype(db)> d32;
  const hn::Repartition<float, decltype(db)> df;
  static_assert(hn::MaxLanes(decltype(db)()) == kV);
  const Int8Activations &x = *a.x;

  hn::Vec<decltype(df)> acc[RT][kChains];
  for (int t = 0; t < RT; ++t)
    for (int c = 0; c < kChains; ++c) acc[t][c] = hn::Zero(df);
  const auto lane0 = hn::FirstN(d32, 1);
  const uint8_t *row = a.w + n * a.rowBytes;
  auto block = [&](int64_t b, int c) LATHE_INT8_ATTR {
    const uint8_t *blk = row + b * W::bytes(B);
    const BlockScale s = W::scale(blk);
    hn::Vec<decltype(db)> u[kVecs];
    for (size_t i = 0; i < kVecs; ++i) u[i] = W::template codes<B>(db, blk, i);
    for (int t = 0; t < RT; ++t) {
      const int64_t xb = (t0 + t) * x.blocksPerRow + b;
      const int8_t *xq = x.codes.data() + (t0 + t) * x.codesPerRow + b * static_cast<int64_t>(B);
      // Start from -offset * sum(x codes), in one lane: the sum of all
      // lanes is then exactly sum((u - offset) * x code).
      auto isum = hn::IfThenElseZero(lane0, hn::Set(d32, -s.offset * x.sums[xb]));
      for (size_t i = 0; i < kVecs; ++i) isum = dotBytes(d32, isum, u[i], hn::LoadU(ds, xq + i * kV));
      acc[t][c] = hn::MulAdd(hn::ConvertTo(df, isum), hn::Set(df, x.scales[xb] * s.scale), acc[t][c]);
    }
  };
  int64_t b = 0;
  for (; b + kChains <= x.blocksPerRow; b += kChains)
    for (int c = 0; c < kChains; ++c) block(b + c, c);
  for (; b < x.blocksPerRow; ++b) block(b, 0);
  for (int t = 0; t < RT; ++t) {
    auto sum = acc[t][0];
    for (int c = 1; c < kChains; ++c) sum = hn::Add(sum, acc[t][c]);
    a.y[(t0 + t) * a.N + n] = hn::GetLane(hn::SumOfLanes(df, sum));
  }
}

template <IntCodes C, size_t B> void int8Rows(const Int8Args &a) {
  const int64_t T = a.x->rows;
  for (int64_t n = a.n0; n < a.n1; ++n) {
    int64_t t = 0;
    for (; t + 4 <= T; t += 4) rowTile<C, B, 4>(a, n, t);
    switch (T - t) {
    case 3: rowTile<C, B, 3>(a, n, t); break;
    case 2: rowTile<C, B, 2>(a, n, t); break;
    case 1: rowTile<C, B, 1>(a, n, t); break;
    default: break;
    }
  }
}
#endif // HWY_TARGET == HWY_AVX3_DL, AVX2, other

#if HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX2
/// The target's tile (weight rows n .. n + RN - 1 against tokens t0 .. t0
/// + RT - 1); each output summed in one order whatever RT and RN.
template <IntCodes C, size_t B, int RT, int RN>
HWY_INLINE void tile(const Int8Args &a, int64_t n, int64_t t0) {
#if HWY_TARGET == HWY_AVX3_DL
  vnniTile<C, B, RT, RN>(a, n, t0);
#else
  avx2Tile<C, B, RT, RN>(a, n, t0);
#endif
}

template <IntCodes C, size_t B> void int8Rows(const Int8Args &a) {
  const int64_t T = a.x->rows;
  int64_t n = a.n0;
  if (T == 1) {
    // Decoding: four rows at a time share each activation load and one
    // reduction, and keep four FMA chains in flight.
    for (; n + 4 <= a.n1; n += 4) tile<C, B, 1, 4>(a, n, 0);
    for (; n < a.n1; ++n) tile<C, B, 1, 1>(a, n, 0);
    return;
  }
  for (; n < a.n1; ++n) {
    int64_t t = 0;
    for (; t + 4 <= T; t += 4) tile<C, B, 4, 1>(a, n, t);
    switch (T - t) {
    case 3: tile<C, B, 3, 1>(a, n, t); break;
    case 2: tile<C, B, 2, 1>(a, n, t); break;
    case 1: tile<C, B, 1, 1>(a, n, t); break;
    default: break;
    }
  }
}
#endif

template <IntCodes C, size_t... Bs> void withBlock(const Int8Args &a) {
  (void)((a.x->blockSize == static_cast<int64_t>(Bs) ? (int8Rows<C, Bs>(a), true) : false) ||
         ...);
}

void MatmulInt8Impl(const Int8Args &a) {
  switch (a.kind) {
  case IntCodes::Int8Sym: return withBlock<IntCodes::Int8Sym, 32, 64, 128>(a);
  case IntCodes::Int8Asym: return withBlock<IntCodes::Int8Asym, 32, 64, 128>(a);
  case IntCodes::Int4Sym: return withBlock<IntCodes::Int4Sym, 32, 64, 128>(a);
  case IntCodes::Int4Asym: return withBlock<IntCodes::Int4Asym, 32, 64, 128>(a);
  case IntCodes::Bfp8: return withBlock<IntCodes::Bfp8, 16, 32, 64>(a);
  case IntCodes::Bfp4: return withBlock<IntCodes::Bfp4, 16, 32, 64>(a);
  case IntCodes::MxInt8: return withBlock<IntCodes::MxInt8, 32>(a);
  case IntCodes::MxFp4: return withBlock<IntCodes::MxFp4, 32>(a);
  }
}

/// Quantizes each block of each row of x into `out` (sized by the caller):
/// scale = max|x| / 127, code = round-to-nearest-even(x * 127 / max|x|).
void QuantizeImpl(const float *xs, Int8Activations *outPtr, int32_t offset) {
  Int8Activations &out = *outPtr;
  const DF d;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<int8_t, DF> d8;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t B = out.blockSize, K = out.cols;
  const int64_t laneCount = out.codesPerRow / 4;
  const float share = 4.0f / static_cast<float>(B);
  HWY_ALIGN float padded[128];
  HWY_ALIGN float ordered[128];
  for (int64_t t = 0; t < out.rows; ++t) {
    int8_t *rowCodes = out.codes.data() + t * out.codesPerRow;
    float *laneScales = out.laneScales.data() + t * laneCount;
    float *laneOffsets = out.laneOffsets.data() + t * laneCount;
    std::fill(rowCodes + out.blocksPerRow * B, rowCodes + out.codesPerRow, int8_t{0});
    std::fill(laneScales + out.blocksPerRow * B / 4, laneScales + laneCount, 0.0f);
    std::fill(laneOffsets + out.blocksPerRow * B / 4, laneOffsets + laneCount, 0.0f);
    for (int64_t b = 0; b < out.blocksPerRow; ++b) {
      const float *src = xs + t * K + b * B;
      const int64_t count = std::min(B, K - b * B);
      if (count < B) {
        std::copy_n(src, count, padded);
        std::fill(padded + count, padded + B, 0.0f);
        src = padded;
      }
      if (out.nibbleOrder) {
        // Even columns first, then odd: the order of low and high nibbles.
        if (B >= 2 * lanes) {
          for (int64_t i = 0; i < B; i += 2 * lanes) {
            const auto lo = hn::LoadU(d, src + i), hi = hn::LoadU(d, src + i + lanes);
            hn::Store(hn::ConcatEven(d, hi, lo), d, ordered + i / 2);
            hn::Store(hn::ConcatOdd(d, hi, lo), d, ordered + B / 2 + i / 2);
          }
        } else {
          for (int64_t p = 0; p < B / 2; ++p) {
            ordered[p] = src[2 * p];
            ordered[B / 2 + p] = src[2 * p + 1];
          }
        }
        src = ordered;
      }
      // x86 max drops a NaN operand, so NaN and Inf are caught apart: x * 0
      // is NaN for both and 0 otherwise.
      auto amax = hn::Zero(d), probe = hn::Zero(d);
      for (int64_t i = 0; i < B; i += lanes) {
        const auto v = hn::LoadU(d, src + i);
        amax = hn::Max(amax, hn::Abs(v));
        probe = hn::MulAdd(v, hn::Zero(d), probe);
      }
      const float m = hn::GetLane(hn::MaxOfLanes(d, amax));
      const bool finite = hn::GetLane(hn::SumOfLanes(d, probe)) == 0.0f;
      const int64_t xb = t * out.blocksPerRow + b;
      int8_t *codes = rowCodes + b * B;
      float scale = 0.0f;
      int32_t sum = 0;
      if (!(finite && m > 0.0f)) {
        // Zeros, or a NaN/Inf in the block: no codes; a NaN scale marks the
        // outputs as undefined.
        std::fill(codes, codes + B, int8_t{0});
        scale = finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
      } else {
        const auto inverse = hn::Set(d, 127.0f / m);
        auto sums = hn::Zero(di);
        for (int64_t i = 0; i < B; i += lanes) {
          const auto q = hn::NearestInt(hn::Mul(hn::LoadU(d, src + i), inverse));
          sums = hn::Add(sums, q);
          hn::StoreU(hn::DemoteTo(d8, q), d8, codes + i);
        }
        scale = m / 127.0f;
        sum = hn::GetLane(hn::SumOfLanes(di, sums));
      }
      out.scales[xb] = scale;
      out.sums[xb] = sum;
      // Per four codes: the block's scale and share of the offset term.
      std::fill_n(laneScales + b * B / 4, B / 4, scale);
      std::fill_n(laneOffsets + b * B / 4, B / 4, static_cast<float>(offset * sum) * scale * share);
    }
  }
}

} // namespace HWY_NAMESPACE
} // namespace lathe::kernels::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lathe::kernels::simd {

HWY_EXPORT(MatmulInt8Impl);
HWY_EXPORT(QuantizeImpl);

bool supportsInt8Activations(const formats::FormatSpec &spec) {
  detail::IntCodes kind;
  return detail::intCodesOf(spec, kind);
}

bool quantizeActivations(const float *x, int64_t T, int64_t K,
                         const formats::FormatSpec &spec, Int8Activations &out,
                         CodeOrder order) {
  detail::IntCodes kind;
  if (!detail::intCodesOf(spec, kind) || T < 0 || K < 0) {
    out = Int8Activations{};
    return false;
  }
  out.rows = T;
  out.cols = K;
  out.blockSize = spec.blockSize;
  out.blocksPerRow = (K + spec.blockSize - 1) / spec.blockSize;
  out.codesPerRow = (out.blocksPerRow * spec.blockSize + 63) / 64 * 64;
  out.nibbleOrder = order == CodeOrder::RowKernel && detail::isNibbleKind(kind);
  const size_t blocks = static_cast<size_t>(T * out.blocksPerRow);
  out.codes.resize(static_cast<size_t>(T * out.codesPerRow));
  out.scales.resize(blocks);
  out.sums.resize(blocks);
  out.laneScales.resize(static_cast<size_t>(T * out.codesPerRow / 4));
  out.laneOffsets.resize(out.laneScales.size());
  if (blocks > 0)
    HWY_DYNAMIC_DISPATCH(QuantizeImpl)(x, &out, detail::fixedOffset(kind));
  return true;
}

void matmulPackedInt8(const Int8Activations &x, const uint8_t *w,
                      const formats::FormatSpec &spec, int64_t N, float *y,
                      int64_t n0, int64_t n1) {
  if (x.rows <= 0 || n0 >= n1)
    return;
  detail::IntCodes kind;
  const bool known = detail::intCodesOf(spec, kind);
  if (known && x.cols == 0) {
    for (int64_t t = 0; t < x.rows; ++t)
      std::fill(y + t * N + n0, y + t * N + n1, 0.0f);
    return;
  }
  const bool usable =
      known && x.cols > 0 && x.blockSize == spec.blockSize &&
      x.nibbleOrder == detail::isNibbleKind(kind) &&
      x.blocksPerRow == (x.cols + x.blockSize - 1) / x.blockSize &&
      x.codesPerRow == (x.blocksPerRow * x.blockSize + 63) / 64 * 64 &&
      x.codes.size() == static_cast<size_t>(x.rows * x.codesPerRow) &&
      x.scales.size() == static_cast<size_t>(x.rows * x.blocksPerRow) &&
      x.sums.size() == x.scales.size() &&
      x.laneScales.size() == static_cast<size_t>(x.rows * x.codesPerRow / 4) &&
      x.laneOffsets.size() == x.laneScales.size();
  if (!usable) {
    for (int64_t t = 0; t < x.rows; ++t)
      std::fill(y + t * N + n0, y + t * N + n1, std::numeric_limits<float>::quiet_NaN());
    return;
  }
  const detail::Int8Args args{&x, w, formats::packedRowBytes(spec, x.cols), N, y, n0, n1, kind};
  HWY_DYNAMIC_DISPATCH(MatmulInt8Impl)(args);
}

} // namespace lathe::kernels::simd
#endif // HWY_ONCE
