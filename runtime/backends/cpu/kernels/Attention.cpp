// The attention kernel of Attention.h, compiled once per Highway target and
// picked at run time with HWY_DYNAMIC_DISPATCH.
//
// Per query row and head, three passes over the cached positions: scores
// (four positions at a time share the query's loads and one reduction),
// the softmax numerators with Lathe's exp (ExpF32-inl.h: lathe_exp_f32 of
// Transcendentals.h lane by lane, so the reference kernels, the generated
// HLS code and this kernel take the same exp of the same score), then the weighted sum of
// value rows with the head's output kept in registers (up to four vectors
// of it per pass over the positions). A head dimension that is not a
// multiple of the vector length is handled with masked loads and stores.
//
// Compressed caches (int8, bfp8, bfp4) go through the same three passes,
// reading rows in place: CompressedAttention-inl.h; KIVI caches (int4,
// int2) too: KiviAttention-inl.h.

#include "runtime/backends/cpu/kernels/HighwayTargets.h"

#include "runtime/backends/cpu/kernels/Attention.h"
#include "runtime/kernels/Transcendentals.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

// foreach_target.h includes this file again for every target; the plain
// definitions above its include must be seen once.
#ifndef LATHE_KERNELS_SIMD_ATTENTION_DETAIL_
#define LATHE_KERNELS_SIMD_ATTENTION_DETAIL_
namespace lathe::kernels::simd::detail {
struct AttentionArgs {
  const float *q;
  const backend::VisibleRows *visible;
  int64_t rows, heads, kvHeads, headDim;
  KVLayerView cache;
  int64_t h0, h1;
  float *scratch, *out;

  /// 1 / sqrt(head_dim), the scores' scale.
  float scoreScale() const {
    return static_cast<float>(lathe_inverse_sqrt(static_cast<double>(headDim)));
  }
  /// head(rows, s, kvOffset, qh, oh) for each query row and head h of
  /// [h0, h1): the row's visible cache rows, the head's score scratch, where
  /// its KV head starts in a cache row, its query and its output.
  template <class Head> void forEachHead(Head &&head) const {
    const int64_t qWidth = heads * headDim, group = heads / kvHeads;
    for (int64_t t = 0; t < rows; ++t)
      for (int64_t h = h0; h < h1; ++h)
        head(visible[t], scratch + (h - h0) * cache.capacity, (h / group) * headDim,
             q + t * qWidth + h * headDim, out + t * qWidth + h * headDim);
  }
};
} // namespace lathe::kernels::simd::detail
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/backends/cpu/kernels/Attention.cpp"
#include "hwy/foreach_target.h" // IWYU pragma: keep

#include "hwy/highway.h"
#include "runtime/backends/cpu/kernels/ExpF32-inl.h"

HWY_BEFORE_NAMESPACE();
namespace lathe::kernels::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using detail::AttentionArgs;

/// The first `count` (< lanes) floats at p, the other lanes zero, reading
/// nothing past p + count: x86 masked loads suppress the masked lanes, the
/// portable target's MaskedLoad reads a whole vector, so it copies instead.
HWY_INLINE hn::Vec<DF> loadFirst(DF d, const float *p, size_t count) {
#if HWY_TARGET == HWY_EMU128 || HWY_TARGET == HWY_SCALAR
  HWY_ALIGN float buffer[hn::MaxLanes(DF())] = {};
  std::copy_n(p, count, buffer);
  return hn::Load(d, buffer);
#else
  return hn::MaskedLoad(hn::FirstN(d, count), d, p);
#endif
}

/// Loads lanes [i, i + lanes) of a head row of `dim` floats; lanes past the
/// end read as zero and are never touched in memory.
HWY_INLINE hn::Vec<DF> loadHead(DF d, const float *p, int64_t i, int64_t dim) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  if (i + lanes <= dim)
    return hn::LoadU(d, p + i);
  return loadFirst(d, p + i, static_cast<size_t>(dim - i));
}

/// One stored element as a float (the row tails of f16/bf16 caches).
template <typename T> HWY_INLINE float toFloat(T v) {
  uint16_t bits;
  std::memcpy(&bits, &v, 2);
  return std::is_same_v<T, hwy::float16_t> ? f16ToFloat(bits) : bf16ToFloat(bits);
}

/// The same for a KV row stored as f16 or bf16 (promoted exactly to f32).
template <typename T>
HWY_INLINE hn::Vec<DF> loadHead(DF d, const T *p, int64_t i, int64_t dim) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  if (i + lanes <= dim)
    return hn::PromoteTo(d, hn::LoadU(hn::Rebind<T, DF>(), p + i));
  HWY_ALIGN float buffer[hn::MaxLanes(DF())] = {};
  for (int64_t j = 0; j < dim - i; ++j)
    buffer[j] = toFloat(p[i + j]);
  return hn::Load(d, buffer);
}

/// Lanes i of (hi, lo) added to their neighbours: the lower half of the
/// result holds lo's pairwise sums, the upper half hi's.
template <class D> HWY_INLINE hn::Vec<D> pairSums(D d, hn::Vec<D> hi, hn::Vec<D> lo) {
  return hn::Add(hn::ConcatEven(d, hi, lo), hn::ConcatOdd(d, hi, lo));
}

/// The sums of the lanes of a, b, c and d in lanes 0..3 (a vector has at
/// least four lanes): two or three levels of pairwise sums shared by the
/// four, instead of four separate reductions.
template <class D>
HWY_INLINE hn::Vec<D> sumsOf4(D d, hn::Vec<D> a, hn::Vec<D> b, hn::Vec<D> c, hn::Vec<D> e) {
  // Quarters of w: partial sums of a, b, c, e, lanes / 4 each.
  auto w = pairSums(d, pairSums(d, e, c), pairSums(d, b, a));
  for (size_t partials = hn::Lanes(d) / 4; partials > 1; partials /= 2)
    w = pairSums(d, w, w);
  return w;
}

/// s[j] = (q . k_j) * scale for four keys of dim values (f32, f16 or bf16),
/// one reduction shared by the four (sumsOf4); raises maxScore to them.
template <typename T>
HWY_INLINE void scoresOf4(DF d, const float *qh, const T *k0, const T *k1, const T *k2,
                          const T *k3, int64_t dim, float scale, float *s, float &maxScore) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  for (int64_t i = 0; i < dim; i += lanes) {
    const auto qv = loadHead(d, qh, i, dim);
    a0 = hn::MulAdd(qv, loadHead(d, k0, i, dim), a0);
    a1 = hn::MulAdd(qv, loadHead(d, k1, i, dim), a1);
    a2 = hn::MulAdd(qv, loadHead(d, k2, i, dim), a2);
    a3 = hn::MulAdd(qv, loadHead(d, k3, i, dim), a3);
  }
  HWY_ALIGN float sums[hn::MaxLanes(DF())];
  hn::Store(sumsOf4(d, a0, a1, a2, a3), d, sums);
  for (int j = 0; j < 4; ++j) {
    s[j] = sums[j] * scale;
    maxScore = std::max(maxScore, s[j]);
  }
}

/// scores[p] = (q . k_p) * scale for the p < len visible rows; returns
/// their maximum. keyAt(p, slot) points at the head's lanes of the key of
/// position p (a decoded copy in buffer `slot` < 4 for compressed caches:
/// the four keys of a pass use four different slots).
template <typename KeyAt>
HWY_INLINE float scores(DF d, const float *qh, KeyAt &&keyAt, int64_t dim, int64_t len,
                        float scale, float *s) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  float maxScore = -std::numeric_limits<float>::infinity();
  int64_t p = 0;
  for (; p + 4 <= len; p += 4)
    scoresOf4(d, qh, keyAt(p, 0), keyAt(p + 1, 1), keyAt(p + 2, 2), keyAt(p + 3, 3), dim, scale,
              s + p, maxScore);
  for (; p < len; ++p) {
    const auto *kp = keyAt(p, 0);
    auto a = hn::Zero(d);
    for (int64_t i = 0; i < dim; i += lanes)
      a = hn::MulAdd(loadHead(d, qh, i, dim), loadHead(d, kp, i, dim), a);
    s[p] = hn::GetLane(hn::SumOfLanes(d, a)) * scale;
    maxScore = std::max(maxScore, s[p]);
  }
  return maxScore;
}

/// s[p] = exp(s[p] - maxScore) for p < len; returns their sum. A NaN score
/// stays NaN and poisons the head's output, as in the reference.
HWY_INLINE float softmaxNumerators(DF d, float *s, int64_t len, float maxScore) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto m = hn::Set(d, maxScore);
  auto sum = hn::Zero(d);
  int64_t p = 0;
  for (; p + lanes <= len; p += lanes) {
    const auto e = expF32(d, hn::Sub(hn::LoadU(d, s + p), m));
    hn::StoreU(e, d, s + p);
    sum = hn::Add(sum, e);
  }
  if (p < len) {
    const size_t count = static_cast<size_t>(len - p);
    const auto mask = hn::FirstN(d, count);
    const auto e = hn::IfThenElseZero(mask, expF32(d, hn::Sub(loadFirst(d, s + p, count), m)));
    hn::BlendedStore(e, mask, d, s + p);
    sum = hn::Add(sum, e);
  }
  return hn::GetLane(hn::SumOfLanes(d, sum));
}

/// out[0..dim) = sum_p w[p] * v_p / total, up to four vectors of the head
/// per pass over the positions.
template <typename T>
HWY_INLINE void weightedValues(DF d, const float *w, const T *values, int64_t stride,
                               const backend::VisibleRows &rows, int64_t dim, int64_t len,
                               float total, float *out) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto inverse = hn::Set(d, 1.0f / total);
  for (int64_t i0 = 0; i0 < dim; i0 += 4 * lanes) {
    const int64_t vecs = std::min<int64_t>(4, (dim - i0 + lanes - 1) / lanes);
    auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
    for (int64_t p = 0; p < len; ++p) {
      const auto wp = hn::Set(d, w[p]);
      const T *vp = values + int64_t{rows[p]} * stride;
      a0 = hn::MulAdd(wp, loadHead(d, vp, i0, dim), a0);
      if (vecs > 1) a1 = hn::MulAdd(wp, loadHead(d, vp, i0 + lanes, dim), a1);
      if (vecs > 2) a2 = hn::MulAdd(wp, loadHead(d, vp, i0 + 2 * lanes, dim), a2);
      if (vecs > 3) a3 = hn::MulAdd(wp, loadHead(d, vp, i0 + 3 * lanes, dim), a3);
    }
    const hn::Vec<DF> acc[4] = {a0, a1, a2, a3};
    for (int64_t j = 0; j < vecs; ++j) {
      const int64_t i = i0 + j * lanes;
      const auto r = hn::Mul(acc[j], inverse);
      if (i + lanes <= dim)
        hn::StoreU(r, d, out + i);
      else
        hn::BlendedStore(r, hn::FirstN(d, static_cast<size_t>(dim - i)), d, out + i);
    }
  }
}

template <typename T> void attendHeadsOf(const AttentionArgs &a) {
  const DF d;
  const T *keys = static_cast<const T *>(a.cache.keys);
  const T *values = static_cast<const T *>(a.cache.values);
  const float scale = a.scoreScale();
  a.forEachHead([&](const backend::VisibleRows &rows, float *s, int64_t kvOffset,
                    const float *qh, float *oh) {
    const int64_t len = rows.count();
    const T *headKeys = keys + kvOffset;
    const float maxScore = scores(
        d, qh, [&](int64_t p, int) { return headKeys + int64_t{rows[p]} * a.cache.width; },
        a.headDim, len, scale, s);
    const float total = softmaxNumerators(d, s, len, maxScore);
    weightedValues(d, s, values + kvOffset, a.cache.width, rows, a.headDim, len, total, oh);
  });
}

} // namespace HWY_NAMESPACE
} // namespace lathe::kernels::simd
HWY_AFTER_NAMESPACE();

// attendCompressedHeads and attendKiviHeads, built on the helpers above.
#include "runtime/backends/cpu/kernels/CompressedAttention-inl.h"
#include "runtime/backends/cpu/kernels/KiviAttention-inl.h"

HWY_BEFORE_NAMESPACE();
namespace lathe::kernels::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using detail::AttentionArgs;

void AttendHeadsImpl(const AttentionArgs &a) {
  switch (a.cache.format.kind) {
  case formats::KvKind::F32: return attendHeadsOf<float>(a);
  case formats::KvKind::F16: return attendHeadsOf<hwy::float16_t>(a);
  case formats::KvKind::BF16: return attendHeadsOf<hwy::bfloat16_t>(a);
  case formats::KvKind::Int8:
  case formats::KvKind::Bfp8:
  case formats::KvKind::Bfp4: return attendCompressedHeads(a);
  case formats::KvKind::Int4:
  case formats::KvKind::Int2: return attendKiviHeads(a);
  }
}

} // namespace HWY_NAMESPACE
} // namespace lathe::kernels::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lathe::kernels::simd {

HWY_EXPORT(AttendHeadsImpl);

void attendHeads(const float *q, std::span<const backend::VisibleRows> visible, int64_t heads,
                 int64_t kvHeads, int64_t headDim, KVLayerView cache, int64_t h0,
                 int64_t h1, float *scratch, float *out) {
  if (visible.empty() || h0 >= h1 || headDim <= 0)
    return;
  const detail::AttentionArgs args{q,     visible.data(), static_cast<int64_t>(visible.size()),
                                   heads, kvHeads,          headDim,
                                   cache, h0,               h1,
                                   scratch, out};
  HWY_DYNAMIC_DISPATCH(AttendHeadsImpl)(args);
}

} // namespace lathe::kernels::simd
#endif // HWY_ONCE
