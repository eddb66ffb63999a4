//===- GroupMatmuls.cpp - products of one input as one job ----------------===//
#include "passes/Passes.h"

#include "llvm/ADT/SmallPtrSet.h"

namespace lathe {
#define GEN_PASS_DEF_PLANGROUPMATMULS
#include "passes/Passes.h.inc"
} // namespace lathe

using namespace mlir;

namespace lathe {
namespace {

/// Ops a group may step over: constants and allocations touch no buffer's
/// contents.
bool transparent(Operation *op) { return isa<tfm::WeightOp, kplan::BufferOp>(op); }

struct PlanGroupMatmulsPass : impl::PlanGroupMatmulsBase<PlanGroupMatmulsPass> {
  void runOnOperation() override {
    for (Block &block : getOperation().getBody()) {
      for (Operation *op = block.empty() ? nullptr : &block.front(); op;) {
        auto head = dyn_cast<kplan::MatmulOp>(op);
        if (!head) {
          op = op->getNextNode();
          continue;
        }
        // The matmuls after `head`, with only constants and allocations
        // between them, that can join it.
        SmallVector<kplan::MatmulOp> group{head};
        llvm::SmallPtrSet<Value, 4> outputs{head.getOut()};
        Operation *next = head->getNextNode();
        for (; next; next = next->getNextNode()) {
          if (transparent(next))
            continue;
          auto m = dyn_cast<kplan::MatmulOp>(next);
          if (!m || m.getInput() != head.getInput() ||
              m.getActivations() != head.getActivations() || m.getOut() == head.getInput() ||
              !outputs.insert(m.getOut()).second)
            break;
          group.push_back(m);
        }
        op = next;
        if (group.size() < 2)
          continue;
        SmallVector<Value> weights, outs;
        for (kplan::MatmulOp m : group) {
          weights.push_back(m.getWeight());
          outs.push_back(m.getOut());
        }
        // At the last product: every weight and output is defined by then,
        // and only constants and allocations were stepped over.
        OpBuilder builder(group.back());
        kplan::MatmulsOp::create(builder, head.getLoc(), head.getInput(), weights,
                                 head.getActivationsAttr(), outs);
        for (kplan::MatmulOp m : group)
          m.erase();
      }
    }
  }
};

} // namespace
} // namespace lathe
