/* The transcendental functions of a forward step, defined once by Lathe in
 * plain C: softmax's and SiLU's exp, RMSNorm's inverse square root. The
 * reference kernels and the generated CPU code call them (through
 * ElementwiseKernels.h), the SIMD softmax repeats lathe_exp_f32 lane by
 * lane (runtime/backends/cpu/kernels/ExpF32-inl.h, the same operations on
 * the same constants, so bit for bit the same floats), and the HLS backend
 * copies this file into every generated project (docs/hls.md). A C
 * library's expf, Highway's Exp or Vitis HLS's hls_math would each round
 * differently in the last place; this one is the same everywhere.
 *
 * Every statement is one rounding, and none may be fused into a
 * multiply-add: clang's default (-ffp-contract=on) fuses only within one
 * expression, so it keeps them apart; GCC's default (fast) does not, so
 * code built with GCC passes -ffp-contract=off (the HLS Makefile and
 * lathe-compile's native build do).
 *
 * Synthesizable: fixed-width integers, no loops, no library calls but
 * memcpy for the bit cast and sqrt in double, which IEEE 754 requires to be
 * correctly rounded (Vitis HLS's synthesized sqrt is not checked here: no
 * Vitis HLS on the development machine). */
#ifndef LATHE_RUNTIME_KERNELS_TRANSCENDENTALS_H
#define LATHE_RUNTIME_KERNELS_TRANSCENDENTALS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp(x) = 2^k * exp(r), k = round(x / ln 2), r = x - k ln 2 in two steps
 * (Cody and Waite: ln2_hi has 9 significant bits, so k * ln2_hi is exact
 * for |k| <= 150), exp(r) by Cephes' degree-7 polynomial for |r| <= ln 2 / 2.
 * Inputs are clamped to [-104, 89] first: below, the result rounds to 0;
 * above, the scaling overflows to +inf. */
#define LATHE_EXP_LOG2E 1.44269504088896341f
#define LATHE_EXP_LN2_HI 0.693359375f
#define LATHE_EXP_LN2_LO -2.12194440e-4f
#define LATHE_EXP_MIN_INPUT -104.0f
#define LATHE_EXP_MAX_INPUT 89.0f
/* 1.5 * 2^23: (t + this) - this is t rounded to the nearest integer, ties
 * to even, for |t| < 2^22. */
#define LATHE_EXP_ROUNDER 12582912.0f
#define LATHE_EXP_P0 1.9875691500e-4f
#define LATHE_EXP_P1 1.3981999507e-3f
#define LATHE_EXP_P2 8.3334519073e-3f
#define LATHE_EXP_P3 4.1665795894e-2f
#define LATHE_EXP_P4 1.6666665459e-1f
#define LATHE_EXP_P5 5.0000001201e-1f

/* 2^e for -126 <= e <= 127, from its bits. */
static inline float lathe_exp_pow2(int32_t e) {
  const uint32_t bits = (uint32_t)(e + 127) << 23;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* One Horner step, p * r + c, rounded twice (never a fused multiply-add). */
static inline float lathe_exp_horner(float p, float r, float c) {
  const float product = p * r;
  return product + c;
}

/* e^x in float, within 2 ulp of the exact value for normal results; NaN
 * stays NaN (the same NaN), e^-inf = 0, e^inf = inf. */
static inline float lathe_exp_f32(float x) {
  if (x != x)
    return x;
  float c = x < LATHE_EXP_MIN_INPUT ? LATHE_EXP_MIN_INPUT : x;
  c = c > LATHE_EXP_MAX_INPUT ? LATHE_EXP_MAX_INPUT : c;
  const float t = c * LATHE_EXP_LOG2E;
  const float shifted = t + LATHE_EXP_ROUNDER;
  const float k = shifted - LATHE_EXP_ROUNDER;
  const float hi = k * LATHE_EXP_LN2_HI;
  const float r1 = c - hi;
  const float lo = k * LATHE_EXP_LN2_LO;
  const float r = r1 - lo;
  float p = lathe_exp_horner(LATHE_EXP_P0, r, LATHE_EXP_P1);
  p = lathe_exp_horner(p, r, LATHE_EXP_P2);
  p = lathe_exp_horner(p, r, LATHE_EXP_P3);
  p = lathe_exp_horner(p, r, LATHE_EXP_P4);
  p = lathe_exp_horner(p, r, LATHE_EXP_P5);
  /* e^r = 1 + r + r^2 p */
  p = lathe_exp_horner(p, r * r, r);
  p = p + 1.0f;
  /* k is in [-150, 128]: 2^k as 2^k1 * 2^k2 (k1 = floor(k / 2)), both
   * normal, so that only the last product rounds (into a subnormal, or up
   * to inf). */
  const int32_t ki = (int32_t)k;
  const int32_t k1 = ((ki + 256) >> 1) - 128;
  const float scaled = p * lathe_exp_pow2(k1);
  return scaled * lathe_exp_pow2(ki - k1);
}

/* 1 / sqrt(x) in double, correctly rounded twice (IEEE sqrt and division):
 * the same bits on every conforming machine. RMSNorm's scale. */
static inline double lathe_inverse_sqrt(double x) { return 1.0 / sqrt(x); }

#endif
