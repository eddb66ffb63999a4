/* The decoding of every packed weight code, written once in plain C: the
 * runtime's format decoders (BitPacking.h, IntGroup, Bfp, Microscaling,
 * Fp6SplitLayout, ElementType.h's f16/bf16) call these functions, and the
 * HLS backend copies this file into every generated project, whose
 * kernels call them too (docs/hls.md). So a weight decodes to the same
 * float on the CPU and in the C simulation of the FPGA design, by
 * construction.
 *
 * Synthesizable as it stands: fixed-width integers, explicit masks and
 * shifts, no loops, no library calls but memcpy for bit casts; powers of
 * two are built from their bits instead of ldexp.
 *
 * The bit-packing rule (BitPacking.h): code i of width w occupies bits
 * [i*w, (i+1)*w) of the bytes, bit k being bit (k % 8) of byte k / 8;
 * multi-byte fields are little-endian. */
#ifndef LATHE_RUNTIME_FORMATS_PACKEDCODES_H
#define LATHE_RUNTIME_FORMATS_PACKEDCODES_H

#include <stdint.h>
#include <string.h>

/* Code number `index` of `width` (1..8) bits. */
static inline uint32_t lathe_unpack_bits(const uint8_t *bytes, uint32_t index, uint32_t width) {
  const uint32_t bit = index * width;
  const uint32_t byte = bit >> 3;
  const uint32_t shift = bit & 7u;
  uint32_t window = bytes[byte];
  if (shift + width > 8u)
    window |= (uint32_t)bytes[byte + 1] << 8;
  return (window >> shift) & ((1u << width) - 1u);
}

/* The low `width` bits of `code` as a two's-complement integer. */
static inline int32_t lathe_sign_extend(uint32_t code, uint32_t width) {
  const uint32_t sign = 1u << (width - 1u);
  const uint32_t value = code & ((1u << width) - 1u);
  return (int32_t)(value ^ sign) - (int32_t)sign;
}

static inline float lathe_f32_from_bits(uint32_t bits) {
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* A float32 stored little-endian. */
static inline float lathe_load_f32(const uint8_t *p) {
  return lathe_f32_from_bits((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
                             ((uint32_t)p[3] << 24));
}

/* 2^e as a double, exact from 2^-1074 to 2^1023 (0 below, infinity above). */
static inline double lathe_pow2(int32_t e) {
  uint64_t bits;
  double d;
  if (e > 1023)
    bits = (uint64_t)0x7FF << 52;
  else if (e >= -1022)
    bits = (uint64_t)(e + 1023) << 52;
  else if (e >= -1074)
    bits = (uint64_t)1 << (e + 1074);
  else
    bits = 0;
  memcpy(&d, &bits, 8);
  return d;
}

/* bfloat16: the top half of a float32. */
static inline float lathe_bf16_to_f32(uint16_t h) { return lathe_f32_from_bits((uint32_t)h << 16); }

/* IEEE binary16, exact for every input (subnormals, infinities, NaN). */
static inline float lathe_f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1Fu;
  const uint32_t mantissa = h & 0x3FFu;
  if (exponent == 0) {
    /* Zero or a subnormal, mantissa * 2^-24: a normal float32, exact. */
    const float magnitude = (float)mantissa * 5.9604644775390625e-8f;
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1Fu)
    return lathe_f32_from_bits(sign | 0x7F800000u | (mantissa << 13));
  return lathe_f32_from_bits(sign | ((exponent + 127u - 15u) << 23) | (mantissa << 13));
}

/* INT8 / INT4 groups (IntGroup.h): a float32 scale, an unsigned zero point
 * (asymmetric only), then the codes. The value of one code. */
static inline float lathe_int_group_value(uint32_t code, uint32_t bits, int symmetric,
                                          int32_t zero_point, float scale) {
  const int32_t q = symmetric ? lathe_sign_extend(code, bits) : (int32_t)code - zero_point;
  return (float)q * scale;
}

/* BFP blocks (Bfp.h): a shared exponent byte, then two's-complement
 * mantissas of `mantissa_bits`. The value of one mantissa; step_exponent
 * is exponent - 127 - (mantissa_bits - 2). */
static inline float lathe_bfp_value(uint32_t code, uint32_t mantissa_bits, int32_t step_exponent) {
  return (float)((double)lathe_sign_extend(code, mantissa_bits) * lathe_pow2(step_exponent));
}

/* The OCP MX element types (Microscaling.h), by their fields: storage bits,
 * exponent bits, mantissa bits, bias, whether the all-ones exponent is
 * infinity (E5M2), and which codes are NaN (0: none, 1: E4M3's S.1111.111,
 * 2: E5M2's S.11111.xx with xx != 0). MXINT8 is apart: code / 64. */
static inline float lathe_minifloat_value(uint32_t code, uint32_t bits, uint32_t exponent_bits,
                                          uint32_t mantissa_bits, int32_t bias, int has_inf,
                                          int nan_rule) {
  code &= (1u << bits) - 1u;
  if ((nan_rule == 1 && (code & 0x7Fu) == 0x7Fu) ||
      (nan_rule == 2 && (code & 0x7Cu) == 0x7Cu && (code & 0x03u) != 0))
    return lathe_f32_from_bits(0x7FC00000u);
  const int negative = (code >> (bits - 1u)) & 1u;
  const uint32_t exponent = (code >> mantissa_bits) & ((1u << exponent_bits) - 1u);
  const uint32_t mantissa = code & ((1u << mantissa_bits) - 1u);
  double magnitude;
  if (has_inf && exponent == (1u << exponent_bits) - 1u)
    return lathe_f32_from_bits((negative ? 0x80000000u : 0u) | 0x7F800000u);
  if (exponent == 0)
    magnitude = (double)mantissa * lathe_pow2(1 - bias - (int32_t)mantissa_bits);
  else
    magnitude = (double)((1u << mantissa_bits) + mantissa) *
                lathe_pow2((int32_t)exponent - bias - (int32_t)mantissa_bits);
  return (float)(negative ? -magnitude : magnitude);
}

static inline float lathe_mxint8_value(uint32_t code) {
  return (float)(int8_t)(uint8_t)code / 64.0f;
}

/* An MX block's element times its E8M0 scale 2^(scale_code - 127); scale
 * code 0xFF (NaN) makes the block NaN, as the decoder checks first. */
static inline float lathe_mx_scaled(float element, uint32_t scale_code) {
  return (float)((double)element * lathe_pow2((int32_t)scale_code - 127));
}

/* FP6 e3m2 in the 4+2 split (Fp6SplitLayout.h): the low 4 bits of code i
 * in one plane, the high 2 in another. */
static inline uint32_t lathe_fp6_split_code(const uint8_t *low_plane, const uint8_t *high_plane,
                                            uint32_t index) {
  return (lathe_unpack_bits(high_plane, index, 2) << 4) | lathe_unpack_bits(low_plane, index, 4);
}

static inline float lathe_fp6_e3m2_value(uint32_t code) {
  return lathe_minifloat_value(code, 6, 3, 2, 3, 0, 0);
}

#endif
