// Block floating point (BFP): a block of N values shares one 8-bit exponent
// and each value keeps an m-bit two's-complement mantissa. Lathe uses
// m = 8, 6, 4 (BFP8/BFP6/BFP4) and N = 16, 32, 64; the block functions accept
// any m in [2, 8] with N * m a multiple of 8. Bit layout and worked examples:
// docs/formats.md, "Block floating point".
//
//   e     = floor(log2(max |x|)), clamped to [-127, 127]; all-zero -> -127
//   step  = 2^(e - (m - 2))          so the largest |x| needs m - 1 bits
//   q_i   = roundHalfEven(x_i / step), saturated to +-(2^(m-1) - 1)
//   block = [e + 127] [q_0 .. q_{N-1} packed little-endian, m bits each]
//   x_i  ~= q_i * step
#pragma once

#include "runtime/support/Expected.h"

#include <cstddef>
#include <cstdint>
#include <span>

namespace lathe::formats {

inline constexpr int kBfpExponentBias = 127;
inline constexpr int kBfpMinExponent = -127; // exponent code 0
inline constexpr int kBfpMaxExponent = 127;  // exponent code 254
/// Exponent code 255 is never written; a block carrying it decodes to NaN.
inline constexpr uint8_t kBfpReservedExponentCode = 0xFF;

/// Bytes of one block: the exponent byte plus blockSize * mantissaBits bits.
size_t bfpBlockBytes(int mantissaBits, size_t blockSize);

/// floor(log2(max |x|)) over the block, clamped to [-127, 127]; -127 for a
/// block of zeros. Inputs must be finite.
int bfpSharedExponent(std::span<const float> block);

/// The largest mantissa magnitude, 2^(m-1) - 1 (saturation is symmetric, so
/// the code -2^(m-1) is never written).
constexpr int bfpMaxMantissa(int mantissaBits) {
  return (1 << (mantissaBits - 1)) - 1;
}

/// Encodes one block of finite values into out (exactly bfpBlockBytes bytes).
/// Fails on NaN/Inf inputs, unsupported widths or a wrongly sized output.
Status encodeBfpBlock(int mantissaBits, std::span<const float> block,
                      std::span<uint8_t> out);

/// Decodes one block into out (out.size() values). Expects
/// in.size() == bfpBlockBytes(mantissaBits, out.size()); if it does not, or
/// the exponent code is the reserved 255, out is filled with NaN.
void decodeBfpBlock(int mantissaBits, std::span<const uint8_t> in,
                    std::span<float> out);

} // namespace lathe::formats
