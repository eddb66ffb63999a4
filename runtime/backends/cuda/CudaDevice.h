// The CUDA device: GPU 0 of the process (CUDA_VISIBLE_DEVICES picks which),
// its primary context, and device memory for KV caches, weights and
// activations. Created on first use; an error when there is no driver or
// no GPU.
#pragma once

#include "runtime/backend/Device.h"
#include "runtime/backends/cuda/CudaDriver.h"

#include <memory>
#include <mutex>
#include <string>

namespace lathe::cuda {

class CudaDevice;

/// Device memory; hostData() is null.
class CudaBuffer final : public backend::Buffer {
public:
  CudaBuffer(CudaDevice &device, CUdeviceptr address, size_t bytes)
      : device_(device), address_(address), bytes_(bytes) {}
  ~CudaBuffer() override;
  size_t size() const override { return bytes_; }
  uint8_t *hostData() override { return nullptr; }
  CUdeviceptr address() const { return address_; }

private:
  CudaDevice &device_;
  CUdeviceptr address_;
  size_t bytes_;
};

/// Page-locked host memory: the GPU copies into it at full link speed
/// (a copy to pageable memory goes through a staging buffer, several times
/// slower for a step's logits).
class PinnedHostBuffer {
public:
  PinnedHostBuffer(CudaDevice &device, void *data, size_t bytes)
      : device_(device), data_(data), bytes_(bytes) {}
  ~PinnedHostBuffer();
  PinnedHostBuffer(const PinnedHostBuffer &) = delete;
  PinnedHostBuffer &operator=(const PinnedHostBuffer &) = delete;
  void *data() const { return data_; }
  size_t size() const { return bytes_; }

private:
  CudaDevice &device_;
  void *data_;
  size_t bytes_;
};

class CudaDevice final : public backend::Device {
public:
  /// The process's CUDA device, or why there is none.
  static Expected<CudaDevice *> instance();

  std::string name() const override { return "cuda:0"; }
  Expected<std::unique_ptr<backend::Buffer>> allocate(size_t bytes) override;
  /// Page-locked host memory of at least `bytes` bytes.
  Expected<std::unique_ptr<PinnedHostBuffer>> allocateHost(size_t bytes);
  /// Copies inside a buffer; a failure is kept and reported by the next
  /// takeError().
  void copy(backend::Buffer &buffer, size_t to, size_t from, size_t bytes) override;

  const DriverApi &api() const { return api_; }
  /// Makes the device's context current on the calling thread.
  Status bind() const;
  /// "NVIDIA H200 (sm_90)".
  const std::string &description() const { return description_; }
  int computeCapability() const { return capability_; } // e.g. 90
  /// The most shared memory a block may ask for (cuFuncSetAttribute).
  int sharedPerBlock() const { return sharedPerBlock_; }
  /// Its streaming multiprocessors (132 on an H200).
  int multiprocessors() const { return multiprocessors_; }
  /// The first error of an operation that could not return one (copy),
  /// cleared once taken.
  Status takeError();
  /// Keeps `error` for takeError, unless an earlier one is kept.
  void keepError(const Error &error);

private:
  CudaDevice(const DriverApi &api, CUcontext context) : api_(api), context_(context) {}
  const DriverApi &api_;
  CUcontext context_;
  std::string description_;
  int capability_ = 0;
  int sharedPerBlock_ = 0;
  int multiprocessors_ = 0;
  std::mutex errorMutex_;
  std::string error_;
};

} // namespace lathe::cuda
