// The CUDA target's products y[t, n] = sum_k x[t, k] * W[n, k] (matmul,
// matmuls, logits): one output row per warp per pass, weights decoded in
// registers. A product may take its input through an RMSNorm that each block
// computes into shared memory (the norm step before it, fused), and may add
// a residual row to its output (the add step after it, fused); the CUDA
// emitter (codegen/CUDA/FusedLaunches.h) decides. Part of
// LatheCudaKernels.cuh.
#pragma once

#include "CudaElementwise.cuh"
#include "CudaFormats.cuh"
#include "CudaProductInputs.cuh"

namespace lathe_cuda {

/// sum_i q_i * x[i] over the 8 (INT4) or 4 (INT8) two's complement codes of
/// one 32-bit word, x read as float4s. A code becomes a float by the
/// exponent trick, 2^23 + u read as a float and 2^23 + bias subtracted
/// (exact): integer-to-float conversions run at a quarter of the FMA rate,
/// which made INT4 products compute-bound.
template <int Bits> __device__ inline float dotWord(uint32_t word, const float *x) {
  constexpr uint32_t kMagic = 0x4B000000u; // 2^23
  if constexpr (Bits == 8) {
    // Byte i, offset to unsigned (q + 128), as the mantissa's low byte.
    const uint32_t u = word ^ 0x80808080u;
    auto q = [&](int i) {
      return __uint_as_float(__byte_perm(u, kMagic, 0x7440u | unsigned(i))) - 8388736.0f;
    };
    const float4 v = *reinterpret_cast<const float4 *>(x);
    return q(0) * v.x + q(1) * v.y + q(2) * v.z + q(3) * v.w;
  } else {
    // Nibble i is stored offset by 8 in two's complement: (n ^ 8) - 8 = q,
    // so u = n ^ 8 = q + 8.
    const uint32_t u = word ^ 0x88888888u;
    auto q = [&](int i) {
      return __uint_as_float(kMagic | ((u >> (4 * i)) & 15u)) - 8388616.0f;
    };
    const float4 a = reinterpret_cast<const float4 *>(x)[0];
    const float4 b = reinterpret_cast<const float4 *>(x)[1];
    return q(0) * a.x + q(1) * a.y + q(2) * a.z + q(3) * a.w + q(4) * b.x + q(5) * b.y +
           q(6) * b.z + q(7) * b.w;
  }
}

/// Loads in flight per lane before any is used, for a row against J token
/// rows: the products are bound by how many bytes each SM has requested
/// from memory, but every load held costs registers, and more tokens hold
/// more inputs; past about 128 registers a thread, an SM keeps one block.
__host__ __device__ constexpr int loadBatch(int tokens) { return tokens == 1 ? 8 : tokens == 2 ? 4 : 2; }

/// How a warp streams one weight row: in batches of kLoadBatch loads per
/// lane, each batch loaded (load) before any of it is used (use).
///
/// Rows of 16-byte chunks of a plain format: each lane loads whole chunks
/// (a warp reads 512 contiguous bytes per load). Symmetric INT groups of
/// whole 32-bit words: the lanes of a warp share out the words of
/// consecutive groups (8 lanes per INT8 group of 32, 4 per INT4 group), so
/// that the warp's code loads and input loads are each one contiguous run;
/// a lane scales its word's sum of code * x by the group's scale (rounding
/// in another order than value by value's (code * scale) * x: they agree
/// to float rounding). Other formats: value by value (kBatches = 0).
template <class W, int K, int64_t RowBytes, int kLoadBatch, class Enable = void>
struct RowStream {
  static constexpr int kBatches = 0;
  struct Batch {};
  __device__ static void load(const uint8_t *, int, Batch &) {}
  template <int J> __device__ static void use(const Batch &, int, const float *const *, float (&)[J]) {}
  /// This lane's share of a row's sum against x, value by value (as
  /// dotRow sums these formats).
  __device__ static float dot(const uint8_t *row, const float *x) {
    float acc = 0;
    for (int k = threadIdx.x % 32; k < K; k += 32)
      acc += W::at(row, k) * x[k];
    return acc;
  }
};

template <class W> constexpr bool kChunked = Chunk<W>::kPer > 0;

/// f(i, c) for each of the lane's kLoadBatch chunks of batch `batch` of a
/// row of kChunks chunks (what a lane loads at once: 16 bytes, or a FP6
/// word pair): chunk c, the i-th of the lane's, the warp's lanes on
/// consecutive chunks (one contiguous run per load).
template <int kLoadBatch, int kChunks, class F>
__device__ inline void forLaneChunks(int batch, F &&f) {
  const int c0 = batch * 32 * kLoadBatch + threadIdx.x % 32;
#pragma unroll
  for (int i = 0; i < kLoadBatch; ++i)
    if (c0 + 32 * i < kChunks)
      f(i, c0 + 32 * i);
}

template <class W, int K, int64_t RowBytes, int kLoadBatch>
struct RowStream<W, K, RowBytes, kLoadBatch,
                 std::enable_if_t<kChunked<W> && RowBytes % 16 == 0 && K % 8 == 0>> {
  static constexpr int kPer = Chunk<W>::kPer, kChunks = K / kPer;
  static constexpr int kBatches = (kChunks + 32 * kLoadBatch - 1) / (32 * kLoadBatch);
  struct Batch {
    uint4 raw[kLoadBatch];
  };
  __device__ static void load(const uint8_t *row, int batch, Batch &b) {
    const uint4 *chunks = reinterpret_cast<const uint4 *>(row);
    forLaneChunks<kLoadBatch, kChunks>(batch, [&](int i, int c) { b.raw[i] = __ldg(chunks + c); });
  }
  template <int J>
  __device__ static void use(const Batch &b, int batch, const float *const *xs, float (&acc)[J]) {
    forLaneChunks<kLoadBatch, kChunks>(batch, [&](int i, int c) {
      float wv[kPer];
      Chunk<W>::decode(b.raw[i], wv);
      for (int j = 0; j < J; ++j) {
        const float4 *xv = reinterpret_cast<const float4 *>(xs[j] + c * kPer);
        for (int q = 0; q < kPer / 4; ++q) {
          const float4 v = xv[q];
          acc[j] += wv[4 * q] * v.x + wv[4 * q + 1] * v.y + wv[4 * q + 2] * v.z +
                    wv[4 * q + 3] * v.w;
        }
      }
    });
  }
};

template <class W> struct IntTraits {
  static constexpr bool kGrouped = false;
};
template <int Bits, int G, bool S> struct IntTraits<IntGroup<Bits, G, S>> {
  using F = IntGroup<Bits, G, S>;
  static constexpr int kWords = G * Bits / 32;
  static constexpr bool kGrouped = S && F::kGroupBytes % 4 == 0 && kWords > 0 && 32 % kWords == 0;
};

template <class W, int K, int64_t RowBytes, int kLoadBatch>
struct RowStream<W, K, RowBytes, kLoadBatch,
                 std::enable_if_t<IntTraits<W>::kGrouped && RowBytes % 4 == 0 &&
                                  K % W::kGroup == 0>> {
  static constexpr int kWords = IntTraits<W>::kWords, kValuesPerWord = 32 / W::kBits;
  static constexpr int kGroups = K / W::kGroup, kGroupsPerPass = 32 / kWords;
  static constexpr int kBatches =
      (kGroups + kGroupsPerPass * kLoadBatch - 1) / (kGroupsPerPass * kLoadBatch);
  struct Batch {
    uint32_t scale[kLoadBatch], code[kLoadBatch];
  };
  __device__ static int firstGroup(int batch) {
    return batch * kGroupsPerPass * kLoadBatch + (threadIdx.x % 32) / kWords;
  }
  __device__ static void load(const uint8_t *row, int batch, Batch &b) {
    const int g0 = firstGroup(batch), word = (threadIdx.x % 32) % kWords;
#pragma unroll
    for (int i = 0; i < kLoadBatch; ++i) {
      const int g = g0 + i * kGroupsPerPass;
      if (g < kGroups) {
        const uint32_t *group = reinterpret_cast<const uint32_t *>(row + g * W::kGroupBytes);
        b.scale[i] = __ldg(group);
        b.code[i] = __ldg(group + 1 + word);
      }
    }
  }
  template <int J>
  __device__ static void use(const Batch &b, int batch, const float *const *xs, float (&acc)[J]) {
    const int g0 = firstGroup(batch), word = (threadIdx.x % 32) % kWords;
#pragma unroll
    for (int i = 0; i < kLoadBatch; ++i) {
      const int g = g0 + i * kGroupsPerPass;
      if (g < kGroups)
        for (int j = 0; j < J; ++j)
          acc[j] += __uint_as_float(b.scale[i]) *
                    dotWord<W::kBits>(b.code[i], xs[j] + g * W::kGroup + word * kValuesPerWord);
    }
  }
};

/// The spans of a row in a lane layout (IntLanes, Fp6Lanes: W::kSpanValues
/// values and W::kSpanBytes bytes each), up to kLoadBatch / 2 a batch (a
/// span takes two or three loads a lane).
template <class W, int K, int64_t RowBytes, int kLoadBatch> struct SpanBatches {
  static_assert(K % W::kSpanValues == 0 && RowBytes == K / W::kSpanValues * W::kSpanBytes,
                "rows of whole spans (latheLanesFit, latheFp6Fit)");
  static constexpr int kSpans = K / W::kSpanValues;
  static constexpr int kPerBatch =
      kLoadBatch / 2 < 1 ? 1 : kLoadBatch / 2 < kSpans ? kLoadBatch / 2 : kSpans;
  static constexpr int kBatches = (kSpans + kPerBatch - 1) / kPerBatch;
  /// f(i, s) for span s of the row, the i-th of batch `batch`.
  template <class F> __device__ static void forSpans(int batch, F &&f) {
#pragma unroll
    for (int i = 0; i < kPerBatch; ++i) {
      const int s = batch * kPerBatch + i;
      if (kSpans % kPerBatch == 0 || s < kSpans)
        f(i, s);
    }
  }
};

/// Groups in the lane layout (IntLanes, CudaWeightLayouts.h): a lane loads
/// a span's 16 bytes of codes and its 16 bytes of their four groups' scales
/// at once, up to kLoadBatch / 2 spans a batch (two loads each). Word w of
/// a lane's codes is the word the artifact's layout would have given it in
/// pass 4 s + w, so for symmetric INT groups a lane sums the same words
/// against the same inputs in the same order as the IntGroup stream above:
/// the same floats. (MXINT8, BFP and MXFP4 blocks, value by value in the
/// artifact's layout, are summed a word at a time here: the same products,
/// added in another order.)
template <int Bits, int G, bool E2M1, int K, int64_t RowBytes, int kLoadBatch>
struct RowStream<IntLanes<Bits, G, E2M1>, K, RowBytes, kLoadBatch>
    : SpanBatches<IntLanes<Bits, G, E2M1>, K, RowBytes, kLoadBatch> {
  using W = IntLanes<Bits, G, E2M1>;
  using Spans = SpanBatches<W, K, RowBytes, kLoadBatch>;
  struct Batch {
    uint4 code[Spans::kPerBatch];
    float4 scale[Spans::kPerBatch];
  };
  /// A word's sum of code * x (dotWord; E2M1 codes the same way, value by
  /// value, the inputs read as float4s).
  __device__ static float laneDot(uint32_t word, const float *x) {
    if constexpr (E2M1) {
      const float4 a = reinterpret_cast<const float4 *>(x)[0];
      const float4 b = reinterpret_cast<const float4 *>(x)[1];
      return W::code(word, 0) * a.x + W::code(word, 1) * a.y + W::code(word, 2) * a.z +
             W::code(word, 3) * a.w + W::code(word, 4) * b.x + W::code(word, 5) * b.y +
             W::code(word, 6) * b.z + W::code(word, 7) * b.w;
    } else {
      return dotWord<Bits>(word, x);
    }
  }
  __device__ static void load(const uint8_t *row, int batch, Batch &b) {
    const int lane = threadIdx.x % 32;
    Spans::forSpans(batch, [&](int i, int s) {
      const uint8_t *span = row + int64_t(s) * W::kSpanBytes;
      b.code[i] = __ldg(reinterpret_cast<const uint4 *>(span) + lane);
      b.scale[i] = __ldg(reinterpret_cast<const float4 *>(span + LATHE_CUDA_LANES_CODE_BYTES) +
                         lane / (G / W::kPerWord));
    });
  }
  /// f(word, code, scale) for each of the lane's words of batch `batch`,
  /// `word` its index in the row's words (128 a span).
  template <class F> __device__ static void forWords(const Batch &b, int batch, F &&f) {
    const int lane = threadIdx.x % 32;
    Spans::forSpans(batch, [&](int i, int s) {
      const uint32_t code[4] = {b.code[i].x, b.code[i].y, b.code[i].z, b.code[i].w};
      const float scale[4] = {b.scale[i].x, b.scale[i].y, b.scale[i].z, b.scale[i].w};
#pragma unroll
      for (int w = 0; w < 4; ++w)
        f((s * 4 + w) * 32 + lane, code[w], scale[w]);
    });
  }
  template <int J>
  __device__ static void use(const Batch &b, int batch, const float *const *xs, float (&acc)[J]) {
    forWords(b, batch, [&](int word, uint32_t code, float scale) {
      for (int j = 0; j < J; ++j)
        acc[j] += scale * laneDot(code, xs[j] + word * W::kPerWord);
    });
  }
  /// Int8 activations of a single token (CudaProductInputs.cuh): the
  /// input's codes as int8Chunks<K, G, Bits> left them, a chunk a word (G
  /// is the activations' block too, so a word's values share both scales).
  /// A word's integer sum of code * q by dp4a (4-bit codes offset by 8, the
  /// chunk's -8 sum q removing it), exact, times both scales.
  static constexpr int kInt8Bits = E2M1 ? 0 : Bits;
  __device__ static void useInt8(const Batch &b, int batch, const uint8_t *chunks, float &acc) {
    forWords(b, batch, [&](int word, uint32_t code, float scale) {
      if constexpr (Bits == 4) {
        const uint4 x = reinterpret_cast<const uint4 *>(chunks)[word];
        const uint32_t u = code ^ 0x88888888u;
        int d = dp4aUnsignedSigned(u & 0x0F0F0F0Fu, x.x, int(x.z));
        d = dp4aUnsignedSigned((u >> 4) & 0x0F0F0F0Fu, x.y, d);
        acc += float(d) * (scale * __uint_as_float(x.w));
      } else {
        const uint2 x = reinterpret_cast<const uint2 *>(chunks)[word];
        acc += float(__dp4a(int(code), int(x.x), 0)) * (scale * __uint_as_float(x.y));
      }
    });
  }
};

/// A row stream's int8 chunks (useInt8): the bits of the weights' codes,
/// 0 where it takes rounded floats.
template <class S, class = void> constexpr int kStreamInt8Bits = 0;
template <class S> constexpr int kStreamInt8Bits<S, std::void_t<decltype(S::kInt8Bits)>> = S::kInt8Bits;

/// FP6 4+2 groups in the lane layout (Fp6Lanes, CudaWeightLayouts.h): a
/// lane loads a span's 16 bytes of low bits, 8 of high bits and 16 of its
/// four words' scales at once, up to kLoadBatch / 2 spans a batch. A word's
/// 8 values become floats of E3M2 times 2^-12 a pair at a time; its sum
/// against x, times 2^12 (exact), is scaled by its group's scale: the
/// same products as value by value's (code * scale) * x to float rounding,
/// added in another order.
template <int G, int K, int64_t RowBytes, int kLoadBatch>
struct RowStream<Fp6Lanes<G>, K, RowBytes, kLoadBatch>
    : SpanBatches<Fp6Lanes<G>, K, RowBytes, kLoadBatch> {
  using W = Fp6Lanes<G>;
  using Spans = SpanBatches<W, K, RowBytes, kLoadBatch>;
  struct Batch {
    uint4 low[Spans::kPerBatch];
    uint2 high[Spans::kPerBatch];
    float4 scale[Spans::kPerBatch];
  };
  __device__ static void load(const uint8_t *row, int batch, Batch &b) {
    const int lane = threadIdx.x % 32;
    Spans::forSpans(batch, [&](int i, int s) {
      const uint8_t *span = row + int64_t(s) * W::kSpanBytes;
      b.low[i] = __ldg(reinterpret_cast<const uint4 *>(span) + lane);
      b.high[i] = __ldg(reinterpret_cast<const uint2 *>(span + LATHE_CUDA_FP6_LOW_BYTES) + lane);
      b.scale[i] = __ldg(
          reinterpret_cast<const float4 *>(span + LATHE_CUDA_FP6_LOW_BYTES + LATHE_CUDA_FP6_HIGH_BYTES) +
          lane / W::kGroupLanes);
    });
  }
  template <int J>
  __device__ static void use(const Batch &b, int batch, const float *const *xs, float (&acc)[J]) {
    const int lane = threadIdx.x % 32;
    Spans::forSpans(batch, [&](int i, int s) {
      const uint32_t low[4] = {b.low[i].x, b.low[i].y, b.low[i].z, b.low[i].w};
      const uint32_t high[2] = {b.high[i].x, b.high[i].y};
      const float scale[4] = {b.scale[i].x, b.scale[i].y, b.scale[i].z, b.scale[i].w};
#pragma unroll
      for (int w = 0; w < 4; ++w) {
        float2 v[4];
#pragma unroll
        for (int p = 0; p < 4; ++p)
          v[p] = W::pair(low[w], high[w / 2], w, p);
        const int first = s * W::kSpanValues + w * 256 + lane * 8;
        for (int j = 0; j < J; ++j) {
          const float4 a = reinterpret_cast<const float4 *>(xs[j] + first)[0];
          const float4 c = reinterpret_cast<const float4 *>(xs[j] + first)[1];
          const float sum = v[0].x * a.x + v[0].y * a.y + v[1].x * a.z + v[1].y * a.w +
                            v[2].x * c.x + v[2].y * c.y + v[3].x * c.z + v[3].y * c.w;
          acc[j] += scale[w] * (sum * 4096.0f);
        }
      }
    });
  }
};

/// FP6 4+2 groups (CudaFormats.cuh's Fp6Split, docs/formats.md) of a
/// multiple of 8 values: a lane takes 8 consecutive values at a time, one
/// 32-bit word of the 4-bit plane and 16 bits of the 2-bit plane. A value
/// is rebuilt from its bits: the code's low 5 bits (e2 e1 e0 m1 m0) placed
/// at float bits 25..21 give 2^(e-127) (1 + m/4), or m 2^-128 for e = 0, so
/// times 2^124 (exact) they are E3M2's value; then the same rounded product
/// with the group's scale as Fp6Split::at.
template <int Group, int K, int64_t RowBytes, int kLoadBatch>
struct RowStream<Fp6Split<Group>, K, RowBytes, kLoadBatch,
                 std::enable_if_t<Group % 8 == 0 && K % 8 == 0>> {
  using W = Fp6Split<Group>;
  static constexpr int kChunks = K / 8;
  static constexpr int kBatches = (kChunks + 32 * kLoadBatch - 1) / (32 * kLoadBatch);
  struct Batch {
    float scale[kLoadBatch];
    uint32_t low[kLoadBatch];
    uint32_t high[kLoadBatch];
  };
  __device__ static void load(const uint8_t *row, int batch, Batch &b) {
    forLaneChunks<kLoadBatch, kChunks>(batch, [&](int i, int c) {
      const int j = (c * 8) % Group; // the chunk's first value in its group
      const uint8_t *group = row + int64_t(c * 8 / Group) * W::kBlockBytes;
      b.scale[i] = __uint_as_float(__ldg(reinterpret_cast<const uint32_t *>(group)));
      b.low[i] = __ldg(reinterpret_cast<const uint32_t *>(group + 4 + j / 2));
      b.high[i] = __ldg(reinterpret_cast<const uint16_t *>(group + 4 + Group / 2 + j / 4));
    });
  }
  template <int J>
  __device__ static void use(const Batch &b, int batch, const float *const *xs, float (&acc)[J]) {
    forLaneChunks<kLoadBatch, kChunks>(batch, [&](int i, int c) {
      float w[8];
      for (int v = 0; v < 8; ++v) {
        const uint32_t low = (b.low[i] >> (4 * v)) & 15u;
        const uint32_t high = (b.high[i] >> (2 * v)) & 3u;
        const uint32_t bits = (high >> 1) << 31 | ((high & 1u) << 4 | low) << 21;
        w[v] = __fmul_rn(__fmul_rn(__uint_as_float(bits), 0x1p124f), b.scale[i]);
      }
      for (int j = 0; j < J; ++j) {
        const float4 lo = reinterpret_cast<const float4 *>(xs[j] + c * 8)[0];
        const float4 hi = reinterpret_cast<const float4 *>(xs[j] + c * 8)[1];
        acc[j] += w[0] * lo.x + w[1] * lo.y + w[2] * lo.z + w[3] * lo.w + w[4] * hi.x +
                  w[5] * hi.y + w[6] * hi.z + w[7] * hi.w;
      }
    });
  }
};

/// The warp's sum of one weight row against J token rows (xs), returned to
/// every lane.
template <class W, int K, int64_t RowBytes, int J>
__device__ void dotRow(const uint8_t *row, const float *const *xs, float (&acc)[J]) {
  using Stream = RowStream<W, K, RowBytes, loadBatch(J)>;
  for (int j = 0; j < J; ++j)
    acc[j] = 0;
  if constexpr (Stream::kBatches > 0) {
#pragma unroll 1
    for (int batch = 0; batch < Stream::kBatches; ++batch) {
      typename Stream::Batch b;
      Stream::load(row, batch, b);
      Stream::template use<J>(b, batch, xs, acc);
    }
  } else {
    for (int k = threadIdx.x % 32; k < K; k += 32) {
      const float wk = W::at(row, k);
      for (int j = 0; j < J; ++j)
        acc[j] += wk * xs[j][k];
    }
  }
  for (int j = 0; j < J; ++j)
    acc[j] = warpSum(acc[j]);
}


/// The warp's sums of row n of W against `count` (1-4) token rows xs,
/// handed to store(acc, count) on every lane.
template <class W, int K, int64_t RowBytes, class Store>
__device__ void dotRows(const uint8_t *w, int n, const float *const *xs, int count,
                        Store &&store) {
  const uint8_t *row = w + int64_t(n) * RowBytes;
  switch (count) {
  case 1: { float acc[1]; dotRow<W, K, RowBytes, 1>(row, xs, acc); store(acc, 1); break; }
  case 2: { float acc[2]; dotRow<W, K, RowBytes, 2>(row, xs, acc); store(acc, 2); break; }
  case 3: { float acc[3]; dotRow<W, K, RowBytes, 3>(row, xs, acc); store(acc, 3); break; }
  default: { float acc[4]; dotRow<W, K, RowBytes, 4>(row, xs, acc); store(acc, 4); break; }
  }
}

/// No single-token walk (GatedRows of two formats).
struct NoStream {};

/// What a product computes per output row: y[t, n] = sum_k x[t, k] W[n, k],
/// plus residual[t, n] when Residual (the residual buffer may be y itself:
/// each element is read and written by the same lane).
template <class W, int K, int N, int64_t RowBytes, bool Residual> struct PlainRows {
  static constexpr int kN = N;
  const uint8_t *w;
  float *y;
  const float *residual;
  /// Where row `row` starts.
  __device__ const uint8_t *at(int row) const { return w + int64_t(row) * RowBytes; }
  /// Output row t, column n, of the product's sum (the one definition of
  /// what both the row and the tensor-core products store).
  __device__ void store(int t, int n, float sum) const { store(t, n, sum, residualAt(t, n)); }
  /// The same with the residual `before` read first (residualAt): a caller
  /// that reads several outputs' first has their loads in flight together
  /// (the residual buffer may be y, so a load cannot pass an earlier store).
  __device__ void store(int t, int n, float sum, float before) const {
    y[int64_t(t) * N + n] = Residual ? before + sum : sum;
  }
  __device__ float residualAt(int t, int n) const {
    if constexpr (Residual)
      return residual[int64_t(t) * N + n];
    else
      return 0;
  }
  /// The residual of output rows n and n + 1 of token t (n even, N even),
  /// read before storePair writes them (as residualAt).
  __device__ float2 residualPair(int t, int n) const {
    if constexpr (Residual)
      return *reinterpret_cast<const float2 *>(residual + int64_t(t) * N + n);
    else
      return make_float2(0, 0);
  }
  /// Output rows n and n + 1 of token t as store() writes them, in one
  /// 8-byte store (n even, N even: the wgmma tiles' epilogue), their
  /// residual `before` (residualPair).
  __device__ void storePair(int t, int n, float sum, float next, float2 before) const {
    const float2 v = Residual ? make_float2(before.x + sum, before.y + next) : make_float2(sum, next);
    *reinterpret_cast<float2 *>(y + int64_t(t) * N + n) = v;
  }
  __device__ void storePair(int t, int n, float sum, float next) const {
    storePair(t, n, sum, next, residualPair(t, n));
  }
  __device__ void operator()(const float *const *xs, const int *ys, int count, int n) const {
    dotRows<W, K, RowBytes>(w, n, xs, count, [&](const float *acc, int) {
      if (threadIdx.x % 32 == 0)
        for (int j = 0; j < count; ++j)
          store(ys[j], n, acc[j]);
    });
  }
  // The single-token walk (productOfOne): one weight row an output row.
  using Stream = RowStream<W, K, RowBytes, loadBatch(1)>;
  static constexpr int kParts = 1, kWalkRows = N;
  __device__ const uint8_t *rowOf(int, int n) const { return at(n); }
  __device__ void finish(int n, float, float sum) const { store(0, n, sum); }
  // With a residual, the walk reads a row's residual as the row begins
  // (EarlyRows, below): the sum then waits on no load before its store.
  static constexpr bool kEarly = Residual, kEarlyBeforeWait = false;
  using Early = float;
  __device__ float early(int n) const { return residualAt(0, n); }
  __device__ void finishEarly(int n, float, float sum, float before) const { store(0, n, sum, before); }
};

/// What the single-token walk (productOfOne) needs at a row's end besides
/// its sums and can have before: Rows::early(n), read by the warp's lane 0
/// as row n begins (the warp's first row's before the kernel waits for the
/// one before where kEarlyBeforeWait, after it otherwise), handed to
/// Rows::finishEarly(n, first, sum, early). A launch's last rows then end
/// on no dependent load or long computation: o and down walk about one row
/// a warp, and each launch ended on its rows' residual loads; q and k on
/// their RoPE angles' loads and double sines. Rows without kEarly finish
/// with Rows::finish.
template <class Rows, class = void> struct EarlyRows {
  static constexpr bool kOn = false, kBeforeWait = false;
  using type = float;
};
template <class Rows> struct EarlyRows<Rows, std::void_t<decltype(Rows::kEarly)>> {
  static constexpr bool kOn = Rows::kEarly, kBeforeWait = Rows::kEarlyBeforeWait;
  using type = typename Rows::Early;
};

/// A q or k product that, for a single token, also does the RoPE step
/// after it (and for keys, E not void, the KV store): the launch's plain
/// rows (Plain, a PlainRows) for steps of several tokens, for which the
/// ropeStoreKV kernel then runs; for one token a warp walks a rotary pair
/// of rows (ropePair) and writes their sums rotated, to `rotated` and to
/// the token's cache row, as ropeStoreKV would (whose launch a one-token
/// step then leaves out: LATHE_CUDA_GRID_PER_TOKENS).
template <class Plain, int HeadDim, bool Interleaved, int HeadsPerTable, typename E, int KvWidth>
struct RopeRows : Plain {
  float *rotated;
  const double *frequencies;
  const LatheCudaFrame *frame;
  int layer;
  static constexpr int kParts = 2, kWalkRows = Plain::kN / 2;
  __device__ const uint8_t *rowOf(int part, int p) const {
    int a, b;
    ropePair<HeadDim, Interleaved>(p, a, b);
    return Plain::at(part == 0 ? a : b);
  }
  // The pair's angle and, for keys, the token's cache row (EarlyRows) as
  // the walk begins the pair, before the wait for its first pair: the
  // step's positions and rows and the frequencies are no kernel's output.
  // Out of line: sincos's slow path would otherwise cost the walk's loop
  // registers (spills).
  struct Early {
    Rotation r;
    void *cache; // E *, the token's key row (E not void)
  };
  static constexpr bool kEarly = true, kEarlyBeforeWait = true;
  __device__ __noinline__ Early early(int p) const {
    Early e{rotationOf<HeadDim, HeadsPerTable>(p, double(frame->positions[0]), frequencies), nullptr};
    if constexpr (!std::is_void_v<E>)
      e.cache = cacheRow<E, KvWidth>(*frame, layer, false, frame->storeRows[0]);
    return e;
  }
  /// Formats decoded value by value finish without the walk's early value.
  __device__ void finish(int p, float x0, float x1) const { finishEarly(p, x0, x1, early(p)); }
  __device__ __noinline__ void finishEarly(int p, float x0, float x1, Early e) const {
    int a, b;
    float ya, yb;
    ropePair<HeadDim, Interleaved>(p, a, b);
    rotateValues(e.r, x0, x1, ya, yb);
    rotated[a] = ya;
    rotated[b] = yb;
    if constexpr (!std::is_void_v<E>) {
      E *row = static_cast<E *>(e.cache);
      row[a] = toCache<E>(ya);
      row[b] = toCache<E>(yb);
    }
  }
};

/// The value product beside RopeRows: for a single token it also stores
/// its row at the token's cache row.
template <class Plain, typename E, int KvWidth> struct CachedRows : Plain {
  const LatheCudaFrame *frame;
  int layer;
  // The token's value row (EarlyRows), before the wait: the step's rows
  // are no kernel's output.
  static constexpr bool kEarly = true, kEarlyBeforeWait = true;
  using Early = E *;
  __device__ E *early(int) const { return cacheRow<E, KvWidth>(*frame, layer, true, frame->storeRows[0]); }
  __device__ void finishEarly(int n, float, float sum, E *row) const {
    Plain::store(0, n, sum);
    row[n] = toCache<E>(sum);
  }
  __device__ void finish(int n, float first, float sum) const { finishEarly(n, first, sum, early(n)); }
};

/// The gate and up products and SwiGLU in one: y[t, n] = silu(g) * u with
/// g = sum_k x[t, k] G[n, k], u likewise with U, the same floats as the
/// products and silu_mul one after another.
/// With downParts set (the tensor-core tiles of bf16 activations), the
/// narrow tiles also write y rounded to bf16 where the down projection's
/// tiles read their token rows (f.tokenParts, partsAt), so that no split
/// launch runs between the two for steps of a few tokens; the launch then
/// reads its own input at f.nextParts (inputParts), which its split wrote
/// there. With downRows set as well (the down projection takes wgmma tiles
/// whenever these do), the wgmma tiles write y there too, as the bf16 rows
/// the down projection's TMA loads (row-major), and no floats.
template <class WG, class WU, int K, int N, int64_t RowBytesG, int64_t RowBytesU>
struct GatedRows {
  static constexpr int kN = N;
  const uint8_t *gate, *up;
  float *y;
  uint32_t *downParts = nullptr;
  bool downRows = false;
  __device__ const uint8_t *at(int row) const { return gate + int64_t(row) * RowBytesG; }
  /// silu(g) * u, the output of the gate's and the up's sums.
  __device__ static float swiglu(float g, float u) { return g / (1.0f + expf(-g)) * u; }
  /// Output row t, column n, from the gate's and the up's sums.
  __device__ void store(int t, int n, float g, float u) const {
    y[int64_t(t) * N + n] = swiglu(g, u);
  }
  /// Outputs n and n + 1 of token t in one 8-byte store (n even, N even),
  /// or with downRows, rounded as splitTokens rounds a Bf16Input, in one
  /// 4-byte store of the down projection's row-major token rows.
  __device__ void storePair(int t, int n, float g, float u, float nextG, float nextU) const {
    if (downRows) {
      reinterpret_cast<uint32_t *>(downParts)[(int64_t(t) * N + n) / 2] =
          bf16Pair(swiglu(g, u), swiglu(nextG, nextU));
      return;
    }
    *reinterpret_cast<float2 *>(y + int64_t(t) * N + n) =
        make_float2(swiglu(g, u), swiglu(nextG, nextU));
  }
  /// The same, and where downParts is set the value rounded as splitTokens
  /// rounds a Bf16Input (to nearest, ties to even) at downParts: the narrow
  /// tiles' epilogue. (The wgmma tiles write those rows row-major instead,
  /// storePair with downRows; the mma.sync wide tiles keep the split.)
  __device__ void storeWithParts(int t, int n, float g, float u) const {
    const float v = swiglu(g, u);
    y[int64_t(t) * N + n] = v;
    if (downParts)
      reinterpret_cast<__nv_bfloat16 *>(downParts)[bf16PartAt<N>(t, n)] = __float2bfloat16_rn(v);
  }
  __device__ void operator()(const float *const *xs, const int *ys, int count, int n) const {
    float g[4];
    dotRows<WG, K, RowBytesG>(gate, n, xs, count, [&](const float *acc, int c) {
      for (int j = 0; j < c; ++j)
        g[j] = acc[j];
    });
    dotRows<WU, K, RowBytesU>(up, n, xs, count, [&](const float *u, int) {
      if (threadIdx.x % 32 == 0)
        for (int j = 0; j < count; ++j)
          store(ys[j], n, g[j], u[j]);
    });
  }
  // The single-token walk (productOfOne), where the gate and the up share
  // a format: the gate's row n, then the up's.
  using Stream = std::conditional_t<std::is_same_v<WG, WU> && RowBytesG == RowBytesU,
                                    RowStream<WG, K, RowBytesG, loadBatch(1)>, NoStream>;
  static constexpr int kParts = 2, kWalkRows = N;
  __device__ const uint8_t *rowOf(int part, int n) const {
    return (part == 0 ? gate : up) + int64_t(n) * RowBytesG;
  }
  __device__ void finish(int n, float g, float u) const { store(0, n, g, u); }
};

/// Where a launch's tensor-core tiles read their token rows: f.tokenParts,
/// or f.nextParts for gate and up writing the down projection's.
template <class Rows>
__device__ inline const uint32_t *inputParts(const LatheCudaFrame &f, const Rows &) {
  return f.tokenParts;
}
template <class WG, class WU, int K, int N, int64_t RowBytesG, int64_t RowBytesU>
__device__ inline const uint32_t *
inputParts(const LatheCudaFrame &f, const GatedRows<WG, WU, K, N, RowBytesG, RowBytesU> &rows) {
  return rows.downParts ? f.nextParts : f.tokenParts;
}

/// Bytes of its first rows a product block asks L2 for before it waits for
/// the kernel before (weights never depend on it).
constexpr int64_t kPrefetchBytes = 16384;

/// The input row of a single-token product: where it lies in its buffer,
/// or normalized (the norm fused) into shared memory. The norm's gain is a
/// weight, so before the kernel waits for the one before, a thread loads
/// its share of it into registers (GainInRegisters: a walk of small
/// batches, which leave room) or the block asks L1 for it (held in
/// registers beside two 16-byte-load batches, the gain cost the bf16
/// gate/up walk spills); and a thread keeps its inputs in registers
/// between the sum of squares and the scaling. One memory round trip after
/// the wait instead of three, the same arithmetic as scaleRow. H200,
/// scripts/cuda-gemv-chain.cu: a step's products at 81% of the card's
/// bandwidth with a norm of no memory round trip, 65% with scaleRow's.
template <int K, bool Gather, class Input, bool GainInRegisters> struct SingleInput {
  static constexpr int kPer = K / kThreads; // a thread's values of the row
  static constexpr bool kHeld = IsNormed<Input>::value && K % kThreads == 0 && kPer <= 16;
  static constexpr bool kRegisters = kHeld && GainInRegisters;
  static constexpr int kInt8 = kInt8Block<Input>;
  float gain[kRegisters ? kPer : 1];
  /// Before the wait: the gain, where held.
  __device__ void prepare(const LatheCudaFrame &f, Input input) {
    if constexpr (kRegisters) {
      for (int i = 0; i < kPer; ++i)
        gain[i] = Input::Gain::at(f.weights[input.gain], threadIdx.x + i * kThreads);
    } else if constexpr (kHeld) {
      const uint8_t *g = f.weights[input.gain];
      using G = typename Input::Gain;
      constexpr int64_t bytes = int64_t(K) * (std::is_same_v<G, F32>                             ? 4
                                              : std::is_same_v<G, BF16> || std::is_same_v<G, F16> ? 2
                                                                                                 : 0);
      for (int64_t at = int64_t(threadIdx.x) * 128; at < bytes; at += int64_t(kThreads) * 128)
        asm volatile("prefetch.global.L1 [%0];" ::"l"(g + at));
    }
  }
  /// After it: the row, as floats (rounded for int8 activations: x~; for
  /// bf16 ones each value rounded, by the held norm as it writes them).
  __device__ const float *row(const LatheCudaFrame &f, int in, Input input) {
    const float *x = unrounded(f, in, input);
    if constexpr (kInt8 > 0) {
      extern __shared__ float rounded[]; // the launch's dynamic shared memory
      roundRow<K, kInt8>(x, rounded);
      __syncthreads();
      return rounded;
    } else if constexpr (kBf16<Input> && !kHeld) {
      extern __shared__ float rounded[];
      roundRowBf16<K>(x, rounded); // in place where x is the normed row
      __syncthreads();
      return rounded;
    } else {
      return x;
    }
  }
  /// Or, for int8 activations, the row's codes for a stream of Bits-bit
  /// weight codes (int8Chunks), in shared memory after the normed row.
  template <int Bits> __device__ const uint8_t *chunks(const LatheCudaFrame &f, int in, Input input) {
    static_assert(kInt8 > 0, "codes of int8 activations");
    const float *x = unrounded(f, in, input);
    extern __shared__ float shared[];
    uint8_t *out = reinterpret_cast<uint8_t *>(shared + (IsNormed<Input>::value ? K : 0));
    int8Chunks<K, kInt8, Bits>(x, out);
    __syncthreads();
    return out;
  }

private:
  /// The row where it lies in its buffer, or normalized into shared memory.
  __device__ const float *unrounded(const LatheCudaFrame &f, int in, Input input) {
    const float *x = f.buffers[in] + int64_t(Gather ? f.logitTokens[0] : 0) * K;
    if constexpr (IsNormed<Input>::value) {
      extern __shared__ float normed[]; // the launch's dynamic shared memory
      if constexpr (kHeld) {
        float v[kPer];
        double squares = 0;
        for (int i = 0; i < kPer; ++i)
          v[i] = x[threadIdx.x + i * kThreads];
        for (int i = 0; i < kPer; ++i)
          squares += double(v[i]) * v[i];
        const float scale = rmsScaleOf<K>(blockSum(squares), input.epsilon);
        for (int i = 0; i < kPer; ++i) {
          const int k = threadIdx.x + i * kThreads;
          float g;
          if constexpr (kRegisters)
            g = gain[i];
          else
            g = Input::Gain::at(f.weights[input.gain], k);
          const float value = g * (scale * v[i]);
          normed[k] = kBf16<Input> ? bf16Rounded(value) : value;
        }
      } else {
        scaleRow<typename Input::Gain, K>(x, f.weights[input.gain], input.epsilon, normed);
      }
      __syncthreads();
      return normed;
    } else {
      return x;
    }
  }
};

/// A product of a single token (a batch-1 decode step): each warp's rows
/// stream as one run of batches (Rows::Stream, loadBatch(1) loads a lane;
/// the gate's and the up's rows in turn for GatedRows), the next batch
/// loaded before the current one is used, so that a warp always has a
/// batch in flight, and the first loaded before the kernel waits for the
/// one before (weights never depend on it), so that those loads overlap
/// that kernel's end. The same sums in the same order as dotRow: the same
/// floats. Measured on an H200 (scripts/cuda-gemv-chain.cu: bf16 rows of
/// the Llama-3.2-1B shape's products in a graph under programmatic
/// dependent launch, 2 blocks an SM): a step's products at 81% of the
/// card's bandwidth so, 65% a batch loaded and used at a time.
template <int K, bool Gather, class Input, class Rows>
__device__ void productOfOne(const LatheCudaFrame &f, int in, Input input, const Rows &rows,
                             int blockX, int blocks) {
  using S = typename Rows::Stream;
  constexpr int N = Rows::kWalkRows, B = S::kBatches, P = Rows::kParts;
  const int firstRow = blockX * kWarps + threadIdx.x / 32, stride = blocks * kWarps;
  SingleInput<K, Gather, Input, sizeof(typename S::Batch) <= 64> source;
  // Int8 activations the stream sums as integers (useInt8), or floats.
  constexpr int kChunkBits = kInt8Block<Input> > 0 ? kStreamInt8Bits<S> : 0;
  source.prepare(f, input);
  if constexpr (B == 0) { // formats decoded value by value: a row at a time
    startStep();
    const float *x = source.row(f, in, input);
    for (int n = firstRow; n < N; n += stride) {
      const float first = warpSum(S::dot(rows.rowOf(0, n), x));
      const float sum = P == 1 ? first : warpSum(S::dot(rows.rowOf(P - 1, n), x));
      if (threadIdx.x % 32 == 0)
        rows.finish(n, first, sum);
    }
    return;
  }
  const int units = firstRow < N ? (N - firstRow + stride - 1) / stride * P * B : 0;
  // Unit u: batch u % B of part (u / B) % P of the warp's row u / (P B).
  const auto load = [&](int u, typename S::Batch &b) {
    S::load(rows.rowOf((u / B) % P, firstRow + u / (P * B) * stride), u % B, b);
  };
  typename S::Batch cur, next;
  if (units > 0)
    load(0, cur);
  const bool leader = threadIdx.x % 32 == 0;
  typename EarlyRows<Rows>::type early{};
  if constexpr (EarlyRows<Rows>::kOn && EarlyRows<Rows>::kBeforeWait)
    if (leader && units > 0)
      early = rows.early(firstRow);
  startStep();
  if constexpr (EarlyRows<Rows>::kOn && !EarlyRows<Rows>::kBeforeWait)
    if (leader && units > 0)
      early = rows.early(firstRow);
  const float *x = nullptr;
  const uint8_t *q = nullptr;
  if constexpr (kChunkBits > 0)
    q = source.template chunks<kChunkBits>(f, in, input);
  else
    x = source.row(f, in, input);
  float acc[1] = {0}, first = 0;
  for (int u = 0; u < units; ++u) {
    if (u + 1 < units)
      load(u + 1, next);
    if constexpr (kChunkBits > 0)
      S::useInt8(cur, u % B, q, acc[0]);
    else
      S::template use<1>(cur, u % B, &x, acc);
    cur = next;
    if (u % B == B - 1) { // a row's last batch
      const float sum = warpSum(acc[0]);
      acc[0] = 0;
      const int n = firstRow + u / (P * B) * stride;
      if (P == 1 || (u / B) % P == 1) {
        if (leader) {
          if constexpr (EarlyRows<Rows>::kOn) {
            rows.finishEarly(n, first, sum, early);
            if (u + 1 < units) // the warp's next row begins
              early = rows.early(n + stride);
          } else {
            rows.finish(n, first, sum);
          }
        }
      } else {
        first = sum;
      }
    }
  }
}

/// One product of a launch (Rows: PlainRows or GatedRows): block blockX of
/// the `blocks` this product takes, one output row per warp per pass.
/// Input: PlainInput or NormedInput of buffer `in`. Gather: token i reads
/// input row f.logitTokens[i] and writes output row i (the classifier).
template <int K, bool Gather, class Input, class Rows>
__device__ void product(const LatheCudaFrame &f, int in, Input input, const Rows &rows,
                        int blockX, int blocks) {
  constexpr int N = Rows::kN;
  const int tokens = Gather ? f.logitCount : f.rows; // the frame: readable before waiting
  if constexpr (!std::is_same_v<typename Rows::Stream, NoStream>)
    if (tokens == 1)
      return productOfOne<K, Gather>(f, in, input, rows, blockX, blocks);
  const int warp = threadIdx.x / 32;
  const int firstRow = blockX * kWarps + warp;
  if (blockX * kWarps < N) {
    const uint8_t *begin = rows.at(blockX * kWarps), *end = rows.at(N);
    prefetchL2(begin, end - begin < kPrefetchBytes ? end : begin + kPrefetchBytes);
  }
  startStep();
  const float *x = f.buffers[in];
  constexpr int kInt8 = kInt8Block<Input>;
  if constexpr (IsNormed<Input>::value || kInt8 > 0 || kBf16<Input>) {
    // The rows normalized and/or rounded (int8 or bf16 activations) into
    // shared memory, J at a time.
    constexpr int J = LATHE_CUDA_NORM_TOKENS(K);
    static_assert(J > 0, "rows this wide are not held in shared memory");
    extern __shared__ float normed[]; // [J][K], the launch's dynamic shared memory
    for (int t0 = 0; t0 < tokens; t0 += J) {
      const int count = min(J, tokens - t0);
      const float *xs[4];
      int ys[4];
      for (int j = 0; j < count; ++j) {
        const float *row = x + int64_t(Gather ? f.logitTokens[t0 + j] : t0 + j) * K;
        if constexpr (IsNormed<Input>::value) {
          scaleRow<typename Input::Gain, K>(row, f.weights[input.gain], input.epsilon,
                                            normed + j * K);
          if constexpr (kInt8 > 0) {
            __syncthreads(); // roundRow's threads read other threads' values
            roundRow<K, kInt8>(normed + j * K, normed + j * K);
          } else if constexpr (kBf16<Input>) {
            __syncthreads();
            roundRowBf16<K>(normed + j * K, normed + j * K);
          }
        } else if constexpr (kInt8 > 0) {
          roundRow<K, kInt8>(row, normed + j * K);
        } else {
          roundRowBf16<K>(row, normed + j * K);
        }
        xs[j] = normed + j * K;
        ys[j] = t0 + j;
      }
      __syncthreads();
      for (int n = firstRow; n < N; n += blocks * kWarps)
        rows(xs, ys, count, n);
      __syncthreads(); // before the next tokens overwrite normed
    }
  } else {
    // Rows outer, tokens inner: each weight row is read from memory once
    // and decoded once per four tokens.
    for (int n = firstRow; n < N; n += blocks * kWarps)
      for (int t0 = 0; t0 < tokens; t0 += 4) {
        const float *xs[4];
        int ys[4];
        const int count = min(4, tokens - t0);
        for (int j = 0; j < count; ++j) {
          ys[j] = t0 + j;
          xs[j] = x + int64_t(Gather ? f.logitTokens[t0 + j] : t0 + j) * K;
        }
        rows(xs, ys, count, n);
      }
  }
}

} // namespace lathe_cuda
