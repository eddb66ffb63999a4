#include "runtime/artifact/SyntheticWeights.h"

#include "runtime/artifact/TensorEncoding.h"

#include <algorithm>
#include <cmath>

namespace lathe::artifact {
namespace {

/// A uniform value in [-1, 1) for element `i` of tensor `index`: a hash of
/// both (the splitmix64 finalizer), so rows can be made in any order.
float uniform(uint32_t index, uint64_t i) {
  uint64_t z = (uint64_t(index) << 40) ^ i ^ 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return float(int64_t(z >> 40) - (int64_t(1) << 23)) / float(int64_t(1) << 23);
}

} // namespace

Status fillSyntheticTensor(const plan::TensorInfo &info, uint32_t index, std::span<uint8_t> out) {
  if (info.shape.size() == 1) // a norm gain: ones
    return encodeTensor(info, out, [](int64_t, std::span<float> row) {
      std::fill(row.begin(), row.end(), 1.0f);
    });
  const int64_t cols = info.shape.size() == 2 ? info.shape[1] : 0;
  const float scale = std::sqrt(3.0f / float(std::max<int64_t>(cols, 1)));
  return encodeTensor(info, out, [&](int64_t r, std::span<float> row) {
    for (int64_t c = 0; c < cols; ++c)
      row[size_t(c)] = scale * uniform(index, uint64_t(r) * uint64_t(cols) + uint64_t(c));
  });
}

} // namespace lathe::artifact
