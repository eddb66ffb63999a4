/* The element-wise kernels of a forward step (RMSNorm, rotary embedding,
 * SwiGLU, residual add, and the add fused with the RMSNorm of its sum),
 * written once: the reference kernels (ReferenceKernels.cpp) call them, and
 * every model's generated CPU code includes this file (lathe-compile builds
 * it next to the generated source), so the interpreted and the generated
 * paths compute the same values. Plain C, so that any compiler builds the
 * generated code; row-major [rows, width] floats throughout.
 *
 * Norms accumulate squares in double in four independent sums (order
 * insensitive enough to stay close to a float64 reference); rotary angles
 * are computed in double; exp and the inverse square root are Lathe's own
 * (Transcendentals.h), which the SIMD softmax and the HLS kernels share. */
#ifndef LATHE_RUNTIME_KERNELS_ELEMENTWISEKERNELS_H
#define LATHE_RUNTIME_KERNELS_ELEMENTWISEKERNELS_H

#include "runtime/kernels/Transcendentals.h"

#include <math.h>
#include <stdint.h>

/* sum_i r[i]^2 in double, four partial sums. */
static inline double lathe_sum_squares(const float *r, int64_t width) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= width; i += 4) {
    s0 += (double)r[i] * r[i];
    s1 += (double)r[i + 1] * r[i + 1];
    s2 += (double)r[i + 2] * r[i + 2];
    s3 += (double)r[i + 3] * r[i + 3];
  }
  for (; i < width; ++i)
    s0 += (double)r[i] * r[i];
  return (s0 + s1) + (s2 + s3);
}

/* out = r / sqrt(mean(r^2) + eps) * g for one row whose squares sum to ss. */
static inline void lathe_scale_row(const float *r, double ss, const float *g, float eps,
                                   int64_t width, float *out) {
  float scale = (float)lathe_inverse_sqrt(ss / (double)width + eps);
  for (int64_t i = 0; i < width; ++i)
    out[i] = g[i] * (scale * r[i]);
}

/* RMSNorm of each row. out may be x. */
static inline void lathe_rms_norm(const float *x, const float *g, float eps, int64_t rows,
                                  int64_t width, float *out) {
  for (int64_t t = 0; t < rows; ++t)
    lathe_scale_row(x + t * width, lathe_sum_squares(x + t * width, width), g, eps, width,
                    out + t * width);
}

/* sum = a + b, then out = RMSNorm(sum): one pass over each row writes the
 * sum, the squares are then summed as lathe_rms_norm sums them. */
static inline void lathe_add_rms_norm(const float *a, const float *b, int64_t rows,
                                      int64_t width, float *sum, const float *g, float eps,
                                      float *out) {
  for (int64_t t = 0; t < rows; ++t) {
    const float *ra = a + t * width, *rb = b + t * width;
    float *rs = sum + t * width;
    for (int64_t i = 0; i < width; ++i)
      rs[i] = ra[i] + rb[i];
    lathe_scale_row(rs, lathe_sum_squares(rs, width), g, eps, width, out + t * width);
  }
}

/* The rotary frequency of pair i of a head: theta^(-2i / headDim). */
static inline double lathe_rope_frequency(double theta, int64_t i, int64_t headDim) {
  return pow(theta, -2.0 * (double)i / (double)headDim);
}

/* Rotates every head of row t: the pair at position j of a head turns by
 * pos[t] * freq[p], p = j without a pair order, else p = order[g * headDim
 * / 2 + j] for the head's group g (plan::pairOrderProblem: the heads split
 * into `groups` consecutive groups, head h of H in group h * groups / H).
 * Pairs are interleaved (2j, 2j + 1) or rotate-half (j, j + headDim / 2).
 * freq holds the headDim / 2 pairs' frequencies; each row computes each
 * pair's angle once, whatever the groups (a reordered table of 6 groups
 * took 6x the sin and cos: 4% of a stories15M decode step). */
static inline void lathe_rope(const float *x, const int32_t *pos, int64_t rows, int64_t width,
                              int64_t headDim, const double *freq, const uint32_t *order,
                              int64_t groups, int interleaved, float *out) {
  enum { kPairsAtOnce = 64 };
  double cosines[kPairsAtOnce], sines[kPairsAtOnce];
  int64_t half = headDim / 2;
  int64_t span = width / groups; /* the channels of a group's heads */
  for (int64_t t = 0; t < rows; ++t) {
    const float *r = x + t * width;
    float *d = out + t * width;
    for (int64_t p0 = 0; p0 < half; p0 += kPairsAtOnce) {
      int64_t n = half - p0 < kPairsAtOnce ? half - p0 : kPairsAtOnce;
      for (int64_t i = 0; i < n; ++i) {
        double angle = (double)pos[t] * freq[p0 + i];
        cosines[i] = cos(angle);
        sines[i] = sin(angle);
      }
      for (int64_t g = 0; g < groups; ++g)
        for (int64_t j = 0; j < half; ++j) {
          int64_t p = order ? (int64_t)order[g * half + j] : j;
          if (p < p0 || p >= p0 + n)
            continue;
          double c = cosines[p - p0], s = sines[p - p0];
          for (int64_t h = g * span; h < (g + 1) * span; h += headDim) {
            int64_t a = interleaved ? h + 2 * j : h + j;
            int64_t b = interleaved ? a + 1 : a + half;
            double x0 = r[a], x1 = r[b];
            d[a] = (float)(x0 * c - x1 * s);
            d[b] = (float)(x0 * s + x1 * c);
          }
        }
    }
  }
}

/* out[t, n] = x[t, n] + bias[n] over rows of width. out may be x. */
static inline void lathe_bias_add(const float *x, const float *bias, int64_t rows, int64_t width,
                                  float *out) {
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t i = 0; i < width; ++i)
      out[t * width + i] = x[t * width + i] + bias[i];
}

/* out = silu(g) * u over n values, with Lathe's exp (Transcendentals.h). */
static inline void lathe_silu_mul(const float *g, const float *u, int64_t n, float *out) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = g[i] / (1.0f + lathe_exp_f32(-g[i])) * u[i];
}

/* out = a + b over n values. */
static inline void lathe_add(const float *a, const float *b, int64_t n, float *out) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = a[i] + b[i];
}

#endif
