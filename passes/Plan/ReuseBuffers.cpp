//===- ReuseBuffers.cpp - dead buffers hold later values ------------------===//
#include "passes/Passes.h"

#include "llvm/ADT/DenseMap.h"

#include <map>
#include <vector>

namespace lathe {
#define GEN_PASS_DEF_PLANREUSEBUFFERS
#include "passes/Passes.h.inc"
} // namespace lathe

using namespace mlir;

namespace lathe {
namespace {

struct PlanReuseBuffersPass : impl::PlanReuseBuffersBase<PlanReuseBuffersPass> {
  void runOnOperation() override {
    func::FuncOp fn = getOperation();
    if (fn.getBody().empty())
      return;
    Block &block = fn.getBody().front();
    // The last op (by position) that touches each buffer.
    llvm::DenseMap<Operation *, size_t> position;
    llvm::DenseMap<Value, size_t> lastUse;
    size_t index = 0;
    for (Operation &op : block) {
      position[&op] = index;
      for (Value v : op.getOperands())
        if (isa<kplan::BufferType>(v.getType()))
          lastUse[v] = index;
      ++index;
    }
    // Buffers free for reuse, by (width, element type); the last freed first.
    std::map<std::pair<int64_t, const void *>, std::vector<Value>> free;
    auto keyOf = [](Value v) {
      auto type = cast<kplan::BufferType>(v.getType());
      return std::make_pair(type.getWidth(), type.getElementType().getAsOpaquePointer());
    };
    for (Operation &op : llvm::make_early_inc_range(block)) {
      const size_t at = position[&op];
      if (auto buffer = dyn_cast<kplan::BufferOp>(op)) {
        std::vector<Value> &candidates = free[keyOf(buffer)];
        if (!candidates.empty()) {
          Value reused = candidates.back();
          candidates.pop_back();
          lastUse[reused] = lastUse.lookup(buffer.getResult());
          buffer.getResult().replaceAllUsesWith(reused);
          buffer.erase();
        }
        continue;
      }
      // After its last user, a buffer is free (the user's own outputs were
      // created before it, so they never take its inputs).
      llvm::SmallPtrSet<Value, 4> released;
      for (Value v : op.getOperands())
        if (isa<kplan::BufferType>(v.getType()) && lastUse.lookup(v) == at &&
            !isa<func::ReturnOp>(op) && released.insert(v).second)
          free[keyOf(v)].push_back(v);
    }
  }
};

} // namespace
} // namespace lathe
