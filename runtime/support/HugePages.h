// Anonymous memory on 2 MiB boundaries with MADV_HUGEPAGE, for data that a
// decode step streams in full (artifact weights, repacked panels): with
// 4 KiB pages the TLB misses and the prefetchers' stops at page boundaries
// cost a large share of the read bandwidth (docs/cpu-backend.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace lathe {

struct HugePageRegion {
  uint8_t *data = nullptr; // 2 MiB-aligned, zero-filled, readable and writable
  size_t length = 0;       // bytes mapped: the request rounded up to 2 MiB
};

/// Maps `bytes` (> 0) of anonymous memory as above; the advice is only
/// advice (without transparent huge pages the memory is ordinary). Returns
/// an empty region when the mapping fails (errno says why).
HugePageRegion mapHugePages(size_t bytes);

/// Bytes of `region` backed by memory now (mincore): the rest takes memory
/// only when first touched.
size_t residentBytes(const HugePageRegion &region);

/// Unmaps a region from mapHugePages (an empty one is ignored).
void unmapHugePages(const HugePageRegion &region);

/// mapHugePages as a shared buffer that unmaps itself; null on failure.
std::shared_ptr<uint8_t> allocateHugePages(size_t bytes);

} // namespace lathe
