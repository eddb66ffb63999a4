// Greedy decoding's pick on the GPU: each logits row's argmax, so that a
// step returns token ids instead of copying its logits to the host (16
// sequences of a 128k vocabulary: 8 MB a step). Part of
// LatheCudaKernels.cuh.
#pragma once

#include "CudaCommon.cuh"

#include <climits>

namespace lathe_cuda {

/// The better of two candidates (value, index): the larger value, the lower
/// index on ties; index INT_MAX is no candidate.
__device__ inline void betterOf(float &value, int &index, float otherValue, int otherIndex) {
  if (otherIndex == INT_MAX)
    return;
  if (index == INT_MAX || otherValue > value || (otherValue == value && otherIndex < index))
    value = otherValue, index = otherIndex;
}

/// Candidates of the parts of each row (LATHE_CUDA_ARGMAX_PARTS), and the
/// parts of a row done; the last part of a row puts its count back to 0.
__device__ float argmaxValues[LATHE_CUDA_ARGMAX_SPLIT_ROWS * LATHE_CUDA_ARGMAX_MAX_PARTS];
__device__ int argmaxIndices[LATHE_CUDA_ARGMAX_SPLIT_ROWS * LATHE_CUDA_ARGMAX_MAX_PARTS];
__device__ unsigned argmaxArrivals[LATHE_CUDA_ARGMAX_SPLIT_ROWS];

/// The best candidate of a warp's lanes, on every lane.
__device__ inline void warpBest(float &value, int &index) {
  for (int o = 16; o > 0; o >>= 1)
    betterOf(value, index, __shfl_xor_sync(0xffffffffu, value, o),
             __shfl_xor_sync(0xffffffffu, index, o));
}

/// ids[r] = the argmax of logits row r (Vocab floats): the lowest index on
/// ties, NaN never winning unless every value is NaN (then 0), as
/// runtime/sampling's argmax picks. Block (r, p) takes part p of the
/// grid's y parts of row r (one wave of blocks for a few rows, instead of
/// one block walking a 128k vocabulary alone). Each thread keeps the first
/// of its values (strided) that no later one beats; the block keeps the
/// best of those, and the last of a row's parts to finish the best of the
/// parts', in any order (the rule is a total order on candidates).
template <int Vocab> __device__ void argmaxRows(const float *logits, int32_t *ids) {
  const int row = blockIdx.x, parts = gridDim.y, part = blockIdx.y;
  const float *x = logits + int64_t(row) * Vocab;
  const int end = int(int64_t(Vocab) * (part + 1) / parts);
  float value = 0;
  int index = INT_MAX;
#pragma unroll 4
  for (int k = int(int64_t(Vocab) * part / parts) + threadIdx.x; k < end; k += kThreads) {
    const float v = x[k];
    // NaN compares false: never taken. -inf is taken if nothing was yet.
    if (v == v && (index == INT_MAX || v > value))
      value = v, index = k;
  }
  warpBest(value, index);
  __shared__ float values[kWarps];
  __shared__ int indices[kWarps];
  __shared__ bool last;
  if (threadIdx.x % 32 == 0)
    values[threadIdx.x / 32] = value, indices[threadIdx.x / 32] = index;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kWarps; ++w)
      betterOf(value, index, values[w], indices[w]);
    if (parts == 1) {
      ids[row] = index == INT_MAX ? 0 : index;
      return;
    }
    const int at = row * LATHE_CUDA_ARGMAX_MAX_PARTS + part;
    argmaxValues[at] = value, argmaxIndices[at] = index;
    __threadfence(); // the candidate before the count that announces it
    last = lastToArrive(&argmaxArrivals[row], parts);
  }
  if (parts == 1)
    return;
  __syncthreads();
  if (!last || threadIdx.x >= 32)
    return;
  const int lane = threadIdx.x;
  value = 0, index = INT_MAX;
  if (lane < parts) {
    value = __ldcg(argmaxValues + row * LATHE_CUDA_ARGMAX_MAX_PARTS + lane);
    index = __ldcg(argmaxIndices + row * LATHE_CUDA_ARGMAX_MAX_PARTS + lane);
  }
  warpBest(value, index);
  if (lane == 0)
    ids[row] = index == INT_MAX ? 0 : index;
}

} // namespace lathe_cuda
