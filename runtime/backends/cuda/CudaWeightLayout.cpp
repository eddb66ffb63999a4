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

int gpuWeightLayout(const plan::TensorInfo &info) {
  if (laneBits(info) == 0 || info.shape.empty())
    return LATHE_CUDA_LAYOUT_AS_STORED;
  return latheLanesFit(laneBits(info), int(info.quant->blockSize), info.shape.back())
             ? LATHE_CUDA_LAYOUT_INT_LANES
             : LATHE_CUDA_LAYOUT_AS_STORED;
}

int64_t gpuRowBytes(const plan::TensorInfo &info) {
  const int64_t cols = info.shape.back();
  if (gpuWeightLayout(info) == LATHE_CUDA_LAYOUT_INT_LANES)
    return cols / latheLanesSpanValues(laneBits(info)) *
           latheLanesSpanBytes(laneBits(info), int(info.quant->blockSize));
  return info.quant ? int64_t(formats::packedRowBytes(*info.quant, cols))
                    : cols * int64_t(elementSize(info.type));
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
  const int64_t groupBytes = header + int64_t(group) * bits / 8;
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

} // namespace lathe::cuda
