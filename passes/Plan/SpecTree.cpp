//===- SpecTree.cpp - the decode step as a token-tree verification step ---===//
#include "passes/Passes.h"

#include "runtime/speculative/TreeShape.h"

namespace lathe {
#define GEN_PASS_DEF_PLANSPECTREE
#include "passes/Passes.h.inc"
} // namespace lathe

using namespace mlir;

namespace lathe {
namespace {

struct PlanSpecTreePass : impl::PlanSpecTreeBase<PlanSpecTreePass> {
  using PlanSpecTreeBase::PlanSpecTreeBase;

  void runOnOperation() override {
    func::FuncOp fn = getOperation();
    if (fn.isExternal()) // a declaration is no step
      return;
    if (failed(check(fn)))
      signalPassFailure();
  }

  LogicalResult check(func::FuncOp fn) {
    // The runtime's parser: the compiler accepts exactly the shapes
    // lathe-run does.
    Expected<speculative::TreeShape> parsed = speculative::parseTreeShape(shape);
    if (!parsed)
      return fn.emitError() << "lathe-plan-spec-tree: " << parsed.error().message();
    const speculative::TreeShape &tree = *parsed;
    const int64_t nodes = tree.nodeCount();
    auto tooFew = [&](Operation *at, const std::string &room) {
      return at->emitError() << "lathe-plan-spec-tree: tree " << tree.str() << " has " << nodes
                             << " nodes, more than " << room;
    };

    // Tokens and positions come in as the step's arguments; a static size
    // caps the tokens of every step.
    for (BlockArgument arg : fn.getArguments())
      if (auto t = dyn_cast<RankedTensorType>(arg.getType()))
        if (t.getRank() == 1 && t.getElementType().isInteger(32) && !t.isDynamicDim(0) &&
            t.getDimSize(0) < nodes)
          return tooFew(fn, "the " + std::to_string(t.getDimSize(0)) +
                                " tokens of the step's argument #" +
                                std::to_string(arg.getArgNumber()));

    // Per-token visibility and positions by depth are plan.attention's: it
    // reads the batch's positions and parents through the step's
    // arguments, and stores every node's key and value in the cache.
    Region &body = fn.getBody();
    auto isArgument = [&](Value v) {
      auto arg = dyn_cast<BlockArgument>(v);
      return arg && arg.getOwner()->getParent() == &body;
    };
    WalkResult walked = fn.walk([&](kplan::AttentionOp a) {
      if (!isArgument(a.getPositions()) || !isArgument(a.getCache())) {
        a.emitError() << "lathe-plan-spec-tree: plan.attention must read the step's positions "
                         "and KV cache arguments: tree nodes take their positions and "
                         "ancestors from the batch";
        return WalkResult::interrupt();
      }
      auto cache = cast<tfm::KVCacheType>(a.getCache().getType());
      if (cache.getCapacity() < nodes) {
        (void)tooFew(a, "the " + std::to_string(cache.getCapacity()) +
                            " positions of its KV cache (a verification step stores every "
                            "node's key and value)");
        return WalkResult::interrupt();
      }
      return WalkResult::advance();
    });
    if (walked.wasInterrupted())
      return failure();

    bool logits = false;
    fn.walk([&](kplan::LogitsOp) { logits = true; });
    if (!logits)
      return fn.emitError() << "lathe-plan-spec-tree: expects a plan step with a plan.logits "
                               "(run lathe-lower-to-plan first): a verification step returns "
                               "every node's scores";

    fn->setAttr(kplan::PlanDialect::getSpecTreeAttrName(),
                kplan::SpecTreeAttr::get(&getContext(), tree.branching, nodes));
    return success();
  }
};

} // namespace
} // namespace lathe
