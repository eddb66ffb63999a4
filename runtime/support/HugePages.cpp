#include "runtime/support/HugePages.h"

#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace lathe {

namespace {
constexpr size_t kHugePage = size_t{2} << 20;
}

HugePageRegion mapHugePages(size_t bytes) {
  if (bytes == 0)
    return {};
  const size_t length = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  // One huge page more than needed, then the slack before and after the
  // aligned part is unmapped.
  void *raw = ::mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED)
    return {};
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start)
    ::munmap(raw, aligned - start);
  if (const size_t after = start + length + kHugePage - (aligned + length); after > 0)
    ::munmap(reinterpret_cast<void *>(aligned + length), after);
  uint8_t *data = reinterpret_cast<uint8_t *>(aligned);
  (void)::madvise(data, length, MADV_HUGEPAGE);
  return {data, length};
}

size_t residentBytes(const HugePageRegion &region) {
  if (!region.data)
    return 0;
  const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((region.length + page - 1) / page);
  if (::mincore(region.data, region.length, resident.data()) != 0)
    return region.length; // unknown: count it as taken
  size_t pages = 0;
  for (unsigned char r : resident)
    pages += r & 1;
  return pages * page;
}

void unmapHugePages(const HugePageRegion &region) {
  if (region.data)
    ::munmap(region.data, region.length);
}

std::shared_ptr<uint8_t> allocateHugePages(size_t bytes) {
  const HugePageRegion region = mapHugePages(bytes);
  if (!region.data)
    return nullptr;
  return std::shared_ptr<uint8_t>(region.data,
                                  [region](uint8_t *) { unmapHugePages(region); });
}

} // namespace lathe
