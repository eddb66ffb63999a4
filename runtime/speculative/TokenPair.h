// Two token ids as one 64-bit key (the first in the high half): how the
// drafters' tables key token pairs (TokenRecycling's pair rows, the
// SuffixIndex and TextIndex positions), and how a drafter state file
// stores a pair.
#pragma once

#include <cstdint>

namespace lathe::speculative {

inline uint64_t tokenPairKey(int32_t first, int32_t second) {
  return (uint64_t(uint32_t(first)) << 32) | uint32_t(second);
}

} // namespace lathe::speculative
