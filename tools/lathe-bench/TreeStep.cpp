#include "tools/lathe-bench/TreeStep.h"

#include "runtime/backend/Batch.h"

#include <chrono>

namespace lathe::bench {

Expected<TreeStepTimes> timeTreeSteps(backend::Executable &executable,
                                      const speculative::TreeShape &shape, int64_t cachedContext,
                                      int64_t steps, const std::vector<int32_t> &tokens) {
  const std::vector<speculative::TreeShape::Node> nodes = shape.nodes();
  const int64_t n = static_cast<int64_t>(nodes.size());
  if (tokens.empty())
    return Error("no token ids to feed the steps");
  if (cachedContext < 0)
    return Error("--cached-context must be at least 0, got " + std::to_string(cachedContext));
  // The tree's nodes take slots at the sequence's tail, every one of them.
  if (cachedContext + n > executable.config().context)
    return Error("a cached context of " + std::to_string(cachedContext) + " tokens and a tree of " +
                 std::to_string(n) + " nodes exceed the model's context (" +
                 std::to_string(executable.config().context) + ")");
  auto kv = executable.createKVCache(cachedContext + n); // rounded up to whole blocks
  if (!kv)
    return kv.error();
  const backend::SequenceId sequence = (*kv)->addSequence();
  if (Status grown = (*kv)->grow(sequence, cachedContext); !grown)
    return grown.error();

  size_t next = 0;
  auto token = [&] { return tokens[next++ % tokens.size()]; };
  backend::Batch one, tree;
  one.add(sequence, token(), static_cast<int32_t>(cachedContext), -1, true);
  for (const speculative::TreeShape::Node &node : nodes)
    tree.add(sequence, token(), static_cast<int32_t>(cachedContext + node.depth), node.parent,
             true);

  using clock = std::chrono::steady_clock;
  TreeStepTimes times;
  auto run = [&](const backend::Batch &batch, std::vector<double> *into) -> Status {
    const auto t0 = clock::now();
    auto ids = executable.executeGreedy(batch, **kv);
    const auto t1 = clock::now();
    if (!ids)
      return ids.error();
    (*kv)->truncate(sequence, cachedContext);
    if (into)
      into->push_back(std::chrono::duration<double>(t1 - t0).count());
    return Status::ok();
  };
  for (int64_t i = -1; i < steps; ++i) {
    if (Status s = run(one, i < 0 ? nullptr : &times.oneToken); !s)
      return s.error();
    if (Status s = run(tree, i < 0 ? nullptr : &times.tree); !s)
      return s.error();
  }
  return times;
}

} // namespace lathe::bench
