// The one bit-packing rule shared by every packed format in this folder, so
// that kernels need to know only one: code i of width w occupies bits
// [i*w, (i+1)*w) of a byte span, where bit k is bit (k % 8) of byte k / 8
// (little-endian bit order). With w = 4 that is "low nibble first"; with
// w = 6 four codes fill three bytes. Multi-byte fields (float32 scales) are
// little-endian too.
#pragma once

#include "runtime/formats/PackedCodes.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace lathe::formats {

/// Bytes needed for `count` codes of `width` bits.
constexpr size_t packedBytes(size_t count, unsigned width) {
  return (count * width + 7) / 8;
}

/// Writes the low `width` (1..8) bits of `code` as code number `index`.
/// The caller guarantees the span holds packedBytes(index + 1, width).
inline void packBits(std::span<uint8_t> bytes, size_t index, unsigned width,
                     uint32_t code) {
  const uint32_t mask = (1u << width) - 1u;
  const size_t bit = index * width;
  const size_t byte = bit / 8;
  const unsigned shift = bit % 8;
  const uint32_t field = (code & mask) << shift;
  const uint32_t clear = ~(mask << shift);
  bytes[byte] = static_cast<uint8_t>((bytes[byte] & clear) | field);
  if (shift + width > 8)
    bytes[byte + 1] = static_cast<uint8_t>((bytes[byte + 1] & (clear >> 8)) |
                                           (field >> 8));
}

/// Reads code number `index` of `width` (1..8) bits. The decoding itself
/// is PackedCodes.h's, which the HLS projects share; eight codes fill
/// exactly `width` bytes, so starting at the byte of code index / 8 keeps
/// lathe_unpack_bits's 32-bit bit offset small for any span size.
inline uint32_t unpackBits(std::span<const uint8_t> bytes, size_t index,
                           unsigned width) {
  return lathe_unpack_bits(bytes.data() + (index / 8) * width,
                           static_cast<uint32_t>(index % 8), width);
}

/// Interprets the low `width` (1..31) bits of `code` as a two's-complement
/// integer.
inline int32_t signExtend(uint32_t code, unsigned width) {
  return lathe_sign_extend(code, width);
}

/// float32 stored little-endian, independent of the host's byte order.
inline void storeFloat32(std::span<uint8_t> bytes, float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  for (int i = 0; i < 4; ++i)
    bytes[i] = static_cast<uint8_t>(bits >> (8 * i));
}

inline float loadFloat32(std::span<const uint8_t> bytes) {
  return lathe_load_f32(bytes.data());
}

} // namespace lathe::formats
