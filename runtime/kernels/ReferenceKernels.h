// FP32 reference CPU kernels: the numerics every faster kernel is tested
// against, and the executor that calibration runs inside the compiler.
// Dot products and norms accumulate in double so that results stay close to
// a float64 reference independent of summation order.
#pragma once

#include "runtime/backend/Batch.h"
#include "runtime/formats/ElementType.h"
#include "runtime/formats/FormatSpec.h"
#include "runtime/formats/KvFormat.h"
#include "runtime/plan/KernelPlan.h"

#include <cstdint>
#include <span>

namespace lathe::kernels {

/// A row-major [rows, cols] weight in its storage format: plain elements of
/// `type`, or, when `quant` is set, rows packed by runtime/formats.
struct WeightView {
  ElementType type;
  const uint8_t *data;
  int64_t rows, cols;
  const formats::FormatSpec *quant = nullptr;
};

/// out[t, :] = table[tokens[t], :]. Token ids are checked by the caller.
void embedding(WeightView table, std::span<const int32_t> tokens, float *out);

/// out[t, :] = x[t, :] / sqrt(mean(x[t, :]^2) + eps) * gain. May run in place.
void rmsNorm(const float *x, WeightView gain, float eps, int64_t rows,
             int64_t width, float *out);

/// out[t, n] = sum_k x[t, k] * w[n, k] for t < rows. `out` must not alias `x`.
void matmul(const float *x, int64_t rows, WeightView w, float *out);

/// Rotary embedding of every head of every row; row t is at positions[t].
/// freq: the headDim / 2 pairs' frequencies (plan::ropeFrequencies); the
/// pair at position j of a head of group g is order[g * headDim / 2 + j]
/// (plan::RopeStep::pairOrder; empty: pair j).
void rope(const float *x, std::span<const int32_t> positions, int64_t width,
          int64_t headDim, std::span<const double> freq, std::span<const uint32_t> order,
          plan::RopeLayout layout, float *out);

/// out[t, n] = x[t, n] + bias[n] over rows of `width`. May run in place.
void biasAdd(const float *x, WeightView bias, int64_t rows, int64_t width, float *out);

/// One layer's keys and values (kv::PagedKVCache): rows of `width` values
/// stored in `format` (formats::kvRowBytes(format, width) bytes a row),
/// indexed by the rows of backend::StepLayout. `capacity` is the most rows
/// one token may see: the length of a head's score row in scratch. f16/bf16
/// rows are stored rounded to nearest even and read back exactly;
/// compressed rows are quantized as they are stored and decoded a head's
/// slice at a time as attention reads them.
///
/// KIVI formats (int4, int2; kv/PagedKVCache.h): rows below windowRow are
/// quantized (keys: the key group of format.keyGroup rows that row / keyGroup
/// names, kiviKeyGroupBytes each; values: kvRowBytes rows), rows from
/// windowRow on are f32 rows of windowKeys / windowValues (row windowRow
/// first). Every row a step stores is a window row. So it is for int8,
/// bfp8 and bfp4 with a window (format.window > 0), whose rows below
/// windowRow are kvRowBytes rows of keys and of values.
struct KVLayerView {
  void *keys;
  void *values;
  int64_t capacity;
  int64_t width;
  formats::KvFormat format;
  float *windowKeys = nullptr;
  float *windowValues = nullptr;
  int64_t windowRow = 0;
};

/// Writes row t of k and v to cache row storeRows[t], then lets each query
/// row t attend to the rows visible[t] lists, in order. Query head h reads
/// KV head h / (heads / kvHeads). `scratch` holds at least capacity floats.
void attention(const float *q, const float *k, const float *v,
               std::span<const int32_t> storeRows, std::span<const backend::VisibleRows> visible,
               int64_t heads, int64_t kvHeads, int64_t headDim, KVLayerView cache,
               float *scratch, float *out);

/// The two halves of attention, so that heads can be split across threads:
/// store the new keys and values, then attend for query heads [h0, h1).
void storeKV(const float *k, const float *v, std::span<const int32_t> rows,
             KVLayerView cache);
void attendHeads(const float *q, std::span<const backend::VisibleRows> visible, int64_t heads,
                 int64_t kvHeads, int64_t headDim, KVLayerView cache, int64_t h0,
                 int64_t h1, float *scratch, float *out);

/// sum = a + b, then out = rmsNorm(sum): one pass per row.
void addRmsNorm(const float *a, const float *b, WeightView gain, float eps, int64_t rows,
                int64_t width, float *sum, float *out);

/// out = silu(gate) * up, element-wise over n values. May run in place.
void siluMul(const float *gate, const float *up, int64_t n, float *out);

/// out = a + b, element-wise over n values. May run in place.
void add(const float *a, const float *b, int64_t n, float *out);

} // namespace lathe::kernels
