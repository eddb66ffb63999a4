// The packed formats whose codes are small integers, as the integer
// (int8-activation) kernels see them: each weight block is a scale times
// unsigned bytes u = q + offset, where q is the signed code (two's
// complement INT/BFP codes, or twice the FP4 E2M1 value) and the offset
// makes it a byte for vpdpbusd (u8 x s8). Shared by Int8Matmul.cpp and the
// panel kernels (PanelMatmul.h).
#pragma once

#include "runtime/formats/FormatSpec.h"
#include "runtime/backends/cpu/kernels/Pow2Table.h"

#include <cstdint>
#include <cstring>

namespace lathe::kernels::simd::detail {

/// How a format's codes become unsigned bytes; one kernel instantiation each.
enum class IntCodes : uint8_t { Int8Sym, Int8Asym, Int4Sym, Int4Asym, Bfp8, Bfp4, MxInt8, MxFp4 };

constexpr bool isNibbleKind(IntCodes kind) {
  return kind == IntCodes::Int4Sym || kind == IntCodes::Int4Asym ||
         kind == IntCodes::Bfp4 || kind == IntCodes::MxFp4;
}

constexpr bool isAsymmetric(IntCodes kind) {
  return kind == IntCodes::Int8Asym || kind == IntCodes::Int4Asym;
}

/// The fixed offset of the unsigned codes (0: per block, asymmetric INT).
constexpr int32_t fixedOffset(IntCodes kind) {
  switch (kind) {
  case IntCodes::Int8Sym:
  case IntCodes::Bfp8:
  case IntCodes::MxInt8: return 128;
  case IntCodes::Int4Sym:
  case IntCodes::Bfp4: return 8;
  case IntCodes::MxFp4: return 12;
  default: return 0;
  }
}

/// Bytes of a block's header (scale, and the zero point of asymmetric INT).
constexpr int64_t headerBytes(IntCodes kind) {
  switch (kind) {
  case IntCodes::Int8Sym:
  case IntCodes::Int4Sym: return 4;
  case IntCodes::Int8Asym:
  case IntCodes::Int4Asym: return 5;
  default: return 1;
  }
}

/// A packed block's scale, the value of one unit of q: the float header of
/// INT8/INT4, or 2^(exponent - 127 - shift) for BFP and MX (exact, NaN for
/// the reserved exponent 255).
inline float blockScale(IntCodes kind, const uint8_t *blk) {
  float f = 0.0f;
  switch (kind) {
  case IntCodes::Int8Sym:
  case IntCodes::Int4Sym:
  case IntCodes::Int8Asym:
  case IntCodes::Int4Asym: std::memcpy(&f, blk, 4); return f;
  case IntCodes::Bfp8:
  case IntCodes::MxInt8: return Pow2Table<-127 - 6>::kValues[blk[0]];
  case IntCodes::Bfp4: return Pow2Table<-127 - 2>::kValues[blk[0]];
  case IntCodes::MxFp4: return Pow2Table<-127 - 1>::kValues[blk[0]];
  }
  return f;
}

/// FP4 E2M1 code -> 2 * value + 12: twice the value is an integer in
/// [-12, 12], and the offset makes it a byte (a 16-entry byte shuffle).
alignas(16) inline constexpr uint8_t kFp4Bytes[16] = {12, 13, 14, 15, 16, 18, 20, 24,
                                                      12, 11, 10, 9,  8,  6,  4,  0};

/// The kernel instantiation for a spec, if there is one.
inline bool intCodesOf(const formats::FormatSpec &spec, IntCodes &kind) {
  using formats::FormatKind;
  if (!formats::hasIntegerCodes(spec))
    return false;
  switch (spec.kind) {
  case FormatKind::INT8: kind = spec.symmetric ? IntCodes::Int8Sym : IntCodes::Int8Asym; return true;
  case FormatKind::INT4: kind = spec.symmetric ? IntCodes::Int4Sym : IntCodes::Int4Asym; return true;
  case FormatKind::BFP:
    kind = spec.mantissaBits == 8 ? IntCodes::Bfp8 : IntCodes::Bfp4;
    return true;
  case FormatKind::MXINT8: kind = IntCodes::MxInt8; return true;
  case FormatKind::MXFP4_E2M1: kind = IntCodes::MxFp4; return true;
  default: return false;
  }
}

} // namespace lathe::kernels::simd::detail
