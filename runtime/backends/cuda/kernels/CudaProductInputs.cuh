// Where a product's input rows come from (the buffer, or its RMSNorm: the
// norm step fused) and how they are rounded for int8 or bf16 activations.
// Part of LatheCudaKernels.cuh.
//
// Int8 activations (#plan.activations int8, lathe-compile --activations):
// a product whose weights have integer codes takes its input rounded, per
// block of B values (the weight format's block), to x~ = s q with
//   s = max|x| / 127,  q = x * (127 / max|x|) rounded to the nearest
//   integer, ties to even,
// the CPU's rule float for float (runtime/backends/cpu/kernels/
// Int8Matmul.h's quantizeActivations): a block of zeros gets s = 0, one
// holding NaN or infinity a NaN scale (the outputs it feeds become NaN), a
// short last block the zeros after it. Every path of a product takes the
// same x~ (the single-token walk, rows of a few tokens, the tensor-core
// tiles), so a token's outputs do not depend on the step it is in more
// than float sums do. Products whose weights lie in the lane layout of
// INT codes (IntLanes, not E2M1) take q itself for a single token
// (int8Chunks): the integer sums of dp4a, scaled once a word.
#pragma once

#include "CudaCommon.cuh"

namespace lathe_cuda {

/// The buffer as it is...
struct PlainInput {};
/// ...or its RMSNorm with a gain tensor (the norm step fused): each block
/// normalizes up to LATHE_CUDA_NORM_TOKENS(K) token rows at a time into dynamic
/// shared memory, with the same arithmetic as the rms_norm kernel.
template <class G> struct NormedInput {
  using Gain = G;
  int gain;
  float epsilon;
};
/// Either, rounded for int8 activations per block of B values.
template <int B, class Inner> struct Int8Input : Inner {
  static_assert(B == 8 || B == 16 || B == 32 || B == 64 || B == 128,
                "int8 activation blocks of 8, 16, 32, 64 or 128 values (a block's quads in one warp)");
};

/// Either, each value rounded to bfloat16 (bf16 activations): to the
/// nearest, ties to even, as runtime/formats' floatToBf16.
template <class Inner> struct Bf16Input : Inner {};

template <class I> struct IsNormed : std::false_type {};
template <class G> struct IsNormed<NormedInput<G>> : std::true_type {};
template <int B, class I> struct IsNormed<Int8Input<B, I>> : IsNormed<I> {};
template <class I> struct IsNormed<Bf16Input<I>> : IsNormed<I> {};
/// The int8 block of an input, 0 for float activations.
template <class I> constexpr int kInt8Block = 0;
template <int B, class I> constexpr int kInt8Block<Int8Input<B, I>> = B;
/// Whether an input is rounded to bf16.
template <class I> constexpr bool kBf16 = false;
template <class I> constexpr bool kBf16<Bf16Input<I>> = true;

/// How the tensor-core tiles take a launch's token rows (splitTokens writes
/// them so, CudaTiledProducts.cuh): floats in three bf16 parts, bf16 values
/// in one, or int8 codes in one with their block scales.
enum class TokenCodes { Float, Bf16, Int8 };

/// Where a tiled product finds B fragment words: part p (0..2) of step s
/// of 16 k, token tile tt, half j (tokens 8j..8j+7 of the tile), lane L,
/// as a pair of words (b0, b1), in units of uint2. One layout for the
/// split kernel and the epilogues that write it (GatedRows' downParts)
/// and the tiles, which read it: a lane's loads of a step are 6 coalesced
/// 8-byte loads.
/// (partsAtOf: the same for rows of a width known at run time.)
__device__ inline int64_t partsAtOf(int64_t K, int tt, int s, int j, int p, int lane) {
  return ((((int64_t(tt) * (K / 16) + s) * 2 + j) * 3 + p) * 32) + lane;
}
template <int K> __device__ inline int64_t partsAt(int tt, int s, int j, int p, int lane) {
  return partsAtOf(K, tt, s, j, p, lane);
}
/// Value k of token t rounded to bf16 (one part) where partsAt keeps it,
/// in bf16 units (rows K values wide).
__device__ inline int64_t bf16PartAtOf(int64_t K, int t, int k) {
  return partsAtOf(K, t / 16, k / 16, (t % 16) / 8, 0, (t % 8) * 4 + (k % 16) / 4) * 4 + k % 4;
}
template <int K> __device__ inline int64_t bf16PartAt(int t, int k) { return bf16PartAtOf(K, t, k); }

/// Whether a product launch whose wgmma tiles take a step from `rowsFrom`
/// tokens on (its wideMinTokens; 0: never) reads the step's bf16 token rows
/// row-major, as their TMA loads them, in a step of `tokens` tokens, rather
/// than in the tiles' parts (bf16PartAtOf): the one decision of splitTokens
/// and of attention's OutputRows, which both write those rows.
__device__ inline bool rowMajorTokenRows(int rowsFrom, int tokens) {
  return LATHE_CUDA_WGMMA_CODE && LATHE_CUDA_USE_WIDE_TILES(rowsFrom, tokens);
}

/// dst = the K values of src, each rounded to bfloat16 (src may be dst);
/// the caller orders other threads' reads and writes around it.
template <int K> __device__ void roundRowBf16(const float *src, float *dst) {
  static_assert(K % 4 == 0, "bf16 activations take rows of whole 4-value quads");
  for (int c = threadIdx.x; c < K / 4; c += kThreads) {
    const float4 v = reinterpret_cast<const float4 *>(src)[c];
    reinterpret_cast<float4 *>(dst)[c] =
        make_float4(bf16Rounded(v.x), bf16Rounded(v.y), bf16Rounded(v.z), bf16Rounded(v.w));
  }
}

/// 1.5 * 2^23 as a float's bits: a float of magnitude below 2^22 added to
/// it is rounded to an integer, ties to even, and lands in the low bits.
constexpr uint32_t kInt8Zero = 0x4B400000u;

/// The scale of a block of B values whose lane holds N of them, the block's
/// B / N lanes consecutive and aligned in the warp (every lane of the warp
/// constructs one): the block's largest magnitude gathered by shuffles.
template <int B, int N> struct Int8Block {
  static constexpr int kLanes = B / N;
  static_assert(B % N == 0 && kLanes <= 32 && 32 % kLanes == 0, "a block's lanes in one warp");
  float scale, inverse;
  __device__ explicit Int8Block(const float (&v)[N]) {
    // fmaxf drops NaN: a NaN or an infinity shows in the sum of v * 0.
    float m = 0, probe = 0;
#pragma unroll
    for (int i = 0; i < N; ++i) {
      m = fmaxf(m, fabsf(v[i]));
      probe += v[i] * 0.0f;
    }
#pragma unroll
    for (int o = 1; o < kLanes; o <<= 1) {
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
      probe += __shfl_xor_sync(0xffffffffu, probe, o);
    }
    if (probe != 0.0f) { // NaN
      scale = __int_as_float(0x7fc00000), inverse = 0;
    } else if (m == 0.0f) {
      scale = 0, inverse = 0;
    } else {
      scale = __fdiv_rn(m, 127.0f), inverse = __fdiv_rn(127.0f, m);
    }
  }
  /// kInt8Zero + q for a value of the block (q = 0 where the block has no
  /// codes): q's two's complement is the low byte.
  __device__ uint32_t bits(float v) const {
    return inverse == 0.0f ? kInt8Zero
                           : __float_as_uint(__fadd_rn(__fmul_rn(v, inverse), 12582912.0f));
  }
  /// q as a float (exact).
  __device__ float code(float v) const { return __fadd_rn(__uint_as_float(bits(v)), -12582912.0f); }
  /// x~ = q s.
  __device__ float rounded(float v) const { return __fmul_rn(code(v), scale); }
};

/// Values 0..7 of x (32-byte aligned).
__device__ inline void loadEight(const float *x, float (&v)[8]) {
  const float4 a = reinterpret_cast<const float4 *>(x)[0];
  const float4 b = reinterpret_cast<const float4 *>(x)[1];
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

/// f(c, v, block) for each chunk c of 8 values v of the K values of src,
/// block the scale of their block of B: the block's threads, a chunk each
/// per pass, every lane in every pass (the scale's shuffles).
template <int K, int B, class F> __device__ void forRoundedChunks(const float *src, F &&f) {
  static_assert(K % 8 == 0, "int8 activations take rows of whole 8-value chunks");
  for (int base = 0; base < K / 8; base += kThreads) {
    const int c = base + threadIdx.x;
    float v[8] = {};
    if (c < K / 8)
      loadEight(src + 8 * c, v);
    const Int8Block<B, 8> block(v);
    if (c < K / 8)
      f(c, v, block);
  }
}

/// dst = the K values of src rounded per block of B (src may be dst); the
/// caller orders the reads and writes of other threads around it
/// (__syncthreads).
template <int K, int B> __device__ void roundRow(const float *src, float *dst) {
  forRoundedChunks<K, B>(src, [&](int c, const float (&v)[8], const Int8Block<B, 8> &block) {
    reinterpret_cast<float4 *>(dst)[2 * c] = make_float4(
        block.rounded(v[0]), block.rounded(v[1]), block.rounded(v[2]), block.rounded(v[3]));
    reinterpret_cast<float4 *>(dst)[2 * c + 1] = make_float4(
        block.rounded(v[4]), block.rounded(v[5]), block.rounded(v[6]), block.rounded(v[7]));
  });
}

/// The low bytes of a, b, c, d as one word (a's lowest).
__device__ inline uint32_t lowBytes(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  return __byte_perm(__byte_perm(a, b, 0x0040), __byte_perm(c, d, 0x0040), 0x5410);
}

/// The codes q of the K values of src (rounded per block of B), for the
/// dp4a sums of weights of Bits-bit codes (RowStream<IntLanes>::useInt8),
/// to `out` (16-byte aligned, 2 bytes a value, not overlapping src):
/// - Bits 4, per 8 values k .. k + 7 a uint4: the codes of the even values
///   (k, k + 2, .., a byte each), of the odd ones, -8 times their sum
///   (4-bit codes are summed offset by 8), and the block's scale;
/// - Bits 8, per 4 values a uint2: their codes and the block's scale.
/// The caller orders other threads' reads and writes around it.
template <int K, int B, int Bits> __device__ void int8Chunks(const float *src, uint8_t *out) {
  static_assert(Bits == 4 || Bits == 8, "chunks for 4- and 8-bit codes");
  forRoundedChunks<K, B>(src, [&](int c, const float (&v)[8], const Int8Block<B, 8> &block) {
    uint32_t q[8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
      q[i] = block.bits(v[i]);
    const uint32_t scale = __float_as_uint(block.scale);
    if constexpr (Bits == 4) {
      uint32_t sum = 0; // of kInt8Zero + q: wraps to the sum of q
#pragma unroll
      for (int i = 0; i < 8; ++i)
        sum += q[i] - kInt8Zero;
      reinterpret_cast<uint4 *>(out)[c] =
          make_uint4(lowBytes(q[0], q[2], q[4], q[6]), lowBytes(q[1], q[3], q[5], q[7]),
                     uint32_t(-8 * int32_t(sum)), scale);
    } else {
      reinterpret_cast<uint4 *>(out)[c] = make_uint4(lowBytes(q[0], q[1], q[2], q[3]), scale,
                                                     lowBytes(q[4], q[5], q[6], q[7]), scale);
    }
  });
}

/// sum_i a_i b_i + c over the four bytes of a (unsigned) and b (signed).
__device__ inline int dp4aUnsignedSigned(uint32_t a, uint32_t b, int c) {
  int d;
  asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

} // namespace lathe_cuda
