#include "runtime/backends/cuda/CudaWeightLayout.h"

#include "runtime/backends/cuda/kernels/CudaWeightLayouts.h"
#include "runtime/formats/RowCodec.h"

#include <cassert>
#include <cstring>

namespace lathe::cuda {
namespace {

using formats::FormatKind;

/// Whether a block starts with an exponent code (MXINT8's E8M0, BFP's
/// shared exponent) rather than a float32 scale.
bool exponentCoded(const formats::FormatSpec &spec) {
  return spec.kind == FormatKind::MXINT8 || spec.kind == FormatKind::BFP ||
         spec.kind == FormatKind::MXFP4_E2M1;
}

/// The power of two a code of an exponent-coded block stands for below its
/// exponent: MXINT8's element is q / 64, a BFP mantissa of m bits q / 2^(m -
/// 2), and the kernels read an E2M1 code as its value doubled (e2m1Doubled).
int fractionBits(const formats::FormatSpec &spec) {
  return spec.kind == FormatKind::MXINT8  ? 6
         : spec.kind == FormatKind::BFP   ? spec.mantissaBits - 2
                                          : 1;
}

/// The float32 scale of a block whose exponent code is `e`: 2^(e - 127 -
/// fraction), exactly (subnormal for small e), or NaN for the code 0xFF,
/// which makes the whole block NaN (formats::decodeMxBlock,
/// decodeBfpBlock).
float exponentScale(uint8_t e, int fraction) {
  uint32_t pattern;
  const int exponent = int(e) - 127 - fraction; // >= -133, above float's -149
  if (e == 0xFF)
    pattern = 0x7fc00000u;
  else if (exponent >= -126)
    pattern = uint32_t(exponent + 127) << 23;
  else
    pattern = 1u << (exponent + 149);
  float scale;
  std::memcpy(&scale, &pattern, 4);
  return scale;
}

} // namespace

bool laneCodesAreE2M1(const plan::TensorInfo &info) {
  return info.quant && info.quant->kind == FormatKind::MXFP4_E2M1;
}

int laneBits(const plan::TensorInfo &info) {
  if (!info.quant)
    return 0;
  if (info.quant->kind == FormatKind::INT8 && info.quant->symmetric)
    return 8;
  if (info.quant->kind == FormatKind::INT4 && info.quant->symmetric)
    return 4;
  if (info.quant->kind == FormatKind::BFP)
    return info.quant->mantissaBits == 8 || info.quant->mantissaBits == 4
               ? info.quant->mantissaBits
               : 0;
  return info.quant->kind == FormatKind::MXINT8       ? 8
         : info.quant->kind == FormatKind::MXFP4_E2M1 ? 4
                                                      : 0;
}

int fp6LaneGroup(const plan::TensorInfo &info) {
  return int(formats::rowBlockValues(*info.quant, info.shape.back()));
}

int gpuWeightLayout(const plan::TensorInfo &info) {
  if (!info.quant || info.shape.empty())
    return LATHE_CUDA_LAYOUT_AS_STORED;
  if (info.quant->kind == FormatKind::FP6_4P2)
    return latheFp6Fit(fp6LaneGroup(info), info.shape.back()) ? LATHE_CUDA_LAYOUT_FP6_LANES
                                                              : LATHE_CUDA_LAYOUT_AS_STORED;
  if (laneBits(info) == 0)
    return LATHE_CUDA_LAYOUT_AS_STORED;
  return latheLanesFit(laneBits(info), int(info.quant->blockSize), info.shape.back())
             ? LATHE_CUDA_LAYOUT_INT_LANES
             : LATHE_CUDA_LAYOUT_AS_STORED;
}

int64_t gpuRowBytes(const plan::TensorInfo &info) {
  const int64_t cols = info.shape.back();
  switch (gpuWeightLayout(info)) {
  case LATHE_CUDA_LAYOUT_INT_LANES:
    return cols / latheLanesSpanValues(laneBits(info)) *
           latheLanesSpanBytes(laneBits(info), int(info.quant->blockSize));
  case LATHE_CUDA_LAYOUT_FP6_LANES:
    return cols / LATHE_CUDA_FP6_SPAN_VALUES * latheFp6SpanBytes(fp6LaneGroup(info));
  default:
    return info.quant ? int64_t(formats::packedRowBytes(*info.quant, cols))
                      : cols * int64_t(elementSize(info.type));
  }
}

size_t gpuTensorBytes(const plan::TensorInfo &info, size_t storedBytes) {
  if (gpuWeightLayout(info) == LATHE_CUDA_LAYOUT_AS_STORED)
    return storedBytes;
  return storedBytes / formats::packedRowBytes(*info.quant, size_t(info.shape.back())) *
         size_t(gpuRowBytes(info));
}

void toIntLanes(const plan::TensorInfo &info, std::span<const uint8_t> in,
                std::span<uint8_t> out) {
  assert(gpuWeightLayout(info) == LATHE_CUDA_LAYOUT_INT_LANES);
  const int bits = laneBits(info), group = int(info.quant->blockSize);
  const bool coded = exponentCoded(*info.quant);
  const int64_t cols = info.shape.back();
  const size_t rowBytes = formats::packedRowBytes(*info.quant, cols);
  const size_t outRowBytes = size_t(gpuRowBytes(info));
  assert(in.size() / rowBytes * outRowBytes == out.size());
  // The artifact's group: a float32 scale (IntGroup.h) or an exponent code
  // (Microscaling.h, Bfp.h), then its codes.
  const int64_t header = coded ? 1 : 4;
  const int64_t groupBytes = int64_t(formats::rowBlockBytes(*info.quant, cols));
  const int perWord = 32 / bits, lanesPerGroup = group / perWord;
  const int64_t spanValues = latheLanesSpanValues(bits), spanBytes = latheLanesSpanBytes(bits, group);
  // Span by span, word row by word row (CudaWeightLayouts.h): a word row's
  // 32 lanes hold 32 / lanesPerGroup whole groups, so a group's words are
  // lanesPerGroup consecutive copies, with no division per word (a 1B
  // model's INT4 weights are some 225 million words).
  for (size_t row = 0, to = 0; row + rowBytes <= in.size(); row += rowBytes, to += outRowBytes) {
    for (int64_t s = 0; s < cols / spanValues; ++s) {
      uint8_t *span = out.data() + to + s * spanBytes;
      for (int w = 0; w < 4; ++w) {
        const int64_t firstGroup = (s * spanValues + int64_t(w) * 32 * perWord) / group;
        for (int q = 0; q < 32 / lanesPerGroup; ++q) {
          const uint8_t *g = in.data() + row + (firstGroup + q) * groupBytes;
          uint8_t *scale = span + LATHE_CUDA_LANES_CODE_BYTES + q * 16 + w * 4;
          if (coded) {
            const float f = exponentScale(g[0], fractionBits(*info.quant));
            std::memcpy(scale, &f, 4);
          } else {
            std::memcpy(scale, g, 4);
          }
          for (int j = 0; j < lanesPerGroup; ++j)
            std::memcpy(span + (q * lanesPerGroup + j) * 16 + w * 4, g + header + j * 4, 4);
        }
      }
    }
  }
}

void toFp6Lanes(const plan::TensorInfo &info, std::span<const uint8_t> in,
                std::span<uint8_t> out) {
  assert(gpuWeightLayout(info) == LATHE_CUDA_LAYOUT_FP6_LANES);
  const int64_t cols = info.shape.back(), group = fp6LaneGroup(info);
  const size_t rowBytes = formats::packedRowBytes(*info.quant, size_t(cols));
  const size_t outRowBytes = size_t(gpuRowBytes(info));
  assert(in.size() / rowBytes * outRowBytes == out.size());
  // The artifact's group (Fp6SplitLayout.h): a float32 scale, the low
  // plane (value i's nibble at nibble i), the high plane (value i's sign
  // and e2 at bits 2 (i % 4) + 1 and 2 (i % 4) of byte i / 4).
  const int64_t groupBytes = int64_t(formats::rowBlockBytes(*info.quant, cols));
  const int groupLanes = latheFp6GroupLanes(int(group));
  const int64_t spanBytes = latheFp6SpanBytes(int(group));
  for (size_t row = 0, to = 0; row + rowBytes <= in.size(); row += rowBytes, to += outRowBytes) {
    for (int64_t s = 0; s < cols / LATHE_CUDA_FP6_SPAN_VALUES; ++s) {
      uint8_t *span = out.data() + to + s * spanBytes;
      std::memset(span + LATHE_CUDA_FP6_LOW_BYTES, 0, LATHE_CUDA_FP6_HIGH_BYTES);
      for (int w = 0; w < 4; ++w)
        for (int lane = 0; lane < 32; ++lane) {
          // The lane's word: 8 values of one group, at an even nibble and
          // a whole high byte pair of the planes.
          const int64_t first = s * LATHE_CUDA_FP6_SPAN_VALUES + w * 256 + lane * 8;
          const uint8_t *g = in.data() + row + first / group * groupBytes;
          const int64_t i = first % group;
          uint32_t lowIn = 0, lowOut = 0, highOut;
          uint16_t highIn = 0;
          std::memcpy(&lowIn, g + 4 + i / 2, 4);
          std::memcpy(&highIn, g + 4 + group / 2 + i / 4, 2);
          uint8_t *highWord = span + LATHE_CUDA_FP6_LOW_BYTES + lane * 8 + w / 2 * 4;
          std::memcpy(&highOut, highWord, 4);
          for (int j = 0; j < 8; ++j) {
            lowOut |= (lowIn >> (4 * j) & 15u) << latheFp6LowShift(j);
            const uint32_t high = highIn >> (2 * j) & 3u;
            const int at = (w % 2) * 8 + j;
            highOut |= (high & 1u) << latheFp6HighE2(at) | (high >> 1) << latheFp6HighSign(at);
          }
          std::memcpy(span + lane * 16 + w * 4, &lowOut, 4);
          std::memcpy(highWord, &highOut, 4);
          if (lane % groupLanes == 0)
            std::memcpy(span + LATHE_CUDA_FP6_LOW_BYTES + LATHE_CUDA_FP6_HIGH_BYTES +
                            lane / groupLanes * 16 + w * 4,
                        g, 4);
        }
    }
  }
}

void toGpuLayout(const plan::TensorInfo &info, std::span<const uint8_t> in,
                 std::span<uint8_t> out) {
  switch (gpuWeightLayout(info)) {
  case LATHE_CUDA_LAYOUT_INT_LANES:
    return toIntLanes(info, in, out);
  case LATHE_CUDA_LAYOUT_FP6_LANES:
    return toFp6Lanes(info, in, out);
  default:
    assert(in.size() == out.size());
    std::memcpy(out.data(), in.data(), in.size());
  }
}

} // namespace lathe::cuda
