// The panel kernel of PanelMatmul.h. Repacking is plain C++; the kernel
// exists for Highway's AVX3_DL target (AVX-512 VNNI) only and is picked at
// run time with HWY_DYNAMIC_DISPATCH; on other targets panelsSupported() is
// false and callers keep the row kernels.
//
// Per block of a panel, with two panels per tile sharing each activation
// broadcast: one vpdpbusd per group of four columns (two chains per panel so
// that dot products overlap), then, for all 16 rows at once, the offset
// correction, one conversion and scale * activation scale folded into the
// float accumulator. 4-bit codes need one AND per group: the high nibbles
// are multiplied in place (16 u) and the chain's sum is shifted back, which
// is exact because every product is a multiple of 16.

#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL 1
#endif
#include "runtime/backends/cpu/kernels/HighwayTargets.h"

#include "runtime/backends/cpu/kernels/PanelMatmul.h"

#include "runtime/formats/RowCodec.h"
#include "runtime/backends/cpu/kernels/IntCodes.h"
#include "runtime/backends/cpu/kernels/Pow2Table.h"
#include "runtime/support/HugePages.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>

#ifndef LATHE_KERNELS_SIMD_PANEL_MATMUL_DETAIL_
#define LATHE_KERNELS_SIMD_PANEL_MATMUL_DETAIL_
namespace lathe::kernels::simd::detail {
struct PanelArgs {
  const Int8Activations *x;
  const PanelWeights *w;
  float *y;
  int64_t p0, p1;
  IntCodes kind;
};
} // namespace lathe::kernels::simd::detail
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/backends/cpu/kernels/PanelMatmul.cpp"
#include "hwy/foreach_target.h" // IWYU pragma: keep

#include "hwy/highway.h"

#if HWY_TARGET == HWY_AVX3_DL
HWY_PUSH_ATTRIBUTES(HWY_TARGET_STR ",avx512vnni");
#else
HWY_BEFORE_NAMESPACE();
#endif
namespace lathe::kernels::simd {
namespace HWY_NAMESPACE {
using detail::IntCodes;
using detail::PanelArgs;

#if HWY_TARGET == HWY_AVX3_DL

using detail::kFp4Bytes;

/// Block scales stored as exponent bytes e, scale = 2^(e - 127 - kShift)
/// (BFP, MX): 16 of them as floats. Normal results are built directly;
/// subnormal ones and the NaN code 255 come from the exact table.
template <int kShift> HWY_INLINE __m512 exponentScales(const uint8_t *p) {
  const __m512i e = _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i *>(p)));
  __m512 scales =
      _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(kShift)), 23));
  const __mmask16 special = _mm512_cmple_epi32_mask(e, _mm512_set1_epi32(kShift)) |
                            _mm512_cmpeq_epi32_mask(e, _mm512_set1_epi32(255));
  if (special)
    scales = _mm512_mask_i32gather_ps(scales, special, e,
                                      Pow2Table<-127 - kShift>::kValues.data(), 4);
  return scales;
}

/// Blocks per line of scales for format C (PanelWeights::blocksPerGroup(), a
/// constant here so that offsets need no division; hasExponentScales below
/// makes the same choice when packing, and matmulPanels checks they agree).
template <IntCodes C> constexpr int64_t kBlocksPerGroup =
    C == IntCodes::Bfp8 || C == IntCodes::MxInt8 ? 4 : 1;

/// The 16 scales at p (block scales of one panel) as floats.
template <IntCodes C> HWY_INLINE __m512 panelScales(const uint8_t *p) {
  if constexpr (kBlocksPerGroup<C> == 4)
    return exponentScales<6>(p);
  else
    return _mm512_load_ps(reinterpret_cast<const float *>(p));
}

HWY_INLINE __m512i broadcast4(const int8_t *p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

/// Panels p .. p + RP - 1 against activation rows t0 .. t0 + RT - 1: each
/// weight vector is loaded (and its nibbles split) once for the RT rows.
template <IntCodes C, int64_t B, int RP, int RT>
HWY_INLINE void panelTile(const PanelArgs &a, int64_t p, int64_t t0) {
  constexpr bool kNibbles = detail::isNibbleKind(C);
  constexpr int64_t kGroups = kNibbles ? B / 8 : B / 4; // 64-byte code vectors per block
  const PanelWeights &w = *a.w;
  const Int8Activations &x = *a.x;
  const int64_t blocks = w.blocksPerRow;
  const uint8_t *panel[RP];
  for (int r = 0; r < RP; ++r)
    panel[r] = w.data + (p + r) * w.panelBytes;
  const __m512i lowNibbles = _mm512_set1_epi8(0x0F);
  const __m512i highNibbles = _mm512_set1_epi8(static_cast<char>(0xF0));
  const __m512i fp4 =
      _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i *>(kFp4Bytes)));

  __m512 acc[RT][RP];
  for (int t = 0; t < RT; ++t)
    for (int r = 0; r < RP; ++r) acc[t][r] = _mm512_setzero_ps();
  constexpr int64_t G = kBlocksPerGroup<C>;
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t scaleOffset = PanelWeights::scaleOffsetOf(b, G, w.codeBytes);
    const int64_t codeOffset = PanelWeights::codeOffsetOf(b, G, w.codeBytes);
    const int8_t *xb[RT];
    for (int t = 0; t < RT; ++t) xb[t] = x.codes.data() + (t0 + t) * x.codesPerRow + b * B;
    // Two integer chains per panel and row: even and odd groups (8-bit
    // codes), or low and high nibbles.
    __m512i s0[RT][RP], s1[RT][RP];
    for (int t = 0; t < RT; ++t)
      for (int r = 0; r < RP; ++r) s0[t][r] = s1[t][r] = _mm512_setzero_si512();
    for (int64_t g = 0; g < kGroups; ++g) {
      __m512i lo[RP], hi[RP];
      for (int r = 0; r < RP; ++r) {
        const __m512i v = _mm512_load_si512(panel[r] + codeOffset + 64 * g);
        if constexpr (!kNibbles) {
          lo[r] = v;
        } else if constexpr (C == IntCodes::MxFp4) {
          lo[r] = _mm512_shuffle_epi8(fp4, _mm512_and_si512(v, lowNibbles));
          hi[r] = _mm512_shuffle_epi8(fp4, _mm512_and_si512(_mm512_srli_epi16(v, 4), lowNibbles));
        } else {
          lo[r] = _mm512_and_si512(v, lowNibbles);
          hi[r] = _mm512_and_si512(v, highNibbles); // 16 u: shifted back below
        }
      }
      for (int t = 0; t < RT; ++t) {
        const __m512i xlo = broadcast4(xb[t] + 4 * g);
        if constexpr (!kNibbles) {
          for (int r = 0; r < RP; ++r) {
            if (g % 2 == 0)
              s0[t][r] = _mm512_dpbusd_epi32(s0[t][r], lo[r], xlo);
            else
              s1[t][r] = _mm512_dpbusd_epi32(s1[t][r], lo[r], xlo);
          }
        } else {
          const __m512i xhi = broadcast4(xb[t] + B / 2 + 4 * g);
          for (int r = 0; r < RP; ++r) {
            s0[t][r] = _mm512_dpbusd_epi32(s0[t][r], lo[r], xlo);
            s1[t][r] = _mm512_dpbusd_epi32(s1[t][r], hi[r], xhi);
          }
        }
      }
    }
    __m512 scales[RP];
    for (int r = 0; r < RP; ++r)
      scales[r] = panelScales<C>(panel[r] + scaleOffset);
    for (int t = 0; t < RT; ++t) {
      const int64_t xBlock = (t0 + t) * x.blocksPerRow + b;
      const __m512i correction = _mm512_set1_epi32(detail::fixedOffset(C) * x.sums[xBlock]);
      const __m512 xScale = _mm512_set1_ps(x.scales[xBlock]);
      for (int r = 0; r < RP; ++r) {
        __m512i high = s1[t][r];
        if constexpr (kNibbles && C != IntCodes::MxFp4)
          high = _mm512_srai_epi32(high, 4); // exact: every product was 16 u x
        const __m512i sum = _mm512_sub_epi32(_mm512_add_epi32(s0[t][r], high), correction);
        acc[t][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(scales[r], xScale),
                                    acc[t][r]);
      }
    }
  }
  for (int r = 0; r < RP; ++r) {
    const int64_t first = (p + r) * PanelWeights::kRows;
    const int64_t valid = std::min<int64_t>(PanelWeights::kRows, w.rows - first);
    const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1);
    for (int t = 0; t < RT; ++t)
      _mm512_mask_storeu_ps(a.y + (t0 + t) * w.rows + first, mask, acc[t][r]);
  }
}

/// Decode (one row): two panels per tile share each activation broadcast.
/// Prefill: four rows per tile share each weight load.
template <IntCodes C, int64_t B> void panelRange(const PanelArgs &a) {
  const int64_t T = a.x->rows;
  if (T == 1) {
    int64_t p = a.p0;
    for (; p + 2 <= a.p1; p += 2) panelTile<C, B, 2, 1>(a, p, 0);
    if (p < a.p1)
      panelTile<C, B, 1, 1>(a, p, 0);
    return;
  }
  for (int64_t p = a.p0; p < a.p1; ++p) {
    int64_t t = 0;
    for (; t + 4 <= T; t += 4) panelTile<C, B, 1, 4>(a, p, t);
    switch (T - t) {
    case 3: panelTile<C, B, 1, 3>(a, p, t); break;
    case 2: panelTile<C, B, 1, 2>(a, p, t); break;
    case 1: panelTile<C, B, 1, 1>(a, p, t); break;
    default: break;
    }
  }
}

template <IntCodes C> void withBlock(const PanelArgs &a) {
  switch (a.w->blockSize) {
  case 16: return panelRange<C, 16>(a);
  case 32: return panelRange<C, 32>(a);
  case 64: return panelRange<C, 64>(a);
  case 128: return panelRange<C, 128>(a);
  default: return;
  }
}

bool PanelsAvailableImpl() { return true; }

void MatmulPanelsImpl(const PanelArgs &a) {
  switch (a.kind) {
  case IntCodes::Int8Sym: return withBlock<IntCodes::Int8Sym>(a);
  case IntCodes::Bfp8: return withBlock<IntCodes::Bfp8>(a);
  case IntCodes::MxInt8: return withBlock<IntCodes::MxInt8>(a);
  case IntCodes::Int4Sym: return withBlock<IntCodes::Int4Sym>(a);
  case IntCodes::Bfp4: return withBlock<IntCodes::Bfp4>(a);
  case IntCodes::MxFp4: return withBlock<IntCodes::MxFp4>(a);
  default: return;
  }
}

#else

bool PanelsAvailableImpl() { return false; }
void MatmulPanelsImpl(const PanelArgs &) {}

#endif // HWY_TARGET == HWY_AVX3_DL

} // namespace HWY_NAMESPACE
} // namespace lathe::kernels::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lathe::kernels::simd {

HWY_EXPORT(PanelsAvailableImpl);
HWY_EXPORT(MatmulPanelsImpl);

namespace {

bool panelKind(const formats::FormatSpec &spec, detail::IntCodes &kind) {
  return detail::intCodesOf(spec, kind) && !detail::isAsymmetric(kind) &&
         (spec.blockSize == 16 || spec.blockSize == 32 || spec.blockSize == 64 ||
          spec.blockSize == 128);
}

/// Whether the panel keeps the format's exponent bytes as block scales:
/// for the 8-bit formats, whose decode streams the panels from memory (one
/// byte instead of four per block and row: 8% less to read). 4-bit panels
/// mostly sit in the L3 and the kernel is bound by instructions there, so
/// they keep float scales and skip the conversion (measured: exponent
/// bytes made MXFP4 decode ~5% slower, BFP8 ~15% faster).
bool hasExponentScales(detail::IntCodes kind) {
  return kind == detail::IntCodes::Bfp8 || kind == detail::IntCodes::MxInt8;
}

/// Columns 4g .. 4g + 3 of a block of 4-bit codes (packed low nibble
/// first) as four bytes, one code each, in the low nibbles.
uint32_t nibbleGroup(const uint8_t *codes, int64_t g) {
  const uint32_t x = codes[2 * g] | uint32_t{codes[2 * g + 1]} << 8;
  return (x & 0xF) | (x & 0xF0) << 4 | (x & 0xF00) << 8 | (x & 0xF000) << 12;
}

/// Writes row r's block b (header at `blk`) into its panel: the scale (a
/// float, or the exponent byte), then the codes as the kernel reads them
/// (u = q + offset, 4 bytes per group of columns; MXFP4 keeps its E2M1
/// codes).
void packBlock(detail::IntCodes kind, const PanelWeights &w, const uint8_t *blk, int64_t b,
               int64_t r, uint8_t *panel) {
  const int64_t B = w.blockSize;
  uint8_t *scales = panel + w.scaleOffset(b);
  if (w.exponentScales) {
    scales[r] = blk[0];
  } else {
    const float scale = detail::blockScale(kind, blk);
    std::memcpy(scales + 4 * r, &scale, 4);
  }
  const uint8_t *codes = blk + detail::headerBytes(kind);
  uint8_t *out = panel + w.codeOffset(b) + 4 * r;
  if (!detail::isNibbleKind(kind)) {
    for (int64_t g = 0; g < B / 4; ++g) {
      uint32_t v;
      std::memcpy(&v, codes + 4 * g, 4);
      v ^= 0x80808080u; // q + 128
      std::memcpy(out + 64 * g, &v, 4);
    }
    return;
  }
  const uint32_t offset = kind == detail::IntCodes::MxFp4 ? 0 : 0x08080808u; // q + 8
  for (int64_t g = 0; g < B / 8; ++g) {
    const uint32_t lo = nibbleGroup(codes, g) ^ offset;
    const uint32_t hi = nibbleGroup(codes, g + B / 8) ^ offset;
    const uint32_t v = lo | hi << 4;
    std::memcpy(out + 64 * g, &v, 4);
  }
}

} // namespace

bool panelsSupported(const formats::FormatSpec &spec) {
  detail::IntCodes kind;
  return panelKind(spec, kind) && HWY_DYNAMIC_DISPATCH(PanelsAvailableImpl)();
}

namespace {

/// Every field of the panels of N x K weights in `spec` but the memory.
bool panelLayout(const formats::FormatSpec &spec, int64_t N, int64_t K, PanelWeights &layout) {
  detail::IntCodes kind;
  if (!panelsSupported(spec) || !panelKind(spec, kind) || N <= 0 || K <= 0)
    return false;
  constexpr int64_t R = PanelWeights::kRows;
  const int64_t B = spec.blockSize;
  layout.rows = N;
  layout.cols = K;
  layout.blockSize = B;
  layout.blocksPerRow = (K + B - 1) / B;
  layout.panels = (N + R - 1) / R;
  layout.exponentScales = hasExponentScales(kind);
  layout.codeBytes = (detail::isNibbleKind(kind) ? B / 2 : B) * R;
  const int64_t groups =
      (layout.blocksPerRow + layout.blocksPerGroup() - 1) / layout.blocksPerGroup();
  layout.panelBytes = groups * 64 + layout.blocksPerRow * layout.codeBytes;
  layout.spec = spec;
  return true;
}

} // namespace

size_t panelStorageBytes(const formats::FormatSpec &spec, int64_t N, int64_t K) {
  PanelWeights layout;
  return panelLayout(spec, N, K, layout) ? static_cast<size_t>(layout.panels * layout.panelBytes)
                                         : 0;
}

bool packPanels(const uint8_t *w, const formats::FormatSpec &spec, int64_t N, int64_t K,
                PanelWeights &out, std::shared_ptr<uint8_t> arena, size_t offset) {
  out = PanelWeights{};
  PanelWeights layout;
  detail::IntCodes kind;
  if (!panelLayout(spec, N, K, layout) || !panelKind(spec, kind) || offset % 64 != 0)
    return false;
  constexpr int64_t R = PanelWeights::kRows;
  const int64_t blocks = layout.blocksPerRow, panels = layout.panels;
  const size_t bytes = static_cast<size_t>(panels * layout.panelBytes);
  if (!arena) {
    offset = 0;
    if (bytes >= (size_t{2} << 20))
      arena = allocateHugePages(bytes);
    else if (void *p = std::aligned_alloc(64, bytes))
      arena = std::shared_ptr<uint8_t>(static_cast<uint8_t *>(p), [](uint8_t *q) { std::free(q); });
    if (!arena)
      return false;
  }
  uint8_t *data = arena.get() + offset;
  std::memset(data, 0, bytes);
  // Rows past N: a normal exponent, so that no block needs the slow path
  // for subnormal scales (their outputs are never stored).
  if (layout.exponentScales)
    for (int64_t n = N; n < panels * R; ++n)
      for (int64_t b = 0; b < blocks; ++b)
        data[(n / R) * layout.panelBytes + layout.scaleOffset(b) + n % R] = 127;
  const size_t rowBytes = formats::packedRowBytes(spec, K);
  const int64_t packedBlockBytes = static_cast<int64_t>(rowBytes) / blocks;
  for (int64_t n = 0; n < N; ++n) {
    const uint8_t *row = w + n * rowBytes;
    uint8_t *panel = data + (n / R) * layout.panelBytes;
    for (int64_t b = 0; b < blocks; ++b)
      packBlock(kind, layout, row + b * packedBlockBytes, b, n % R, panel);
  }
  out = std::move(layout);
  out.data = data;
  out.storage = std::move(arena);
  return true;
}

void matmulPanels(const Int8Activations &x, const PanelWeights &w, float *y, int64_t p0,
                  int64_t p1) {
  p0 = std::max<int64_t>(p0, 0);
  p1 = std::min(p1, w.panels);
  if (x.rows <= 0 || p0 >= p1)
    return;
  detail::IntCodes kind;
  const bool usable =
      w.data && panelKind(w.spec, kind) &&
      w.exponentScales == hasExponentScales(kind) && // the kernel's kBlocksPerGroup
      x.cols == w.cols && x.blockSize == w.blockSize &&
      !x.nibbleOrder && x.blocksPerRow == w.blocksPerRow &&
      x.codesPerRow >= x.blocksPerRow * x.blockSize &&
      x.codes.size() == static_cast<size_t>(x.rows * x.codesPerRow) &&
      x.scales.size() == static_cast<size_t>(x.rows * x.blocksPerRow) &&
      x.sums.size() == x.scales.size();
  if (!usable) {
    for (int64_t t = 0; t < x.rows; ++t)
      for (int64_t n = p0 * PanelWeights::kRows;
           n < std::min(w.rows, p1 * PanelWeights::kRows); ++n)
        y[t * w.rows + n] = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  const detail::PanelArgs args{&x, &w, y, p0, p1, kind};
  HWY_DYNAMIC_DISPATCH(MatmulPanelsImpl)(args);
}

} // namespace lathe::kernels::simd
#endif // HWY_ONCE
