// The CUDA target's element-wise steps (embedding, RMSNorm, RoPE, bias add,
// SwiGLU, add) and the KV cache's row layout and stores. Each works on the token
// row blockIdx.x, its elements spread over the gridDim.y blocks of the
// token (one block for the norms, whose row is one reduction). Numerics
// follow the reference kernels (runtime/kernels/ReferenceKernels.h): RMSNorm
// sums squares in double, RoPE angles are computed in double. Part of
// LatheCudaKernels.cuh.
#pragma once

#include "CudaCommon.cuh"

namespace lathe_cuda {

/// out[t] = row tokens[t] of the table, decoded.
template <class W, int Width, int64_t RowBytes>
__device__ void embedding(const LatheCudaFrame &f, int table, int out) {
  startStep();
  const int t = blockIdx.x;
  const uint8_t *row = f.weights[table] + int64_t(f.tokens[t]) * RowBytes;
  float *y = f.buffers[out] + int64_t(t) * Width;
  for (int k = rowStart(); k < Width; k += rowStride())
    y[k] = W::at(row, k);
}

/// 1 / sqrt(mean(x^2) + eps) from a row's sum of squares (in double, as
/// lathe_rms_norm): the one formula of every fused and unfused norm.
template <int Width> __device__ float rmsScaleOf(double squares, float epsilon) {
  return float(1.0 / sqrt(squares / double(Width) + double(epsilon)));
}

/// rmsScaleOf a row, squares summed in double by the block; every thread
/// gets it.
template <int Width> __device__ float rmsScale(const float *x, float epsilon) {
  double squares = 0;
  for (int k = threadIdx.x; k < Width; k += kThreads)
    squares += double(x[k]) * x[k];
  return rmsScaleOf<Width>(blockSum(squares), epsilon);
}

/// out = x / sqrt(mean(x^2) + eps) * gain for the block's row.
template <class Gain, int Width>
__device__ void scaleRow(const float *x, const uint8_t *gain, float epsilon, float *y) {
  const float scale = rmsScale<Width>(x, epsilon);
  for (int k = threadIdx.x; k < Width; k += kThreads)
    y[k] = Gain::at(gain, k) * (scale * x[k]);
}

template <class Gain, int Width>
__device__ void rmsNorm(const LatheCudaFrame &f, int in, int gain, float epsilon, int out) {
  startStep();
  const int64_t r = int64_t(blockIdx.x) * Width;
  scaleRow<Gain, Width>(f.buffers[in] + r, f.weights[gain], epsilon, f.buffers[out] + r);
}

/// RMSNorm of each Slice-wide part of the token's row on its own (per-head
/// q/k norms), the part blockIdx.y.
template <class Gain, int Width, int Slice>
__device__ void rmsNormSlices(const LatheCudaFrame &f, int in, int gain, float epsilon, int out) {
  startStep();
  const int64_t r = int64_t(blockIdx.x) * Width + int64_t(blockIdx.y) * Slice;
  scaleRow<Gain, Slice>(f.buffers[in] + r, f.weights[gain], epsilon, f.buffers[out] + r);
}

/// out = x + bias, row by row (lathe_bias_add). in may be out.
template <class Bias, int Width>
__device__ void biasAdd(const LatheCudaFrame &f, int in, int bias, int out) {
  startStep();
  const int64_t r = int64_t(blockIdx.x) * Width;
  const float *x = f.buffers[in] + r;
  float *y = f.buffers[out] + r;
  for (int k = rowStart(); k < Width; k += rowStride())
    y[k] = x[k] + Bias::at(f.weights[bias], k);
}

/// sum = lhs + rhs, then out = RMSNorm(sum) * gain.
template <class Gain, int Width>
__device__ void addRmsNorm(const LatheCudaFrame &f, int lhs, int rhs, int gain, int sum,
                           float epsilon, int out) {
  startStep();
  const int64_t r = int64_t(blockIdx.x) * Width;
  const float *a = f.buffers[lhs] + r, *b = f.buffers[rhs] + r;
  float *s = f.buffers[sum] + r;
  for (int k = threadIdx.x; k < Width; k += kThreads)
    s[k] = a[k] + b[k];
  __syncthreads();
  scaleRow<Gain, Width>(s, f.weights[gain], epsilon, f.buffers[out] + r);
}

/// Pair p of a row of heads, rotated by position * the frequency of pair i
/// of its head (computed by the compiler with plan::RopeStep::frequencies,
/// as the CPU's are: a table of HeadDim / 2 per group of HeadsPerTable
/// consecutive heads), the angle in double (lathe_rope):
/// interleaved pairs (2i, 2i + 1) or rotate-half pairs (i, i + HeadDim / 2).
/// Returns the pair's two indices in the row and their rotated values.
template <int HeadDim, bool Interleaved> __device__ void ropePair(int p, int &a, int &b) {
  constexpr int half = HeadDim / 2;
  const int h = p / half * HeadDim, i = p % half;
  a = Interleaved ? h + 2 * i : h + i;
  b = Interleaved ? a + 1 : a + half;
}
/// A rotary pair's rotation at a position: the cosine and sine of its angle.
struct Rotation {
  double c, s;
};
/// Pair p's rotation at `position`.
template <int HeadDim, int HeadsPerTable>
__device__ Rotation rotationOf(int p, double position, const double *frequencies) {
  constexpr int half = HeadDim / 2;
  Rotation r;
  sincos(position * frequencies[(p / half / HeadsPerTable) * half + p % half], &r.s, &r.c);
  return r;
}
/// Values x0, x1 of a pair (at ropePair's a, b) rotated by r.
__device__ inline void rotateValues(Rotation r, double x0, double x1, float &ya, float &yb) {
  ya = float(x0 * r.c - x1 * r.s);
  yb = float(x0 * r.s + x1 * r.c);
}
/// Pair p's values x0, x1 rotated at `position`.
template <int HeadDim, int HeadsPerTable>
__device__ void rotateValues(int p, double position, const double *frequencies, double x0,
                             double x1, float &ya, float &yb) {
  rotateValues(rotationOf<HeadDim, HeadsPerTable>(p, position, frequencies), x0, x1, ya, yb);
}
template <int HeadDim, bool Interleaved, int HeadsPerTable>
__device__ void rotatePair(const float *x, int p, double position, const double *frequencies,
                           int &a, int &b, float &ya, float &yb) {
  ropePair<HeadDim, Interleaved>(p, a, b);
  rotateValues<HeadDim, HeadsPerTable>(p, position, frequencies, x[a], x[b], ya, yb);
}

/// RoPE of the token's row. in may be out.
template <int Width, int HeadDim, bool Interleaved, int HeadsPerTable>
__device__ void rope(const LatheCudaFrame &f, int in, int out, const double *frequencies) {
  startStep();
  const int t = blockIdx.x;
  const float *x = f.buffers[in] + int64_t(t) * Width;
  float *y = f.buffers[out] + int64_t(t) * Width;
  const double position = double(f.positions[t]);
  for (int p = rowStart(); p < Width / 2; p += rowStride()) {
    int a, b;
    float ya, yb;
    rotatePair<HeadDim, Interleaved, HeadsPerTable>(x, p, position, frequencies, a, b, ya, yb);
    y[a] = ya;
    y[b] = yb;
  }
}

/// out = silu(gate) * up (lathe_silu_mul).
template <int Width>
__device__ void siluMul(const LatheCudaFrame &f, int gate, int up, int out) {
  startStep();
  const int64_t r = int64_t(blockIdx.x) * Width;
  const float *g = f.buffers[gate] + r, *u = f.buffers[up] + r;
  float *y = f.buffers[out] + r;
  for (int k = rowStart(); k < Width; k += rowStride())
    y[k] = g[k] / (1.0f + expf(-g[k])) * u[k];
}

template <int Width> __device__ void add(const LatheCudaFrame &f, int lhs, int rhs, int out) {
  startStep();
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
  startStep();
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

/// Encodes a block of Block values of a compressed KV row (PackedKv in
/// CudaAttention.cuh) as runtime/formats/KvFormat.h's encodeKvRow does, to
/// the bit: int8 a float32 scale max|x| / 127 (lowered an ulp when its 127
/// multiple overflows) and codes round-half-even(x / scale); BFP the
/// exponent floor(log2 max|x|) clamped to [-127, 127] (-127 for zeros) and
/// mantissas round-half-even(x * 2^-(e - (Bits - 2))), both saturated
/// symmetrically. A block holding NaN or infinity decodes to NaN (a NaN
/// scale, exponent code 255).
///
/// A warp encodes a block, value i in lane i % 32 (kPerLane values a lane
/// for blocks of more than 32): the largest magnitude is a warp's shuffled
/// maximum, and a 4-bit code's neighbour comes from the next lane, so each
/// code byte is written once, whole. (A thread a block took 11 us a layer
/// for one token of the Llama-3.2-1B shape, H100: 32 loads and 16
/// read-modify-writes of global bytes in turn.) Every lane of the warp
/// calls load and store together.
template <bool Int8, int Bits, int Block> struct KvBlockEncoder {
  static_assert(Bits == 8 || (Bits == 4 && Block % 2 == 0), "int8, bfp8 or bfp4 blocks");
  static constexpr int kPerLane = (Block + 31) / 32;
  struct Values {
    float v[kPerLane];
  };
  /// This lane's values of the block at x (0 past its end).
  __device__ static Values load(const float *x) {
    const int lane = threadIdx.x % 32;
    Values out;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j)
      out.v[j] = lane + 32 * j < Block ? x[lane + 32 * j] : 0.0f;
    return out;
  }
  /// The block's header to `header`, its codes to `codes`.
  __device__ static void store(const Values &x, uint8_t *header, uint8_t *codes) {
    constexpr int qmax = Int8 ? 127 : (1 << (Bits - 1)) - 1;
    const int lane = threadIdx.x % 32;
    // Magnitudes' bits order as their values; NaN and infinity above all
    // finite ones.
    uint32_t top = 0;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j)
      top = max(top, __float_as_uint(fabsf(x.v[j])));
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2)
      top = max(top, __shfl_xor_sync(0xFFFFFFFFu, top, offset));
    const bool finite = top < 0x7F800000u;
    const double largest = double(__uint_as_float(top));
    // Int8 divides by the scale (as the CPU's codec does: the quotient and
    // the product by an inverse may round differently); BFP multiplies by
    // an exact power of two.
    double factor = 0;
    if constexpr (Int8) {
      float scale = finite ? float(largest / 127) : NAN;
      factor = double(scale);
      if (finite && !isfinite(127.0f * scale))
        scale = nextafterf(scale, 0.0f);
      if (lane < 4)
        header[lane] = uint8_t(__float_as_uint(scale) >> (8 * lane));
    } else {
      int e = -127;
      if (largest > 0) {
        int ex;
        frexp(largest, &ex);
        e = max(-127, min(127, ex - 1));
      }
      if (lane == 0)
        header[0] = finite ? uint8_t(e + 127) : uint8_t(0xFF);
      factor = ldexp(1.0, -(e - (Bits - 2)));
    }
    const bool coded = finite && factor > 0;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      const int i = lane + 32 * j;
      int q = 0;
      if (coded) {
        const double scaled = Int8 ? double(x.v[j]) / factor : double(x.v[j]) * factor;
        q = int(fmin(fmax(rint(scaled), double(-qmax)), double(qmax)));
      }
      if constexpr (Bits == 8) {
        if (i < Block)
          codes[i] = uint8_t(int8_t(q));
      } else {
        const int next = __shfl_down_sync(0xFFFFFFFFu, q, 1);
        if (i < Block && i % 2 == 0)
          codes[i / 2] = uint8_t((q & 0xF) | (next & 0xF) << 4);
      }
    }
  }
};

/// An attention step's preparation in one kernel: RoPE of the queries
/// (qIn -> qOut) and of the keys (kIn -> kOut), and the rotated key and
/// the value stored at the token's cache row. Pairs of the queries come
/// first, then those of the keys, then the values, spread over the token's
/// blocks. The same arithmetic as rope() and storeKV() one after another.
/// (For a single token the q/k/v product before it may do all of it:
/// RopeRows and CachedRows in CudaProducts.cuh; its launch is then
/// LATHE_CUDA_GRID_PER_TOKENS, which such steps leave out.)
template <typename E, int QWidth, int KvWidth, int HeadDim, bool Interleaved, int QHeadsPerTable,
          int KHeadsPerTable>
__device__ void ropeStoreKV(const LatheCudaFrame &f, int qIn, int qOut, int kIn, int kOut,
                            int values, int layer, const double *frequencies) {
  startStep();
  const int t = blockIdx.x;
  const double position = double(f.positions[t]);
  const float *q = f.buffers[qIn] + int64_t(t) * QWidth;
  float *qo = f.buffers[qOut] + int64_t(t) * QWidth;
  const float *k = f.buffers[kIn] + int64_t(t) * KvWidth;
  float *ko = f.buffers[kOut] + int64_t(t) * KvWidth;
  const float *v = f.buffers[values] + int64_t(t) * KvWidth;
  const int64_t row = f.storeRows[t];
  E *kd = cacheRow<E, KvWidth>(f, layer, false, row);
  E *vd = cacheRow<E, KvWidth>(f, layer, true, row);
  constexpr int qPairs = QWidth / 2, kPairs = KvWidth / 2;
  for (int p = rowStart(); p < qPairs + kPairs + KvWidth; p += rowStride()) {
    int a, b;
    float ya, yb;
    if (p < qPairs) {
      rotatePair<HeadDim, Interleaved, QHeadsPerTable>(q, p, position, frequencies, a, b, ya,
                                                       yb);
      qo[a] = ya;
      qo[b] = yb;
    } else if (p < qPairs + kPairs) {
      rotatePair<HeadDim, Interleaved, KHeadsPerTable>(k, p - qPairs, position, frequencies, a,
                                                       b, ya, yb);
      ko[a] = ya;
      ko[b] = yb;
      kd[a] = toCache<E>(ya);
      kd[b] = toCache<E>(yb);
    } else {
      const int i = p - qPairs - kPairs;
      vd[i] = toCache<E>(v[i]);
    }
  }
}

} // namespace lathe_cuda
