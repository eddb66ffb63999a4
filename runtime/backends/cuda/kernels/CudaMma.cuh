// The tensor-core arithmetic the CUDA target's products and attention
// share: floats as exact sums of bf16 parts, and the m16n8k16 bf16 mma.
// Part of LatheCudaKernels.cuh.
#pragma once

#include "CudaCommon.cuh"

namespace lathe_cuda {

/// Two floats as a bf16 pair, the first in the low half (the mma's element
/// order).
__device__ inline uint32_t bf16Pair(float a, float b) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<const uint32_t *>(&v);
}

/// (a, b) = p[0] + p[1] + p[2] exactly, each a bf16 pair: a float's 24
/// significant bits in three parts of 8 (each remainder is exact in float,
/// and the last has at most 8 bits left).
__device__ inline void splitPair(float a, float b, uint32_t (&p)[3]) {
  p[0] = bf16Pair(a, b);
  a -= __uint_as_float(p[0] << 16), b -= __uint_as_float(p[0] & 0xffff0000u);
  p[1] = bf16Pair(a, b);
  a -= __uint_as_float(p[1] << 16), b -= __uint_as_float(p[1] & 0xffff0000u);
  p[2] = bf16Pair(a, b);
}

/// d += a * b for one m16n8k16 tile (bf16 operands, float accumulators).
__device__ inline void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
               "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  __trap(); // lathe-compile builds for sm_80 and newer only
#endif
}

} // namespace lathe_cuda
