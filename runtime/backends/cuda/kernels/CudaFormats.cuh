// The packed weight formats beyond CudaCommon.cuh's F32/F16/BF16/IntGroup:
// block floating point, OCP microscaling (MX) and FP6 E3M2 in the 4+2 bit
// split. Each is a weight format like those there: at(row, k) is element k
// of a packed row (blocks back to back, as formats::packedRowBytes lays
// them out), decoded to the very float the CPU's decode*Block gives, bit for
// bit (runtime/formats/, docs/formats.md). Values are built from their
// integer fields rather than computed, so no rounding, fast-math or
// flush-to-zero setting can change them; the one real rounding (FP6's
// element times its float32 scale) is an explicit IEEE multiply. The
// functions are __host__ __device__ so that a host program can check them
// against the CPU codec.
#pragma once

#include "CudaCommon.cuh"

#include <stdint.h>
#include <string.h>

namespace lathe_cuda {

namespace formats_detail {

__host__ __device__ inline float bitsToFloat(uint32_t bits) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(bits);
#else
  float f;
  memcpy(&f, &bits, 4);
  return f;
#endif
}

/// The quiet NaN the CPU decoders write (std::numeric_limits<float>::
/// quiet_NaN()): reserved BFP exponents, NaN E8M0 scales, FP8 NaN codes.
constexpr uint32_t kQuietNaN = 0x7fc00000u;

__host__ __device__ inline int highestBit(uint32_t x) { // x != 0
#ifdef __CUDA_ARCH__
  return 31 - __clz(static_cast<int>(x));
#else
  return 31 - __builtin_clz(x);
#endif
}

/// (-1)^negative * mag * 2^e as a float32, built from its bits: what the
/// CPU gets from static_cast<float>(std::ldexp(double(mag), e)) whenever
/// that is exact, i.e. mag < 2^24 and no set bit of the result lies below
/// 2^-149 (true of every caller here: their lowest bit is >= 2^-143).
/// Overflow gives +-Inf, as the double-to-float conversion does; mag = 0
/// gives a zero of the given sign.
__host__ __device__ inline float exactScaled(bool negative, uint32_t mag, int e) {
  const uint32_t sign = negative ? 0x80000000u : 0u;
  if (mag == 0)
    return bitsToFloat(sign);
  const int top = highestBit(mag);
  const int exponent = top + e; // of the result's leading bit
  if (exponent > 127)
    return bitsToFloat(sign | 0x7f800000u);
  if (exponent >= -126)
    return bitsToFloat(sign | uint32_t(exponent + 127) << 23 |
                       ((mag << (23 - top)) & 0x007fffffu));
  const int shift = e + 149; // subnormal: units of 2^-149
  return bitsToFloat(sign | (shift >= 0 ? mag << shift : mag >> -shift));
}

/// Code number `index` of `Width` bits, little-endian bit order
/// (formats::unpackBits): a code may straddle two bytes (6-bit widths).
template <int Width>
__host__ __device__ inline uint32_t unpackBits(const uint8_t *bytes, uint32_t index) {
  const uint32_t bit = index * Width;
  const uint8_t *p = bytes + bit / 8;
  const uint32_t shift = bit % 8;
  uint32_t window = p[0];
  if (Width != 8 && Width != 4 && Width != 2 && shift + Width > 8)
    window |= uint32_t(p[1]) << 8;
  return (window >> shift) & ((1u << Width) - 1u);
}

/// A little-endian float32 at any byte address (CudaCommon's loadF32, for
/// host and device).
__host__ __device__ inline float loadFloat32(const uint8_t *p) {
  return bitsToFloat(uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
                     uint32_t(p[3]) << 24);
}

/// a * b rounded to nearest even, subnormals kept: the CPU's float
/// multiply, whatever -ftz / --use_fast_math / contraction the build uses.
__host__ __device__ inline float mulRn(float a, float b) {
#ifdef __CUDA_ARCH__
  float r;
  asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
#else
  return a * b;
#endif
}

} // namespace formats_detail

/// Block floating point (formats::decodeBfpBlock): per block of Block
/// values [exponent code c: u8][Block mantissas q, m-bit two's complement,
/// little-endian bit packing]; x = q * 2^(c - 127 - (m - 2)), and c = 255
/// (never written) makes the whole block NaN. Zero is +0; the unwritten
/// code -2^(m-1) with c = 254 overflows to -Inf, as on the CPU.
template <int MantissaBits, int Block> struct Bfp {
  static_assert(MantissaBits >= 2 && MantissaBits <= 8, "BFP mantissas have 2..8 bits");
  static_assert(Block > 0 && Block * MantissaBits % 8 == 0,
                "a BFP block packs into whole bytes");
  static constexpr int kMantissaBits = MantissaBits, kBlock = Block;
  static constexpr int64_t kBlockBytes = 1 + Block * MantissaBits / 8;
  __host__ __device__ static float at(const uint8_t *row, int k) {
    const uint8_t *block = row + (uint32_t(k) / Block) * kBlockBytes;
    const uint32_t j = uint32_t(k) % Block;
    const int code = block[0];
    if (code == 0xff)
      return formats_detail::bitsToFloat(formats_detail::kQuietNaN);
    const uint32_t raw = formats_detail::unpackBits<MantissaBits>(block + 1, j);
    const int q = int(raw ^ (1u << (MantissaBits - 1))) - (1 << (MantissaBits - 1));
    return formats_detail::exactScaled(q < 0, uint32_t(q < 0 ? -q : q),
                                       code - 127 - (MantissaBits - 2));
  }
};

/// The MX element formats (formats::MxElement, same order).
enum class MxElement : int {
  INT8,     // two's complement q, value q * 2^-6
  FP8_E4M3, // bias 7, NaN = S.1111.111, no Inf
  FP8_E5M2, // bias 15, Inf = S.11111.00, NaN = S.11111.{01,10,11}
  FP6_E3M2, // bias 3, no Inf/NaN
  FP6_E2M3, // bias 1, no Inf/NaN
  FP4_E2M1, // bias 1, no Inf/NaN
};

/// OCP microscaling (formats::decodeMxBlock): per block of Block (32)
/// values [E8M0 scale code c: u8][Block element codes, little-endian bit
/// packing: one byte each, 4 per 3 bytes (FP6), low nibble first (FP4)];
/// x = P * 2^(c - 127), c = 0xFF makes the whole block NaN. Float elements
/// are (-1)^S 2^(1-bias) 0.M (E = 0) or (-1)^S 2^(E-bias) 1.M, so a sign
/// with zero magnitude is -0 (MXINT8's zero is +0); FP8 NaN codes give NaN,
/// E5M2 Inf codes +-Inf, and products of 2^128 or more (large elements
/// with c near 254, never written) overflow to +-Inf, as on the CPU.
template <MxElement Element, int Block = 32> struct Mx {
  static constexpr int kBits = Element == MxElement::FP4_E2M1   ? 4
                               : Element == MxElement::FP6_E3M2 ||
                                       Element == MxElement::FP6_E2M3
                                   ? 6
                                   : 8;
  static constexpr int kExponentBits = Element == MxElement::FP8_E4M3   ? 4
                                       : Element == MxElement::FP8_E5M2 ? 5
                                       : Element == MxElement::FP6_E3M2 ? 3
                                       : Element == MxElement::INT8     ? 0
                                                                        : 2;
  static constexpr int kMantissaBits = Element == MxElement::INT8 ? 6
                                       : Element == MxElement::FP8_E4M3 ||
                                               Element == MxElement::FP6_E2M3
                                           ? 3
                                       : Element == MxElement::FP4_E2M1 ? 1
                                                                        : 2;
  static constexpr int kBias = Element == MxElement::FP8_E4M3   ? 7
                               : Element == MxElement::FP8_E5M2 ? 15
                               : Element == MxElement::FP6_E3M2 ? 3
                               : Element == MxElement::INT8     ? 0
                                                                : 1;
  static_assert(Block > 0 && Block * kBits % 8 == 0, "an MX block packs into whole bytes");
  static constexpr int kBlock = Block;
  static constexpr int64_t kBlockBytes = 1 + Block * kBits / 8;

  __host__ __device__ static float at(const uint8_t *row, int k) {
    const uint8_t *block = row + (uint32_t(k) / Block) * kBlockBytes;
    const uint32_t j = uint32_t(k) % Block;
    const int scale = block[0];
    if (scale == 0xff)
      return formats_detail::bitsToFloat(formats_detail::kQuietNaN);
    const int x = scale - 127;
    const uint32_t code = formats_detail::unpackBits<kBits>(block + 1, j);
    if (Element == MxElement::INT8) { // int8(code) / 64, so 0 is +0
      const int q = int(code ^ 0x80u) - 0x80;
      return formats_detail::exactScaled(q < 0, uint32_t(q < 0 ? -q : q), x - 6);
    }
    const bool negative = (code >> (kBits - 1)) & 1u;
    const uint32_t e = (code >> kMantissaBits) & ((1u << kExponentBits) - 1u);
    const uint32_t m = code & ((1u << kMantissaBits) - 1u);
    if (Element == MxElement::FP8_E4M3 && e == 15 && m == 7)
      return formats_detail::bitsToFloat(formats_detail::kQuietNaN);
    if (Element == MxElement::FP8_E5M2 && e == 31)
      return formats_detail::bitsToFloat(m != 0    ? formats_detail::kQuietNaN
                                         : negative ? 0xff800000u
                                                    : 0x7f800000u);
    const uint32_t mag = e != 0 ? (1u << kMantissaBits) | m : m;
    const int exponent = (e != 0 ? int(e) : 1) - kBias - kMantissaBits;
    return formats_detail::exactScaled(negative, mag, exponent + x);
  }
};

/// FP6 E3M2 in the 4+2 bit split (formats::decodeFp6SplitGroup): per group
/// of Group values [scale s: f32 LE][low plane: Group/2 bytes, code i's low
/// 4 bits in nibble i, low nibble first][high plane: Group/4 bytes, code i's
/// high 2 bits (sign, e2) at bits 2*(i%4) of byte i/4]; x = E3M2(code) * s
/// in float32 (bias 3, no Inf/NaN, sign with zero magnitude -0). A per-channel
/// row (fp6_4p2 without a group) is a single group of cols rounded up to a
/// multiple of 4: Fp6Split<(cols + 3) / 4 * 4> (formats::rowBlockValues).
/// The encoder writes finite scales only; a NaN/Inf scale (a corrupt
/// artifact) still decodes to NaN/Inf, but a NaN's payload is the GPU's.
template <int Group> struct Fp6Split {
  static_assert(Group > 0 && Group % 4 == 0, "FP6 groups are a multiple of 4 values");
  static constexpr int kGroup = Group;
  static constexpr int64_t kBlockBytes = 4 + Group / 2 + Group / 4;
  __host__ __device__ static float at(const uint8_t *row, int k) {
    const uint8_t *group = row + (uint32_t(k) / Group) * kBlockBytes;
    const uint32_t j = uint32_t(k) % Group;
    const float scale = formats_detail::loadFloat32(group);
    const uint32_t low = (group[4 + j / 2] >> (4 * (j % 2))) & 15u;
    const uint32_t high = (group[4 + Group / 2 + j / 4] >> (2 * (j % 4))) & 3u;
    const uint32_t e = (high & 1u) << 2 | low >> 2; // e2 e1 e0
    const uint32_t m = low & 3u;
    const float element = formats_detail::exactScaled(high >> 1, e != 0 ? 4u | m : m,
                                                      (e != 0 ? int(e) : 1) - 3 - 2);
    return formats_detail::mulRn(element, scale);
  }
};

} // namespace lathe_cuda
