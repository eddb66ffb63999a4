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

/// ids[r] = the argmax of logits row r (Vocab floats), one block a row: the
/// lowest index on ties, NaN never winning unless every value is NaN (then
/// 0), as runtime/sampling's argmax picks. Each thread keeps the first of
/// its values (strided) that no later one beats; the block then keeps the
/// best of those, in any order (the rule is a total order on candidates).
template <int Vocab> __device__ void argmaxRows(const float *logits, int32_t *ids) {
  const float *x = logits + int64_t(blockIdx.x) * Vocab;
  float value = 0;
  int index = INT_MAX;
  for (int k = threadIdx.x; k < Vocab; k += kThreads) {
    const float v = x[k];
    // NaN compares false: never taken. -inf is taken if nothing was yet.
    if (v == v && (index == INT_MAX || v > value))
      value = v, index = k;
  }
  for (int o = 16; o > 0; o >>= 1)
    betterOf(value, index, __shfl_xor_sync(0xffffffffu, value, o),
             __shfl_xor_sync(0xffffffffu, index, o));
  __shared__ float values[kWarps];
  __shared__ int indices[kWarps];
  if (threadIdx.x % 32 == 0)
    values[threadIdx.x / 32] = value, indices[threadIdx.x / 32] = index;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kWarps; ++w)
      betterOf(value, index, values[w], indices[w]);
    ids[blockIdx.x] = index == INT_MAX ? 0 : index;
  }
}

} // namespace lathe_cuda
