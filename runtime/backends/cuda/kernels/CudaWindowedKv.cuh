// KV caches with an f32 window on the GPU (kv::KVLayout::windowed): KIVI's
// int4 and int2 (keys quantized per channel over a group of tokens, values
// per token) and the row formats int8, bfp8 and bfp4 given a window. Every
// step writes its keys and values as f32 rows of the window pool; a block
// leaving the window is sealed by lathe_cuda_kv_seal (the paged cache's
// KvDeviceCodec, CudaExecutable.cpp) into the quantized pool, and attention
// reads each visible row from whichever pool holds it, in place: the
// quantized rows' codes are widened in registers, the cache is never
// decompressed. Part of LatheCudaKernels.cuh.
//
// Layout (kv::KVLayout, as on the CPU): the quantized pool, a layer after
// another (KIVI: the layer's key groups, a group of Group rows each, then
// its value rows; row formats: a key array, then a value array, of the
// GPU's PackedKv rows), then the window pool: a key and a value array a
// layer of f32 rows, as many rows as the quantized pool has (f.kvRows),
// window row w being cache row f.kvRows + w.
#pragma once

#include "CudaAttention.cuh"

namespace lathe_cuda {

/// The f16 of a word's low 16 bits.
__device__ inline float halfOf(uint32_t bits) {
  return __half2float(__ushort_as_half((unsigned short)(bits & 0xFFFF)));
}
/// Bytes [p, p + 2) as an f16, at any alignment.
__device__ inline float halfAt(const uint8_t *p) { return halfOf(p[0] | p[1] << 8); }

/// KIVI's quantized pool (runtime/formats/KvFormat.h, the CPU's layout):
/// a key group holds, for each of the KvWidth channels, an f16 scale, then
/// for each an f16 zero, then Group rows of Bits-bit codes (channel c at
/// bit c * Bits of its row); a value row is blocks of Block channels, each
/// an f16 scale, an f16 zero and its codes. A value is code * scale + zero.
template <int Bits, int Block, int Group> struct KiviKv {
  static constexpr int kPer = 8; // values a part: whole bytes of codes
  template <int HeadDim> static constexpr bool kParts = Block % kPer == 0;
  static constexpr int kBlockBytes = 4 + Block * Bits / 8;
  template <int KvWidth> static constexpr int64_t kRowBytes = int64_t(KvWidth / Block) * kBlockBytes;
  template <int KvWidth>
  static constexpr int64_t kGroupBytes = int64_t(KvWidth) * 4 + int64_t(Group) * KvWidth * Bits / 8;
  static_assert(Block * Bits % 8 == 0 && kPer * Bits % 8 == 0, "whole bytes of codes");

  /// A KV head's slice of a row. Keys: its codes in the row of its group,
  /// and the group's scales and zeros of its channels; values: its first
  /// block (zeros null).
  struct Head {
    const uint8_t *codes, *scales, *zeros;
  };
  /// Bytes of one layer's quantized keys and values, a cache of kvRows rows.
  template <int KvWidth> __device__ static int64_t layerBytes(int64_t kvRows) {
    return kvRows / Group * (kGroupBytes<KvWidth> + Group * kRowBytes<KvWidth>);
  }
  template <int KvWidth, int HeadDim>
  __device__ static Head locate(uint8_t *kv, int64_t kvRows, int layer, bool value, int64_t row,
                                int kvHead) {
    uint8_t *base = kv + int64_t(layer) * layerBytes<KvWidth>(kvRows);
    const int64_t c0 = int64_t(kvHead) * HeadDim;
    if (value) {
      const uint8_t *r = base + kvRows / Group * kGroupBytes<KvWidth> + row * kRowBytes<KvWidth>;
      return {r + c0 / Block * kBlockBytes, nullptr, nullptr};
    }
    const uint8_t *group = base + row / Group * kGroupBytes<KvWidth>;
    return {group + int64_t(KvWidth) * 4 + (row % Group) * (KvWidth * Bits / 8) + c0 * Bits / 8,
            group + 2 * c0, group + 2 * (KvWidth + c0)};
  }
  template <int HeadDim> __device__ static void prefetch(Head head) {
    prefetchLines(head.codes, head.zeros ? HeadDim * Bits / 8 : HeadDim / Block * kBlockBytes);
  }
  static __device__ bool aligned(const uint8_t *p, int bytes) {
    return reinterpret_cast<uintptr_t>(p) % bytes == 0;
  }
  /// The kPer codes at p (aligned to their kPer * Bits / 8 bytes) in one
  /// load, code i at bits i * Bits.
  static __device__ uint32_t codeWord(const uint8_t *p) {
    if constexpr (kPer * Bits / 8 == 4)
      return __ldg(reinterpret_cast<const uint32_t *>(p));
    else
      return __ldg(reinterpret_cast<const unsigned short *>(p));
  }
  /// Code i of the codes starting at byte `at` of s (i < 8 / Bits a byte).
  template <class S> __device__ static uint32_t code(const S &s, int at, int i) {
    return (s.byte(at + i * Bits / 8) >> (i * Bits % 8)) & ((1u << Bits) - 1u);
  }
  /// Each of G query heads' dot product with a key row: 8 channels at a
  /// time, their codes, scales and zeros in word loads.
  template <int HeadDim, int G>
  __device__ static void dot(Head head, const float (*q)[HeadDim], float (&out)[G]) {
    for (int g = 0; g < G; ++g)
      out[g] = 0;
    if constexpr (HeadDim % kPer != 0) {
      for (int d = 0; d < HeadDim; ++d) {
        const float k = at<HeadDim>(head, d);
        for (int g = 0; g < G; ++g)
          out[g] += q[g][d] * k;
      }
      return;
    }
    // Scales, zeros and codes in single loads where they are aligned (the
    // 1B shapes': rows and groups are multiples of 16 bytes), else in
    // words and funnel shifts.
    if (aligned(head.scales, 16) && aligned(head.zeros, 16) && aligned(head.codes, kPer * Bits / 8)) {
#pragma unroll 2
      for (int d0 = 0; d0 < HeadDim; d0 += kPer) {
        const uint4 s4 = __ldg(reinterpret_cast<const uint4 *>(head.scales + 2 * d0));
        const uint4 z4 = __ldg(reinterpret_cast<const uint4 *>(head.zeros + 2 * d0));
        const uint32_t c = codeWord(head.codes + d0 * Bits / 8);
        const uint32_t sw[4] = {s4.x, s4.y, s4.z, s4.w}, zw[4] = {z4.x, z4.y, z4.z, z4.w};
#pragma unroll
        for (int i = 0; i < kPer; ++i) {
          const float k = float((c >> (i * Bits)) & ((1u << Bits) - 1u)) *
                              halfOf(sw[i / 2] >> (16 * (i % 2))) +
                          halfOf(zw[i / 2] >> (16 * (i % 2)));
          for (int g = 0; g < G; ++g)
            out[g] += q[g][d0 + i] * k;
        }
      }
      return;
    }
#pragma unroll 2
    for (int d0 = 0; d0 < HeadDim; d0 += kPer) {
      const ByteStream<kPer * Bits / 8> codes(head.codes + d0 * Bits / 8);
      const ByteStream<2 * kPer> scales(head.scales + 2 * d0), zeros(head.zeros + 2 * d0);
#pragma unroll
      for (int i = 0; i < kPer; ++i) {
        const float s = halfOf(scales.w[i / 2] >> (16 * (i % 2)));
        const float z = halfOf(zeros.w[i / 2] >> (16 * (i % 2)));
        const float k = float(code(codes, 0, i)) * s + z;
        for (int g = 0; g < G; ++g)
          out[g] += q[g][d0 + i] * k;
      }
    }
  }
  /// Value d of a head's slice (keys too: unsealing decodes with it).
  template <int HeadDim> __device__ static float at(Head head, int d) {
    if (head.zeros) {
      const uint8_t *c = head.codes + d * Bits / 8;
      const float k = float((c[0] >> (d * Bits % 8)) & ((1u << Bits) - 1u));
      return k * halfAt(head.scales + 2 * d) + halfAt(head.zeros + 2 * d);
    }
    const uint8_t *block = head.codes + d / Block * kBlockBytes;
    const int i = d % Block;
    const float k = float((block[4 + i * Bits / 8] >> (i * Bits % 8)) & ((1u << Bits) - 1u));
    return k * halfAt(block) + halfAt(block + 2);
  }
  /// Values part * kPer .. of a head's value slice: codes of one block.
  __device__ static void decodePart(Head head, int part, float (&v)[kPer]) {
    const int first = part * kPer;
    const uint8_t *block = head.codes + first / Block * kBlockBytes;
    const uint8_t *at = block + 4 + first % Block * Bits / 8;
    if (aligned(block, 4) && aligned(at, kPer * Bits / 8)) {
      const uint32_t header = __ldg(reinterpret_cast<const uint32_t *>(block));
      const uint32_t c = codeWord(at);
      const float s = halfOf(header), z = halfOf(header >> 16);
#pragma unroll
      for (int i = 0; i < kPer; ++i)
        v[i] = float((c >> (i * Bits)) & ((1u << Bits) - 1u)) * s + z;
      return;
    }
    const ByteStream<4> header(block);
    const ByteStream<kPer * Bits / 8> codes(block + 4 + first % Block * Bits / 8);
    const float s = halfOf(header.w[0]), z = halfOf(header.w[0] >> 16);
#pragma unroll
    for (int i = 0; i < kPer; ++i)
      v[i] = float(code(codes, 0, i)) * s + z;
  }
};

/// How the quantized pool of a windowed cache keeps codec Q's rows: KIVI
/// its own way (above); the row formats as a cache without a window does.
template <class Q> struct QuantizedPool {
  template <int KvWidth> __device__ static int64_t layerBytes(int64_t kvRows) {
    return Q::template layerBytes<KvWidth>(kvRows);
  }
  template <int KvWidth, int HeadDim>
  __device__ static typename Q::Head locate(uint8_t *kv, int64_t kvRows, int layer, bool value,
                                            int64_t row, int kvHead) {
    return Q::template locate<KvWidth, HeadDim>(kv, kvRows, layer, value, row, kvHead);
  }
};
template <bool Int8, int Bits, int Block> struct QuantizedPool<PackedKv<Int8, Bits, Block>> {
  using Q = PackedKv<Int8, Bits, Block>;
  template <int KvWidth> __device__ static int64_t layerBytes(int64_t kvRows) {
    return 2 * kvRows * Q::template kRowBytes<KvWidth>;
  }
  template <int KvWidth, int HeadDim>
  __device__ static typename Q::Head locate(uint8_t *kv, int64_t kvRows, int layer, bool value,
                                            int64_t row, int kvHead) {
    return Q::template locate<KvWidth, HeadDim>(kv, kvRows, layer, value, row, kvHead);
  }
};

/// Row `row` (>= kvRows) of the window pool of layer `layer`'s keys or
/// values: KvWidth floats.
template <class Q, int Layers, int KvWidth>
__device__ float *windowRow(uint8_t *kv, int64_t kvRows, int layer, bool value, int64_t row) {
  uint8_t *window = kv + Layers * QuantizedPool<Q>::template layerBytes<KvWidth>(kvRows);
  return reinterpret_cast<float *>(window) +
         ((int64_t(layer) * 2 + (value ? 1 : 0)) * kvRows + (row - kvRows)) * KvWidth;
}

/// How attention reads a windowed cache (the codec interface of PlainKv
/// and PackedKv, CudaAttention.cuh): a row below kvRows through Q, a
/// window row as floats. The rows of one chunk may be of both kinds.
template <class Q, int Layers> struct WindowedKv {
  static constexpr bool kLocatesRows = true;
  static constexpr int kPer = Q::kPer;
  template <int HeadDim> static constexpr bool kParts = Q::template kParts<HeadDim>;
  struct Head {
    typename Q::Head q;
    const float *window; // a window row's head, else null
  };
  template <int KvWidth, int HeadDim>
  __device__ static Head locate(uint8_t *kv, int64_t kvRows, int layer, bool value, int64_t row,
                                int kvHead) {
    if (row >= kvRows)
      return {{}, windowRow<Q, Layers, KvWidth>(kv, kvRows, layer, value, row) +
                      int64_t(kvHead) * HeadDim};
    return {QuantizedPool<Q>::template locate<KvWidth, HeadDim>(kv, kvRows, layer, value, row, kvHead),
            nullptr};
  }
  template <int HeadDim> __device__ static void prefetch(Head head) {
    if (head.window)
      prefetchLines(reinterpret_cast<const uint8_t *>(head.window), HeadDim * 4);
    else
      Q::template prefetch<HeadDim>(head.q);
  }
  template <int HeadDim, int G>
  __device__ static void dot(Head head, const float (*q)[HeadDim], float (&out)[G]) {
    if (!head.window) {
      Q::template dot<HeadDim, G>(head.q, q, out);
      return;
    }
    for (int g = 0; g < G; ++g)
      out[g] = 0;
    for (int d = 0; d < HeadDim; ++d) {
      const float k = __ldg(head.window + d);
      for (int g = 0; g < G; ++g)
        out[g] += q[g][d] * k;
    }
  }
  template <int HeadDim> __device__ static float at(Head head, int d) {
    return head.window ? __ldg(head.window + d) : Q::template at<HeadDim>(head.q, d);
  }
  __device__ static void decodePart(Head head, int part, float (&v)[kPer]) {
    if (!head.window) {
      Q::decodePart(head.q, part, v);
      return;
    }
#pragma unroll
    for (int i = 0; i < kPer; ++i)
      v[i] = __ldg(head.window + part * kPer + i);
  }
};

/// Stores the block's token's key and value rows, f32, at its cache row:
/// a window row (every row a step writes is one).
template <class Q, int Layers, int KvWidth>
__device__ void storeKVWindow(const LatheCudaFrame &f, int keys, int values, int layer) {
  startStep();
  const int t = blockIdx.x;
  const int64_t row = f.storeRows[t];
  const float *k = f.buffers[keys] + int64_t(t) * KvWidth;
  const float *v = f.buffers[values] + int64_t(t) * KvWidth;
  float *kd = windowRow<Q, Layers, KvWidth>(f.kv, f.kvRows, layer, false, row);
  float *vd = windowRow<Q, Layers, KvWidth>(f.kv, f.kvRows, layer, true, row);
  for (int i = rowStart(); i < KvWidth; i += rowStride()) {
    kd[i] = k[i];
    vd[i] = v[i];
  }
}

/// KIVI's asymmetric min/max code of values in [lo, hi] as the CPU's codec
/// makes it (formats/KvFormat.cpp, kiviScale and kiviCode), to the bit:
/// an f16 scale (hi - lo) / qmax and an f16 zero lo, NaN scale for a set
/// with NaN or infinity or past f16's range; codes round-half-even((x -
/// zero) / scale) clamped to [0, qmax].
struct KiviCoder {
  uint16_t scale = 0, zero = 0;
  float z = 0, inverse = 0;
  KiviCoder() = default;
  __device__ KiviCoder(float lo, float hi, bool finite, int qmax) {
    scale = __half_as_ushort(__float2half_rn(float((double(hi) - double(lo)) / qmax)));
    zero = __half_as_ushort(__float2half_rn(lo));
    const float s = __half2float(__ushort_as_half(scale));
    z = __half2float(__ushort_as_half(zero));
    if (!finite || !isfinite(s) || !isfinite(z))
      scale = 0x7e00; // the CPU codec's quiet NaN
    const float back = __half2float(__ushort_as_half(scale));
    inverse = back > 0.0f ? 1.0f / back : 0.0f;
  }
  __device__ uint32_t code(float x, int qmax) const {
    return uint32_t(rintf(fminf(fmaxf(__fmul_rn(__fsub_rn(x, z), inverse), 0.0f), float(qmax))));
  }
};

/// Seals window block `window` into quantized block `sealed`, layer
/// blockIdx.x, keys (blockIdx.y 0) or values: the bytes the CPU's codecs
/// give (KIVI: encodeKiviKeys and encodeKvRow; row formats: PackedKv's GPU
/// layout of encodeKvRow's blocks, as storeKVPacked writes them).
template <class Q> struct Sealer;
template <int Bits, int Block, int Group> struct Sealer<KiviKv<Bits, Block, Group>> {
  using Q = KiviKv<Bits, Block, Group>;
  static constexpr int kQmax = (1 << Bits) - 1, kPerByte = 8 / Bits;
  template <int Layers, int KvWidth, int HeadDim>
  __device__ static void seal(uint8_t *kv, int64_t kvRows, int64_t blockSize, int window,
                              int sealed) {
    const int layer = blockIdx.x;
    const bool value = blockIdx.y == 1;
    const float *x = windowRow<Q, Layers, KvWidth>(kv, kvRows, layer, value, int64_t(window) * blockSize);
    const int64_t first = int64_t(sealed) * blockSize;
    if (value) {
      // A thread a block of a row's channels.
      constexpr int kBlocks = KvWidth / Block;
      for (int i = threadIdx.x; i < Group * kBlocks; i += kThreads) {
        const int r = i / kBlocks, b = i % kBlocks;
        const float *in = x + int64_t(r) * KvWidth + b * Block;
        float lo = INFINITY, hi = -INFINITY;
        bool finite = true;
        for (int j = 0; j < Block; ++j) {
          finite &= isfinite(in[j]);
          lo = fminf(lo, in[j]);
          hi = fmaxf(hi, in[j]);
        }
        const KiviCoder coder(lo, hi, finite, kQmax);
        uint8_t *out = const_cast<uint8_t *>(
            Q::template locate<KvWidth, Block>(kv, kvRows, layer, true, first + r, b).codes);
        out[0] = uint8_t(coder.scale), out[1] = uint8_t(coder.scale >> 8);
        out[2] = uint8_t(coder.zero), out[3] = uint8_t(coder.zero >> 8);
        for (int j = 0; j < Block; j += kPerByte) {
          uint32_t byte = 0;
          for (int k = 0; k < kPerByte; ++k)
            byte |= coder.code(in[j + k], kQmax) << (k * Bits);
          out[4 + j / kPerByte] = uint8_t(byte);
        }
      }
      return;
    }
    // Keys: a thread a byte's channels, over the group's rows.
    uint8_t *group = const_cast<uint8_t *>(
        Q::template locate<KvWidth, KvWidth>(kv, kvRows, layer, false, first, 0).scales);
    uint8_t *codes = group + int64_t(KvWidth) * 4;
    for (int c0 = threadIdx.x * kPerByte; c0 < KvWidth; c0 += kThreads * kPerByte) {
      KiviCoder coders[kPerByte];
      for (int k = 0; k < kPerByte; ++k) {
        float lo = INFINITY, hi = -INFINITY;
        bool finite = true;
        for (int r = 0; r < Group; ++r) {
          const float v = x[int64_t(r) * KvWidth + c0 + k];
          finite &= isfinite(v);
          lo = fminf(lo, v);
          hi = fmaxf(hi, v);
        }
        coders[k] = KiviCoder(lo, hi, finite, kQmax);
        const int c = c0 + k;
        group[2 * c] = uint8_t(coders[k].scale), group[2 * c + 1] = uint8_t(coders[k].scale >> 8);
        group[2 * (KvWidth + c)] = uint8_t(coders[k].zero);
        group[2 * (KvWidth + c) + 1] = uint8_t(coders[k].zero >> 8);
      }
      for (int r = 0; r < Group; ++r) {
        uint32_t byte = 0;
        for (int k = 0; k < kPerByte; ++k)
          byte |= coders[k].code(x[int64_t(r) * KvWidth + c0 + k], kQmax) << (k * Bits);
        codes[int64_t(r) * (KvWidth * Bits / 8) + c0 / kPerByte] = uint8_t(byte);
      }
    }
  }
};
template <bool Int8, int Bits, int Block> struct Sealer<PackedKv<Int8, Bits, Block>> {
  using Q = PackedKv<Int8, Bits, Block>;
  template <int Layers, int KvWidth, int HeadDim>
  __device__ static void seal(uint8_t *kv, int64_t kvRows, int64_t blockSize, int window,
                              int sealed) {
    const int layer = blockIdx.x;
    const bool value = blockIdx.y == 1;
    constexpr int kBlocks = KvWidth / Block;
    const int64_t from = int64_t(window) * blockSize, first = int64_t(sealed) * blockSize;
    // A warp a format block (KvBlockEncoder).
    using E = KvBlockEncoder<Int8, Bits, Block>;
    for (int64_t i = threadIdx.x / 32; i < blockSize * kBlocks; i += kWarps) {
      const int64_t r = i / kBlocks;
      const int b = int(i % kBlocks);
      const float *x = windowRow<Q, Layers, KvWidth>(kv, kvRows, layer, value, from + r) + b * Block;
      const BlockBytes to = Q::template blockAt<KvWidth, HeadDim>(kv, kvRows, layer, value, first + r, b);
      E::store(E::load(x), to.header, to.codes);
    }
  }
};

/// Decodes the first `rows` rows of quantized block `from` into window
/// block `to` (a write into a sealed block, after a rollback into it or
/// into a shared one), layer blockIdx.x, keys (blockIdx.y 0) or values.
template <class Q, int Layers, int KvWidth, int HeadDim>
__device__ void unsealKvBlock(uint8_t *kv, int64_t kvRows, int64_t blockSize, int from, int to,
                              int64_t rows) {
  const int layer = blockIdx.x;
  const bool value = blockIdx.y == 1;
  for (int64_t i = threadIdx.x; i < rows * KvWidth; i += kThreads) {
    const int64_t r = i / KvWidth;
    const int c = int(i % KvWidth);
    const auto head = QuantizedPool<Q>::template locate<KvWidth, HeadDim>(
        kv, kvRows, layer, value, int64_t(from) * blockSize + r, c / HeadDim);
    windowRow<Q, Layers, KvWidth>(kv, kvRows, layer, value, int64_t(to) * blockSize + r)[c] =
        Q::template at<HeadDim>(head, c % HeadDim);
  }
}

} // namespace lathe_cuda
