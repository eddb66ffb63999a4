#include "runtime/artifact/SyntheticWeights.h"

#include "runtime/formats/ElementType.h"
#include "runtime/formats/RowCodec.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

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
  if (info.shape.size() == 1) { // a norm gain: ones
    const size_t size = info.quant ? 0 : elementSize(info.type);
    if (info.quant || out.size() != size_t(info.shape[0]) * size)
      return Error("synthetic weights: tensor '" + info.name + "' is not a plain vector");
    const std::vector<float> ones(size_t(info.shape[0]), 1.0f);
    encodeFloats(ones.data(), info.shape[0], info.type, out.data());
    return Status::ok();
  }
  const int64_t rows = info.shape[0], cols = info.shape[1];
  const size_t rowBytes = info.quant ? formats::packedRowBytes(*info.quant, cols)
                                     : size_t(cols) * elementSize(info.type);
  if (info.shape.size() != 2 || out.size() != size_t(rows) * rowBytes)
    return Error("synthetic weights: tensor '" + info.name + "' has an unexpected size");
  const float scale = std::sqrt(3.0f / float(cols));
  const int workers =
      int(std::clamp<int64_t>(rows / 64, 1, std::max(1u, std::thread::hardware_concurrency())));
  std::atomic<bool> failed{false};
  auto work = [&](int w) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = w; r < rows; r += workers) {
      for (int64_t c = 0; c < cols; ++c)
        row[size_t(c)] = scale * uniform(index, uint64_t(r) * uint64_t(cols) + uint64_t(c));
      uint8_t *dst = out.data() + size_t(r) * rowBytes;
      if (info.quant) {
        if (!formats::quantizeRow(*info.quant, row, {dst, rowBytes}))
          failed = true;
      } else {
        encodeFloats(row.data(), cols, info.type, dst);
      }
    }
  };
  std::vector<std::thread> threads;
  for (int w = 1; w < workers; ++w)
    threads.emplace_back(work, w);
  work(0);
  for (std::thread &t : threads)
    t.join();
  if (failed)
    return Error("synthetic weights: cannot pack tensor '" + info.name + "'");
  return Status::ok();
}

} // namespace lathe::artifact
