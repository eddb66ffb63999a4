// Group-wise integer quantization, INT8 and INT4: each group of g consecutive
// values of a row (g = 32, 64, 128) has its own float32 scale, and in the
// asymmetric variant an integer zero point. Bit layout and worked examples:
// docs/formats.md, "INT8 / INT4 group-wise".
//
// symmetric  (b bits, qmax = 2^(b-1) - 1):
//   s = float32(max |x| / qmax);  q = clamp(roundHalfEven(x / s), -qmax, qmax)
//   x ~= q * s;  codes are b-bit two's complement
// asymmetric (range widened to include 0, so that 0 is exact):
//   lo = min(min x, 0), hi = max(max x, 0)
//   s = float32((hi - lo) / (2^b - 1));  z = clamp(roundHalfEven(-lo / s), 0, 2^b - 1)
//   q = clamp(roundHalfEven(x / s) + z, 0, 2^b - 1);  x ~= (q - z) * s
//   codes are b-bit unsigned
// A group of zeros stores s = 0 (and z = 0) and decodes to zeros.
// Group storage: [s: float32 LE] [z: uint8, asymmetric only]
//                [g codes, little-endian bit packing: INT4 low nibble first]
#pragma once

#include "runtime/support/Expected.h"

#include <cstddef>
#include <cstdint>
#include <span>

namespace lathe::formats {

struct IntGroupScale {
  float scale = 0.0f;
  int32_t zeroPoint = 0; // always 0 when symmetric
};

/// Bytes of one group: scale, zero point (asymmetric), packed codes.
size_t intGroupBytes(int bits, bool symmetric, size_t groupSize);

/// The scale and zero point encodeIntGroup stores for these values (finite).
IntGroupScale intGroupScale(int bits, bool symmetric,
                            std::span<const float> group);

/// Encodes one group of finite values into exactly intGroupBytes bytes.
/// bits must be 8 or 4. Fails on NaN/Inf or a wrongly sized output.
Status encodeIntGroup(int bits, bool symmetric, std::span<const float> group,
                      std::span<uint8_t> out);

/// Decodes one group into out (out.size() values). Expects
/// in.size() == intGroupBytes(bits, symmetric, out.size()); if it does not,
/// out is filled with NaN.
void decodeIntGroup(int bits, bool symmetric, std::span<const uint8_t> in,
                    std::span<float> out);

} // namespace lathe::formats
