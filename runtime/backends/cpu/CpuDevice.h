// The CPU device: host memory and the process's one thread pool, shared by
// every executable and session of the process.
#pragma once

#include "runtime/backend/Device.h"
#include "runtime/backends/cpu/ThreadPool.h"
#include "runtime/support/HugePages.h"

#include <memory>
#include <mutex>
#include <set>

namespace lathe::cpu {

class CpuDevice final : public backend::Device {
public:
  /// The process's CPU device.
  static CpuDevice &instance();

  std::string name() const override { return "cpu"; }
  Expected<std::unique_ptr<backend::Buffer>> allocate(size_t bytes) override;
  void copy(backend::Buffer &buffer, size_t to, size_t from, size_t bytes) override;
  /// The store step's vectorized encoder (kernels/KvStore.h): the same
  /// bytes as the codec, which the default runs.
  void encodeKvRows(formats::KvFormat format, int64_t width, int64_t count, const float *keys,
                    const float *values, uint8_t *keysOut, uint8_t *valuesOut) override;

  /// The process's thread pool with `threads` threads (the caller
  /// included). Every executable asking for the same count shares one pool;
  /// a different count replaces it for later callers (earlier ones keep
  /// theirs), since a pool's workers spin on their cores.
  std::shared_ptr<threading::ThreadPool> threadPool(int threads);

  /// checkMemoryAvailable (support/AvailableMemory.h) for `bytes` more,
  /// counting the untouched pages of this device's live buffers as taken:
  /// a KV cache is mapped whole but backed as it fills, and overcommit
  /// would grant a step's buffers the memory it is yet to take.
  Status checkAvailable(size_t bytes);
  /// Registers (`live`) or forgets a buffer's mapped region.
  void track(const HugePageRegion *region, bool live);

private:
  CpuDevice() = default;
  std::mutex mutex_;
  std::weak_ptr<threading::ThreadPool> pool_;
  std::set<const HugePageRegion *> regions_;
};

} // namespace lathe::cpu
