// The store step of KvStore.h, compiled once per Highway target and picked
// at run time with HWY_DYNAMIC_DISPATCH.

#include "runtime/backends/cpu/kernels/HighwayTargets.h"

#include "runtime/backends/cpu/kernels/KvStore.h"
#include "runtime/formats/Bfp.h"
#include "runtime/formats/BitPacking.h"
#include "runtime/formats/IntGroup.h"
#include "runtime/formats/KvFormat.h"
#include "runtime/formats/Rounding.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/backends/cpu/kernels/KvStore.cpp"
#include "hwy/foreach_target.h" // IWYU pragma: keep

#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace lathe::kernels::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DD = hn::ScalableTag<double>;

/// roundHalfEven (formats/Rounding.h) of each lane, clamped to
/// [-qmax, qmax], exactly: the magnitude is clamped first (any value past
/// qmax rounds to at least qmax), its truncation and fraction are exact,
/// and a tie goes up only from an odd whole part.
HWY_INLINE hn::Vec<DD> roundClamped(DD d, hn::Vec<DD> v, double qmax) {
  const auto half = hn::Set(d, 0.5);
  const auto a = hn::Min(hn::Abs(v), hn::Set(d, qmax + 1.0));
  const auto whole = hn::Trunc(a);
  const auto frac = hn::Sub(a, whole);
  const auto halfWhole = hn::Trunc(hn::Mul(whole, half));
  const auto odd = hn::Ne(hn::Add(halfWhole, halfWhole), whole);
  const auto up = hn::Or(hn::Gt(frac, half), hn::And(hn::Eq(frac, half), odd));
  const auto rounded = hn::Min(hn::IfThenElse(up, hn::Add(whole, hn::Set(d, 1.0)), whole),
                               hn::Set(d, qmax));
  return hn::CopySign(rounded, v);
}

/// codes[i] = clamp(roundHalfEven(x[i] * multiplier or x[i] / divisor)) as
/// int8, for n values: the codec's arithmetic in double, lane by lane.
template <bool kDivide>
HWY_INLINE void quantizeCodes(const float *x, int64_t n, double factor, double qmax,
                              int8_t *codes) {
  const DD d;
  const hn::Rebind<float, DD> df;
  const hn::Rebind<int32_t, DD> di;
  const hn::Rebind<int8_t, DD> d8;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto f = hn::Set(d, factor);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto v = hn::PromoteTo(d, hn::LoadU(df, x + i));
    const auto q = roundClamped(d, kDivide ? hn::Div(v, f) : hn::Mul(v, f), qmax);
    hn::StoreU(hn::DemoteTo(d8, hn::DemoteTo(di, q)), d8, codes + i);
  }
  for (; i < n; ++i) {
    const double v = kDivide ? double(x[i]) / factor : double(x[i]) * factor;
    codes[i] = static_cast<int8_t>(std::clamp(formats::roundHalfEven(v), -qmax, qmax));
  }
}

/// One block of `format` from n finite values at x into out (kvBlockBytes).
HWY_INLINE void encodeBlock(formats::KvFormat format, const float *x, int64_t n, uint8_t *out,
                            int8_t *scratch) {
  const size_t bytes = formats::kvBlockBytes(format);
  std::span<const float> block(x, size_t(n));
  if (format.kind == formats::KvKind::Int8) {
    // intGroupScale and the codes encodeIntGroup writes; a scale whose 127
    // multiple overflows is lowered by an ulp, as encodeKvRow does.
    const float scale = formats::intGroupScale(8, true, block).scale;
    std::span<uint8_t> stored(out, bytes);
    formats::storeFloat32(stored, scale);
    int8_t *codes = reinterpret_cast<int8_t *>(out + 4);
    if (scale == 0.0f)
      std::fill_n(codes, n, int8_t{0});
    else
      quantizeCodes<true>(x, n, double(scale), 127.0, codes);
    if (!std::isfinite(127.0f * scale))
      formats::storeFloat32(stored, std::nextafter(scale, 0.0f));
    return;
  }
  // encodeBfpBlock: the shared exponent, then each value scaled by the
  // exact power of two 2^-(e - (m - 2)).
  const int bits = formats::kvCodeBits(format.kind);
  const int exponent = formats::bfpSharedExponent(block);
  out[0] = static_cast<uint8_t>(exponent + formats::kBfpExponentBias);
  const double inverseStep = std::ldexp(1.0, -(exponent - (bits - 2)));
  const double qmax = formats::bfpMaxMantissa(bits);
  if (bits == 8) {
    quantizeCodes<false>(x, n, inverseStep, qmax, reinterpret_cast<int8_t *>(out + 1));
    return;
  }
  quantizeCodes<false>(x, n, inverseStep, qmax, scratch);
  for (int64_t j = 0; j < n / 2; ++j)
    out[1 + j] = static_cast<uint8_t>((scratch[2 * j] & 0x0F) | (scratch[2 * j + 1] << 4));
}

void StoreKVImpl(const float *k, const float *v, const int32_t *rows, int64_t count,
                 const KVLayerView &cache) {
  const formats::KvFormat format = cache.format;
  const int64_t n = format.block;
  const size_t rowBytes = formats::kvRowBytes(format, cache.width);
  const size_t blockBytes = formats::kvBlockBytes(format);
  HWY_ALIGN int8_t scratch[256];
  for (int64_t t = 0; t < count; ++t)
    for (const auto &[x, base] : {std::pair{k + t * cache.width, cache.keys},
                                  std::pair{v + t * cache.width, cache.values}}) {
      uint8_t *row = static_cast<uint8_t *>(base) + size_t(rows[t]) * rowBytes;
      for (int64_t b = 0; b * n < cache.width; ++b) {
        const float *block = x + b * n;
        const bool finite = std::all_of(block, block + n, [](float f) { return std::isfinite(f); });
        // Poisoned blocks, and bfp4 blocks past the scratch, go through the
        // codec itself.
        if (!finite || (format.kind == formats::KvKind::Bfp4 && n > 256))
          formats::encodeKvRow({format.kind, format.block}, {block, size_t(n)},
                               row + size_t(b) * blockBytes);
        else
          encodeBlock(format, block, n, row + size_t(b) * blockBytes, scratch);
      }
    }
}

} // namespace HWY_NAMESPACE
} // namespace lathe::kernels::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lathe::kernels::simd {

HWY_EXPORT(StoreKVImpl);

void storeKV(const float *k, const float *v, std::span<const int32_t> rows, KVLayerView cache) {
  // Windowed caches (KIVI's, int8/bfp with a window) store f32 window
  // rows; the cache quantizes whole blocks.
  if (!cache.format.compressed() || cache.format.windowed())
    return kernels::storeKV(k, v, rows, cache);
  HWY_DYNAMIC_DISPATCH(StoreKVImpl)(k, v, rows.data(), static_cast<int64_t>(rows.size()), cache);
}

} // namespace lathe::kernels::simd
#endif // HWY_ONCE
