// Per-target (Highway foreach_target) decoders for one packed block of every
// format in runtime/formats, producing float vectors in registers. Each
// decoder reads exactly one block (it never touches the bytes of the next
// one, so the last block of a matrix is safe) and hands vector j, holding
// values j*L .. j*L+L-1 of the block (L lanes), to a sink:
//
//   Fmt::block<B>(blockPointer, [&](size_t j, VF w) { ... });
//
// The floats are bit-identical to what formats::dequantizeRow writes: codes
// become exact small floats, and the one rounding is the same
// float32 multiply by the block scale (scales that are powers of two are
// built exactly, subnormal ones included). This relies on the default
// floating-point environment: flushing subnormals to zero (DAZ/FTZ, e.g.
// -ffast-math) would change the decoded values of the smallest codes.
// Layouts: the headers of runtime/formats and docs/formats.md.

#if defined(LATHE_KERNELS_SIMD_PACKED_BLOCK_DECODE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef LATHE_KERNELS_SIMD_PACKED_BLOCK_DECODE_INL_H_
#undef LATHE_KERNELS_SIMD_PACKED_BLOCK_DECODE_INL_H_
#else
#define LATHE_KERNELS_SIMD_PACKED_BLOCK_DECODE_INL_H_
#endif

#include "hwy/highway.h"
#include "runtime/backends/cpu/kernels/DotTile-inl.h"
#include "runtime/backends/cpu/kernels/Pow2Table.h"

#include <bit>
#include <cstdint>
#include <cstring>

HWY_BEFORE_NAMESPACE();
namespace lathe::kernels::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

static_assert(std::endian::native == std::endian::little,
              "packed scales are little-endian float32, read with memcpy");

using DU = hn::RebindToUnsigned<DF>;
using DI = hn::RebindToSigned<DF>;
using VU = hn::Vec<DU>;
using VI = hn::Vec<DI>;
inline constexpr size_t kLanes = hn::MaxLanes(DF());

HWY_INLINE float loadScale(const uint8_t *p) {
  float f;
  std::memcpy(&f, p, 4);
  return f;
}

/// 2^e as a float32, exact for -149 <= e <= 127 (subnormal below -126).
HWY_INLINE float pow2f(int e) {
  const uint32_t bits = e >= -126 ? static_cast<uint32_t>(e + 127) << 23
                                  : 1u << (e + 149);
  return std::bit_cast<float>(bits);
}

/// L byte codes from p, zero-extended to 32-bit lanes.
HWY_INLINE VU loadBytes(const uint8_t *p) {
  return hn::PromoteTo(DU(), hn::LoadU(hn::Rebind<uint8_t, DF>(), p));
}

/// L int8 codes from p, sign-extended to 32-bit lanes.
HWY_INLINE VI loadInt8(const uint8_t *p) {
  return hn::PromoteTo(
      DI(), hn::LoadU(hn::Rebind<int8_t, DF>(), reinterpret_cast<const int8_t *>(p)));
}

HWY_INLINE VU lookup(VU bytes, VU index) {
  return hn::TableLookupLanes(bytes, hn::IndicesFromVec(DU(), index));
}

// ---------------------------------------------------------------- 4 bits
// 2L nibbles come from L bytes, low nibble first. They are split and put
// back in order in the byte domain (interleaving the low and high nibbles of
// each byte), where a vector holds all of them, and only then widened to
// 32-bit lanes: two cheap byte operations instead of a lane permute and a
// variable shift per output vector.

using D8 = hn::Rebind<uint8_t, DF>;
using DS8 = hn::Rebind<int8_t, DF>;

struct NibblePair {
  hn::Vec<D8> first, second; // codes 0 .. L-1 and L .. 2L-1, one per byte
};

HWY_INLINE NibblePair loadNibbles(const uint8_t *p) {
  const D8 d8;
  const auto bytes = hn::LoadU(d8, p);
  const auto low = hn::And(bytes, hn::Set(d8, uint8_t{0x0F}));
  const auto high = hn::ShiftRight<4>(bytes);
  return {hn::InterleaveLower(d8, low, high), hn::InterleaveUpper(d8, low, high)};
}

HWY_INLINE VU widenUnsigned(hn::Vec<D8> codes) { return hn::PromoteTo(DU(), codes); }

/// Two's complement nibbles: (c ^ 8) - 8 in the byte domain, then widened
/// with sign extension.
HWY_INLINE VI widenSignedNibbles(hn::Vec<D8> codes) {
  const D8 d8;
  const DS8 ds8;
  const auto flipped = hn::BitCast(ds8, hn::Xor(codes, hn::Set(d8, uint8_t{8})));
  return hn::PromoteTo(DI(), hn::Sub(flipped, hn::Set(ds8, int8_t{8})));
}

// ---------------------------------------------------------------- 6 bits
// Code i occupies bits [6i, 6i + 6) of the byte stream. Vector j needs the
// 3L/4 bytes from 3jL/4; the load of L bytes is moved back so that it ends
// inside the stream (which must hold at least L bytes), and each lane picks
// its two bytes out of the window.

HWY_INLINE VU sixBitWindow(const uint8_t *codes, size_t streamBytes, size_t j,
                           VU &shift) {
  const DU du;
  const size_t start = 3 * j * kLanes / 4;
  const size_t load = std::min(start, streamBytes - kLanes);
  const VU bytes = loadBytes(codes + load);
  const VU bit = hn::Mul(hn::Iota(du, 0), hn::Set(du, 6u));
  const VU first = hn::Add(hn::Set(du, static_cast<uint32_t>(start - load)),
                           hn::ShiftRight<3>(bit));
  const VU second = hn::Min(hn::Add(first, hn::Set(du, 1u)),
                            hn::Set(du, static_cast<uint32_t>(kLanes - 1)));
  shift = hn::And(bit, hn::Set(du, 7u));
  return hn::Or(lookup(bytes, first), hn::ShiftLeft<8>(lookup(bytes, second)));
}

HWY_INLINE VU unsignedSixBit(const uint8_t *codes, size_t streamBytes, size_t j) {
  VU shift;
  const VU window = sixBitWindow(codes, streamBytes, j, shift);
  return hn::And(hn::Shr(window, shift), hn::Set(DU(), 63u));
}

HWY_INLINE VI signedSixBit(const uint8_t *codes, size_t streamBytes, size_t j) {
  VU shift;
  const VU window = sixBitWindow(codes, streamBytes, j, shift);
  const VU up = hn::Shl(window, hn::Sub(hn::Set(DU(), 26u), shift));
  return hn::ShiftRight<26>(hn::BitCast(DI(), up));
}

// ------------------------------------------------------------ mini-floats
/// Sign-magnitude float codes of kBits bits (1 sign, kBits - 1 - kMantissa
/// exponent, kMantissa fraction bits) to float32, exact. The magnitude bits
/// land in a float32 whose exponent field equals the code's; scaling by
/// 2^(127 - bias) fixes the bias, and turns the subnormal float32 that a
/// zero exponent field gives into the code's subnormal value.
template <int kBits, int kMantissa, int kBias> HWY_INLINE VF miniFloat(VU code) {
  const DF d;
  const DU du;
  const VU magnitude = hn::ShiftLeft<23 - kMantissa>(
      hn::And(code, hn::Set(du, (1u << (kBits - 1)) - 1u)));
  const VU sign = hn::ShiftLeft<31>(hn::ShiftRight<kBits - 1>(code));
  return hn::Mul(hn::BitCast(d, hn::Or(magnitude, sign)), hn::Set(d, pow2f(127 - kBias)));
}

/// FP8 E4M3: S.1111.111 is NaN; no infinities.
HWY_INLINE VF fp8E4M3(VU code) {
  const DF d;
  const DU du;
  const auto nan = hn::RebindMask(
      d, hn::Eq(hn::And(code, hn::Set(du, 0x7Fu)), hn::Set(du, 0x7Fu)));
  return hn::IfThenElse(nan, hn::Set(d, std::bit_cast<float>(0x7FC00000u)),
                        miniFloat<8, 3, 7>(code));
}

/// FP8 E5M2: exponent field 31 is +-Inf (fraction 0) or NaN.
HWY_INLINE VF fp8E5M2(VU code) {
  const DF d;
  const DU du;
  const auto special = hn::RebindMask(
      d, hn::Eq(hn::And(code, hn::Set(du, 0x7Cu)), hn::Set(du, 0x7Cu)));
  const auto isInf =
      hn::RebindMask(d, hn::Eq(hn::And(code, hn::Set(du, 0x03u)), hn::Zero(du)));
  const VF inf = hn::BitCast(
      d, hn::Or(hn::Set(du, 0x7F800000u), hn::ShiftLeft<31>(hn::ShiftRight<7>(code))));
  const VF specialValue =
      hn::IfThenElse(isInf, inf, hn::Set(d, std::bit_cast<float>(0x7FC00000u)));
  return hn::IfThenElse(special, specialValue, miniFloat<8, 2, 15>(code));
}

// ------------------------------------------------------------- formats
// Each format: bytes(B), the size of a block of B values, whether this
// target can decode a block of B values in registers, and block<B>().

/// INT8/INT4 group-wise: [scale f32] [zero point u8, asymmetric only] [codes].
template <int kBits, bool kSymmetric> struct IntGroupFormat {
  static constexpr size_t kHeader = kSymmetric ? 4 : 5;
  static constexpr size_t bytes(size_t B) { return kHeader + B * kBits / 8; }
  static constexpr bool supports(size_t B) {
    return kBits == 8 || (B / kLanes) % 2 == 0;
  }
  template <size_t B, class Sink>
  static HWY_INLINE void block(const uint8_t *blk, Sink &&sink) {
    const DF d;
    const DI di;
    const VF scale = hn::Set(d, loadScale(blk));
    const VI zero = hn::Set(di, kSymmetric ? 0 : static_cast<int32_t>(blk[4]));
    const uint8_t *codes = blk + kHeader;
    if constexpr (kBits == 8) {
      for (size_t j = 0; j < B / kLanes; ++j) {
        const VI q = kSymmetric ? loadInt8(codes + j * kLanes)
                                : hn::Sub(hn::BitCast(di, loadBytes(codes + j * kLanes)), zero);
        sink(j, hn::Mul(hn::ConvertTo(d, q), scale));
      }
    } else {
      for (size_t j = 0; j < B / kLanes; j += 2) {
        const NibblePair nibbles = loadNibbles(codes + j * kLanes / 2);
        VI q0, q1;
        if constexpr (kSymmetric) {
          q0 = widenSignedNibbles(nibbles.first);
          q1 = widenSignedNibbles(nibbles.second);
        } else {
          q0 = hn::Sub(hn::BitCast(di, widenUnsigned(nibbles.first)), zero);
          q1 = hn::Sub(hn::BitCast(di, widenUnsigned(nibbles.second)), zero);
        }
        sink(j, hn::Mul(hn::ConvertTo(d, q0), scale));
        sink(j + 1, hn::Mul(hn::ConvertTo(d, q1), scale));
      }
    }
  }
};

/// BFP: [exponent byte] [m-bit two's complement mantissas]; value =
/// q * 2^(e - 127 - (m - 2)), NaN for exponent code 255.
template <int kMantissa> struct BfpFormat {
  static constexpr size_t bytes(size_t B) { return 1 + B * kMantissa / 8; }
  static constexpr bool supports(size_t B) {
    if constexpr (kMantissa == 4)
      return (B / kLanes) % 2 == 0;
    else if constexpr (kMantissa == 6)
      return 3 * B / 4 >= kLanes;
    return true;
  }
  template <size_t B, class Sink>
  static HWY_INLINE void block(const uint8_t *blk, Sink &&sink) {
    const DF d;
    const VF scale = hn::Set(d, Pow2Table<-127 - (kMantissa - 2)>::kValues[blk[0]]);
    const uint8_t *codes = blk + 1;
    if constexpr (kMantissa == 8) {
      for (size_t j = 0; j < B / kLanes; ++j)
        sink(j, hn::Mul(hn::ConvertTo(d, loadInt8(codes + j * kLanes)), scale));
    } else if constexpr (kMantissa == 6) {
      for (size_t j = 0; j < B / kLanes; ++j)
        sink(j, hn::Mul(hn::ConvertTo(d, signedSixBit(codes, 3 * B / 4, j)), scale));
    } else {
      for (size_t j = 0; j < B / kLanes; j += 2) {
        const NibblePair nibbles = loadNibbles(codes + j * kLanes / 2);
        sink(j, hn::Mul(hn::ConvertTo(d, widenSignedNibbles(nibbles.first)), scale));
        sink(j + 1, hn::Mul(hn::ConvertTo(d, widenSignedNibbles(nibbles.second)), scale));
      }
    }
  }
};

enum class MxCode { Int8, E4M3, E5M2, E3M2, E2M3, E2M1 };

/// FP4 E2M1 codes 0..15 as floats (padded to a whole vector).
alignas(64) inline constexpr float kFp4Values[kLanes >= 16 ? kLanes : 16] = {
    0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

/// OCP MX: [E8M0 scale] [32 element codes]; value = element * 2^(X - 127).
template <MxCode kCode> struct MxFormat {
  static constexpr int kBits = kCode == MxCode::E2M1   ? 4
                               : kCode == MxCode::E3M2 || kCode == MxCode::E2M3 ? 6
                                                                                 : 8;
  static constexpr size_t bytes(size_t B) { return 1 + B * kBits / 8; }
  static constexpr bool supports(size_t B) {
    return kBits == 8 || (kBits == 4 ? (B / kLanes) % 2 == 0 : 3 * B / 4 >= kLanes);
  }
  static HWY_INLINE VF element(VU code) {
    if constexpr (kCode == MxCode::E4M3) return fp8E4M3(code);
    else if constexpr (kCode == MxCode::E5M2) return fp8E5M2(code);
    else if constexpr (kCode == MxCode::E3M2) return miniFloat<6, 2, 3>(code);
    else if constexpr (kCode == MxCode::E2M3) return miniFloat<6, 3, 1>(code);
    else if constexpr (kLanes >= 16) // all 16 FP4 values fit one vector
      return hn::TableLookupLanes(hn::Load(DF(), kFp4Values), hn::IndicesFromVec(DF(), code));
    else return miniFloat<4, 1, 1>(code);
  }
  template <size_t B, class Sink>
  static HWY_INLINE void block(const uint8_t *blk, Sink &&sink) {
    const DF d;
    const uint8_t *codes = blk + 1;
    if constexpr (kCode == MxCode::Int8) {
      // q/64 * 2^X == q * 2^(X - 6): one exact scale, one rounding.
      const VF scale = hn::Set(d, Pow2Table<-127 - 6>::kValues[blk[0]]);
      for (size_t j = 0; j < B / kLanes; ++j)
        sink(j, hn::Mul(hn::ConvertTo(d, loadInt8(codes + j * kLanes)), scale));
      return;
    }
    const VF scale = hn::Set(d, Pow2Table<-127>::kValues[blk[0]]);
    if constexpr (kBits == 8) {
      for (size_t j = 0; j < B / kLanes; ++j)
        sink(j, hn::Mul(element(loadBytes(codes + j * kLanes)), scale));
    } else if constexpr (kBits == 6) {
      for (size_t j = 0; j < B / kLanes; ++j)
        sink(j, hn::Mul(element(unsignedSixBit(codes, 3 * B / 4, j)), scale));
    } else {
      for (size_t j = 0; j < B / kLanes; j += 2) {
        const NibblePair nibbles = loadNibbles(codes + j * kLanes / 2);
        sink(j, hn::Mul(element(widenUnsigned(nibbles.first)), scale));
        sink(j + 1, hn::Mul(element(widenUnsigned(nibbles.second)), scale));
      }
    }
  }
};

/// The high 2-bit fields of the FP6 4+2 split for codes 2jL/2.. of a pair of
/// vectors: the L-byte window ends where the pair's L/2 high-plane bytes
/// end, so it starts inside the low plane and never leaves the group.
template <int Q> HWY_INLINE VU fp6HighBits(VU window) {
  const DU du;
  const VU code = hn::Add(hn::Set(du, static_cast<uint32_t>(Q * kLanes)), hn::Iota(du, 0));
  const VU index = hn::Add(hn::Set(du, static_cast<uint32_t>(kLanes / 2)),
                           hn::ShiftRight<2>(code));
  const VU shift = hn::ShiftLeft<1>(hn::And(code, hn::Set(du, 3u)));
  return hn::And(hn::Shr(lookup(window, index), shift), hn::Set(du, 3u));
}

/// Decodes the pair of vectors j, j+1 (codes j*L .. j*L + 2L - 1) of an FP6
/// 4+2 group whose planes start at `low` and `high`.
template <class Sink>
HWY_INLINE void fp6SplitPair(const uint8_t *low, const uint8_t *high, size_t j,
                             VF scale, Sink &&sink) {
  const NibblePair lowBits = loadNibbles(low + j * kLanes / 2);
  const VU highBytes = loadBytes(high - kLanes / 2 + j * kLanes / 4);
  const VU c0 = hn::Or(widenUnsigned(lowBits.first), hn::ShiftLeft<4>(fp6HighBits<0>(highBytes)));
  const VU c1 = hn::Or(widenUnsigned(lowBits.second), hn::ShiftLeft<4>(fp6HighBits<1>(highBytes)));
  sink(j, hn::Mul(miniFloat<6, 2, 3>(c0), scale));
  sink(j + 1, hn::Mul(miniFloat<6, 2, 3>(c1), scale));
}

/// FP6 E3M2 in the 4+2 split, one scale per group of B values:
/// [scale f32] [low plane B/2 bytes] [high plane B/4 bytes].
struct Fp6SplitFormat {
  static constexpr size_t bytes(size_t B) { return 4 + B / 2 + B / 4; }
  static constexpr bool supports(size_t B) { return (B / kLanes) % 2 == 0; }
  template <size_t B, class Sink>
  static HWY_INLINE void block(const uint8_t *blk, Sink &&sink) {
    const VF scale = hn::Set(DF(), loadScale(blk));
    const uint8_t *low = blk + 4, *high = blk + 4 + B / 2;
    for (size_t j = 0; j < B / kLanes; j += 2) fp6SplitPair(low, high, j, scale, sink);
  }
};

} // namespace HWY_NAMESPACE
} // namespace lathe::kernels::simd
HWY_AFTER_NAMESPACE();

#endif // include guard toggle
