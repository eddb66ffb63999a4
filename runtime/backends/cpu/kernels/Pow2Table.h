// Block scales that are powers of two stored as a biased exponent byte (BFP
// exponents, MX E8M0 scales) turned into float32 with one table load: the
// kernels read one per block, and computing 2^e with its subnormal and NaN
// cases costs a dozen instructions.
#pragma once

#include <array>
#include <bit>
#include <cstdint>

namespace lathe::kernels::simd {

/// kValues[code] = 2^(code + kOffset) as a float32, exact (subnormal below
/// 2^-126; kOffset must keep every exponent >= -149), NaN for code 255 (the
/// code both BFP and E8M0 reserve for NaN).
template <int kOffset> struct Pow2Table {
  static_assert(kOffset >= -149 && kOffset + 254 <= 127);
  static constexpr std::array<float, 256> make() {
    std::array<float, 256> values{};
    for (int code = 0; code < 256; ++code) {
      const int e = code + kOffset;
      const uint32_t bits = code == 0xFF  ? 0x7FC00000u
                            : e >= -126  ? static_cast<uint32_t>(e + 127) << 23
                                         : 1u << (e + 149);
      values[code] = std::bit_cast<float>(bits);
    }
    return values;
  }
  static constexpr std::array<float, 256> kValues = make();
};

} // namespace lathe::kernels::simd
