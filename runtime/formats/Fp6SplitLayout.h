// FP6 E3M2 weights in the 4+2 bit-split layout of ZeroQuant(4+2) / FP6-LLM:
// every 6-bit code is cut into its low 4 bits and its high 2 bits, which go
// to two separate planes, so a kernel reads whole aligned words of each
// (a 4-bit plane, two codes per byte, and a 2-bit plane, four codes per
// byte) instead of codes straddling byte boundaries. Bit layout, worked
// example and how this relates to FP6-LLM's GPU layout: docs/formats.md,
// "FP6 E3M2, 4+2 bit split".
//
//   code    = E3M2 (same element as MXFP6 E3M2: bias 3, no Inf/NaN, max 28)
//             of x / s, round-to-nearest-even, saturating at +-28
//   s       = float32(max |x| / 28) per group (or per row: per channel)
//   code    = s e2 e1 e0 m1 m0  ->  high plane: s e2   low plane: e1 e0 m1 m0
//   group   = [s: float32 LE] [low plane: g/2 bytes, code i's low 4 bits in
//             nibble i, low nibble first] [high plane: g/4 bytes, code i's
//             high 2 bits at bits 2*(i%4) of byte i/4]
// g is a multiple of 4; a per-channel row is padded with zeros to one.
#pragma once

#include "runtime/support/Expected.h"

#include <cstddef>
#include <cstdint>
#include <span>

namespace lathe::formats {

inline constexpr float kFp6E3M2Max = 28.0f;

/// Bytes of one group of groupSize (a multiple of 4) values.
size_t fp6SplitGroupBytes(size_t groupSize);

/// The per-group scale: float32(max |x| / 28), 0 for a group of zeros.
float fp6SplitScale(std::span<const float> group);

/// Splits 6-bit codes into the two planes (sizes codes.size()/2 and
/// codes.size()/4; codes.size() a multiple of 4) and joins them back.
/// Exposed so kernel tests can check their own unpacking against it.
void splitFp6Codes(std::span<const uint8_t> codes, std::span<uint8_t> lowPlane,
                   std::span<uint8_t> highPlane);
void joinFp6Codes(std::span<const uint8_t> lowPlane,
                  std::span<const uint8_t> highPlane, std::span<uint8_t> codes);

/// Encodes one group of finite values into exactly fp6SplitGroupBytes bytes.
Status encodeFp6SplitGroup(std::span<const float> group, std::span<uint8_t> out);

/// Decodes one group into out (out.size() values). Expects
/// in.size() == fp6SplitGroupBytes(out.size()); if it does not, out is
/// filled with NaN.
void decodeFp6SplitGroup(std::span<const uint8_t> in, std::span<float> out);

} // namespace lathe::formats
