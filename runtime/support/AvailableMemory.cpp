#include "runtime/support/AvailableMemory.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>

namespace lathe {

std::optional<size_t> availableMemoryBytes() {
  std::FILE *file = std::fopen("/proc/meminfo", "r");
  if (!file)
    return std::nullopt;
  char line[256];
  unsigned long long kib = 0;
  bool found = false;
  while (std::fgets(line, sizeof line, file)) {
    unsigned long long value = 0;
    // Lines are "Name:   12345 kB".
    if (std::sscanf(line, "MemAvailable: %llu", &value) == 1) {
      kib += value;
      found = true;
    } else if (std::sscanf(line, "SwapFree: %llu", &value) == 1) {
      kib += value;
    }
  }
  std::fclose(file);
  if (!found)
    return std::nullopt;
  return static_cast<size_t>(kib) * 1024;
}

Status checkMemoryAvailable(size_t bytes, size_t promised) {
  if (bytes < kMemoryCheckedFrom)
    return Status::ok();
  std::optional<size_t> available = availableMemoryBytes();
  if (!available)
    return Status::ok();
  const size_t left = *available - std::min(*available, promised);
  if (bytes > left)
    return Error(fmt::format("out of memory: {:.1f} MiB available", double(left) / (1 << 20)));
  return Status::ok();
}

} // namespace lathe
