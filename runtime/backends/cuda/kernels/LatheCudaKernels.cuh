// The device kernels every model's generated CUDA code instantiates
// (codegen/CUDA/EmitCudaModel.cpp): one template per kind of plan step,
// with the shapes, the weight formats and the buffer indices of the step as
// template arguments, so that nvcc sees constants everywhere. The generated
// file defines one extern "C" __global__ function per launch that calls one
// of these; runtime/backends/cuda/CudaExecutable.cpp launches them in order.
//
// Numerics follow the reference kernels (runtime/kernels/ReferenceKernels.h):
// RMSNorm sums squares in double, RoPE angles are computed in double,
// products and attention accumulate in float (in another order, so results
// agree with the CPU to float rounding, not bit for bit). Packed weights are
// decoded in registers, value by value, exactly as formats::dequantizeRow
// decodes them; no float copy of a weight is ever made.
#pragma once

#include "CudaFrame.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <type_traits>

namespace lathe_cuda {

constexpr int kThreads = LATHE_CUDA_THREADS;
constexpr int kWarps = kThreads / 32;

// ---------------------------------------------------------------- weights
// A weight format: at(row, k) is element k of a row of the tensor as stored
// in the artifact (docs/formats.md).

struct F32 {
  __device__ static float at(const uint8_t *row, int k) {
    return reinterpret_cast<const float *>(row)[k];
  }
};
struct F16 {
  __device__ static float at(const uint8_t *row, int k) {
    return __half2float(reinterpret_cast<const __half *>(row)[k]);
  }
};
struct BF16 {
  __device__ static float at(const uint8_t *row, int k) {
    return __bfloat162float(reinterpret_cast<const __nv_bfloat16 *>(row)[k]);
  }
};

/// A little-endian float32 at any byte address (asymmetric INT groups put
/// the scale at odd offsets).
__device__ inline float loadF32(const uint8_t *p) {
  const uint32_t bits = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
                        uint32_t(p[3]) << 24;
  return __uint_as_float(bits);
}

/// INT8 / INT4 group-wise (runtime/formats/IntGroup.h): per group of G
/// values [scale: f32][zero point: u8, asymmetric only][codes], INT4 low
/// nibble first; symmetric codes are two's complement, asymmetric ones
/// unsigned with x = (q - z) * s.
template <int Bits, int G, bool Symmetric> struct IntGroup {
  static constexpr int kBits = Bits, kGroup = G;
  static constexpr bool kSymmetric = Symmetric;
  static constexpr int kHeader = Symmetric ? 4 : 5;
  static constexpr int kGroupBytes = kHeader + G * Bits / 8;
  __device__ static float at(const uint8_t *row, int k) {
    const uint8_t *group = row + (k / G) * kGroupBytes;
    const int j = k % G;
    const float scale = (kGroupBytes % 4 == 0) ? *reinterpret_cast<const float *>(group)
                                               : loadF32(group);
    int q;
    if (Bits == 8) {
      const uint8_t code = group[kHeader + j];
      q = Symmetric ? int(int8_t(code)) : int(code) - int(group[4]);
    } else {
      const uint8_t byte = group[kHeader + j / 2];
      const int nibble = (j & 1) ? byte >> 4 : byte & 15;
      q = Symmetric ? ((nibble ^ 8) - 8) : nibble - int(group[4]);
    }
    return float(q) * scale;
  }
};

// --------------------------------------------------------------- reductions

__device__ inline float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline double warpSum(double v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline float warpMax(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// The sum over the block of every thread's v, returned to every thread.
template <typename T> __device__ T blockSum(T v) {
  __shared__ T partial[kWarps];
  __syncthreads(); // partial may still be read by an earlier call
  v = warpSum(v);
  if (threadIdx.x % 32 == 0)
    partial[threadIdx.x / 32] = v;
  __syncthreads();
  T total = 0;
  for (int w = 0; w < kWarps; ++w)
    total += partial[w];
  return total;
}

__device__ inline float blockMax(float v) {
  __shared__ float partial[kWarps];
  __syncthreads();
  v = warpMax(v);
  if (threadIdx.x % 32 == 0)
    partial[threadIdx.x / 32] = v;
  __syncthreads();
  float m = partial[0];
  for (int w = 1; w < kWarps; ++w)
    m = fmaxf(m, partial[w]);
  return m;
}

// ------------------------------------------------------ element-wise steps
// Token row blockIdx.x; the row's elements spread over the gridDim.y blocks
// of the token (one for the norms, whose row is one reduction).

/// The first element of this thread and the stride over a row.
__device__ inline int rowStart() { return blockIdx.y * kThreads + threadIdx.x; }
__device__ inline int rowStride() { return gridDim.y * kThreads; }

/// out[t] = row tokens[t] of the table, decoded.
template <class W, int Width, int64_t RowBytes>
__device__ void embedding(const LatheCudaFrame &f, int table, int out) {
  const int t = blockIdx.x;
  const uint8_t *row = f.weights[table] + int64_t(f.tokens[t]) * RowBytes;
  float *y = f.buffers[out] + int64_t(t) * Width;
  for (int k = rowStart(); k < Width; k += rowStride())
    y[k] = W::at(row, k);
}

/// out = x / sqrt(mean(x^2) + eps) * gain for the block's row, squares
/// summed in double (lathe_rms_norm).
template <class Gain, int Width>
__device__ void scaleRow(const float *x, const uint8_t *gain, float epsilon, float *y) {
  double squares = 0;
  for (int k = threadIdx.x; k < Width; k += kThreads)
    squares += double(x[k]) * x[k];
  squares = blockSum(squares);
  const float scale = float(1.0 / sqrt(squares / double(Width) + double(epsilon)));
  for (int k = threadIdx.x; k < Width; k += kThreads)
    y[k] = Gain::at(gain, k) * (scale * x[k]);
}

template <class Gain, int Width>
__device__ void rmsNorm(const LatheCudaFrame &f, int in, int gain, float epsilon, int out) {
  const int64_t r = int64_t(blockIdx.x) * Width;
  scaleRow<Gain, Width>(f.buffers[in] + r, f.weights[gain], epsilon, f.buffers[out] + r);
}

/// sum = lhs + rhs, then out = RMSNorm(sum) * gain.
template <class Gain, int Width>
__device__ void addRmsNorm(const LatheCudaFrame &f, int lhs, int rhs, int gain, int sum,
                           float epsilon, int out) {
  const int64_t r = int64_t(blockIdx.x) * Width;
  const float *a = f.buffers[lhs] + r, *b = f.buffers[rhs] + r;
  float *s = f.buffers[sum] + r;
  for (int k = threadIdx.x; k < Width; k += kThreads)
    s[k] = a[k] + b[k];
  __syncthreads();
  scaleRow<Gain, Width>(s, f.weights[gain], epsilon, f.buffers[out] + r);
}

/// Rotates each head of the row by position * theta^(-2i / HeadDim) for
/// pair i, angles in double (lathe_rope): interleaved pairs (2i, 2i + 1)
/// or rotate-half pairs (i, i + HeadDim / 2). in may be out.
template <int Width, int HeadDim, bool Interleaved>
__device__ void rope(const LatheCudaFrame &f, int in, int out, float theta) {
  const int t = blockIdx.x;
  const float *x = f.buffers[in] + int64_t(t) * Width;
  float *y = f.buffers[out] + int64_t(t) * Width;
  constexpr int half = HeadDim / 2;
  const double position = double(f.positions[t]);
  for (int p = rowStart(); p < Width / 2; p += rowStride()) {
    const int h = (p / half) * HeadDim, i = p % half;
    const double angle =
        position * pow(double(theta), -2.0 * double(i) / double(HeadDim));
    double s, c;
    sincos(angle, &s, &c);
    const int a = Interleaved ? h + 2 * i : h + i;
    const int b = Interleaved ? a + 1 : a + half;
    const double x0 = x[a], x1 = x[b];
    y[a] = float(x0 * c - x1 * s);
    y[b] = float(x0 * s + x1 * c);
  }
}

/// out = silu(gate) * up (lathe_silu_mul).
template <int Width>
__device__ void siluMul(const LatheCudaFrame &f, int gate, int up, int out) {
  const int64_t r = int64_t(blockIdx.x) * Width;
  const float *g = f.buffers[gate] + r, *u = f.buffers[up] + r;
  float *y = f.buffers[out] + r;
  for (int k = rowStart(); k < Width; k += rowStride())
    y[k] = g[k] / (1.0f + expf(-g[k])) * u[k];
}

template <int Width> __device__ void add(const LatheCudaFrame &f, int lhs, int rhs, int out) {
  const int64_t r = int64_t(blockIdx.x) * Width;
  const float *a = f.buffers[lhs] + r, *b = f.buffers[rhs] + r;
  float *y = f.buffers[out] + r;
  for (int k = rowStart(); k < Width; k += rowStride())
    y[k] = a[k] + b[k];
}

// ------------------------------------------------------------- KV cache

template <typename E> __device__ E toCache(float v);
template <> __device__ inline float toCache<float>(float v) { return v; }
template <> __device__ inline __half toCache<__half>(float v) { return __float2half_rn(v); }
template <> __device__ inline __nv_bfloat16 toCache<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
__device__ inline float fromCache(float v) { return v; }
__device__ inline float fromCache(__half v) { return __half2float(v); }
__device__ inline float fromCache(__nv_bfloat16 v) { return __bfloat162float(v); }

/// Row `row` of layer `layer`'s keys (value = false) or values (kv::KVLayout).
template <typename E, int KvWidth>
__device__ E *cacheRow(const LatheCudaFrame &f, int layer, bool value, int64_t row) {
  return reinterpret_cast<E *>(f.kv) + ((int64_t(layer) * 2 + (value ? 1 : 0)) * f.kvRows + row) *
                                           int64_t(KvWidth);
}

/// Stores the block's token's key and value rows at its cache row.
template <typename E, int KvWidth>
__device__ void storeKV(const LatheCudaFrame &f, int keys, int values, int layer) {
  const int t = blockIdx.x;
  const int64_t row = f.storeRows[t];
  const float *k = f.buffers[keys] + int64_t(t) * KvWidth;
  const float *v = f.buffers[values] + int64_t(t) * KvWidth;
  E *kd = cacheRow<E, KvWidth>(f, layer, false, row);
  E *vd = cacheRow<E, KvWidth>(f, layer, true, row);
  for (int i = rowStart(); i < KvWidth; i += rowStride()) {
    kd[i] = toCache<E>(k[i]);
    vd[i] = toCache<E>(v[i]);
  }
}

/// The cache rows one token sees (backend::VisibleRows): its sequence's
/// first `prefix` rows, then its `extras` (ancestors in a token tree).
struct VisibleRows {
  const int32_t *rows, *extras;
  int prefix, count;
  __device__ VisibleRows(const LatheCudaFrame &f, int64_t t) {
    const int32_t *v = f.visible + 4 * t;
    rows = f.visibleRows + v[0];
    prefix = v[1];
    extras = f.visibleRows + v[2];
    count = v[1] + v[3];
  }
  __device__ int64_t operator[](int p) const {
    return p < prefix ? rows[p] : extras[p - prefix];
  }
};

/// Attention of one token (blockIdx.x) for one head (blockIdx.y) over the
/// cache rows it sees: scores in dynamic shared memory (one float per
/// visible row), softmax, then the weighted sum of value rows, the block's
/// threads split into kThreads / HeadDim groups over the rows.
template <typename E, int Heads, int KvHeads, int HeadDim>
__device__ void attention(const LatheCudaFrame &f, int queries, int out, int layer) {
  extern __shared__ float scores[];
  constexpr int kvWidth = KvHeads * HeadDim;
  const int t = blockIdx.x, h = blockIdx.y;
  const int kvOffset = (h / (Heads / KvHeads)) * HeadDim;
  const VisibleRows rows(f, t);
  const int count = rows.count;
  const float *q = f.buffers[queries] + int64_t(t) * Heads * HeadDim + h * HeadDim;
  const float scale = float(1.0 / sqrt(double(HeadDim)));

  float localMax = -INFINITY;
  for (int p = threadIdx.x; p < count; p += kThreads) {
    const E *k = cacheRow<E, kvWidth>(f, layer, false, rows[p]) + kvOffset;
    float dot = 0;
    for (int d = 0; d < HeadDim; ++d)
      dot += q[d] * fromCache(k[d]);
    scores[p] = dot * scale;
    localMax = fmaxf(localMax, scores[p]);
  }
  const float maxScore = blockMax(localMax);
  float localSum = 0;
  for (int p = threadIdx.x; p < count; p += kThreads) {
    scores[p] = expf(scores[p] - maxScore);
    localSum += scores[p];
  }
  const float total = blockSum(localSum); // also orders the writes above

  constexpr int groups = HeadDim >= kThreads ? 1 : kThreads / HeadDim;
  __shared__ float partial[groups > 1 ? groups * HeadDim : 1];
  const int group = threadIdx.x / HeadDim;
  float *o = f.buffers[out] + int64_t(t) * Heads * HeadDim + h * HeadDim;
  for (int d0 = 0; d0 < HeadDim; d0 += kThreads) {
    const int d = d0 + (groups > 1 ? threadIdx.x % HeadDim : threadIdx.x);
    float acc = 0;
    if (group < groups && d < HeadDim)
      for (int p = group; p < count; p += groups)
        acc += scores[p] * fromCache(cacheRow<E, kvWidth>(f, layer, true, rows[p])[kvOffset + d]);
    if (groups > 1) {
      if (group < groups)
        partial[group * HeadDim + d] = acc;
      __syncthreads();
      if (threadIdx.x < HeadDim) {
        float sum = 0;
        for (int g = 0; g < groups; ++g)
          sum += partial[g * HeadDim + threadIdx.x];
        o[threadIdx.x] = sum / total;
      }
    } else if (d < HeadDim) {
      o[d] = acc / total;
    }
  }
}

// ------------------------------------------------------------- products

/// Plain formats read 16 bytes at a time: kPer values per chunk, decoded
/// into floats. kPer = 0: no such path (the packed formats, value by value).
template <class W> struct Chunk {
  static constexpr int kPer = 0;
};
template <> struct Chunk<F32> {
  static constexpr int kPer = 4;
  __device__ static void decode(uint4 raw, float *out) {
    out[0] = __uint_as_float(raw.x);
    out[1] = __uint_as_float(raw.y);
    out[2] = __uint_as_float(raw.z);
    out[3] = __uint_as_float(raw.w);
  }
};
template <> struct Chunk<BF16> {
  static constexpr int kPer = 8;
  __device__ static void decode(uint4 raw, float *out) {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
    for (int i = 0; i < 4; ++i) { // bf16 is the upper half of a float32
      out[2 * i] = __uint_as_float(words[i] << 16);
      out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  }
};
template <> struct Chunk<F16> {
  static constexpr int kPer = 8;
  __device__ static void decode(uint4 raw, float *out) {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
    for (int i = 0; i < 4; ++i) {
      const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&words[i]));
      out[2 * i] = f.x;
      out[2 * i + 1] = f.y;
    }
  }
};

/// y[t, n] = sum_k x[t, k] * W[n, k] for the N rows of W this block's warps
/// take (one output row per warp per pass), tokens four at a time, so that
/// each weight is decoded once per four tokens; plain formats in 16-byte
/// chunks, packed ones value by value. `gather`: token i reads
/// input row f.logitTokens[i] and writes output row i (the classifier).
template <class W> struct IsIntGroup : std::false_type {};
template <int Bits, int G, bool S> struct IsIntGroup<IntGroup<Bits, G, S>> : std::true_type {};

/// sum_i q_i * x[i] over the 8 (INT4) or 4 (INT8) two's complement codes of
/// one 32-bit word, x read as float4s.
template <int Bits> __device__ inline float dotWord(uint32_t word, const float *x) {
  float sum = 0;
  if constexpr (Bits == 8) {
    const float4 v = *reinterpret_cast<const float4 *>(x);
    sum += float(int8_t(word)) * v.x + float(int8_t(word >> 8)) * v.y +
           float(int8_t(word >> 16)) * v.z + float(int8_t(word >> 24)) * v.w;
  } else {
    const float4 a = reinterpret_cast<const float4 *>(x)[0];
    const float4 b = reinterpret_cast<const float4 *>(x)[1];
    auto q = [&](int i) { return float((int((word >> (4 * i)) & 15u) ^ 8) - 8); };
    sum += q(0) * a.x + q(1) * a.y + q(2) * a.z + q(3) * a.w + q(4) * b.x + q(5) * b.y +
           q(6) * b.z + q(7) * b.w;
  }
  return sum;
}

/// One output row of W against J token rows (xs), summed by the warp;
/// lane 0 writes y[ys[j] * N + n].
template <class W, int K, int N, int64_t RowBytes, int J>
__device__ void productRow(const uint8_t *row, const float *const *xs, float *y,
                           const int *ys, int n) {
  const int lane = threadIdx.x % 32;
  // Rows of 16-byte chunks of a plain format: each lane loads whole chunks
  // (a warp reads 512 contiguous bytes per load), several in flight.
  constexpr int per = Chunk<W>::kPer;
  constexpr bool chunked = per > 0 && RowBytes % 16 == 0 && K % per == 0 && K % 4 == 0;
  float acc[J];
  for (int j = 0; j < J; ++j)
    acc[j] = 0;
  // Symmetric INT groups of whole 32-bit words: the lanes of a warp share
  // out the words of consecutive groups (8 lanes per INT8 group of 32, 4 per
  // INT4 group), so that the warp's code loads and input loads are each one
  // contiguous run; a lane scales its word's sum of code * x by the group's
  // scale (rounding in another order than value by value's
  // (code * scale) * x: they agree to float rounding).
  if constexpr (IsIntGroup<W>::value) {
    constexpr int words = W::kGroup * W::kBits / 32, valuesPerWord = 32 / W::kBits;
    constexpr bool grouped = W::kSymmetric && W::kGroupBytes % 4 == 0 && RowBytes % 4 == 0 &&
                             K % W::kGroup == 0 && 32 % words == 0;
    if constexpr (grouped) {
      constexpr int groups = K / W::kGroup, groupsPerPass = 32 / words;
      const int word = lane % words;
#pragma unroll 4
      for (int g = lane / words; g < groups; g += groupsPerPass) {
        const uint32_t *group = reinterpret_cast<const uint32_t *>(row + g * W::kGroupBytes);
        const float scale = __uint_as_float(__ldg(group));
        const uint32_t codes = __ldg(group + 1 + word);
        for (int j = 0; j < J; ++j)
          acc[j] += scale * dotWord<W::kBits>(codes, xs[j] + g * W::kGroup + word * valuesPerWord);
      }
      for (int j = 0; j < J; ++j) {
        const float s = warpSum(acc[j]);
        if (lane == 0)
          y[int64_t(ys[j]) * N + n] = s;
      }
      return;
    }
  }
  if constexpr (chunked) {
    const uint4 *chunks = reinterpret_cast<const uint4 *>(row);
#pragma unroll 4
    for (int c = lane; c < K / per; c += 32) {
      float wv[per];
      Chunk<W>::decode(__ldg(chunks + c), wv);
      for (int j = 0; j < J; ++j) {
        const float4 *xv = reinterpret_cast<const float4 *>(xs[j] + c * per);
        for (int q = 0; q < per / 4; ++q) {
          const float4 v = xv[q];
          acc[j] += wv[4 * q] * v.x + wv[4 * q + 1] * v.y + wv[4 * q + 2] * v.z +
                    wv[4 * q + 3] * v.w;
        }
      }
    }
  } else {
    for (int k = lane; k < K; k += 32) {
      const float wk = W::at(row, k);
      for (int j = 0; j < J; ++j)
        acc[j] += wk * xs[j][k];
    }
  }
  for (int j = 0; j < J; ++j) {
    const float s = warpSum(acc[j]);
    if (lane == 0)
      y[int64_t(ys[j]) * N + n] = s;
  }
}

/// y[t, n] = sum_k x[t, k] * W[n, k] for the N rows of W this block's warps
/// take (one output row per warp per pass), tokens up to four at a time, so
/// that each weight is decoded once per four tokens (and a decode step's
/// one token reads its input once per weight); plain formats in 16-byte
/// chunks, packed ones value by value. `gather`: token i reads input row
/// f.logitTokens[i] and writes output row i (the classifier).
template <class W, int K, int N, int64_t RowBytes, bool Gather>
__device__ void product(const LatheCudaFrame &f, int in, int weight, int out, int blockX) {
  const int warp = threadIdx.x / 32;
  const int tokens = Gather ? f.logitCount : f.rows;
  const float *x = f.buffers[in];
  float *y = f.buffers[out];
  const uint8_t *w = f.weights[weight];
  for (int n = blockX * kWarps + warp; n < N; n += gridDim.x * kWarps) {
    const uint8_t *row = w + int64_t(n) * RowBytes;
    for (int t0 = 0; t0 < tokens; t0 += 4) {
      const float *xs[4];
      int ys[4];
      const int count = min(4, tokens - t0);
      for (int j = 0; j < count; ++j) {
        ys[j] = t0 + j;
        xs[j] = x + int64_t(Gather ? f.logitTokens[t0 + j] : t0 + j) * K;
      }
      switch (count) {
      case 1: productRow<W, K, N, RowBytes, 1>(row, xs, y, ys, n); break;
      case 2: productRow<W, K, N, RowBytes, 2>(row, xs, y, ys, n); break;
      case 3: productRow<W, K, N, RowBytes, 3>(row, xs, y, ys, n); break;
      default: productRow<W, K, N, RowBytes, 4>(row, xs, y, ys, n); break;
      }
    }
  }
}

} // namespace lathe_cuda
