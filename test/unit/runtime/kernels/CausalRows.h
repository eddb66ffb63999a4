// The cache rows of a plain causal step for the attention kernel tests: row
// t of the step is stored at cache row rowOf[positions[t]] and sees rows
// rowOf[0..positions[t]]. With rowOf the identity the cache is one
// contiguous array; a permutation scatters it as a paged cache would.
#pragma once

#include "runtime/backend/Batch.h"

#include <cstdint>
#include <numeric>
#include <vector>

namespace lathe::kernels::testing {

struct CausalRows {
  std::vector<int32_t> rowOf, store;
  std::vector<backend::VisibleRows> visible;

  CausalRows(const std::vector<int32_t> &positions, int64_t capacity,
             std::vector<int32_t> permutation = {})
      : rowOf(std::move(permutation)) {
    if (rowOf.empty()) {
      rowOf.resize(capacity);
      std::iota(rowOf.begin(), rowOf.end(), 0);
    }
    for (int32_t p : positions) {
      store.push_back(rowOf[p]);
      visible.push_back({rowOf.data(), p + 1, nullptr, 0});
    }
  }
};

} // namespace lathe::kernels::testing
