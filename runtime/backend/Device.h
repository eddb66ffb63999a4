// The device side of the backend interface (runtime/backend/Executable.h),
// in the spirit of IREE's HAL and ggml-backend: a device allocates buffers
// and copies within them; an executable loaded from an artifact runs steps
// on it. Each backend implements it in its own folder under
// runtime/backends/; nothing else in the runtime names a backend.
#pragma once

#include "runtime/formats/KvFormat.h"
#include "runtime/support/Expected.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace lathe::backend {

/// Memory of a device: the KV cache, activations.
class Buffer {
public:
  virtual ~Buffer() = default;
  virtual size_t size() const = 0;
  /// The bytes as host memory, or null when they live on the device only.
  virtual uint8_t *hostData() = 0;
  const uint8_t *hostData() const { return const_cast<Buffer *>(this)->hostData(); }
};

class Device {
public:
  virtual ~Device() = default;
  /// "cpu", "cuda:0", ...
  virtual std::string name() const = 0;
  /// `bytes` of zeroed device memory; an error names the size when the
  /// device cannot hold it.
  virtual Expected<std::unique_ptr<Buffer>> allocate(size_t bytes) = 0;
  /// Copies `bytes` from `from` to `to` inside `buffer`; the ranges do not
  /// overlap.
  virtual void copy(Buffer &buffer, size_t to, size_t from, size_t bytes) = 0;
  /// Encodes `count` key rows and as many value rows of `width` floats (host
  /// memory) into `format`, an int8 or BFP row format (formats::kvRowBytes
  /// a row, the rows back to back at keysOut and valuesOut, host memory):
  /// how the paged KV cache seals a block that leaves its f32 window. This
  /// runs the format's codec (formats::encodeKvRow); a backend with a
  /// vectorized store step writes the same bytes with it.
  virtual void encodeKvRows(formats::KvFormat format, int64_t width, int64_t count,
                            const float *keys, const float *values, uint8_t *keysOut,
                            uint8_t *valuesOut);
};

} // namespace lathe::backend
