// The KIVI half of the attention kernel (Attention.cpp, which includes it
// once per Highway target after its own helpers: DF, loadHead, sumsOf4, scoresOf4,
// softmaxNumerators and AttentionArgs are its). int4/int2 caches
// (runtime/formats/KvFormat.h, kv/PagedKVCache.h) hold quantized rows and
// an f32 window of recent rows; both are read in place, and nothing beyond
// a head's slice of a row is decoded:
//   keys    per channel c of a key group, x = s_c * code + z_c, so
//           q . k = (q * s) . code + q . z: once per group and head the
//           query is scaled by the group's channel scales (and split into
//           one plane per code of a byte, as the codes come out of a byte)
//           and q . z is summed; each row is then a dot of widened codes
//           with those planes, plus q . z.
//   values  per block b of a token row, x = s_b * code + z_b: the block's
//           scale is folded into the softmax weight (w * s_b times the
//           codes) and its zero into a per-block sum of w * z_b added once
//           at the end.
// Codes are widened to float in registers: a vector of L bytes becomes L
// lanes per code position of a byte (2 for int4, 4 for int2).

#if defined(LATHE_KERNELS_SIMD_KIVI_ATTENTION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef LATHE_KERNELS_SIMD_KIVI_ATTENTION_INL_H_
#undef LATHE_KERNELS_SIMD_KIVI_ATTENTION_INL_H_
#else
#define LATHE_KERNELS_SIMD_KIVI_ATTENTION_INL_H_
#endif

#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"
#include "runtime/formats/KvFormat.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

HWY_BEFORE_NAMESPACE();
namespace lathe::kernels::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

/// An f16 of the cache's scales and zeros as a float (the target's
/// conversion instruction where it has one).
HWY_INLINE float kiviHalf(const uint8_t *p) {
  _Float16 h;
  std::memcpy(&h, p, 2);
  return static_cast<float>(h);
}

/// The bytes [at, at + count) of codes widened to one u32 lane each. With
/// `overread` (the caller knows `lanes` bytes at `at` lie inside the array)
/// a whole vector is loaded and the lanes past count hold other bytes;
/// otherwise they read as zero and nothing past count is read.
HWY_INLINE hn::Vec<hn::Rebind<uint32_t, DF>> kiviBytes(const uint8_t *at, int64_t count,
                                                      int64_t lanes, bool overread = false) {
  const hn::Rebind<uint8_t, DF> d8;
  const hn::Rebind<uint32_t, DF> du;
  if (count >= lanes || overread)
    return hn::PromoteTo(du, hn::LoadU(d8, at));
  HWY_ALIGN uint8_t buffer[hn::MaxLanes(DF())] = {};
  std::memcpy(buffer, at, size_t(count));
  return hn::PromoteTo(du, hn::Load(d8, buffer));
}

/// Code j of each byte of a vector as floats.
template <int kBits>
HWY_INLINE hn::Vec<DF> kiviCodes(hn::Vec<hn::Rebind<uint32_t, DF>> bytes, int j) {
  const DF d;
  const hn::Rebind<uint32_t, DF> du;
  const hn::Rebind<int32_t, DF> di;
  const auto code =
      hn::And(hn::ShiftRightSame(bytes, j * kBits), hn::Set(du, (1u << kBits) - 1));
  return hn::ConvertTo(d, hn::BitCast(di, code));
}

template <int kBits> void attendKiviHeadsOf(const AttentionArgs &a) {
  constexpr int kPer = 8 / kBits; // codes a byte
  const DF d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const formats::KvFormat format = a.cache.format;
  const int64_t dim = a.headDim, width = a.cache.width, group = format.keyGroup;
  const int64_t block = format.block, blocks = dim / block;
  const int64_t headBytes = dim / kPer, blockCodeBytes = block / kPer;
  const int64_t chunks = (headBytes + lanes - 1) / lanes, planeSize = chunks * lanes;
  const size_t groupBytes = formats::kiviKeyGroupBytes(format, width);
  const size_t keyRowBytes = size_t(width / kPer);
  const size_t valueRowBytes = formats::kvRowBytes(format, width);
  const size_t valueBlockBytes = formats::kvBlockBytes(format);
  const int64_t dimVectors = (dim + lanes - 1) / lanes;
  const float scale = a.scoreScale();
  // Query planes, value planes, the window's value sum, block zero sums.
  auto buffers = hwy::AllocateAligned<float>(
      size_t(2 * kPer * planeSize + 2 * dimVectors * lanes + blocks));
  float *qPlanes = buffers.get(), *vPlanes = qPlanes + kPer * planeSize;
  float *windowSum = vPlanes + kPer * planeSize, *zeroSums = windowSum + dimVectors * lanes;
  float *scaled = zeroSums + blocks; // the query times a key group's scales
  // The planes' lanes past a head's bytes stay zero: they meet other bytes.
  std::fill_n(qPlanes, kPer * planeSize, 0.0f);
  const uint8_t *keys = static_cast<const uint8_t *>(a.cache.keys);
  const uint8_t *values = static_cast<const uint8_t *>(a.cache.values);

  a.forEachHead([&](const backend::VisibleRows &rows, float *s, int64_t first,
                    const float *qh, float *oh) {
    const int64_t len = rows.count();
    // Scores.
    int64_t planesOf = -1; // the key group the query planes were made for
    float qz = 0.0f;
    auto makePlanes = [&](int64_t keyGroup) {
      planesOf = keyGroup;
      const uint8_t *g = keys + size_t(keyGroup) * groupBytes;
      const auto *scales = reinterpret_cast<const hwy::float16_t *>(g) + first;
      const auto *zeros = reinterpret_cast<const hwy::float16_t *>(g) + width + first;
#if HWY_TARGET == HWY_EMU128 || HWY_TARGET == HWY_SCALAR
      // The portable targets' f16 promotion does not keep NaN (a poisoned
      // channel): convert one at a time.
      (void)scales;
      (void)zeros;
      double z = 0.0;
      for (int64_t c = 0; c < dim; ++c) {
        scaled[c] = qh[c] * kiviHalf(g + 2 * (first + c));
        z += double(qh[c]) * kiviHalf(g + 2 * (width + first + c));
      }
      qz = static_cast<float>(z);
#else
      auto z = hn::Zero(d);
      for (int64_t i = 0; i < dim; i += lanes) {
        // The head's scales and zeros are whole vectors except at its end.
        const auto qv = loadHead(d, qh, i, dim);
        hn::StoreU(hn::Mul(qv, loadHead(d, scales, i, dim)), d, scaled + i);
        z = hn::MulAdd(qv, loadHead(d, zeros, i, dim), z);
      }
      qz = hn::GetLane(hn::SumOfLanes(d, z));
#endif
      for (int64_t c = 0; c < dim; c += kPer)
        for (int j = 0; j < kPer; ++j)
          qPlanes[j * planeSize + c / kPer] = scaled[c + j];
    };
    // The dot of the query planes with the codes of a key row; whole
    // vectors are loaded except at the end of the array (the lanes past
    // the head's bytes meet zero planes).
    auto codesDot = [&](int64_t row, hn::Vec<DF> acc) {
      const uint8_t *codes = keys + size_t(planesOf) * groupBytes + size_t(width) * 4 +
                             size_t(row - planesOf * group) * keyRowBytes + size_t(first / kPer);
      // A whole vector past the head's bytes stays in the key array when
      // the quantized rows after this one hold at least a vector's bytes
      // (narrow rows: one next row may not).
      const bool overread = (a.cache.windowRow - row - 1) * int64_t(keyRowBytes) >= lanes;
      for (int64_t k = 0; k < chunks; ++k) {
        const auto bytes = kiviBytes(codes + k * lanes, headBytes - k * lanes, lanes, overread);
        for (int j = 0; j < kPer; ++j)
          acc = hn::MulAdd(hn::Load(d, qPlanes + j * planeSize + k * lanes),
                           kiviCodes<kBits>(bytes, j), acc);
      }
      return acc;
    };
    float maxScore = -std::numeric_limits<float>::infinity();
    // Rows of the group the planes are for: [planesOf * group, groupEnd).
    int64_t groupEnd = 0;
    auto inGroup = [&](int64_t row) { return row >= groupEnd - group && row < groupEnd; };
    for (int64_t p = 0; p < len;) {
      const int64_t row = rows[p];
      if (row < a.cache.windowRow && !inGroup(row)) {
        makePlanes(row / group);
        groupEnd = (planesOf + 1) * group;
      }
      // Four window rows: one reduction, as for an f32 cache.
      if (p + 4 <= len && row >= a.cache.windowRow && rows[p + 1] >= a.cache.windowRow &&
          rows[p + 2] >= a.cache.windowRow && rows[p + 3] >= a.cache.windowRow) {
        const auto windowKey = [&](int64_t r) {
          return a.cache.windowKeys + (r - a.cache.windowRow) * width + first;
        };
        scoresOf4(d, qh, windowKey(row), windowKey(rows[p + 1]), windowKey(rows[p + 2]),
                  windowKey(rows[p + 3]), dim, scale, s + p, maxScore);
        p += 4;
        continue;
      }
      // Four rows of the group the planes are for: one reduction.
      if (p + 4 <= len && row < a.cache.windowRow) {
        const int64_t r1 = rows[p + 1], r2 = rows[p + 2], r3 = rows[p + 3];
        if (inGroup(r1) && inGroup(r2) && inGroup(r3)) {
          HWY_ALIGN float sums[hn::MaxLanes(DF())];
          hn::Store(sumsOf4(d, codesDot(row, hn::Zero(d)), codesDot(r1, hn::Zero(d)),
                            codesDot(r2, hn::Zero(d)), codesDot(r3, hn::Zero(d))),
                    d, sums);
          for (int j = 0; j < 4; ++j) {
            s[p + j] = (sums[j] + qz) * scale;
            maxScore = std::max(maxScore, s[p + j]);
          }
          p += 4;
          continue;
        }
      }
      auto acc = hn::Zero(d);
      float extra = 0.0f;
      if (row >= a.cache.windowRow) {
        const float *k = a.cache.windowKeys + (row - a.cache.windowRow) * width + first;
        for (int64_t i = 0; i < dim; i += lanes)
          acc = hn::MulAdd(loadHead(d, qh, i, dim), loadHead(d, k, i, dim), acc);
      } else {
        acc = codesDot(row, acc);
        extra = qz;
      }
      s[p] = (hn::GetLane(hn::SumOfLanes(d, acc)) + extra) * scale;
      maxScore = std::max(maxScore, s[p]);
      ++p;
    }
    const float total = softmaxNumerators(d, s, len, maxScore);

    // Weighted values: the window's f32 rows, then per vector of a value
    // block's codes a pass over the quantized rows with the codes' planes
    // in registers; lanes past the block's codes gather other bytes and are
    // dropped.
    std::fill_n(vPlanes, kPer * planeSize + dimVectors * lanes + blocks, 0.0f);
    // Which kinds of rows the head sees (a prefill's all window rows).
    bool anyWindow = false, anyQuantized = false;
    for (int64_t p = 0; p < len; ++p)
      (rows[p] >= a.cache.windowRow ? anyWindow : anyQuantized) = true;
    // The window: up to four vectors of the head in registers per pass.
    for (int64_t i0 = 0; anyWindow && i0 < dim; i0 += 4 * lanes) {
      const int64_t vecs = std::min<int64_t>(4, (dim - i0 + lanes - 1) / lanes);
      auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
      for (int64_t p = 0; p < len; ++p) {
        const int64_t row = rows[p];
        if (row < a.cache.windowRow)
          continue;
        const float *v = a.cache.windowValues + (row - a.cache.windowRow) * width + first;
        const auto wp = hn::Set(d, s[p]);
        a0 = hn::MulAdd(wp, loadHead(d, v, i0, dim), a0);
        if (vecs > 1) a1 = hn::MulAdd(wp, loadHead(d, v, i0 + lanes, dim), a1);
        if (vecs > 2) a2 = hn::MulAdd(wp, loadHead(d, v, i0 + 2 * lanes, dim), a2);
        if (vecs > 3) a3 = hn::MulAdd(wp, loadHead(d, v, i0 + 3 * lanes, dim), a3);
      }
      const hn::Vec<DF> acc[4] = {a0, a1, a2, a3};
      for (int64_t j = 0; j < vecs; ++j)
        hn::Store(acc[j], d, windowSum + i0 + j * lanes);
    }
    const size_t headAt = size_t(first / block) * valueBlockBytes;
    for (int64_t b = 0; anyQuantized && b < blocks; ++b)
      for (int64_t o = 0; o < blockCodeBytes; o += lanes) {
        const int64_t count = std::min(lanes, blockCodeBytes - o);
        hn::Vec<DF> acc[kPer];
        for (int j = 0; j < kPer; ++j)
          acc[j] = hn::Zero(d);
        float zeros = 0.0f;
        for (int64_t p = 0; p < len; ++p) {
          const int64_t row = rows[p];
          if (row >= a.cache.windowRow)
            continue;
          const uint8_t *blk =
              values + size_t(row) * valueRowBytes + headAt + size_t(b) * valueBlockBytes;
          const auto ws = hn::Set(d, s[p] * kiviHalf(blk));
          zeros += s[p] * kiviHalf(blk + 2);
          // A whole vector stays in the value array when the rows after
          // this one hold at least a vector's bytes.
          const auto bytes = kiviBytes(
              blk + 4 + o, count, lanes,
              (a.cache.windowRow - row - 1) * int64_t(valueRowBytes) >= lanes);
          for (int j = 0; j < kPer; ++j)
            acc[j] = hn::MulAdd(ws, kiviCodes<kBits>(bytes, j), acc[j]);
        }
        HWY_ALIGN float sums[hn::MaxLanes(DF())];
        for (int j = 0; j < kPer; ++j) {
          hn::Store(acc[j], d, sums);
          std::copy_n(sums, count, vPlanes + j * planeSize + b * blockCodeBytes + o);
        }
        if (o == 0)
          zeroSums[b] = zeros;
      }
    const float inverse = 1.0f / total;
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t c = b * block; c < (b + 1) * block; ++c)
        oh[c] = (vPlanes[(c % kPer) * planeSize + c / kPer] + zeroSums[b] + windowSum[c]) *
                inverse;
  });
}

void attendKiviHeads(const AttentionArgs &a) {
  if (a.cache.format.kind == formats::KvKind::Int4)
    return attendKiviHeadsOf<4>(a);
  return attendKiviHeadsOf<2>(a);
}

} // namespace HWY_NAMESPACE
} // namespace lathe::kernels::simd
HWY_AFTER_NAMESPACE();

#endif // LATHE_KERNELS_SIMD_KIVI_ATTENTION_INL_H_
