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
 * change. */
#ifndef LATHE_RUNTIME_BACKENDS_CPU_NATIVE_CPUMODELABI_H
#define LATHE_RUNTIME_BACKENDS_CPU_NATIVE_CPUMODELABI_H

#include <stdint.h>

#define LATHE_CPU_ABI_VERSION 3u

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
  /* The weight tensor `index` as f32 values (norm gains), or NULL when it is
   * stored in another format. */
  const float *(*f32Tensor)(LatheCpuContext *ctx, uint32_t index);
  /* outputs[i][rows, n_i] = x[rows, k] * W_i^T for the `count` weight tensors
   * weights[i] that share one input (q/k/v, gate/up): one parallel job. */
  void (*matmuls)(LatheCpuContext *ctx, const float *x, int64_t rows, uint32_t count,
                  const uint32_t *weights, float *const *outputs);
  /* y[r, vocab] = x[t_r, :] * C^T for the step's tokens t_r that want
   * logits, in batch order (C = tensor `classifier`). */
  void (*logits)(LatheCpuContext *ctx, const float *x, uint32_t classifier, float *y);
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

#ifdef __cplusplus
}
#endif

#endif
