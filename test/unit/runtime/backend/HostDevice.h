// A backend::Device on plain host memory for tests of the parts of the
// runtime that use a device without a backend (the KV cache, the batch
// layout); counts its copies.
#pragma once

#include "runtime/backend/Device.h"

#include <cstring>
#include <memory>
#include <vector>

namespace lathe::backend::testing {

class HostDevice final : public Device {
  class HostBuffer final : public Buffer {
  public:
    explicit HostBuffer(size_t n) : bytes(n, 0) {}
    size_t size() const override { return bytes.size(); }
    uint8_t *hostData() override { return bytes.data(); }
    std::vector<uint8_t> bytes;
  };

public:
  std::string name() const override { return "host"; }
  /// Refuses more than 1 GiB, as a device that runs out of memory would.
  Expected<std::unique_ptr<Buffer>> allocate(size_t bytes) override {
    if (bytes > (size_t(1) << 30))
      return Error("too large");
    return std::unique_ptr<Buffer>(new HostBuffer(bytes));
  }
  void copy(Buffer &b, size_t to, size_t from, size_t bytes) override {
    ++copies;
    std::memcpy(b.hostData() + to, b.hostData() + from, bytes);
  }
  int copies = 0;
};

} // namespace lathe::backend::testing
