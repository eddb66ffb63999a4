// Element types of unquantized tensors, shared by the compiler (importers,
// artifact writer) and the runtime (loader, kernels). Quantized formats get
// their own headers in this folder.
#pragma once

#include "runtime/formats/PackedCodes.h"

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace lathe {

enum class ElementType : uint8_t { F32 = 0, F16 = 1, BF16 = 2 };

inline size_t elementSize(ElementType t) {
  return t == ElementType::F32 ? 4 : 2;
}

inline std::string_view elementTypeName(ElementType t) {
  switch (t) {
  case ElementType::F32: return "f32";
  case ElementType::F16: return "f16";
  case ElementType::BF16: return "bf16";
  }
  return "?";
}

/// bfloat16 is the top half of an IEEE float32. Both decoders are
/// PackedCodes.h's, shared with the HLS projects.
inline float bf16ToFloat(uint16_t h) { return lathe_bf16_to_f32(h); }

/// IEEE binary16 to float32, exact for every input (subnormals, inf, NaN).
inline float f16ToFloat(uint16_t h) { return lathe_f16_to_f32(h); }

/// float32 to bfloat16, rounding to nearest even; NaN stays a (quiet) NaN.
inline uint16_t floatToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffff) > 0x7f800000)
    return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

/// float32 to IEEE binary16, rounding to nearest even: values past the
/// largest half become infinity, tiny ones subnormal or zero; NaN stays a
/// (quiet) NaN.
inline uint16_t floatToF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t abs = bits & 0x7fffffff;
  if (abs > 0x7f800000)
    return static_cast<uint16_t>(sign | 0x7e00 | ((abs >> 13) & 0x3ff));
  if (abs >= 0x477ff000) // rounds to 65520 or more: infinity
    return static_cast<uint16_t>(sign | 0x7c00);
  const int32_t exp = static_cast<int32_t>(abs >> 23) - 127 + 15;
  if (exp <= 0) {
    // Subnormal half (or zero): the 24-bit significand shifted into place.
    if (exp < -10)
      return sign;
    const uint32_t mant = (abs & 0x7fffff) | 0x800000;
    const int shift = 14 - exp;
    const uint32_t half = 1u << (shift - 1);
    const uint32_t rest = mant & ((1u << shift) - 1);
    uint32_t out = mant >> shift;
    if (rest > half || (rest == half && (out & 1)))
      ++out;
    return static_cast<uint16_t>(sign | out);
  }
  // Normal: drop 13 mantissa bits with round-to-nearest-even; a carry into
  // the exponent is the correct result.
  uint32_t out = (static_cast<uint32_t>(exp) << 10) | ((abs >> 13) & 0x3ff);
  const uint32_t rest = abs & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (out & 1)))
    ++out;
  return static_cast<uint16_t>(sign | out);
}

/// Writes n floats as `element`s at out (f16 and bf16 rounded to nearest
/// even by the functions above).
inline void encodeFloats(const float *x, int64_t n, ElementType element, uint8_t *out) {
  if (element == ElementType::F32) {
    std::memcpy(out, x, sizeof(float) * size_t(n));
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = element == ElementType::F16 ? floatToF16(x[i]) : floatToBf16(x[i]);
    std::memcpy(out + 2 * i, &h, 2);
  }
}

/// Reads n `element`s at `in` as floats (exact: every f16 and bf16 is a float).
inline void decodeFloats(const uint8_t *in, int64_t n, ElementType element, float *out) {
  if (element == ElementType::F32) {
    std::memcpy(out, in, sizeof(float) * size_t(n));
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, in + 2 * i, 2);
    out[i] = element == ElementType::F16 ? f16ToFloat(h) : bf16ToFloat(h);
  }
}

} // namespace lathe
