// lathe-bench --tree SHAPE: what a speculative verification step costs
// against a plain decode step (issue 21: a 64-node step on the 1B shape at
// most 1.3x one token's). One sequence holds a cached context of
// uncomputed tokens (the cache's zeros, as --cached-context); steps of one
// token and steps of SHAPE's full tree (every node, the root included: the
// last accepted token and its drafts, each seeing its ancestors) alternate
// on it, each rolled back after it ran, and every node asks for its logits
// as verification does (greedy ids: executeGreedy).
#pragma once

#include "runtime/backend/Executable.h"
#include "runtime/speculative/TreeShape.h"

#include <cstdint>
#include <vector>

namespace lathe::bench {

struct TreeStepTimes {
  std::vector<double> oneToken; // seconds of each one-token step
  std::vector<double> tree;     // seconds of each tree step
};

/// `steps` steps of each kind, alternating, after one unmeasured step of
/// each (the backend grows its buffers for a new size in its first step),
/// on a fresh cache of `cachedContext` uncomputed tokens; `tokens` gives
/// the ids the steps feed (cycled).
Expected<TreeStepTimes> timeTreeSteps(backend::Executable &executable,
                                      const speculative::TreeShape &shape, int64_t cachedContext,
                                      int64_t steps, const std::vector<int32_t> &tokens);

} // namespace lathe::bench
