#include "runtime/backends/cpu/CpuDevice.h"

#include "runtime/backends/cpu/kernels/KvStore.h"
#include "runtime/support/AvailableMemory.h"
#include "runtime/support/HugePages.h"

#include <cstring>
#include <fmt/format.h>
#include <new>
#include <numeric>
#include <vector>

namespace lathe::cpu {
namespace {

/// Zeroed host memory; 2 MiB and more on huge pages (a KV cache is streamed
/// by every decode step, like the weights). Those regions are registered
/// with the device while they live, for CpuDevice::checkAvailable: their
/// untouched pages take memory later, which the kernel does not count yet.
class HostBuffer final : public backend::Buffer {
public:
  HostBuffer(size_t bytes, CpuDevice &device) : size_(bytes), device_(device) {
    if (bytes >= (size_t(2) << 20)) {
      region_ = mapHugePages(bytes);
      data_ = region_.data;
      if (data_)
        device_.track(&region_, true);
    } else {
      small_.reset(new (std::nothrow) uint8_t[bytes ? bytes : 1]());
      data_ = small_.get();
    }
  }
  ~HostBuffer() override {
    if (region_.data)
      device_.track(&region_, false);
    unmapHugePages(region_);
  }
  bool ok() const { return data_ != nullptr; }
  size_t size() const override { return size_; }
  uint8_t *hostData() override { return data_; }

private:
  size_t size_;
  CpuDevice &device_;
  HugePageRegion region_;
  std::unique_ptr<uint8_t[]> small_;
  uint8_t *data_ = nullptr;
};

} // namespace

CpuDevice &CpuDevice::instance() {
  static CpuDevice device;
  return device;
}

Expected<std::unique_ptr<backend::Buffer>> CpuDevice::allocate(size_t bytes) {
  // Overcommit grants a mapping larger than the memory left, and the
  // process dies later touching it: refuse that here, with the figures.
  if (Status s = checkAvailable(bytes); !s)
    return s.error();
  auto buffer = std::make_unique<HostBuffer>(bytes, *this);
  if (!buffer->ok())
    return Error("out of memory");
  return std::unique_ptr<backend::Buffer>(std::move(buffer));
}

Status CpuDevice::checkAvailable(size_t bytes) {
  if (bytes < kMemoryCheckedFrom)
    return Status::ok(); // no mincore walk either
  size_t promised = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const HugePageRegion *region : regions_)
      promised += region->length - std::min(region->length, residentBytes(*region));
  }
  return checkMemoryAvailable(bytes, promised);
}

void CpuDevice::track(const HugePageRegion *region, bool live) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (live)
    regions_.insert(region);
  else
    regions_.erase(region);
}

void CpuDevice::copy(backend::Buffer &buffer, size_t to, size_t from, size_t bytes) {
  uint8_t *data = buffer.hostData();
  std::memcpy(data + to, data + from, bytes);
}

std::shared_ptr<threading::ThreadPool> CpuDevice::threadPool(int threads) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto pool = pool_.lock(); pool && pool->size() == threads)
    return pool;
  auto pool = std::make_shared<threading::ThreadPool>(threads);
  pool_ = pool;
  return pool;
}

void CpuDevice::encodeKvRows(formats::KvFormat format, int64_t width, int64_t count,
                             const float *keys, const float *values, uint8_t *keysOut,
                             uint8_t *valuesOut) {
  // The rows go straight into the packed arrays: a view of the format
  // without its window (with one, the store step writes f32 window rows).
  formats::KvFormat rows = format;
  rows.window = 0;
  std::vector<int32_t> indices(static_cast<size_t>(count));
  std::iota(indices.begin(), indices.end(), 0);
  kernels::simd::storeKV(keys, values, indices,
                         kernels::KVLayerView{keysOut, valuesOut, count, width, rows});
}

} // namespace lathe::cpu
