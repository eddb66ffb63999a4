#include "runtime/backend/Device.h"

namespace lathe::backend {

void Device::encodeKvRows(formats::KvFormat format, int64_t width, int64_t count,
                          const float *keys, const float *values, uint8_t *keysOut,
                          uint8_t *valuesOut) {
  const size_t rowBytes = formats::kvRowBytes(format, width);
  for (int64_t r = 0; r < count; ++r) {
    formats::encodeKvRow(format, {keys + r * width, size_t(width)}, keysOut + r * rowBytes);
    formats::encodeKvRow(format, {values + r * width, size_t(width)}, valuesOut + r * rowBytes);
  }
}

} // namespace lathe::backend
