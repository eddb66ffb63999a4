// The CPU device: host memory and the process's one thread pool, shared by
// every executable and session of the process.
#pragma once

#include "runtime/backend/Device.h"
#include "runtime/backends/cpu/ThreadPool.h"

#include <memory>
#include <mutex>

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

private:
  CpuDevice() = default;
  std::mutex mutex_;
  std::weak_ptr<threading::ThreadPool> pool_;
};

} // namespace lathe::cpu
