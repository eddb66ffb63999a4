/* The C ABI between a model's generated CPU code (a shared object built by
 * lathe-compile and embedded in the artifact) and the runtime that loads it.
 *
 * The generated code holds the model's schedule with every shape, buffer and
 * weight index as a constant and computes the element-wise steps itself
 * (residual adds, SwiGLU, RMSNorm, rotary embedding with a constant frequency
 * table); it calls back into the runtime through LatheCpuKernels for what
 * the runtime's SIMD micro-kernels and thread pool do better: matrix
 * products, attention and embedding lookups. Plain C so that any compiler
 * can build the generated code, and so that the ABI is a struct of function
 * pointers rather than symbols to resolve. Bump LATHE_CPU_ABI_VERSION on any
 * change.
 *
 * The generated code (codegen/CPU, through MLIR's EmitC) calls the runtime
 * through the lathe_* functions at the end of this file, plain calls that
 * EmitC can express, and computes element-wise kernels with
 * runtime/kernels/ElementwiseKernels.h; lathe-compile builds it with both
 * headers next to it. */
#ifndef LATHE_RUNTIME_BACKENDS_CPU_NATIVE_CPUMODELABI_H
#define LATHE_RUNTIME_BACKENDS_CPU_NATIVE_CPUMODELABI_H

#include "runtime/backend/HostCodeExport.h"

#include <stdint.h>

#define LATHE_CPU_ABI_VERSION 5u

#ifdef __cplusplus
extern "C" {
#endif

typedef struct LatheCpuContext LatheCpuContext; /* the runtime's step in progress */

typedef struct LatheCpuKernels {
  uint32_t abiVersion;
  /* y[rows, n] = x[rows, k] * W^T for weight tensor `weight` ([n, k]). */
  void (*matmul)(LatheCpuContext *ctx, const float *x, int64_t rows, uint32_t weight,
                 float *y);
  /* out[t, :] = table[tokens[t], :] for the step's tokens. */
  void (*embedding)(LatheCpuContext *ctx, uint32_t table, float *out);
  /* Stores the new keys/values of `layer` in the KV cache and attends for
   * every query row to the rows the step's batch lets it see. */
  void (*attention)(LatheCpuContext *ctx, const float *q, const float *k, const float *v,
                    uint32_t layer, uint32_t heads, uint32_t kvHeads, uint32_t headDim,
                    float *out);
  /* outputs[i][rows, n_i] = x[rows, k] * W_i^T for the `count` weight tensors
   * weights[i] that share one input (q/k/v, gate/up): one parallel job. */
  void (*matmuls)(LatheCpuContext *ctx, const float *x, int64_t rows, uint32_t count,
                  const uint32_t *weights, float *const *outputs);
  /* y[r, vocab] = x[t_r, :] * C^T for the step's tokens t_r that want
   * logits, in batch order (C = tensor `classifier`). */
  void (*logits)(LatheCpuContext *ctx, const float *x, uint32_t classifier, float *y);
  /* The values of vector tensor `tensor` (a norm gain, a bias) as floats:
   * read at run time, not compiled in, since the weights may live in a
   * parameter file packed after the code was built. */
  const float *(*vector)(LatheCpuContext *ctx, uint32_t tensor);
} LatheCpuKernels;

/* What the generated code exports. */
typedef uint32_t (*LatheCpuAbiVersionFn)(void);
/* A hash of the kernel plan the code was generated from; the runtime refuses
 * code whose hash differs from the artifact's plan. */
typedef uint64_t (*LatheCpuPlanHashFn)(void);
/* One forward step over the `rows` tokens of a batch at `positions`;
 * `buffers` are the plan's activation buffers (each at least rows x width
 * floats). */
typedef void (*LatheCpuForwardFn)(const LatheCpuKernels *kernels, LatheCpuContext *ctx,
                                  float *const *buffers, const int32_t *positions,
                                  int64_t rows);

/* Calls the generated code makes: one per kernel the runtime runs. */
static inline void lathe_embedding(const LatheCpuKernels *k, LatheCpuContext *ctx,
                                   uint32_t table, float *out) {
  k->embedding(ctx, table, out);
}
static inline void lathe_matmul(const LatheCpuKernels *k, LatheCpuContext *ctx, const float *x,
                                int64_t rows, uint32_t weight, float *y) {
  k->matmul(ctx, x, rows, weight, y);
}
/* The `count` products of buffer `input` with weights[i] into buffers
 * outputs[i], as one job (groups of up to 8 per call). */
static inline void lathe_matmuls(const LatheCpuKernels *k, LatheCpuContext *ctx,
                                 float *const *b, uint32_t input, int64_t rows, uint32_t count,
                                 const uint32_t *weights, const uint32_t *outputs) {
  for (uint32_t first = 0; first < count; first += 8) {
    uint32_t n = count - first < 8 ? count - first : 8;
    float *o[8];
    for (uint32_t i = 0; i < n; ++i)
      o[i] = b[outputs[first + i]];
    k->matmuls(ctx, b[input], rows, n, weights + first, o);
  }
}
static inline void lathe_attention(const LatheCpuKernels *k, LatheCpuContext *ctx,
                                   const float *q, const float *kk, const float *v,
                                   uint32_t layer, uint32_t heads, uint32_t kvHeads,
                                   uint32_t headDim, float *out) {
  k->attention(ctx, q, kk, v, layer, heads, kvHeads, headDim, out);
}
static inline const float *lathe_vector(const LatheCpuKernels *k, LatheCpuContext *ctx,
                                       uint32_t tensor) {
  return k->vector(ctx, tensor);
}
static inline void lathe_logits(const LatheCpuKernels *k, LatheCpuContext *ctx, const float *x,
                                uint32_t classifier, float *y) {
  k->logits(ctx, x, classifier, y);
}

#ifdef __cplusplus
}
#endif

#endif
