#include "runtime/backends/cuda/CudaWeightLayout.h"

#include "runtime/backends/cuda/kernels/CudaWeightLayouts.h"
#include "runtime/formats/RowCodec.h"

#include <cassert>
#include <cstring>

namespace lathe::cuda {
namespace {

int integerBits(const formats::FormatSpec &spec) {
  return spec.kind == formats::FormatKind::INT8 ? 8 : spec.kind == formats::FormatKind::INT4 ? 4 : 0;
}

} // namespace

int gpuWeightLayout(const plan::TensorInfo &info) {
  if (!info.quant || !info.quant->symmetric || integerBits(*info.quant) == 0 || info.shape.empty())
    return LATHE_CUDA_LAYOUT_AS_STORED;
  return latheLanesFit(integerBits(*info.quant), int(info.quant->blockSize), info.shape.back())
             ? LATHE_CUDA_LAYOUT_INT_LANES
             : LATHE_CUDA_LAYOUT_AS_STORED;
}

void toIntLanes(const plan::TensorInfo &info, std::span<const uint8_t> in,
                std::span<uint8_t> out) {
  assert(gpuWeightLayout(info) == LATHE_CUDA_LAYOUT_INT_LANES && in.size() == out.size());
  const int bits = integerBits(*info.quant), group = int(info.quant->blockSize);
  const int64_t cols = info.shape.back();
  const size_t rowBytes = formats::packedRowBytes(*info.quant, cols);
  // The artifact's group: a float32 scale, then its codes (IntGroup.h).
  const int64_t groupBytes = 4 + int64_t(group) * bits / 8;
  const int perWord = 32 / bits, lanesPerGroup = group / perWord;
  const int64_t spanValues = latheLanesSpanValues(bits), spanBytes = latheLanesSpanBytes(bits, group);
  // Span by span, word row by word row (CudaWeightLayouts.h): a word row's
  // 32 lanes hold 32 / lanesPerGroup whole groups, so a group's words are
  // lanesPerGroup consecutive copies, with no division per word (a 1B
  // model's INT4 weights are some 225 million words).
  for (size_t row = 0; row + rowBytes <= in.size(); row += rowBytes) {
    for (int64_t s = 0; s < cols / spanValues; ++s) {
      uint8_t *span = out.data() + row + s * spanBytes;
      for (int w = 0; w < 4; ++w) {
        const int64_t firstGroup = (s * spanValues + int64_t(w) * 32 * perWord) / group;
        for (int q = 0; q < 32 / lanesPerGroup; ++q) {
          const uint8_t *g = in.data() + row + (firstGroup + q) * groupBytes;
          std::memcpy(span + LATHE_CUDA_LANES_CODE_BYTES + q * 16 + w * 4, g, 4);
          for (int j = 0; j < lanesPerGroup; ++j)
            std::memcpy(span + (q * lanesPerGroup + j) * 16 + w * 4, g + 4 + j * 4, 4);
        }
      }
    }
  }
}

} // namespace lathe::cuda
