// The CUDA target's attention over the paged KV cache: one block per token
// and group of query heads sharing a KV head, online softmax over chunks of
// the visible rows, accumulation in float. Part of LatheCudaKernels.cuh.
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

/// Attention of one token (blockIdx.x) for HeadsPerBlock query heads that
/// share a KV head (block y takes heads y * HeadsPerBlock ..): each key and
/// value row is read once for all of them (grouped-query attention reads
/// 1 / group of what a block per head reads). The visible rows go by in
/// chunks of kThreads, a thread per row: the chunk's scores, then each
/// head's running maximum, sum and weighted sum of values rescaled to it
/// (online softmax), so shared memory does not grow with the context. The
/// value rows, where a head's row is whole 16-byte loads that a warp's
/// lanes divide (HeadDim 64 in bf16: 8 lanes a row, 32 rows at once): each
/// thread one load of a row at a time, a few rows' loads in flight, the
/// sums of the rows meeting across the warp's lanes, then across warps in
/// shared memory. Otherwise the block's threads in kThreads / HeadDim
/// groups over the chunk's rows, a thread per dimension, the groups' sums
/// meeting in shared memory. (A thread per dimension walked a 128-row
/// context in 32 dependent loads: 14 us a layer for the Llama-3.2-1B shape.)
template <typename E, int Heads, int KvHeads, int HeadDim, int HeadsPerBlock>
__device__ void attention(const LatheCudaFrame &f, int queries, int out, int layer) {
  constexpr int G = HeadsPerBlock;
  static_assert((Heads / KvHeads) % G == 0, "a block's heads share one KV head");
  constexpr int kvWidth = KvHeads * HeadDim;
  constexpr int groups = HeadDim >= kThreads ? 1 : kThreads / HeadDim;
  constexpr int passes = (HeadDim + kThreads - 1) / kThreads; // dimensions per thread
  using Format = typename CacheFormat<E>::type;
  constexpr int per = Chunk<Format>::kPer; // values of a 16-byte load
  constexpr int lanesPerRow = HeadDim % per == 0 ? HeadDim / per : 0;
  constexpr bool kWide = lanesPerRow > 0 && lanesPerRow <= 32 && 32 % lanesPerRow == 0;
  __shared__ float q[G][HeadDim];
  __shared__ float scores[G][kThreads];
  __shared__ float partial[kWide ? kWarps : groups > 1 ? groups : 1][kWide ? 1 : G][HeadDim];
  startStep();
  const int t = blockIdx.x, h0 = blockIdx.y * G;
  const int kvOffset = (h0 / (Heads / KvHeads)) * HeadDim;
  const VisibleRows rows(f, t);
  const int count = rows.count;
  const float *query = f.buffers[queries] + int64_t(t) * Heads * HeadDim + h0 * HeadDim;
  for (int i = threadIdx.x; i < G * HeadDim; i += kThreads)
    q[i / HeadDim][i % HeadDim] = query[i];
  __syncthreads();
  const float scale = float(1.0 / sqrt(double(HeadDim)));

  const int group = threadIdx.x / HeadDim, lane = groups > 1 ? threadIdx.x % HeadDim : threadIdx.x;
  // Wide: the thread's row slot in a pass over the chunk's rows, and its
  // part of a row (values part * per ..).
  constexpr int rowsAtOnce = kWide ? kThreads / lanesPerRow : 1;
  const int slot = kWide ? threadIdx.x / lanesPerRow : 0;
  const int part = kWide ? threadIdx.x % lanesPerRow : 0;
  float maxScore[G], total[G], acc[passes][G], wide[G][kWide ? per : 1];
  for (int g = 0; g < G; ++g) {
    maxScore[g] = -INFINITY, total[g] = 0;
    for (int i = 0; i < passes; ++i)
      acc[i][g] = 0;
    for (int i = 0; i < (kWide ? per : 1); ++i)
      wide[g][i] = 0;
  }
  for (int p0 = 0; p0 < count; p0 += kThreads) {
    const int p = p0 + threadIdx.x, rowsHere = min(kThreads, count - p0);
    float s[G];
    if (p < count) {
      const E *k = cacheRow<E, kvWidth>(f, layer, false, rows[p]) + kvOffset;
      for (int g = 0; g < G; ++g)
        s[g] = dotKey<E, HeadDim>(k, q[g]) * scale;
    }
    for (int g = 0; g < G; ++g) {
      const float chunkMax = blockMax(p < count ? s[g] : -INFINITY);
      const float newMax = fmaxf(maxScore[g], chunkMax);
      const float e = p < count ? expf(s[g] - newMax) : 0.0f;
      scores[g][threadIdx.x] = e;
      const float rescale = expf(maxScore[g] - newMax); // 0 on the first chunk
      total[g] = total[g] * rescale + blockSum(e);      // blockSum orders the writes above
      for (int i = 0; i < passes; ++i)
        acc[i][g] *= rescale;
      for (int i = 0; i < (kWide ? per : 1); ++i)
        wide[g][i] *= rescale;
      maxScore[g] = newMax;
    }
    if constexpr (kWide) {
#pragma unroll 4
      for (int r = slot; r < rowsHere; r += rowsAtOnce) {
        const E *v = cacheRow<E, kvWidth>(f, layer, true, rows[p0 + r]) + kvOffset;
        float vd[per];
        Chunk<Format>::decode(__ldg(reinterpret_cast<const uint4 *>(v) + part), vd);
        for (int g = 0; g < G; ++g) {
          const float w = scores[g][r];
          for (int i = 0; i < per; ++i)
            wide[g][i] += w * vd[i];
        }
      }
    } else if (group < groups)
      for (int r = group; r < rowsHere; r += groups) {
        const E *v = cacheRow<E, kvWidth>(f, layer, true, rows[p0 + r]) + kvOffset;
        for (int i = 0; i < passes; ++i) {
          const int d = i * kThreads + lane;
          if (d < HeadDim) {
            const float vd = fromCache(v[d]);
            for (int g = 0; g < G; ++g)
              acc[i][g] += scores[g][r] * vd;
          }
        }
      }
    __syncthreads(); // before the next chunk's scores
  }
  float *o = f.buffers[out] + int64_t(t) * Heads * HeadDim + h0 * HeadDim;
  if constexpr (kWide) {
    // The row slots' sums: across the warp's slots (lanes lanesPerRow
    // apart), then across warps, a head at a time.
    for (int g = 0; g < G; ++g) {
      for (int i = 0; i < per; ++i)
        for (int step = lanesPerRow; step < 32; step *= 2)
          wide[g][i] += __shfl_xor_sync(0xffffffffu, wide[g][i], step);
      if (threadIdx.x % 32 < lanesPerRow)
        for (int i = 0; i < per; ++i)
          partial[threadIdx.x / 32][0][part * per + i] = wide[g][i];
      __syncthreads();
      for (int d = threadIdx.x; d < HeadDim; d += kThreads) {
        float sum = 0;
        for (int w = 0; w < kWarps; ++w)
          sum += partial[w][0][d];
        o[g * HeadDim + d] = sum / total[g];
      }
      __syncthreads(); // before the next head's sums
    }
    return;
  }
  for (int i = 0; i < passes; ++i) {
    const int d = i * kThreads + lane;
    if (groups > 1) {
      if (group < groups)
        for (int g = 0; g < G; ++g)
          partial[group][g][d] = acc[i][g];
      __syncthreads();
      for (int j = threadIdx.x; j < G * HeadDim; j += kThreads) {
        float sum = 0;
        for (int r = 0; r < groups; ++r)
          sum += partial[r][j / HeadDim][j % HeadDim];
        o[j] = sum / total[j / HeadDim];
      }
    } else if (d < HeadDim) {
      for (int g = 0; g < G; ++g)
        o[g * HeadDim + d] = acc[i][g] / total[g];
    }
  }
}

} // namespace lathe_cuda
