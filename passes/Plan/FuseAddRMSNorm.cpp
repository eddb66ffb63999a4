//===- FuseAddRMSNorm.cpp - a residual add and the norm of its sum --------===//
#include "passes/Passes.h"

namespace lathe {
#define GEN_PASS_DEF_PLANFUSEADDRMSNORM
#include "passes/Passes.h.inc"
} // namespace lathe

using namespace mlir;

namespace lathe {
namespace {

struct PlanFuseAddRMSNormPass : impl::PlanFuseAddRMSNormBase<PlanFuseAddRMSNormPass> {
  void runOnOperation() override {
    SmallVector<kplan::AddOp> adds;
    getOperation().walk([&](kplan::AddOp add) { adds.push_back(add); });
    for (kplan::AddOp add : adds) {
      // The norm may follow after constants and allocations (its gain, its
      // output buffer), which touch no buffer's contents.
      Operation *next = add->getNextNode();
      while (next && isa<tfm::WeightOp, kplan::BufferOp>(next))
        next = next->getNextNode();
      auto norm = dyn_cast_or_null<kplan::RMSNormOp>(next);
      // add_rms_norm normalizes whole rows: a norm of slices (a gain
      // shorter than the row) stays on its own.
      if (!norm || norm.getInput() != add.getOut() || norm.getOut() == add.getOut() ||
          cast<RankedTensorType>(norm.getGain().getType()).getDimSize(0) !=
              cast<kplan::BufferType>(add.getOut().getType()).getWidth() ||
          norm.getOut() == add.getLhs() || norm.getOut() == add.getRhs())
        continue;
      OpBuilder builder(norm);
      kplan::AddRMSNormOp::create(builder, add.getLoc(), add.getLhs(), add.getRhs(),
                                  norm.getGain(), norm.getEpsilonAttr(), add.getOut(),
                                  norm.getOut());
      norm.erase();
      add.erase();
    }
  }
};

} // namespace
} // namespace lathe
