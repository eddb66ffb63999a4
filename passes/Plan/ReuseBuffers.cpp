//===- ReuseBuffers.cpp - dead buffers hold later values ------------------===//
#include "passes/Passes.h"

#include "llvm/ADT/DenseMap.h"

#include <map>
#include <tuple>
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
    // The last op (by position) that touches each buffer, and each op's
    // kernel: how many kernels (ops other than buffers and weights) come
    // before it; a buffer op belongs to the kernel after it.
    llvm::DenseMap<Operation *, size_t> position, kernel;
    llvm::DenseMap<Value, size_t> lastUse;
    size_t index = 0, kernels = 0;
    for (Operation &op : block) {
      position[&op] = index;
      kernel[&op] = kernels;
      for (Value v : op.getOperands())
        if (isa<kplan::BufferType>(v.getType()))
          lastUse[v] = index;
      if (!isa<kplan::BufferOp, tfm::WeightOp>(op))
        ++kernels;
      ++index;
    }
    // Buffers free for reuse, by (width, element type); the last freed
    // first. A buffer freed by kernel k waits in `released` until kernel
    // k + 2: the kernel right after its last user never takes it, because a
    // backend may run the two in one launch (the CUDA target adds an
    // add_rms_norm's addend in the product before it), whose blocks would
    // then write what other blocks still read.
    using Key = std::pair<int64_t, const void *>;
    std::map<Key, std::vector<Value>> free;
    std::vector<std::tuple<size_t, Key, Value>> released;
    auto keyOf = [](Value v) {
      auto type = cast<kplan::BufferType>(v.getType());
      return std::make_pair(type.getWidth(), type.getElementType().getAsOpaquePointer());
    };
    for (Operation &op : llvm::make_early_inc_range(block)) {
      const size_t at = position[&op];
      if (auto buffer = dyn_cast<kplan::BufferOp>(op)) {
        const size_t k = kernel[&op];
        llvm::erase_if(released, [&](const std::tuple<size_t, Key, Value> &r) {
          if (std::get<0>(r) + 2 > k)
            return false;
          free[std::get<1>(r)].push_back(std::get<2>(r));
          return true;
        });
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
      llvm::SmallPtrSet<Value, 4> done;
      for (Value v : op.getOperands())
        if (isa<kplan::BufferType>(v.getType()) && lastUse.lookup(v) == at &&
            !isa<func::ReturnOp>(op) && done.insert(v).second)
          released.emplace_back(kernel[&op], keyOf(v), v);
    }
  }
};

} // namespace
} // namespace lathe
