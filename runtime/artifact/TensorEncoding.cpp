#include "runtime/artifact/TensorEncoding.h"

#include "runtime/formats/ElementType.h"
#include "runtime/formats/RowCodec.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace lathe::artifact {

Status encodeTensor(const plan::TensorInfo &info, std::span<uint8_t> out,
                    const RowValuesFn &rowValues) {
  const bool matrix = info.shape.size() == 2;
  if (!matrix && (info.shape.size() != 1 || info.quant))
    return Error("tensor '" + info.name + "': expected a vector or a matrix");
  const int64_t rows = matrix ? info.shape[0] : 1;
  const int64_t cols = matrix ? info.shape[1] : info.shape[0];
  const size_t rowBytes = info.quant ? formats::packedRowBytes(*info.quant, cols)
                                     : size_t(cols) * elementSize(info.type);
  if (out.size() != size_t(rows) * rowBytes)
    return Error("tensor '" + info.name + "' has an unexpected size");
  // Rows of 64 or more per worker: threads cost more than small tensors save.
  const int workers =
      int(std::clamp<int64_t>(rows / 64, 1, std::max(1u, std::thread::hardware_concurrency())));
  std::atomic<bool> failed{false};
  auto work = [&](int w) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = w; r < rows && !failed; r += workers) {
      rowValues(r, row);
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
    return Error("tensor '" + info.name + "' cannot be packed as " + info.formatName());
  return Status::ok();
}

} // namespace lathe::artifact
