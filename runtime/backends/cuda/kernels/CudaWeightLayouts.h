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
#define LATHE_CUDA_LAYOUT_FP6_LANES 2

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
 * group constants, the device code's divisions become shifts. Both from
 * the span's offset and the value's word and lane in it. */
static inline LATHE_CUDA_HOST_DEVICE uint32_t latheLanesSpanAt(int bits, int group, uint32_t k,
                                                              uint32_t *word, uint32_t *lane) {
  const uint32_t perWord = 32u / (uint32_t)bits;
  const uint32_t spanValues = LATHE_CUDA_LANES_CODE_BYTES * 8u / (uint32_t)bits;
  const uint32_t inSpan = k % spanValues;
  *word = inSpan / (32u * perWord);
  *lane = inSpan % (32u * perWord) / perWord;
  return k / spanValues * (uint32_t)latheLanesSpanBytes(bits, group);
}
static inline LATHE_CUDA_HOST_DEVICE uint32_t latheLanesWordAt(int bits, int group, uint32_t k) {
  uint32_t word, lane;
  const uint32_t span = latheLanesSpanAt(bits, group, k, &word, &lane);
  return span + lane * 16u + word * 4u;
}
static inline LATHE_CUDA_HOST_DEVICE uint32_t latheLanesScaleAt(int bits, int group, uint32_t k) {
  uint32_t word, lane;
  const uint32_t span = latheLanesSpanAt(bits, group, k, &word, &lane);
  const uint32_t lanesPerGroup = (uint32_t)group / (32u / (uint32_t)bits);
  return span + LATHE_CUDA_LANES_CODE_BYTES + lane / lanesPerGroup * 16u + word * 4u;
}

/* LATHE_CUDA_LAYOUT_FP6_LANES, FP6 E3M2 groups in the 4+2 bit split
 * (formats::decodeFp6SplitGroup: a float32 scale, a plane of the codes'
 * low 4 bits e1 e0 m1 m0, a plane of their high 2 bits, sign and e2), where
 * a lane read the artifact's planes 4 and 2 bytes at a time and rebuilt
 * each value from its bits (the Llama-3.2-1B shape's FP6 products ran at
 * 0.75 TB/s, 25% occupancy). Here a row is cut into spans of 1024 values:
 *
 *   span s = [low: 32 lanes x 16 bytes][high: 32 lanes x 8 bytes]
 *            [scales: 16 bytes per lane group]
 *
 * Lane l's word w (w = 0..3) covers values s * 1024 + w * 256 + l * 8 +
 * (0 .. 7): the warp's word w is one contiguous run of 256 values, as in
 * the INT lanes. Its low word holds the 8 nibbles, value j's at bit
 * latheFp6LowShift(j); the lane's high bytes are two 32-bit words, word c
 * holding the high bits of words 2c and 2c + 1 (16 values, j = 0..15 of
 * the pair), value j's e2 at latheFp6HighE2(j) and its sign 3 bits above,
 * except j = 14, 15 (sign just above e2). The places are chosen so that a
 * value pair (2p, 2p + 1) becomes an IEEE half pair, each value's sign at
 * bit 15 of its half, e2 at 12 and the nibble at 11..8 (E3M2 times 2^-12,
 * its subnormals the half's), by one shift and mask of each word
 * (CudaCommon.cuh's Fp6Lanes). Lanes l with the same l / latheFp6GroupLanes
 * share their words' groups, whose scales (word w's first) are the 16
 * bytes at scales + (l / latheFp6GroupLanes) * 16. It takes groups of 8 to
 * 256 values dividing 256, or multiples of 256 (a per-channel row is one
 * group of the row's values), and rows of whole spans. */

/* Values of one span; bytes of its low and its high plane. */
#define LATHE_CUDA_FP6_SPAN_VALUES 1024
#define LATHE_CUDA_FP6_LOW_BYTES 512
#define LATHE_CUDA_FP6_HIGH_BYTES 256

/* Lanes whose words share a group. */
static inline LATHE_CUDA_HOST_DEVICE int latheFp6GroupLanes(int group) {
  return group >= 256 ? 32 : group / 8;
}

/* Bytes of one span: its planes, then the lane groups' scales. */
static inline LATHE_CUDA_HOST_DEVICE int64_t latheFp6SpanBytes(int group) {
  return LATHE_CUDA_FP6_LOW_BYTES + LATHE_CUDA_FP6_HIGH_BYTES + 32 / latheFp6GroupLanes(group) * 16;
}

/* Whether rows of `cols` values of groups of `group` take the layout. */
static inline LATHE_CUDA_HOST_DEVICE int latheFp6Fit(int group, int64_t cols) {
  const int groupOk = group >= 256 ? group % 256 == 0 : group % 8 == 0 && 256 % group == 0;
  return group > 0 && groupOk && cols > 0 && cols % LATHE_CUDA_FP6_SPAN_VALUES == 0;
}

/* The bit of a low word where value j's nibble starts: pair p = j / 2's
 * nibbles at 8 and 24 after a shift of (0, 4, 8, -4)[p]. */
static inline LATHE_CUDA_HOST_DEVICE int latheFp6LowShift(int j) {
  return (int)((0x73405162u >> (4 * j)) & 15u) * 4;
}

/* The bit of a high word where value j's (0..15) e2 lies: pair p = j / 2's
 * e2 bits at 12 and 28 after a shift left of (0, 4, 5, 6, 10, 11, 12)[p];
 * pair 7's e2 at 13 and 29, its signs at 14 and 30. */
static inline LATHE_CUDA_HOST_DEVICE int latheFp6HighE2(int j) {
  return (int)((0xD012678Cu >> (4 * (j / 2))) & 15u) + 16 * (j % 2);
}
static inline LATHE_CUDA_HOST_DEVICE int latheFp6HighSign(int j) {
  return latheFp6HighE2(j) + (j / 2 == 7 ? 1 : 3);
}

/* Values 2p and 2p + 1 of word w (0..3) of a lane's span, from its low
 * word and its high word w / 2, as the bits of an IEEE half pair (value 2p
 * in the low half): each E3M2 times 2^-12, sign at bit 15 of its half, e2
 * at 12, the nibble at 11..8. With w and p constants, a shift and a mask
 * of each word. */
static inline LATHE_CUDA_HOST_DEVICE uint32_t latheFp6PairBits(uint32_t low, uint32_t high, int w,
                                                              int p) {
  const uint32_t l = p == 0 ? low : p == 1 ? low << 4 : p == 2 ? low << 8 : low >> 4;
  const int pair = 4 * (w % 2) + p; /* the pair's place in the high word */
  const uint32_t h = pair == 7 ? ((high << 1) & 0x80008000u) | ((high >> 1) & 0x10001000u)
                               : (high << (12 - latheFp6HighE2(2 * pair))) & 0x90009000u;
  return (l & 0x0F000F00u) | h;
}

/* Value j (0..7) of word w the same way, as the bits of one half, for
 * any j and w. */
static inline LATHE_CUDA_HOST_DEVICE uint32_t latheFp6HalfBits(uint32_t low, uint32_t high, int w,
                                                              int j) {
  const int i = 8 * (w % 2) + j; /* the value's place in the high word */
  return ((low >> latheFp6LowShift(j)) & 15u) << 8 | ((high >> latheFp6HighE2(i)) & 1u) << 12 |
         ((high >> latheFp6HighSign(i)) & 1u) << 15;
}

/* Where value k of a row lies: the byte offsets of its low word, of its
 * high word (value k's index there: (k / 256 % 2) * 8 + k % 8), and of its
 * group's scale; all from the span's offset and the value's word and lane
 * in it. */
static inline LATHE_CUDA_HOST_DEVICE uint32_t latheFp6SpanAt(int group, uint32_t k, uint32_t *word,
                                                            uint32_t *lane) {
  *word = k % 1024u / 256u;
  *lane = k % 256u / 8u;
  return k / LATHE_CUDA_FP6_SPAN_VALUES * (uint32_t)latheFp6SpanBytes(group);
}
static inline LATHE_CUDA_HOST_DEVICE uint32_t latheFp6LowAt(int group, uint32_t k) {
  uint32_t word, lane;
  const uint32_t span = latheFp6SpanAt(group, k, &word, &lane);
  return span + lane * 16u + word * 4u;
}
static inline LATHE_CUDA_HOST_DEVICE uint32_t latheFp6HighAt(int group, uint32_t k) {
  uint32_t word, lane;
  const uint32_t span = latheFp6SpanAt(group, k, &word, &lane);
  return span + LATHE_CUDA_FP6_LOW_BYTES + lane * 8u + word / 2u * 4u;
}
static inline LATHE_CUDA_HOST_DEVICE uint32_t latheFp6ScaleAt(int group, uint32_t k) {
  uint32_t word, lane;
  const uint32_t span = latheFp6SpanAt(group, k, &word, &lane);
  return span + LATHE_CUDA_FP6_LOW_BYTES + LATHE_CUDA_FP6_HIGH_BYTES +
         lane / (uint32_t)latheFp6GroupLanes(group) * 16u + word * 4u;
}

#endif
