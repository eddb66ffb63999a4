// OCP Microscaling (MX) formats, spec v1.0: a block of k = 32 elements shares
// one E8M0 scale X, and element i is X * P_i with P_i in a small element
// format (MXINT8, FP8 E4M3/E5M2, FP6 E3M2/E2M3, FP4 E2M1). Bit layouts,
// worked examples and the choices the spec leaves open: docs/formats.md,
// "OCP Microscaling".
//
// Conversion (spec section 6.3):
//   X   = floor(log2(max |V_i|)) - emax_elem, clamped below to -127
//   P_i = quantize(V_i / 2^X), round-to-nearest-even, saturating to the
//         element's largest normal
//   NaN or +-Inf anywhere in the block -> scale code 0xFF (NaN), which makes
//   every element of the block NaN.
// Block storage: [E8M0 scale byte] [32 element codes, little-endian bit
// packing (BitPacking.h): 8-bit one per byte, FP6 4 codes per 3 bytes, FP4
// low nibble first].
#pragma once

#include "runtime/support/Expected.h"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace lathe::formats {

enum class MxElement : uint8_t {
  INT8,     // 8-bit two's complement, implicit scale 2^-6
  FP8_E4M3, // bias 7, no Inf, NaN = S.1111.111, max 448
  FP8_E5M2, // bias 15, IEEE-like Inf/NaN, max 57344
  FP6_E3M2, // bias 3, no Inf/NaN, max 28
  FP6_E2M3, // bias 1, no Inf/NaN, max 7.5
  FP4_E2M1, // bias 1, no Inf/NaN, max 6
};

struct MxElementInfo {
  std::string_view name; // "fp6_e3m2", as in "mxfp6_e3m2"
  unsigned bits;         // storage width of one code
  int exponentBits;      // 0 for INT8
  int mantissaBits;      // fraction bits; INT8: 6
  int bias;
  int emax;              // emax_elem of the spec: exponent of the largest normal
  double maxNormal;
  bool hasInf;
  bool hasNaN;
};

constexpr MxElementInfo mxElementInfo(MxElement element) {
  switch (element) {
  case MxElement::INT8: return {"int8", 8, 0, 6, 0, 0, 127.0 / 64.0, false, false};
  case MxElement::FP8_E4M3: return {"fp8_e4m3", 8, 4, 3, 7, 8, 448.0, false, true};
  case MxElement::FP8_E5M2: return {"fp8_e5m2", 8, 5, 2, 15, 15, 57344.0, true, true};
  case MxElement::FP6_E3M2: return {"fp6_e3m2", 6, 3, 2, 3, 4, 28.0, false, false};
  case MxElement::FP6_E2M3: return {"fp6_e2m3", 6, 2, 3, 1, 2, 7.5, false, false};
  case MxElement::FP4_E2M1: return {"fp4_e2m1", 4, 2, 1, 1, 2, 6.0, false, false};
  }
  return {"?", 8, 0, 0, 0, 0, 0.0, false, false};
}

inline constexpr size_t kMxBlockSize = 32;
inline constexpr int kE8M0Bias = 127;
inline constexpr uint8_t kE8M0NaN = 0xFF;

/// Encodes one element value (already divided by the block scale).
/// Finite values round to nearest, ties to even, and saturate to
/// +-maxNormal (the spec's "clamping normal numbers"); MXINT8 saturates to
/// +-127/64, so the code -128 (-2.0) is decoded but never written.
/// +-Inf: +-Inf in E5M2, +-maxNormal elsewhere. NaN: the canonical NaN
/// (S.1111.111 in E4M3, S.11111.11 in E5M2) where the format has one, else
/// +0 (block encoding never gets here: a NaN makes the scale NaN).
/// The code is in the low mxElementInfo(element).bits bits.
uint8_t encodeMxElement(MxElement element, double value);

/// Decodes one element code (only the low `bits` bits are read).
float decodeMxElement(MxElement element, uint8_t code);

/// True for the codes that decode to NaN (E4M3 S.1111.111, E5M2 S.11111.xx
/// with xx != 00).
bool isMxElementNaN(MxElement element, uint8_t code);

/// 2^(code - 127); NaN for 0xFF. Code 0 is 2^-127, a float32 subnormal.
float decodeE8M0(uint8_t code);

/// The block's shared scale as an E8M0 code, per the conversion above: 0xFF
/// if any value is NaN or infinite, 0 (2^-127) for an all-zero block.
uint8_t mxScaleCode(MxElement element, std::span<const float> block);

/// Bytes of one block: the scale byte and blockSize packed codes.
size_t mxBlockBytes(MxElement element, size_t blockSize = kMxBlockSize);

/// Encodes one block (the spec fixes 32 values; any count that packs into
/// whole bytes is accepted) into exactly mxBlockBytes bytes. NaN/Inf inputs
/// are not errors: they give a NaN scale and zero element codes.
Status encodeMxBlock(MxElement element, std::span<const float> block,
                     std::span<uint8_t> out);

/// Decodes one block into out (out.size() values). Expects
/// in.size() == mxBlockBytes(element, out.size()); if it does not, or the
/// scale is NaN, out is filled with NaN.
void decodeMxBlock(MxElement element, std::span<const uint8_t> in,
                   std::span<float> out);

} // namespace lathe::formats
