#include "runtime/kernels/ReferenceKernels.h"

#include "runtime/formats/RowCodec.h"
#include "runtime/kernels/ElementwiseKernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace lathe::kernels {
using backend::VisibleRows;
namespace {

template <ElementType T> float load(const uint8_t *data, int64_t i);
template <> float load<ElementType::F32>(const uint8_t *data, int64_t i) {
  float f;
  std::memcpy(&f, data + 4 * i, 4);
  return f;
}
template <> float load<ElementType::F16>(const uint8_t *data, int64_t i) {
  uint16_t h;
  std::memcpy(&h, data + 2 * i, 2);
  return f16ToFloat(h);
}
template <> float load<ElementType::BF16>(const uint8_t *data, int64_t i) {
  uint16_t h;
  std::memcpy(&h, data + 2 * i, 2);
  return bf16ToFloat(h);
}

/// Decodes `n` weights starting at element `first` into `out`.
void loadRow(WeightView w, int64_t first, int64_t n, float *out) {
  switch (w.type) {
  case ElementType::F32:
    std::memcpy(out, w.data + 4 * first, 4 * n);
    return;
  case ElementType::F16:
    for (int64_t i = 0; i < n; ++i) out[i] = load<ElementType::F16>(w.data, first + i);
    return;
  case ElementType::BF16:
    for (int64_t i = 0; i < n; ++i) out[i] = load<ElementType::BF16>(w.data, first + i);
    return;
  }
}

/// Four independent double accumulators: exact enough to be order-insensitive
/// and short enough a dependency chain to keep the FPU busy.
double dot(const float *a, const float *b, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += double(a[i]) * b[i];
    s1 += double(a[i + 1]) * b[i + 1];
    s2 += double(a[i + 2]) * b[i + 2];
    s3 += double(a[i + 3]) * b[i + 3];
  }
  for (; i < n; ++i) s0 += double(a[i]) * b[i];
  return (s0 + s1) + (s2 + s3);
}

} // namespace

void embedding(WeightView table, std::span<const int32_t> tokens, float *out) {
  size_t packedRow = table.quant ? formats::packedRowBytes(*table.quant, table.cols) : 0;
  for (size_t t = 0; t < tokens.size(); ++t) {
    float *row = out + t * table.cols;
    if (table.quant)
      formats::dequantizeRow(*table.quant,
                             {table.data + size_t(tokens[t]) * packedRow, packedRow},
                             {row, size_t(table.cols)});
    else
      loadRow(table, int64_t(tokens[t]) * table.cols, table.cols, row);
  }
}

void rmsNorm(const float *x, WeightView gain, float eps, int64_t rows,
             int64_t width, float *out) {
  std::vector<float> g(width);
  loadRow(gain, 0, width, g.data());
  lathe_rms_norm(x, g.data(), eps, rows, width, out);
}

void addRmsNorm(const float *a, const float *b, WeightView gain, float eps, int64_t rows,
                int64_t width, float *sum, float *out) {
  std::vector<float> g(width);
  loadRow(gain, 0, width, g.data());
  lathe_add_rms_norm(a, b, rows, width, sum, g.data(), eps, out);
}

void matmul(const float *x, int64_t rows, WeightView w, float *out) {
  // Each weight row is decoded once and reused for every token row, so a
  // prefill of T tokens reads the weights once, not T times. Packed rows are
  // decoded one at a time: no float copy of the matrix is ever made.
  std::vector<float> wrow(w.cols);
  size_t packedRow = w.quant ? formats::packedRowBytes(*w.quant, w.cols) : 0;
  for (int64_t n = 0; n < w.rows; ++n) {
    const float *wr;
    if (w.quant) {
      formats::dequantizeRow(*w.quant, {w.data + n * packedRow, packedRow}, wrow);
      wr = wrow.data();
    } else if (w.type == ElementType::F32) {
      wr = reinterpret_cast<const float *>(w.data) + n * w.cols;
    } else {
      loadRow(w, n * w.cols, w.cols, wrow.data());
      wr = wrow.data();
    }
    for (int64_t t = 0; t < rows; ++t)
      out[t * w.rows + n] = static_cast<float>(dot(x + t * w.cols, wr, w.cols));
  }
}

void rope(const float *x, std::span<const int32_t> positions, int64_t width,
          int64_t headDim, std::span<const double> freq, std::span<const uint32_t> order,
          plan::RopeLayout layout, float *out) {
  lathe_rope(x, positions.data(), static_cast<int64_t>(positions.size()), width, headDim,
             freq.data(), order.empty() ? nullptr : order.data(),
             plan::ropeTableGroups(order.size(), headDim),
             layout == plan::RopeLayout::Interleaved ? 1 : 0, out);
}

void biasAdd(const float *x, WeightView bias, int64_t rows, int64_t width, float *out) {
  std::vector<float> b(width);
  loadRow(bias, 0, width, b.data());
  lathe_bias_add(x, b.data(), rows, width, out);
}

void attention(const float *q, const float *k, const float *v,
               std::span<const int32_t> storeRows, std::span<const VisibleRows> visible,
               int64_t heads, int64_t kvHeads, int64_t headDim, KVLayerView cache,
               float *scratch, float *out) {
  storeKV(k, v, storeRows, cache);
  attendHeads(q, visible, heads, kvHeads, headDim, cache, 0, heads, scratch, out);
}

namespace {

/// Row `row` of a KV array, columns [first, first + n), as floats: a
/// head's slice, decoded on its own (its blocks never cross heads).
void loadKV(const void *base, formats::KvFormat format, int64_t width, int64_t row,
            int64_t first, int64_t n, float *out) {
  const uint8_t *p =
      static_cast<const uint8_t *>(base) + size_t(row) * formats::kvRowBytes(format, width);
  formats::decodeKvValues(format, p, first, {out, size_t(n)});
}

/// The same for a key (value: `value`) row of any cache, windowed ones
/// included.
void loadKV(const KVLayerView &cache, bool value, int64_t row, int64_t first, int64_t n,
            float *out) {
  if (!cache.format.windowed())
    return loadKV(value ? cache.values : cache.keys, cache.format, cache.width, row, first, n,
                  out);
  if (row >= cache.windowRow) {
    const float *w = (value ? cache.windowValues : cache.windowKeys) +
                     (row - cache.windowRow) * cache.width + first;
    std::copy_n(w, n, out);
  } else if (value || !cache.format.kivi()) {
    loadKV(value ? cache.values : cache.keys, cache.format, cache.width, row, first, n, out);
  } else {
    const int64_t g = cache.format.keyGroup;
    formats::decodeKiviKey(cache.format,
                           static_cast<const uint8_t *>(cache.keys) +
                               size_t(row / g) * formats::kiviKeyGroupBytes(cache.format,
                                                                           cache.width),
                           cache.width, row % g, first, {out, size_t(n)});
  }
}

void storeRow(const float *x, formats::KvFormat format, int64_t width, void *base,
              int64_t row) {
  formats::encodeKvRow(format, {x, size_t(width)},
                       static_cast<uint8_t *>(base) +
                           size_t(row) * formats::kvRowBytes(format, width));
}

} // namespace

void storeKV(const float *k, const float *v, std::span<const int32_t> rows,
             KVLayerView cache) {
  if (cache.format.windowed()) {
    // Window rows, f32: the cache quantizes whole blocks as they leave the
    // window.
    for (size_t t = 0; t < rows.size(); ++t) {
      const int64_t row = rows[t] - cache.windowRow;
      std::copy_n(k + t * cache.width, cache.width, cache.windowKeys + row * cache.width);
      std::copy_n(v + t * cache.width, cache.width, cache.windowValues + row * cache.width);
    }
    return;
  }
  for (size_t t = 0; t < rows.size(); ++t) {
    storeRow(k + t * cache.width, cache.format, cache.width, cache.keys, rows[t]);
    storeRow(v + t * cache.width, cache.format, cache.width, cache.values, rows[t]);
  }
}

void attendHeads(const float *q, std::span<const VisibleRows> visible, int64_t heads,
                 int64_t kvHeads, int64_t headDim, KVLayerView cache, int64_t h0,
                 int64_t h1, float *scratch, float *out) {
  int64_t qWidth = heads * headDim;
  int64_t group = heads / kvHeads;
  double invSqrt = lathe_inverse_sqrt(double(headDim));
  std::vector<double> acc(headDim);
  std::vector<float> kv(headDim);
  for (size_t t = 0; t < visible.size(); ++t) {
    const VisibleRows &rows = visible[t];
    const int64_t len = rows.count();
    for (int64_t h = h0; h < h1; ++h) {
      const float *qh = q + t * qWidth + h * headDim;
      int64_t kvOffset = (h / group) * headDim;
      float maxScore = -INFINITY;
      for (int64_t p = 0; p < len; ++p) {
        loadKV(cache, false, rows[p], kvOffset, headDim, kv.data());
        scratch[p] = static_cast<float>(dot(qh, kv.data(), headDim) * invSqrt);
        maxScore = std::max(maxScore, scratch[p]);
      }
      double sum = 0;
      for (int64_t p = 0; p < len; ++p) {
        scratch[p] = lathe_exp_f32(scratch[p] - maxScore);
        sum += scratch[p];
      }
      // Position-major, so the cache is read in storage order.
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t p = 0; p < len; ++p) {
        loadKV(cache, true, rows[p], kvOffset, headDim, kv.data());
        double wgt = scratch[p];
        for (int64_t d = 0; d < headDim; ++d)
          acc[d] += wgt * kv[d];
      }
      float *oh = out + t * qWidth + h * headDim;
      for (int64_t d = 0; d < headDim; ++d)
        oh[d] = static_cast<float>(acc[d] / sum);
    }
  }
}

void siluMul(const float *gate, const float *up, int64_t n, float *out) {
  lathe_silu_mul(gate, up, n, out);
}

void add(const float *a, const float *b, int64_t n, float *out) { lathe_add(a, b, n, out); }

} // namespace lathe::kernels
