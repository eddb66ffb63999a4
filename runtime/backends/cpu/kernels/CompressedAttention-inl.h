// The compressed-cache half of the attention kernel (Attention.cpp, which
// includes it once per Highway target after its own helpers: DF, loadHead,
// sumsOf4, scoresOf4, scores, softmaxNumerators and AttentionArgs are its). Caches of
// int8, bfp8 or bfp4 rows (runtime/formats/KvFormat.h) go through the same
// three passes as plain ones, reading rows in place: codes are widened to
// float in registers, a block's partial dot product with the query is
// multiplied by the block's scale once, and in the value pass the scale is
// folded into the position's softmax weight. Blocks that do not hold whole
// vectors of at most 8 lanes (odd sizes given with block=N) are decoded a
// head's slice at a time into small buffers instead. Nothing beyond a
// head's slice of a row is ever decompressed.
//
// A cache with a window (format.window > 0, kv/PagedKVCache.h) holds its
// newest rows in f32 from cache.windowRow on. A head's positions before
// its first window row (the sealed prefix: nearly all of a long sequence)
// go through the passes of a cache without a window, unchanged; from there
// on, a second instantiation checks once per four keys and once per value
// row which rows are f32.

#ifndef LATHE_KERNELS_SIMD_COMPRESSED_ATTENTION_ONCE_
#define LATHE_KERNELS_SIMD_COMPRESSED_ATTENTION_ONCE_
#include <array>
#include <cstdint>
namespace lathe::kernels::simd::detail {
/// The two 4-bit two's-complement mantissas of a bfp4 byte, low nibble
/// first, as the int8 bytes of a little-endian uint16.
constexpr std::array<uint16_t, 256> makeNibblePairs() {
  std::array<uint16_t, 256> pairs{};
  for (int b = 0; b < 256; ++b) {
    const int lo = (b & 0x0F) >= 8 ? (b & 0x0F) - 16 : (b & 0x0F);
    const int hi = (b >> 4) >= 8 ? (b >> 4) - 16 : (b >> 4);
    pairs[b] = static_cast<uint16_t>(static_cast<uint8_t>(lo) |
                                     (static_cast<uint16_t>(static_cast<uint8_t>(hi)) << 8));
  }
  return pairs;
}
inline constexpr std::array<uint16_t, 256> kNibblePairs = makeNibblePairs();
} // namespace lathe::kernels::simd::detail
#endif

#if defined(LATHE_KERNELS_SIMD_COMPRESSED_ATTENTION_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef LATHE_KERNELS_SIMD_COMPRESSED_ATTENTION_INL_H_
#undef LATHE_KERNELS_SIMD_COMPRESSED_ATTENTION_INL_H_
#else
#define LATHE_KERNELS_SIMD_COMPRESSED_ATTENTION_INL_H_
#endif

#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"
#include "runtime/backends/cpu/kernels/Pow2Table.h"
#include "runtime/formats/KvFormat.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

HWY_BEFORE_NAMESPACE();
namespace lathe::kernels::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

/// The f32 window rows of a windowed cache (rows from cache.windowRow on);
/// without a window, no row is in it.
struct WindowRows {
  explicit WindowRows(const KVLayerView &cache)
      : keys_(cache.windowKeys), values_(cache.windowValues), width_(cache.width),
        first_(cache.format.window > 0 ? cache.windowRow
                                       : std::numeric_limits<int64_t>::max()) {}
  bool has(int64_t row) const { return row >= first_; }
  /// The head's lanes (from `first`) of window row `row`'s key / value.
  const float *key(int64_t row, int64_t first) const {
    return keys_ + (row - first_) * width_ + first;
  }
  const float *value(int64_t row, int64_t first) const {
    return values_ + (row - first_) * width_ + first;
  }

private:
  const float *keys_, *values_;
  int64_t width_, first_;
};

/// q . k over a head of `dim` f32 values.
HWY_INLINE float windowDot(DF d, const float *q, const float *k, int64_t dim) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  auto acc = hn::Zero(d);
  for (int64_t i = 0; i < dim; i += lanes)
    acc = hn::MulAdd(loadHead(d, q, i, dim), loadHead(d, k, i, dim), acc);
  return hn::GetLane(hn::SumOfLanes(d, acc));
}

/// out[0..dim) += sum_p w[p] * v_p * inverse over the window's value rows
/// among positions [p0, len) (the value pass over the compressed rows
/// skipped them): up to four vectors of the head in registers per pass.
HWY_INLINE void addWindowValues(DF d, const float *w, const WindowRows &window,
                                const backend::VisibleRows &rows, int64_t first, int64_t dim,
                                int64_t p0, int64_t len, float inverse, float *out) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t i0 = 0; i0 < dim; i0 += 4 * lanes) {
    const int64_t vecs = std::min<int64_t>(4, (dim - i0 + lanes - 1) / lanes);
    auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
    for (int64_t p = p0; p < len; ++p) {
      if (!window.has(rows[p]))
        continue;
      const float *v = window.value(rows[p], first);
      const auto wp = hn::Set(d, w[p]);
      a0 = hn::MulAdd(wp, loadHead(d, v, i0, dim), a0);
      if (vecs > 1) a1 = hn::MulAdd(wp, loadHead(d, v, i0 + lanes, dim), a1);
      if (vecs > 2) a2 = hn::MulAdd(wp, loadHead(d, v, i0 + 2 * lanes, dim), a2);
      if (vecs > 3) a3 = hn::MulAdd(wp, loadHead(d, v, i0 + 3 * lanes, dim), a3);
    }
    const hn::Vec<DF> acc[4] = {a0, a1, a2, a3};
    const auto vi = hn::Set(d, inverse);
    for (int64_t j = 0; j < vecs; ++j) {
      const int64_t i = i0 + j * lanes;
      const auto sum = hn::MulAdd(acc[j], vi, loadHead(d, out, i, dim));
      if (i + lanes <= dim)
        hn::StoreU(sum, d, out + i);
      else
        hn::BlendedStore(sum, hn::FirstN(d, static_cast<size_t>(dim - i)), d, out + i);
    }
  }
}

/// One layer's compressed key or value array, read a head's slice of a row
/// at a time.
class CompressedRows {
public:
  CompressedRows(const void *base, formats::KvFormat format, int64_t width)
      : base_(static_cast<const uint8_t *>(base)), format_(format),
        rowBytes_(formats::kvRowBytes(format, width)), blockBytes_(formats::kvBlockBytes(format)),
        headerBytes_(formats::kvBlockHeaderBytes(format)) {}

  /// Values [first, first + dim) of row `row` into out (dim floats; first
  /// and dim whole blocks). `codes` holds dim bytes of scratch for bfp4.
  HWY_INLINE void decode(DF d, int64_t row, int64_t first, int64_t dim, int8_t *codes,
                         float *out) const {
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
    const hn::Rebind<int8_t, DF> d8;
    const hn::RebindToSigned<DF> di;
    const int64_t n = format_.block;
    const uint8_t *block = base_ + size_t(row) * rowBytes_ + size_t(first / n) * blockBytes_;
    for (int64_t b0 = 0; b0 < dim; b0 += n, block += blockBytes_) {
      const float scale = blockScale(block);
      const uint8_t *stored = block + headerBytes_;
      const int8_t *q = reinterpret_cast<const int8_t *>(stored);
      if (format_.kind == formats::KvKind::Bfp4) {
        // Two mantissas a byte, widened through a table: one 16-bit store a
        // byte instead of shifts and sign extension per value.
        for (int64_t j = 0; j < n / 2; ++j)
          std::memcpy(codes + 2 * j, &detail::kNibblePairs[stored[j]], 2);
        q = codes;
      }
      const auto vs = hn::Set(d, scale);
      int64_t i = 0;
      for (; i + lanes <= n; i += lanes)
        hn::StoreU(hn::Mul(hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, q + i))), vs), d,
                   out + b0 + i);
      for (; i < n; ++i)
        out[b0 + i] = static_cast<float>(q[i]) * scale;
    }
  }

private:
  /// The block's scale: int8's stored float32, bfp's 2^(e - (m - 2)) (NaN
  /// for the reserved exponent code 255), as formats/Bfp.h defines them.
  HWY_INLINE float blockScale(const uint8_t *block) const {
    switch (format_.kind) {
    case formats::KvKind::Int8: {
      float scale;
      std::memcpy(&scale, block, 4); // little-endian float32, as the host
      return scale;
    }
    case formats::KvKind::Bfp8: return Pow2Table<-127 - 6>::kValues[block[0]];
    default: return Pow2Table<-127 - 2>::kValues[block[0]];
    }
  }

  const uint8_t *base_;
  formats::KvFormat format_;
  size_t rowBytes_, blockBytes_, headerBytes_;
};

/// out[0..dim) = sum_p w[p] * v_p / total over decoded value rows, summed in
/// acc (dim floats) since the head's slice is decoded once per position.
HWY_INLINE void weightedDecodedValues(DF d, const float *w, const CompressedRows &values,
                                      const WindowRows &window,
                                      const backend::VisibleRows &rows, int64_t first,
                                      int64_t dim, int64_t len, float total, int8_t *codes,
                                      float *decoded, float *acc, float *out) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  std::fill_n(acc, dim, 0.0f);
  for (int64_t p = 0; p < len; ++p) {
    const float *v = decoded;
    if (window.has(rows[p]))
      v = window.value(rows[p], first);
    else
      values.decode(d, rows[p], first, dim, codes, decoded);
    const auto wp = hn::Set(d, w[p]);
    for (int64_t i = 0; i < dim; i += lanes) {
      const auto sum = hn::MulAdd(wp, loadHead(d, v, i, dim), loadHead(d, acc, i, dim));
      if (i + lanes <= dim)
        hn::StoreU(sum, d, acc + i);
      else
        hn::BlendedStore(sum, hn::FirstN(d, static_cast<size_t>(dim - i)), d, acc + i);
    }
  }
  const auto inverse = hn::Set(d, 1.0f / total);
  for (int64_t i = 0; i < dim; i += lanes) {
    const auto r = hn::Mul(loadHead(d, acc, i, dim), inverse);
    if (i + lanes <= dim)
      hn::StoreU(r, d, out + i);
    else
      hn::BlendedStore(r, hn::FirstN(d, static_cast<size_t>(dim - i)), d, out + i);
  }
}

/// The in-place path reads full vectors where a block holds whole ones,
/// else vectors of at most 8 floats, so that the default blocks (16 values,
/// int8's head_dim 48) are read in place on every target.
using DP = hn::CappedTag<float, 8>;

/// A layer's compressed keys or values read in place: codes are widened to
/// float in registers and each block's scale multiplies once (a block's
/// partial dot product, or the softmax weight of a value row). bfp4 bytes
/// hold two codes: L/2 bytes give a vector of the even values of L (low
/// nibbles) in its lower half and the odd ones (high nibbles) in its upper
/// half, so queries are read de-interleaved that way (evens of each L
/// values, then odds) and value sums come out that way.
class PackedHeads {
public:
  PackedHeads(const void *base, formats::KvFormat format, int64_t width, int64_t first)
      : base_(static_cast<const uint8_t *>(base)), kind_(format.kind), n_(format.block),
        rowBytes_(formats::kvRowBytes(format, width)),
        blockBytes_(formats::kvBlockBytes(format)),
        headerBytes_(formats::kvBlockHeaderBytes(format)),
        firstBytes_(size_t(first / format.block) * formats::kvBlockBytes(format)) {}

  /// Whether blocks hold whole vectors of `lanes`.
  static bool fits(formats::KvFormat format, size_t lanes) {
    return format.block % int64_t(lanes) == 0;
  }
  bool nibbles() const { return kind_ == formats::KvKind::Bfp4; }
  int64_t block() const { return n_; }
  size_t blockBytes() const { return blockBytes_; }

  /// The head's first block in row `row`.
  const uint8_t *head(int32_t row) const {
    return base_ + size_t(row) * rowBytes_ + firstBytes_;
  }
  /// The scale of a block: int8's stored float32, bfp's 2^(e - (m - 2))
  /// (NaN for the reserved exponent 255), as formats/ defines them.
  HWY_INLINE float scale(const uint8_t *block) const {
    if (kind_ == formats::KvKind::Int8) {
      float s;
      std::memcpy(&s, block, 4); // little-endian float32, as the host
      return s;
    }
    return kind_ == formats::KvKind::Bfp8 ? Pow2Table<-127 - 6>::kValues[block[0]]
                                          : Pow2Table<-127 - 2>::kValues[block[0]];
  }
  const uint8_t *codes(const uint8_t *block) const { return block + headerBytes_; }

private:
  const uint8_t *base_;
  formats::KvKind kind_;
  int64_t n_;
  size_t rowBytes_, blockBytes_, headerBytes_, firstBytes_;
};

/// L int8 codes as floats.
template <class D> HWY_INLINE hn::Vec<D> widen(D d, const uint8_t *codes) {
  const hn::Rebind<int8_t, D> d8;
  return hn::ConvertTo(d, hn::PromoteTo(hn::RebindToSigned<D>(),
                                        hn::LoadU(d8, reinterpret_cast<const int8_t *>(codes))));
}

/// The 4-bit two's-complement codes of L/2 bytes as floats: the low
/// nibbles (even values) in the lower half, the high nibbles (odd values)
/// in the upper half. Each byte, sign-extended into both halves, is shifted
/// left so that its nibble tops the lane, then arithmetically right by 28.
template <class D> HWY_INLINE hn::Vec<D> widenNibbles(D d, const uint8_t *bytes) {
  const hn::RebindToSigned<D> di;
  const hn::Half<decltype(di)> dh;
  const hn::Rebind<int8_t, decltype(dh)> d8;
  const auto half = hn::PromoteTo(dh, hn::LoadU(d8, reinterpret_cast<const int8_t *>(bytes)));
  const auto shift = hn::Combine(di, hn::Set(dh, 24), hn::Set(dh, 28));
  return hn::ConvertTo(d, hn::ShiftRight<28>(hn::Shl(hn::Combine(di, half, half), shift)));
}

/// L codes of a block from `codes` (bfp4: L/2 bytes) as floats.
template <class D> HWY_INLINE hn::Vec<D> widenCodes(D d, bool nibbles, const uint8_t *codes) {
  return nibbles ? widenNibbles(d, codes) : widen(d, codes);
}

/// The unscaled dot product of one block's codes with q (de-interleaved
/// for bfp4), added to t.
template <class D>
HWY_INLINE hn::Vec<D> blockDot(D d, const PackedHeads &kv, const float *q, const uint8_t *codes,
                               hn::Vec<D> t) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  if (kv.nibbles()) {
    for (int64_t i = 0; i < kv.block(); i += lanes)
      t = hn::MulAdd(hn::LoadU(d, q + i), widenNibbles(d, codes + i / 2), t);
    return t;
  }
  for (int64_t i = 0; i < kv.block(); i += lanes)
    t = hn::MulAdd(hn::LoadU(d, q + i), widen(d, codes + i), t);
  return t;
}

/// scores[p] = (q . k_p) * scale for positions [p0, len) over keys read in
/// place, four rows a pass sharing one reduction; returns their maximum.
/// kWindow: rows in `window` are f32 keys, dotted with qPlain (q as
/// stored: bfp4's q is de-interleaved), four window rows sharing a
/// reduction, a pass of four mixing both kinds one at a time.
template <bool kWindow, class D>
HWY_INLINE float packedScores(D d, const float *q, const float *qPlain, const PackedHeads &keys,
                              const WindowRows &window, const backend::VisibleRows &rows,
                              int64_t first, int64_t dim, int64_t p0, int64_t len, float scale,
                              float *s) {
  const int64_t n = keys.block();
  const size_t bytes = keys.blockBytes();
  float maxScore = -std::numeric_limits<float>::infinity();
  // Position p's score on its own.
  auto one = [&](int64_t p) {
    if (kWindow && window.has(rows[p]))
      return windowDot(DF(), qPlain, window.key(rows[p], first), dim) * scale;
    const uint8_t *k = keys.head(rows[p]);
    auto a = hn::Zero(d);
    for (int64_t b = 0; b < dim; b += n, k += bytes)
      a = hn::MulAdd(blockDot(d, keys, q + b, keys.codes(k), hn::Zero(d)),
                     hn::Set(d, keys.scale(k)), a);
    return hn::GetLane(hn::SumOfLanes(d, a)) * scale;
  };
  // Whether positions [p, p + 4) hold a window row, scoring them if so:
  // four window rows share one reduction (a prefill's are all window
  // rows), a mix goes one at a time.
  auto windowIn4 = [&](int64_t p) {
    if (!kWindow)
      return false;
    const int inWindow = int(window.has(rows[p])) + int(window.has(rows[p + 1])) +
                         int(window.has(rows[p + 2])) + int(window.has(rows[p + 3]));
    if (inWindow == 0)
      return false;
    if (inWindow == 4) {
      scoresOf4(DF(), qPlain, window.key(rows[p], first), window.key(rows[p + 1], first),
                window.key(rows[p + 2], first), window.key(rows[p + 3], first), dim, scale,
                s + p, maxScore);
      return true;
    }
    for (int j = 0; j < 4; ++j) {
      s[p + j] = one(p + j);
      maxScore = std::max(maxScore, s[p + j]);
    }
    return true;
  };
  int64_t p = p0;
  // One block per head (int8): its scale multiplies the reduced sum.
  if (n == dim) {
    for (; p + 4 <= len; p += 4) {
      if (windowIn4(p))
        continue;
      const uint8_t *k0 = keys.head(rows[p]), *k1 = keys.head(rows[p + 1]);
      const uint8_t *k2 = keys.head(rows[p + 2]), *k3 = keys.head(rows[p + 3]);
      HWY_ALIGN float sums[hn::MaxLanes(D())];
      hn::Store(sumsOf4(d, blockDot(d, keys, q, keys.codes(k0), hn::Zero(d)),
                        blockDot(d, keys, q, keys.codes(k1), hn::Zero(d)),
                        blockDot(d, keys, q, keys.codes(k2), hn::Zero(d)),
                        blockDot(d, keys, q, keys.codes(k3), hn::Zero(d))),
                d, sums);
      const uint8_t *k[4] = {k0, k1, k2, k3};
      for (int j = 0; j < 4; ++j) {
        s[p + j] = sums[j] * keys.scale(k[j]) * scale;
        maxScore = std::max(maxScore, s[p + j]);
      }
    }
  }
  for (; p + 4 <= len; p += 4) {
    if (windowIn4(p))
      continue;
    const uint8_t *k0 = keys.head(rows[p]), *k1 = keys.head(rows[p + 1]);
    const uint8_t *k2 = keys.head(rows[p + 2]), *k3 = keys.head(rows[p + 3]);
    auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
    for (int64_t b = 0; b < dim; b += n, k0 += bytes, k1 += bytes, k2 += bytes, k3 += bytes) {
      a0 = hn::MulAdd(blockDot(d, keys, q + b, keys.codes(k0), hn::Zero(d)),
                      hn::Set(d, keys.scale(k0)), a0);
      a1 = hn::MulAdd(blockDot(d, keys, q + b, keys.codes(k1), hn::Zero(d)),
                      hn::Set(d, keys.scale(k1)), a1);
      a2 = hn::MulAdd(blockDot(d, keys, q + b, keys.codes(k2), hn::Zero(d)),
                      hn::Set(d, keys.scale(k2)), a2);
      a3 = hn::MulAdd(blockDot(d, keys, q + b, keys.codes(k3), hn::Zero(d)),
                      hn::Set(d, keys.scale(k3)), a3);
    }
    HWY_ALIGN float sums[hn::MaxLanes(D())];
    hn::Store(sumsOf4(d, a0, a1, a2, a3), d, sums);
    for (int j = 0; j < 4; ++j) {
      s[p + j] = sums[j] * scale;
      maxScore = std::max(maxScore, s[p + j]);
    }
  }
  for (; p < len; ++p) {
    s[p] = one(p);
    maxScore = std::max(maxScore, s[p]);
  }
  return maxScore;
}

/// out[0..dim) = sum_p w[p] * v_p / total over values read in place: up to
/// four vectors of the head per pass over the positions, each block's scale
/// folded into the position's weight. bfp4 sums come out de-interleaved
/// and are put back in order as they are stored. kWindow: positions from
/// `packed` on may be rows in `window`, which are skipped here and added
/// from f32 after (positions before `packed` are not checked).
template <bool kWindow, class D>
HWY_INLINE void packedValues(D d, const float *w, const PackedHeads &values,
                             const WindowRows &window, const backend::VisibleRows &rows,
                             int64_t first, int64_t dim, int64_t packed, int64_t len, float total,
                             float *out) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const int64_t n = values.block();
  const size_t bytes = values.blockBytes();
  const float inverse = 1.0f / total;
  for (int64_t i0 = 0; i0 < dim; i0 += 4 * lanes) {
    const int64_t vecs = std::min<int64_t>(4, (dim - i0) / lanes);
    // Where vector j's block starts in a row, and its codes in the block
    // (bfp4: L values in L/2 bytes): worked out once, not per position.
    size_t blockAt[4] = {}, codesAt[4] = {};
    for (int64_t j = 0; j < vecs; ++j) {
      const int64_t i = i0 + j * lanes;
      blockAt[j] = size_t(i / n) * bytes;
      codesAt[j] = size_t(values.nibbles() ? (i % n) / 2 : i % n);
    }
    hn::Vec<D> acc[4] = {hn::Zero(d), hn::Zero(d), hn::Zero(d), hn::Zero(d)};
    const bool nibbles = values.nibbles();
    auto add = [&](int64_t p) {
      const uint8_t *head = values.head(rows[p]);
      // One scale load and weight per block, not per vector (int8's block
      // is the whole head).
      auto wp = hn::Set(d, w[p] * values.scale(head + blockAt[0]));
      for (int64_t j = 0; j < vecs; ++j) {
        const uint8_t *block = head + blockAt[j];
        if (j > 0 && blockAt[j] != blockAt[j - 1])
          wp = hn::Set(d, w[p] * values.scale(block));
        acc[j] = hn::MulAdd(wp, widenCodes(d, nibbles, values.codes(block) + codesAt[j]),
                            acc[j]);
      }
    };
    int64_t p = 0;
    for (; p < packed; ++p)
      add(p);
    for (; kWindow && p < len; ++p)
      if (!window.has(rows[p]))
        add(p);
    HWY_ALIGN float sums[4 * hn::MaxLanes(D())];
    for (int64_t j = 0; j < vecs; ++j)
      hn::Store(hn::Mul(acc[j], hn::Set(d, inverse)), d, sums + j * lanes);
    if (nibbles) {
      for (int64_t j = 0; j < vecs; ++j)
        for (int64_t k = 0; k < lanes / 2; ++k) {
          out[i0 + j * lanes + 2 * k] = sums[j * lanes + k];
          out[i0 + j * lanes + 2 * k + 1] = sums[j * lanes + lanes / 2 + k];
        }
    } else {
      std::copy_n(sums, vecs * lanes, out + i0);
    }
  }
  if (kWindow)
    addWindowValues(DF(), w, window, rows, first, dim, packed, len, inverse, out);
}

/// Compressed caches whose blocks hold whole vectors of D: read in place.
template <bool kWindow, class D> void attendPackedHeads(const AttentionArgs &a) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const float scale = a.scoreScale();
  const bool nibbles = a.cache.format.kind == formats::KvKind::Bfp4;
  // The de-interleaved query of bfp4 (allocated only for it).
  auto permuted = hwy::AllocateAligned<float>(nibbles ? static_cast<size_t>(a.headDim) : 1);
  const WindowRows window(a.cache);
  a.forEachHead([&](const backend::VisibleRows &rows, float *s, int64_t first,
                    const float *qh, float *oh) {
    const int64_t len = rows.count();
    const float *qPlain = qh;
    if (nibbles) {
      // Evens then odds of each L values, as the nibbles come out.
      for (int64_t c = 0; c < a.headDim; c += lanes)
        for (int64_t k = 0; k < lanes / 2; ++k) {
          permuted[c + k] = qh[c + 2 * k];
          permuted[c + lanes / 2 + k] = qh[c + 2 * k + 1];
        }
      qh = permuted.get();
    }
    const PackedHeads keys(a.cache.keys, a.cache.format, a.cache.width, first);
    const PackedHeads values(a.cache.values, a.cache.format, a.cache.width, first);
    // The positions before the first window row (all of them without a
    // window) go through the passes that check no row.
    int64_t packed = len;
    if (kWindow) {
      packed = 0;
      while (packed < len && !window.has(rows[packed]))
        ++packed;
    }
    float maxScore = packedScores<false>(d, qh, qPlain, keys, window, rows, first, a.headDim, 0,
                                         packed, scale, s);
    if (kWindow)
      maxScore = std::max(maxScore, packedScores<true>(d, qh, qPlain, keys, window, rows, first,
                                                       a.headDim, packed, len, scale, s));
    const float total = softmaxNumerators(DF(), s, len, maxScore);
    packedValues<kWindow>(d, s, values, window, rows, first, a.headDim, packed, len, total, oh);
  });
}

void attendCompressedHeads(const AttentionArgs &a) {
  const bool windowed = a.cache.format.window > 0;
  if (PackedHeads::fits(a.cache.format, hn::Lanes(DF())))
    return windowed ? attendPackedHeads<true, DF>(a) : attendPackedHeads<false, DF>(a);
  if (PackedHeads::fits(a.cache.format, hn::Lanes(DP())))
    return windowed ? attendPackedHeads<true, DP>(a) : attendPackedHeads<false, DP>(a);
  const DF d;
  const WindowRows window(a.cache);
  const CompressedRows keys(a.cache.keys, a.cache.format, a.cache.width);
  const CompressedRows values(a.cache.values, a.cache.format, a.cache.width);
  const float scale = a.scoreScale();
  // Four decoded keys, a decoded value, the value accumulator, bfp4 codes.
  const size_t dim = static_cast<size_t>(a.headDim);
  auto buffers = hwy::AllocateAligned<float>(6 * dim);
  auto codes = hwy::AllocateAligned<int8_t>(dim);
  float *decodedKeys = buffers.get(), *decoded = decodedKeys + 4 * dim, *acc = decoded + dim;
  a.forEachHead([&](const backend::VisibleRows &rows, float *s, int64_t first,
                    const float *qh, float *oh) {
    const int64_t len = rows.count();
    const float maxScore = scores(
        d, qh,
        [&](int64_t p, int slot) {
          if (window.has(rows[p]))
            return window.key(rows[p], first);
          float *k = decodedKeys + size_t(slot) * dim;
          keys.decode(d, rows[p], first, a.headDim, codes.get(), k);
          return static_cast<const float *>(k);
        },
        a.headDim, len, scale, s);
    const float total = softmaxNumerators(d, s, len, maxScore);
    weightedDecodedValues(d, s, values, window, rows, first, a.headDim, len, total,
                          codes.get(), decoded, acc, oh);
  });
}

} // namespace HWY_NAMESPACE
} // namespace lathe::kernels::simd
HWY_AFTER_NAMESPACE();

#endif // LATHE_KERNELS_SIMD_COMPRESSED_ATTENTION_INL_H_
