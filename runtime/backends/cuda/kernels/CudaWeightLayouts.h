/* The weight layouts the CUDA target chooses for itself, where a format's
 * layout in the artifact (formats::packedRowBytes: blocks back to back)
 * would cost the GPU bandwidth. One definition, included by the generated
 * code's kernels (CudaProducts.cuh, CudaTiledProducts.cuh, CudaCommon.cuh's
 * IntLanes) and by the runtime, which rearranges each tensor the module's
 * table names as it copies it to the GPU (CudaExecutable.cpp). A tensor
 * keeps its shape; its rows are rearranged, and those of exponent-coded
 * blocks grow (a one-byte exponent becomes a float32 scale:
 * cuda::gpuRowBytes). Plain C: host and device compilers read it alike.
 *
 * LATHE_CUDA_LAYOUT_INT_LANES, groups of codes under one scale: symmetric
 * INT8/INT4 groups (a float32 scale, then two's complement codes), and
 * MXINT8, BFP8/BFP4 and MXFP4 blocks, whose exponent code the runtime turns
 * into a power-of-two float32 scale (CudaWeightLayout.cpp). In the artifact
 * a group of 32 is 36 or 20 bytes (33 or 17 for the blocks), so a GPU lane
 * can load at most one aligned 32-bit word of codes at a time (the INT4
 * build's INT8 classifier of the Llama-3.2-1B shape streamed at 3.0 TB/s
 * so, 3.9 in this layout). Here a row is cut into spans of 512 bytes of
 * codes (1024 4-bit or 512 8-bit values), each followed by the span's
 * scales:
 *
 *   span s = [codes: 32 lanes x 16 bytes][scales: 16 bytes per lane group]
 *
 * A warp's lane l loads its 16 bytes of codes at once: four 32-bit words,
 * word w holding the 32 / Bits consecutive codes of values
 * s * SPAN + w * 32 * V + l * V + (0 .. V - 1), V = 32 / Bits values a word,
 * in the artifact's order within the word. The warp's word w is thus one
 * contiguous run of 32 V values, so the lanes read their inputs as
 * consecutive 16-byte runs (a lane taking 16 consecutive bytes of the
 * artifact's layout would read inputs 128 bytes apart: tried, INT4 fell
 * from 1030 to 590 tokens/s). Lanes l with the same l / (G / V) share
 * their words' groups: their four scales (word w's first) are 16 bytes at
 * scales + (l / (G / V)) * 16. It takes groups of V to 32 V values with
 * G / V dividing 32, and rows of whole spans. */
#ifndef LATHE_RUNTIME_BACKENDS_CUDA_KERNELS_CUDAWEIGHTLAYOUTS_H
#define LATHE_RUNTIME_BACKENDS_CUDA_KERNELS_CUDAWEIGHTLAYOUTS_H

#include <stdint.h>

#ifdef __CUDACC__
#define LATHE_CUDA_HOST_DEVICE __host__ __device__
#else
#define LATHE_CUDA_HOST_DEVICE
#endif

/* A tensor's layout on the GPU, by the module's table
 * lathe_cuda_weight_layouts[lathe_cuda_tensor_count] (artifact order). */
#define LATHE_CUDA_LAYOUT_AS_STORED 0
#define LATHE_CUDA_LAYOUT_INT_LANES 1

/* Bytes of codes in one span: 32 lanes x 16 bytes. */
#define LATHE_CUDA_LANES_CODE_BYTES 512

/* Values one span holds, of `bits`-bit codes. */
static inline LATHE_CUDA_HOST_DEVICE int64_t latheLanesSpanValues(int bits) {
  return (int64_t)LATHE_CUDA_LANES_CODE_BYTES * 8 / bits;
}

/* Bytes of one span: its codes, then a float32 scale per group. */
static inline LATHE_CUDA_HOST_DEVICE int64_t latheLanesSpanBytes(int bits, int group) {
  return LATHE_CUDA_LANES_CODE_BYTES + latheLanesSpanValues(bits) / group * 4;
}

/* Whether rows of `cols` values of symmetric `bits`-bit groups of `group`
 * take the layout. */
static inline LATHE_CUDA_HOST_DEVICE int latheLanesFit(int bits, int group, int64_t cols) {
  if (bits != 4 && bits != 8)
    return 0;
  const int perWord = 32 / bits;
  return group > 0 && group % perWord == 0 && 32 % (group / perWord) == 0 &&
         cols > 0 && cols % latheLanesSpanValues(bits) == 0;
}

/* Where value k of a row lies: the byte offset within the row of the
 * 32-bit word holding its code (code k % (32 / bits) of that word), and of
 * its group's scale. In 32 bits (a row is far below 4 GiB): with bits and
 * group constants, the device code's divisions become shifts. */
static inline LATHE_CUDA_HOST_DEVICE uint32_t latheLanesWordAt(int bits, int group, uint32_t k) {
  const uint32_t perWord = 32u / (uint32_t)bits, spanValues = LATHE_CUDA_LANES_CODE_BYTES * 8u / (uint32_t)bits;
  const uint32_t span = k / spanValues, inSpan = k % spanValues;
  const uint32_t word = inSpan / (32u * perWord), lane = inSpan % (32u * perWord) / perWord;
  return span * (uint32_t)latheLanesSpanBytes(bits, group) + lane * 16u + word * 4u;
}
static inline LATHE_CUDA_HOST_DEVICE uint32_t latheLanesScaleAt(int bits, int group, uint32_t k) {
  const uint32_t perWord = 32u / (uint32_t)bits, spanValues = LATHE_CUDA_LANES_CODE_BYTES * 8u / (uint32_t)bits;
  const uint32_t span = k / spanValues, inSpan = k % spanValues;
  const uint32_t word = inSpan / (32u * perWord), lane = inSpan % (32u * perWord) / perWord;
  return span * (uint32_t)latheLanesSpanBytes(bits, group) + LATHE_CUDA_LANES_CODE_BYTES +
         lane / ((uint32_t)group / perWord) * 16u + word * 4u;
}

#endif
