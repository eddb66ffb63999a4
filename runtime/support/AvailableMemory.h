// How much memory the machine can still give a process, for refusing an
// allocation that the kernel's overcommit would grant but could not back:
// such a mapping succeeds, and the process is killed later, while it
// touches the pages (lathe-bench --sequences 100000 did this).
#pragma once

#include "runtime/support/Expected.h"

#include <cstddef>
#include <optional>

namespace lathe {

/// MemAvailable plus SwapFree from /proc/meminfo, in bytes; nullopt where
/// that file cannot be read (not Linux, a restricted container).
std::optional<size_t> availableMemoryBytes();

/// Requests smaller than this are not checked (no /proc read for them).
constexpr size_t kMemoryCheckedFrom = size_t(64) << 20;

/// An error "out of memory: N MiB available" where `bytes` (of at least
/// kMemoryCheckedFrom) is more than availableMemoryBytes() less `promised`,
/// memory already mapped but not yet touched (which the kernel does not
/// count as taken); ok otherwise, or where the memory left is unknown.
Status checkMemoryAvailable(size_t bytes, size_t promised = 0);

} // namespace lathe
