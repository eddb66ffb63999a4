// Element types of unquantized tensors, shared by the compiler (importers,
// artifact writer) and the runtime (loader, kernels). Quantized formats get
// their own headers in this folder.
#pragma once

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

/// bfloat16 is the top half of an IEEE float32.
inline float bf16ToFloat(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/// IEEE binary16 to float32, exact for every input (subnormals, inf, NaN).
inline float f16ToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | ((127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000 | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

} // namespace lathe
