// The tensor-core arithmetic the CUDA target's products and attention
// share: floats as exact sums of bf16 parts, the m16n8k16 bf16 mma, and
// the operands' way into shared memory (cp.async) and out (ldmatrix).
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

/// cp.async of 16 bytes, global to shared, through L2 only.
__device__ inline void copyAsync16(void *shared, const void *global) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned to = unsigned(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(to), "l"(global));
#endif
}
__device__ inline void commitCopies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;" ::);
#endif
}
/// Waits until at most N groups of this thread's copies are in flight.
template <int N> __device__ inline void waitCopies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;" ::"n"(N));
#endif
}

/// The four 8x8 matrices of 16-bit values whose rows lanes 0-7, 8-15,
/// 16-23 and 24-31 address (16 bytes a row, in shared memory): lane (g =
/// lane / 4, c = lane % 4) gets row g, columns 2c and 2c + 1 of matrix i
/// in r[i], the m16n8k16 fragment layout; transposed, row 2c and 2c + 1 of
/// column g.
__device__ inline void loadMatrices(uint32_t (&r)[4], const void *row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(unsigned(__cvta_generic_to_shared(row)))
               : "memory");
#endif
}
__device__ inline void loadMatricesTransposed(uint32_t (&r)[4], const void *row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(unsigned(__cvta_generic_to_shared(row)))
               : "memory");
#endif
}

/// The B fragments of two n8 tiles of keys, from key rows of bf16 in
/// shared memory (Row values a row, 16-byte aligned): keys 8 n .. 8 n + 15
/// at dimensions 16 st .. 16 st + 15 (b[0], b[1] the first tile, b[2],
/// b[3] the second). Lanes 0-7 address the first tile's rows at the low 8
/// dimensions, 8-15 at the high 8, 16-31 the second tile's.
template <int Row>
__device__ inline void keyFragments(const __nv_bfloat16 (*rows)[Row], int n, int st, uint32_t (&b)[4]) {
  const int lane = threadIdx.x % 32;
  loadMatrices(b, &rows[8 * n + lane % 8 + 8 * (lane / 16)][16 * st + 8 * (lane / 8 % 2)]);
}
/// The B fragments of two n8 tiles of dimensions 8 n .. 8 n + 15 at keys
/// 16 kk .. 16 kk + 15, from value rows as keyFragments' (transposed):
/// lanes 0-7 address keys 16 kk .. + 7 of the first tile's dimensions,
/// 8-15 keys + 8 .. + 15, 16-31 the second tile's.
template <int Row>
__device__ inline void valueFragments(const __nv_bfloat16 (*rows)[Row], int kk, int n, uint32_t (&b)[4]) {
  const int lane = threadIdx.x % 32;
  loadMatricesTransposed(b, &rows[16 * kk + lane % 8 + 8 * (lane / 8 % 2)][8 * n + 8 * (lane / 16)]);
}

/// The A fragment of keys 0-15 (the rows) at dimensions 16 st .. 16 st +
/// 15, from key rows as keyFragments': lanes 0-15 address keys 0-15 at the
/// low 8 dimensions, 16-31 at the high 8, so that the four matrices come
/// out in A's order (a0 keys 0-7 low, a1 keys 8-15 low, a2, a3 high).
template <int Row>
__device__ inline void keyRowFragments(const __nv_bfloat16 (*rows)[Row], int st, uint32_t (&a)[4]) {
  const int lane = threadIdx.x % 32;
  loadMatrices(a, &rows[lane % 16][16 * st + 8 * (lane / 16)]);
}
/// The A fragment of V^T: dimensions 16 m .. 16 m + 15 (the rows) at keys
/// 0-15, from value rows as valueFragments' (transposed): lanes 0-7 address
/// keys 0-7 at dimensions 16 m .., 8-15 the same keys at 16 m + 8 .., 16-31
/// keys 8-15 likewise (a0 dimensions 0-7 at keys 0-7, a1 dimensions 8-15,
/// a2, a3 at keys 8-15).
template <int Row>
__device__ inline void valueColumnFragments(const __nv_bfloat16 (*rows)[Row], int m, uint32_t (&a)[4]) {
  const int lane = threadIdx.x % 32;
  loadMatricesTransposed(a, &rows[lane % 8 + 8 * (lane / 16)][16 * m + 8 * (lane / 8 % 2)]);
}

} // namespace lathe_cuda
