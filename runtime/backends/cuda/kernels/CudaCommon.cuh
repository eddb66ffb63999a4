// What every kernel of the CUDA target shares: the block size, the weight
// formats as the kernels decode them, block-wide reductions, and the calls
// that order a kernel after the one before it (programmatic dependent
// launch). Part of LatheCudaKernels.cuh.
#pragma once

#include "CudaFrame.h"
#include "CudaWeightLayouts.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#include <type_traits>

/* 1 in the code that runs wgmma and TMA (sm_90a), 0 elsewhere: the
 * generated module's lathe_cuda_wgmma_code, which tells the runtime how
 * the code it loaded takes the wgmma launches (their threads, shared
 * memory, split rows and tensor maps). */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define LATHE_CUDA_WGMMA_CODE 1
#else
#define LATHE_CUDA_WGMMA_CODE 0
#endif

namespace lathe_cuda {

constexpr int kThreads = LATHE_CUDA_THREADS;
constexpr int kWarps = kThreads / 32;

// ------------------------------------------------------- kernel ordering
// The executable launches every kernel but a step's first with programmatic
// stream serialization (CudaExecutable::launchAll): a kernel's blocks may
// then start while the kernel before it still runs. Each kernel therefore
// calls waitForPrevious() before it touches an activation buffer or the KV
// cache (which returns once every earlier kernel has finished and its writes
// are visible), and may only read weights, the frame and the step's lists
// before that. It then lets the next kernel start early: that one waits in
// turn. Without the attribute (or before sm_90) both are no-ops.

__device__ inline void waitForPrevious() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ inline void letNextStart() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}
/// Both, at the top of a kernel that has nothing to do before it waits.
__device__ inline void startStep() {
  waitForPrevious();
  letNextStart();
}

/// The handshake of blocks that each leave partial results for the last of
/// them to merge (the one-token attention's splits, the argmax's parts of
/// a row, the wgmma launches' split sums). One thread of a block calls it
/// once every thread that wrote the block's partials has fenced them
/// (__threadfence) and a barrier has passed: it counts the block's arrival
/// at `counter` and returns whether the block arrived last of `count`. The
/// last one fences again, so that its threads read the others' partials
/// (past L1: __ldcg) after the next barrier, and puts the counter back to 0
/// for the next launch (a module's launches run one after another).
__device__ inline bool lastToArrive(unsigned *counter, int count) {
  const bool last = atomicAdd(counter, 1u) == unsigned(count - 1);
  if (last) {
    __threadfence(); // the others' partials after their counts
    *counter = 0;
  }
  return last;
}

/// Asks L2 for [begin, end) of a weight, in 128-byte lines, spread over
/// the block's threads: a kernel issues it for the first weights it will
/// read before it waits for the kernel before it.
__device__ inline void prefetchL2(const uint8_t *begin, const uint8_t *end) {
  for (const uint8_t *p = begin + threadIdx.x * 128; p < end; p += kThreads * 128)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

// ---------------------------------------------------------------- weights
// A weight format: at(row, k) is element k of a row of the tensor as stored
// in the artifact (docs/formats.md).

struct F32 {
  __device__ static float at(const uint8_t *row, int k) {
    return reinterpret_cast<const float *>(row)[k];
  }
};
struct F16 {
  __device__ static float at(const uint8_t *row, int k) {
    return __half2float(reinterpret_cast<const __half *>(row)[k]);
  }
};
struct BF16 {
  __device__ static float at(const uint8_t *row, int k) {
    return __bfloat162float(reinterpret_cast<const __nv_bfloat16 *>(row)[k]);
  }
};

/// A little-endian float32 at any byte address (asymmetric INT groups put
/// the scale at odd offsets).
__device__ inline float loadF32(const uint8_t *p) {
  const uint32_t bits = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 |
                        uint32_t(p[3]) << 24;
  return __uint_as_float(bits);
}

/// INT8 / INT4 group-wise (runtime/formats/IntGroup.h): per group of G
/// values [scale: f32][zero point: u8, asymmetric only][codes], INT4 low
/// nibble first; symmetric codes are two's complement, asymmetric ones
/// unsigned with x = (q - z) * s.
template <int Bits, int G, bool Symmetric> struct IntGroup {
  static constexpr int kBits = Bits, kGroup = G;
  static constexpr bool kSymmetric = Symmetric;
  static constexpr int kHeader = Symmetric ? 4 : 5;
  static constexpr int kGroupBytes = kHeader + G * Bits / 8;
  __device__ static float at(const uint8_t *row, int k) {
    const uint8_t *group = row + (k / G) * kGroupBytes;
    const int j = k % G;
    const float scale = (kGroupBytes % 4 == 0) ? *reinterpret_cast<const float *>(group)
                                               : loadF32(group);
    int q;
    if (Bits == 8) {
      const uint8_t code = group[kHeader + j];
      q = Symmetric ? int(int8_t(code)) : int(code) - int(group[4]);
    } else {
      const uint8_t byte = group[kHeader + j / 2];
      const int nibble = (j & 1) ? byte >> 4 : byte & 15;
      q = Symmetric ? ((nibble ^ 8) - 8) : nibble - int(group[4]);
    }
    return float(q) * scale;
  }
};

/// OCP FP4 E2M1 code c (sign, 2-bit exponent, 1-bit mantissa) times two:
/// 0, 1, 2, 3, 4, 6, 8 or 12, negative (-0 for a zero) with the sign bit,
/// exactly; an MX block's scale then carries the other 1/2.
__device__ inline float e2m1Doubled(uint32_t c) {
  // The magnitudes as bytes, picked by c & 7.
  const uint32_t magnitude = __byte_perm(0x03020100u, 0x0C080604u, c & 7u);
  const float f = __uint_as_float(0x4B000000u | magnitude) - 8388608.0f; // exact
  return __uint_as_float(__float_as_uint(f) | (c & 8u) << 28);
}

/// Groups of codes under one float32 scale in the CUDA target's lane
/// layout (CudaWeightLayouts.h, LATHE_CUDA_LAYOUT_INT_LANES): symmetric
/// INT8/INT4 groups, and MXINT8 and BFP8/BFP4 blocks, whose scales the
/// runtime made powers of two (IntGroup<Bits, G, true>'s values, or the MX
/// and BFP decoders'); E2M1: MXFP4 blocks, codes E2M1 values (e2m1Doubled,
/// the scale halved). Each row's bytes in the order that lets a lane load
/// 16 bytes of codes at once. The row stream and the tiles read it whole
/// words at a time (CudaProducts.cuh, CudaTiledProducts.cuh).
template <int Bits, int G, bool E2M1 = false> struct IntLanes {
  static constexpr int kBits = Bits, kGroup = G;
  static constexpr bool kE2M1 = E2M1;
  static constexpr int kPerWord = 32 / Bits; // values a 32-bit word of codes
  static constexpr int kSpanValues = LATHE_CUDA_LANES_CODE_BYTES * 8 / Bits;
  static constexpr int kSpanBytes = LATHE_CUDA_LANES_CODE_BYTES + kSpanValues / G * 4;
  static_assert((Bits == 4 || Bits == 8) && G % kPerWord == 0 && 32 % (G / kPerWord) == 0,
                "groups the lane layout takes (latheLanesFit)");
  static_assert(!E2M1 || Bits == 4, "E2M1 codes are 4 bits");
  /// Code j (of a word's kPerWord) as a float, before the scale.
  __device__ static float code(uint32_t word, int j) {
    if constexpr (E2M1)
      return e2m1Doubled(word >> (4 * j) & 15u);
    else
      return float(Bits == 8 ? int(int8_t(word >> (8 * j))) : int(((word >> (4 * j)) & 15u) ^ 8u) - 8);
  }
  __device__ static float at(const uint8_t *row, int k) {
    const uint32_t word = *reinterpret_cast<const uint32_t *>(row + latheLanesWordAt(Bits, G, k));
    const float scale = *reinterpret_cast<const float *>(row + latheLanesScaleAt(Bits, G, k));
    return code(word, k % kPerWord) * scale;
  }
};

/// FP6 E3M2 groups of the 4+2 bit split in the CUDA target's lane layout
/// (CudaWeightLayouts.h, LATHE_CUDA_LAYOUT_FP6_LANES): Fp6Split<G>'s
/// values, a lane loading 16 bytes of low bits and 8 of high bits at once.
/// A value pair becomes an IEEE half pair of E3M2 times 2^-12 by a shift
/// and a mask of each of its two words (halves have E3M2's subnormals, and
/// a half becomes a float exactly), the group's scale times 2^12 applied
/// to a word's sum (CudaProducts.cuh's row stream).
template <int G> struct Fp6Lanes {
  static_assert(G >= 256 ? G % 256 == 0 : G % 8 == 0 && 256 % G == 0,
                "groups the FP6 lane layout takes (latheFp6Fit)");
  static constexpr int kGroup = G;
  static constexpr int kGroupLanes = G >= 256 ? 32 : G / 8;
  static constexpr int kSpanValues = LATHE_CUDA_FP6_SPAN_VALUES;
  static constexpr int kSpanBytes =
      LATHE_CUDA_FP6_LOW_BYTES + LATHE_CUDA_FP6_HIGH_BYTES + 32 / kGroupLanes * 16;
  /// Values 2p and 2p + 1 of word w (0..3) of a lane's span, from its low
  /// word and its high word w / 2, as E3M2 times 2^-12 (latheFp6PairBits).
  __device__ static float2 pair(uint32_t low, uint32_t high, int w, int p) {
    const uint32_t bits = latheFp6PairBits(low, high, w, p);
    return __half22float2(*reinterpret_cast<const __half2 *>(&bits));
  }
  /// Value j (0..7) of word w, the same way, for any j and w.
  __device__ static float value(uint32_t low, uint32_t high, int w, int j) {
    return __half2float(__ushort_as_half((unsigned short)latheFp6HalfBits(low, high, w, j)));
  }
  /// Value k of a row (scale applied as Fp6Split::at: the same float).
  __device__ static float at(const uint8_t *row, int k) {
    const uint32_t low = *reinterpret_cast<const uint32_t *>(row + latheFp6LowAt(G, k));
    const uint32_t high = *reinterpret_cast<const uint32_t *>(row + latheFp6HighAt(G, k));
    const float scale = *reinterpret_cast<const float *>(row + latheFp6ScaleAt(G, k));
    return __fmul_rn(value(low, high, k % 1024 / 256, k % 8) * 4096.0f, scale);
  }
};

/// Plain formats read 16 bytes at a time: kPer values per chunk, decoded
/// into floats. kPer = 0: no such path (the packed formats, value by value).
template <class W> struct Chunk {
  static constexpr int kPer = 0;
};
template <> struct Chunk<F32> {
  static constexpr int kPer = 4;
  __device__ static void decode(uint4 raw, float *out) {
    out[0] = __uint_as_float(raw.x);
    out[1] = __uint_as_float(raw.y);
    out[2] = __uint_as_float(raw.z);
    out[3] = __uint_as_float(raw.w);
  }
};
template <> struct Chunk<BF16> {
  static constexpr int kPer = 8;
  __device__ static void decode(uint4 raw, float *out) {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
    for (int i = 0; i < 4; ++i) { // bf16 is the upper half of a float32
      out[2 * i] = __uint_as_float(words[i] << 16);
      out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
  }
};
template <> struct Chunk<F16> {
  static constexpr int kPer = 8;
  __device__ static void decode(uint4 raw, float *out) {
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
    for (int i = 0; i < 4; ++i) {
      const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&words[i]));
      out[2 * i] = f.x;
      out[2 * i + 1] = f.y;
    }
  }
};


/// v rounded to bfloat16 (nearest, ties to even: the runtime's
/// floatToBf16), as a float: a bf16 product's input (#plan.activations).
__device__ inline float bf16Rounded(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

// --------------------------------------------------------------- reductions

__device__ inline float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline double warpSum(double v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline float warpMax(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// The sum over the block of every thread's v, returned to every thread.
template <typename T> __device__ T blockSum(T v) {
  __shared__ T partial[kWarps];
  __syncthreads(); // partial may still be read by an earlier call
  v = warpSum(v);
  if (threadIdx.x % 32 == 0)
    partial[threadIdx.x / 32] = v;
  __syncthreads();
  T total = 0;
  for (int w = 0; w < kWarps; ++w)
    total += partial[w];
  return total;
}

__device__ inline float blockMax(float v) {
  __shared__ float partial[kWarps];
  __syncthreads();
  v = warpMax(v);
  if (threadIdx.x % 32 == 0)
    partial[threadIdx.x / 32] = v;
  __syncthreads();
  float m = partial[0];
  for (int w = 1; w < kWarps; ++w)
    m = fmaxf(m, partial[w]);
  return m;
}

/// blockMax and blockSum of each of N values at once, returned to every
/// thread: one exchange through shared memory for all of them (two
/// barriers, where N calls of the one-value forms take 2N).
template <int N> __device__ void blockMaxEach(const float (&v)[N], float (&out)[N]) {
  __shared__ float partial[kWarps][N];
  __syncthreads(); // partial may still be read by an earlier call
  for (int n = 0; n < N; ++n) {
    const float m = warpMax(v[n]);
    if (threadIdx.x % 32 == 0)
      partial[threadIdx.x / 32][n] = m;
  }
  __syncthreads();
  for (int n = 0; n < N; ++n) {
    out[n] = partial[0][n];
    for (int w = 1; w < kWarps; ++w)
      out[n] = fmaxf(out[n], partial[w][n]);
  }
}
template <int N> __device__ void blockSumEach(const float (&v)[N], float (&out)[N]) {
  __shared__ float partial[kWarps][N];
  __syncthreads();
  for (int n = 0; n < N; ++n) {
    const float m = warpSum(v[n]);
    if (threadIdx.x % 32 == 0)
      partial[threadIdx.x / 32][n] = m;
  }
  __syncthreads();
  for (int n = 0; n < N; ++n) {
    out[n] = 0;
    for (int w = 0; w < kWarps; ++w)
      out[n] += partial[w][n];
  }
}

/// The first element of this thread and the stride over a row, for a
/// kernel whose token's row is spread over the gridDim.y blocks of the
/// token (blockIdx.x).
__device__ inline int rowStart() { return blockIdx.y * kThreads + threadIdx.x; }
__device__ inline int rowStride() { return gridDim.y * kThreads; }

} // namespace lathe_cuda
