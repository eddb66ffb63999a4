// The float-decoding matmul kernels of Matmul.h, compiled once per Highway
// target and picked at run time with HWY_DYNAMIC_DISPATCH.
//
// Three shapes of work:
//   T == 1 (decode, GEMV): every packed block is decoded in registers and
//     multiplied straight into four accumulators; weights are read once
//     and nothing is stored.
//   1 < T <= kStreamMaxTokens (several sequences, a speculative tree's
//     nodes): the same, one row at a time against every token, each token
//     summed in the GEMV's order, so its outputs equal a lone token's bit
//     for bit.
//   T > kStreamMaxTokens (prefill, GEMM): four weight rows are decoded into
//     a small buffer that stays in L1, then a register tile of dot products
//     runs them against every activation row, so each row is decoded once
//     per call instead of once per token.

#include "runtime/backends/cpu/kernels/HighwayTargets.h"

#include "runtime/backends/cpu/kernels/Matmul.h"

#include "runtime/formats/Microscaling.h"
#include "runtime/formats/RowCodec.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <span>

// foreach_target.h includes this file again for every target; the plain
// definitions above its include must be seen once.
#ifndef LATHE_KERNELS_SIMD_MATMUL_DETAIL_
#define LATHE_KERNELS_SIMD_MATMUL_DETAIL_
namespace lathe::kernels::simd::detail {

/// The arguments of one packed matmul, as every target's entry point takes
/// them.
struct PackedArgs {
  const float *x;
  int64_t T;
  const uint8_t *w;
  size_t rowBytes;
  int64_t N, K;
  float *y;
  int64_t n0, n1;
  const formats::FormatSpec *spec;
};

/// Scratch floats, 64-byte aligned (decoded weight rows, aligned copies of
/// activation rows): on the stack up to 16 KiB, else on the heap.
class RowScratch {
public:
  explicit RowScratch(size_t floats) {
    if (floats > kLocal) {
      heap_.reset(static_cast<float *>(
          std::aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64)));
      if (!heap_)
        throw std::bad_alloc();
    }
  }
  RowScratch(const RowScratch &) = delete;
  RowScratch &operator=(const RowScratch &) = delete;
  float *data() { return heap_ ? heap_.get() : local_; }

private:
  struct Free {
    void operator()(float *p) const { std::free(p); }
  };
  static constexpr size_t kLocal = 4096;
  alignas(64) float local_[kLocal];
  std::unique_ptr<float, Free> heap_;
};

/// The activation rows where 512-bit loads of them never straddle two
/// cache lines: 64-byte aligned, rows a whole number of lines apart. A
/// straddling load costs two, and the streamed products (T <= 16) load an
/// activation vector for every weight vector, so misaligned rows (as a
/// std::vector's storage usually is) made them 1.3-1.4x slower (768 x 288
/// f32 in cache, T = 2-16, one thread: 14.7-91 against 19-129 us). Aligned
/// input is used in place; otherwise it is copied (T * K floats, once per
/// call).
class AlignedActivations {
public:
  AlignedActivations(const float *x, int64_t T, int64_t K)
      : stride_((K + 15) / 16 * 16), copy_(inPlace(x, T, K, stride_) ? 0 : size_t(T * stride_)) {
    if (inPlace(x, T, K, stride_)) {
      data_ = x;
      stride_ = K;
      return;
    }
    float *out = copy_.data();
    for (int64_t t = 0; t < T; ++t)
      std::copy_n(x + t * K, K, out + t * stride_);
    data_ = out;
  }
  const float *data() const { return data_; }
  /// Floats from one row to the next.
  int64_t stride() const { return stride_; }

private:
  static bool inPlace(const float *x, int64_t T, int64_t K, int64_t lineStride) {
    return reinterpret_cast<uintptr_t>(x) % 64 == 0 && (T == 1 || lineStride == K);
  }
  int64_t stride_;
  RowScratch copy_;
  const float *data_ = nullptr;
};

} // namespace lathe::kernels::simd::detail
#endif // LATHE_KERNELS_SIMD_MATMUL_DETAIL_

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/backends/cpu/kernels/Matmul.cpp"
#include "hwy/foreach_target.h" // IWYU pragma: keep

#include "hwy/highway.h"
#include "runtime/backends/cpu/kernels/DotTile-inl.h"
#include "runtime/backends/cpu/kernels/PackedBlockDecode-inl.h"

HWY_BEFORE_NAMESPACE();
namespace lathe::kernels::simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using detail::AlignedActivations;
using detail::PackedArgs;
using detail::RowScratch;

/// Rows [n0, n1) of dense weights; makeRows(n) gives the loader addressing
/// rows from n on.
template <class MakeRows>
HWY_INLINE void matmulDense(const float *x, int64_t T, int64_t N, int64_t K, float *y,
                            int64_t n0, int64_t n1, MakeRows makeRows) {
  // Prefill (GEMM): tiles of kTileN rows against all tokens.
  // Decode (GEMV): one row at a time with four chains over K. Reading four
  // rows side by side, sharing x, is no faster when x sits in L1 anyway,
  // and it is much slower when the weights stream from DRAM (as the f32
  // stories15M does: 61 MB per token against a 32 MiB L3): measured on
  // Zen 4, 420 vs 282 tokens/s on one thread.
  if (T == 1) {
    const AlignedActivations ax(x, 1, K);
    for (int64_t n = n0; n < n1; ++n) y[n] = dotRowStreaming(ax.data(), makeRows(n), K);
    return;
  }
  // A few tokens (several sequences, a speculative tree): each row read
  // once as the GEMV reads it, every token summed in the GEMV's order.
  if (T <= kStreamMaxTokens) {
    const AlignedActivations ax(x, T, K);
    for (int64_t n = n0; n < n1; ++n)
      dotRowAllTokensStreaming(ax.data(), ax.stride(), T, K, makeRows(n), y + n, N);
    return;
  }
  for (int64_t n = n0; n < n1; n += kTileN) {
    const int rn = static_cast<int>(std::min<int64_t>(kTileN, n1 - n));
    dotRowsAllTokens(x, T, K, makeRows(n), rn, y + n, N);
  }
}

void MatmulF32Impl(const float *x, int64_t T, const float *w, int64_t N,
                   int64_t K, float *y, int64_t n0, int64_t n1) {
  matmulDense(x, T, N, K, y, n0, n1, [&](int64_t n) { return F32Rows{w + n * K, K}; });
}

void MatmulBF16Impl(const float *x, int64_t T, const uint16_t *w, int64_t N,
                    int64_t K, float *y, int64_t n0, int64_t n1) {
  matmulDense(x, T, N, K, y, n0, n1, [&](int64_t n) { return BF16Rows{w + n * K, K}; });
}

void MatmulF16Impl(const float *x, int64_t T, const uint16_t *w, int64_t N,
                   int64_t K, float *y, int64_t n0, int64_t n1) {
  matmulDense(x, T, N, K, y, n0, n1, [&](int64_t n) { return F16Rows{w + n * K, K}; });
}

/// Row n against activation rows [t0, t0 + RT): each block decoded in
/// registers once and multiplied straight into four accumulators per token.
/// The last block of a row may hold padding past K; it meets a zero-padded
/// copy of the end of x (`tails`, B floats per token; padding decodes to
/// zero, so it adds nothing). Small blocks are taken kPerStep at a time so
/// that four FMA chains are in flight. A token's sum runs in the same order
/// for any RT, so a batch's outputs equal a lone token's bit for bit.
template <class Fmt, size_t B, int RT>
HWY_INLINE void rowTokensInRegisters(const PackedArgs &a, const float *xs, int64_t xStride,
                                     int64_t n, int64_t t0, const float *tails) {
  const DF d;
  constexpr size_t kBlockBytes = Fmt::bytes(B);
  constexpr size_t kVecs = B / kLanes;
  constexpr int64_t kPerStep = kVecs >= 4 ? 1 : static_cast<int64_t>(4 / kVecs);
  const int64_t full = a.K / static_cast<int64_t>(B);
  const uint8_t *row = a.w + n * a.rowBytes;
  VF acc[RT][4];
  for (int t = 0; t < RT; ++t)
    for (int c = 0; c < 4; ++c) acc[t][c] = hn::Zero(d);
  // Block b into the accumulators from `slot` on; token t's x block at
  // xb + t * xStride.
  auto block = [&](int64_t b, const float *xb, int64_t xStride, size_t slot) HWY_ATTR {
    Fmt::template block<B>(row + b * kBlockBytes, [&](size_t j, VF wv) HWY_ATTR {
      const size_t i = (slot + j) % 4;
      for (int t = 0; t < RT; ++t)
        acc[t][i] = hn::MulAdd(wv, hn::LoadU(d, xb + t * xStride + j * kLanes), acc[t][i]);
    });
  };
  const float *x = xs + t0 * xStride;
  int64_t b = 0;
  for (; b + kPerStep <= full; b += kPerStep)
    for (int64_t i = 0; i < kPerStep; ++i)
      block(b + i, x + (b + i) * B, xStride, static_cast<size_t>(i) * kVecs);
  for (; b < full; ++b) block(b, x + b * B, xStride, 0);
  if (a.K % static_cast<int64_t>(B))
    block(full, tails + t0 * static_cast<int64_t>(B), B, 0);
  for (int t = 0; t < RT; ++t)
    a.y[(t0 + t) * a.N + n] =
        reduceSum(d, hn::Add(hn::Add(acc[t][0], acc[t][1]), hn::Add(acc[t][2], acc[t][3])));
}

/// T <= kStreamMaxTokens: every row read once, in order, against every
/// token, kStreamTokens at a time (the GEMV when T == 1).
template <class Fmt, size_t B> void gemvInRegisters(const PackedArgs &a) {
  const int64_t full = a.K / static_cast<int64_t>(B);
  const int64_t rest = a.K % static_cast<int64_t>(B);
  HWY_ALIGN float tails[kStreamMaxTokens * B] = {};
  if (rest)
    for (int64_t t = 0; t < a.T; ++t)
      std::copy_n(a.x + t * a.K + full * B, rest, tails + t * static_cast<int64_t>(B));
  const AlignedActivations ax(a.x, a.T, a.K);
  const float *xs = ax.data();
  const int64_t xStride = ax.stride();
  for (int64_t n = a.n0; n < a.n1; ++n)
    forTokenBlocks(a.T, [&]<int RT>(int64_t t) HWY_ATTR {
      rowTokensInRegisters<Fmt, B, RT>(a, xs, xStride, n, t, tails);
    });
}

/// Decodes kTileN rows at a time with decodeRow(rowBytes, out) into rows of
/// `stride` floats and runs them against all T activation rows.
template <class DecodeRow>
HWY_INLINE void matmulDecodedRows(const PackedArgs &a, int64_t stride,
                                  DecodeRow decodeRow) {
  RowScratch scratch(static_cast<size_t>(kTileN * stride));
  float *rows = scratch.data();
  for (int64_t n = a.n0; n < a.n1; n += kTileN) {
    const int rn = static_cast<int>(std::min<int64_t>(kTileN, a.n1 - n));
    for (int r = 0; r < rn; ++r)
      decodeRow(a.w + (n + r) * a.rowBytes, rows + r * stride);
    dotRowsAllTokens(a.x, a.T, a.K, F32Rows{rows, stride}, rn, a.y + n, a.N);
  }
}

/// Any format, any target: the reference decoder, one row at a time.
void matmulWithReferenceDecode(const PackedArgs &a) {
  matmulDecodedRows(a, a.K, [&](const uint8_t *row, float *out) {
    formats::dequantizeRow(*a.spec, {row, a.rowBytes}, {out, static_cast<size_t>(a.K)});
  });
}

template <class Fmt, size_t B> void matmulBlocks(const PackedArgs &a) {
  if (a.T <= kStreamMaxTokens)
    return gemvInRegisters<Fmt, B>(a);
  const DF d;
  const int64_t blocks = (a.K + B - 1) / B;
  matmulDecodedRows(a, blocks * B, [&](const uint8_t *row, float *out) HWY_ATTR {
    for (int64_t b = 0; b < blocks; ++b)
      Fmt::template block<B>(row + b * Fmt::bytes(B), [&](size_t j, VF wv) HWY_ATTR {
        hn::StoreU(wv, d, out + b * B + j * kLanes);
      });
  });
}

/// Per-channel FP6 4+2: one group spans the row (K rounded up to 4), so
/// whole vector pairs are decoded in registers and the last few codes one
/// by one.
void matmulFp6PerChannel(const PackedArgs &a) {
  const DF d;
  const int64_t group = (a.K + 3) / 4 * 4;
  matmulDecodedRows(a, group, [&](const uint8_t *row, float *out) HWY_ATTR {
    const float scale = loadScale(row);
    const uint8_t *low = row + 4, *high = row + 4 + group / 2;
    size_t j = 0;
    for (; (j + 2) * kLanes <= static_cast<size_t>(group); j += 2)
      fp6SplitPair(low, high, j, hn::Set(d, scale), [&](size_t v, VF wv) HWY_ATTR {
        hn::StoreU(wv, d, out + v * kLanes);
      });
    for (size_t c = j * kLanes; c < static_cast<size_t>(group); ++c) {
      const unsigned code = ((low[c / 2] >> (4 * (c % 2))) & 15u) |
                            (((high[c / 4] >> (2 * (c % 4))) & 3u) << 4);
      out[c] = formats::decodeMxElement(formats::MxElement::FP6_E3M2,
                                        static_cast<uint8_t>(code)) * scale;
    }
  });
}

/// Runs (a non-null) or only answers whether this target decodes the
/// format in registers (a null), for one format and block size.
template <class Fmt, size_t B> bool handle(const PackedArgs *a) {
  if constexpr (!Fmt::supports(B)) {
    if (a)
      matmulWithReferenceDecode(*a);
    return false;
  } else {
    if (a)
      matmulBlocks<Fmt, B>(*a);
    return true;
  }
}

/// The first Bs that equals `block` selects the instantiation.
template <class Fmt, size_t... Bs> bool withBlock(size_t block, const PackedArgs *a) {
  bool inRegisters = false, found = false;
  ((!found && block == Bs ? (found = true, inRegisters = handle<Fmt, Bs>(a)) : false), ...);
  if (!found && a)
    matmulWithReferenceDecode(*a);
  return found && inRegisters;
}

bool dispatchPacked(const formats::FormatSpec &spec, const PackedArgs *a) {
  using formats::FormatKind;
  const size_t block = static_cast<size_t>(spec.blockSize);
  switch (spec.kind) {
  case FormatKind::BFP:
    if (spec.mantissaBits == 8) return withBlock<BfpFormat<8>, 16, 32, 64>(block, a);
    if (spec.mantissaBits == 6) return withBlock<BfpFormat<6>, 16, 32, 64>(block, a);
    return withBlock<BfpFormat<4>, 16, 32, 64>(block, a);
  case FormatKind::INT8:
    if (spec.symmetric) return withBlock<IntGroupFormat<8, true>, 32, 64, 128>(block, a);
    return withBlock<IntGroupFormat<8, false>, 32, 64, 128>(block, a);
  case FormatKind::INT4:
    if (spec.symmetric) return withBlock<IntGroupFormat<4, true>, 32, 64, 128>(block, a);
    return withBlock<IntGroupFormat<4, false>, 32, 64, 128>(block, a);
  case FormatKind::MXINT8: return withBlock<MxFormat<MxCode::Int8>, 32>(block, a);
  case FormatKind::MXFP8_E4M3: return withBlock<MxFormat<MxCode::E4M3>, 32>(block, a);
  case FormatKind::MXFP8_E5M2: return withBlock<MxFormat<MxCode::E5M2>, 32>(block, a);
  case FormatKind::MXFP6_E3M2: return withBlock<MxFormat<MxCode::E3M2>, 32>(block, a);
  case FormatKind::MXFP6_E2M3: return withBlock<MxFormat<MxCode::E2M3>, 32>(block, a);
  case FormatKind::MXFP4_E2M1: return withBlock<MxFormat<MxCode::E2M1>, 32>(block, a);
  case FormatKind::FP6_4P2:
    if (spec.perChannel) {
      if (a)
        matmulFp6PerChannel(*a);
      return true;
    }
    return withBlock<Fp6SplitFormat, 32, 64, 128>(block, a);
  }
  if (a)
    matmulWithReferenceDecode(*a);
  return false;
}

void MatmulPackedImpl(const PackedArgs &a) { dispatchPacked(*a.spec, &a); }

bool DecodesInRegistersImpl(const formats::FormatSpec &spec) {
  return dispatchPacked(spec, nullptr);
}

const char *TargetNameImpl() { return hwy::TargetName(HWY_TARGET); }

} // namespace HWY_NAMESPACE
} // namespace lathe::kernels::simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lathe::kernels::simd {

HWY_EXPORT(MatmulF32Impl);
HWY_EXPORT(MatmulBF16Impl);
HWY_EXPORT(MatmulF16Impl);
HWY_EXPORT(MatmulPackedImpl);
HWY_EXPORT(DecodesInRegistersImpl);
HWY_EXPORT(TargetNameImpl);

void matmulF32(const float *x, int64_t T, const float *w, int64_t N, int64_t K,
               float *y, int64_t n0, int64_t n1) {
  if (T <= 0 || n0 >= n1)
    return;
  HWY_DYNAMIC_DISPATCH(MatmulF32Impl)(x, T, w, N, K, y, n0, n1);
}

void matmulBF16(const float *x, int64_t T, const uint16_t *w, int64_t N,
                int64_t K, float *y, int64_t n0, int64_t n1) {
  if (T <= 0 || n0 >= n1)
    return;
  HWY_DYNAMIC_DISPATCH(MatmulBF16Impl)(x, T, w, N, K, y, n0, n1);
}

void matmulF16(const float *x, int64_t T, const uint16_t *w, int64_t N,
               int64_t K, float *y, int64_t n0, int64_t n1) {
  if (T <= 0 || n0 >= n1)
    return;
  HWY_DYNAMIC_DISPATCH(MatmulF16Impl)(x, T, w, N, K, y, n0, n1);
}

void matmulPacked(const float *x, int64_t T, const uint8_t *w,
                  const formats::FormatSpec &spec, int64_t N, int64_t K,
                  float *y, int64_t n0, int64_t n1) {
  if (T <= 0 || n0 >= n1)
    return;
  const size_t rowBytes = formats::packedRowBytes(spec, K);
  if (rowBytes == 0) {
    // An invalid spec (or K <= 0, where dequantizeRow would produce no
    // values): NaN marks outputs that no weights define, as dequantizeRow
    // does for a bad spec.
    const float fill = K == 0 && formats::validateFormatSpec(spec)
                           ? 0.0f
                           : std::numeric_limits<float>::quiet_NaN();
    for (int64_t t = 0; t < T; ++t)
      std::fill(y + t * N + n0, y + t * N + n1, fill);
    return;
  }
  const detail::PackedArgs args{x, T, w, rowBytes, N, K, y, n0, n1, &spec};
  HWY_DYNAMIC_DISPATCH(MatmulPackedImpl)(args);
}

bool decodesInRegisters(const formats::FormatSpec &spec) {
  if (!formats::validateFormatSpec(spec))
    return false;
  return HWY_DYNAMIC_DISPATCH(DecodesInRegistersImpl)(spec);
}

const char *simdTargetName() { return HWY_DYNAMIC_DISPATCH(TargetNameImpl)(); }

} // namespace lathe::kernels::simd
#endif // HWY_ONCE
