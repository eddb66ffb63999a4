// The CUDA target's attention over the paged KV cache: one block per
// (token, head), scores in shared memory, accumulation in float. Part of
// LatheCudaKernels.cuh.
#pragma once

#include "CudaElementwise.cuh"

namespace lathe_cuda {

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

/// The plain format a KV cache element type is stored as (Chunk decodes it).
template <typename E> struct CacheFormat;
template <> struct CacheFormat<float> { using type = F32; };
template <> struct CacheFormat<__half> { using type = F16; };
template <> struct CacheFormat<__nv_bfloat16> { using type = BF16; };

/// sum_d q[d] * k[d] over a key row: 16-byte loads (the row's head starts
/// 16-byte aligned when HeadDim is a multiple of the values per load).
template <typename E, int HeadDim> __device__ float dotKey(const E *k, const float *q) {
  using Format = typename CacheFormat<E>::type;
  constexpr int per = Chunk<Format>::kPer;
  float dot = 0;
  if constexpr (HeadDim % per == 0) {
    const uint4 *chunks = reinterpret_cast<const uint4 *>(k);
#pragma unroll
    for (int c = 0; c < HeadDim / per; ++c) {
      float v[per];
      Chunk<Format>::decode(__ldg(chunks + c), v);
      for (int i = 0; i < per; ++i)
        dot += q[c * per + i] * v[i];
    }
  } else {
    for (int d = 0; d < HeadDim; ++d)
      dot += q[d] * fromCache(k[d]);
  }
  return dot;
}

/// Attention of one token (blockIdx.x) for one head (blockIdx.y) over the
/// cache rows it sees: the query in shared memory, one score per visible
/// row in dynamic shared memory (a thread per row), softmax, then the
/// weighted sum of value rows: each warp takes every kWarps-th row, its
/// lanes the head's dimensions (one 128-byte run per row for f32 values
/// of a 64-wide head), and the warps' sums meet in shared memory.
template <typename E, int Heads, int KvHeads, int HeadDim>
__device__ void attention(const LatheCudaFrame &f, int queries, int out, int layer) {
  extern __shared__ float scores[];
  __shared__ float q[HeadDim];
  startStep();
  constexpr int kvWidth = KvHeads * HeadDim;
  const int t = blockIdx.x, h = blockIdx.y;
  const int kvOffset = (h / (Heads / KvHeads)) * HeadDim;
  const VisibleRows rows(f, t);
  const int count = rows.count;
  const float *query = f.buffers[queries] + int64_t(t) * Heads * HeadDim + h * HeadDim;
  for (int d = threadIdx.x; d < HeadDim; d += kThreads)
    q[d] = query[d];
  __syncthreads();
  const float scale = float(1.0 / sqrt(double(HeadDim)));

  float localMax = -INFINITY;
  for (int p = threadIdx.x; p < count; p += kThreads) {
    scores[p] = dotKey<E, HeadDim>(cacheRow<E, kvWidth>(f, layer, false, rows[p]) + kvOffset, q) *
                scale;
    localMax = fmaxf(localMax, scores[p]);
  }
  const float maxScore = blockMax(localMax);
  float localSum = 0;
  for (int p = threadIdx.x; p < count; p += kThreads) {
    scores[p] = expf(scores[p] - maxScore);
    localSum += scores[p];
  }
  const float total = blockSum(localSum); // also orders the writes above

  float *o = f.buffers[out] + int64_t(t) * Heads * HeadDim + h * HeadDim;
  if constexpr (HeadDim % 32 == 0 && HeadDim <= 256) {
    constexpr int perLane = HeadDim / 32;
    __shared__ float partial[kWarps][HeadDim];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float acc[perLane];
    for (int i = 0; i < perLane; ++i)
      acc[i] = 0;
#pragma unroll 4
    for (int p = warp; p < count; p += kWarps) {
      const E *v = cacheRow<E, kvWidth>(f, layer, true, rows[p]) + kvOffset;
      const float s = scores[p];
      for (int i = 0; i < perLane; ++i)
        acc[i] += s * fromCache(v[i * 32 + lane]);
    }
    for (int i = 0; i < perLane; ++i)
      partial[warp][i * 32 + lane] = acc[i];
    __syncthreads();
    for (int d = threadIdx.x; d < HeadDim; d += kThreads) {
      float sum = 0;
      for (int w = 0; w < kWarps; ++w)
        sum += partial[w][d];
      o[d] = sum / total;
    }
  } else {
    // Heads of other widths: the block's threads in kThreads / HeadDim
    // groups over the rows.
    constexpr int groups = HeadDim >= kThreads ? 1 : kThreads / HeadDim;
    __shared__ float partial[groups > 1 ? groups * HeadDim : 1];
    const int group = threadIdx.x / HeadDim;
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
}

} // namespace lathe_cuda
