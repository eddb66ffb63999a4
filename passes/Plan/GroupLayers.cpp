//===- GroupLayers.cpp - the layers in contiguous groups ------------------===//
#include "passes/Passes.h"
#include "passes/Plan/LayerStarts.h"
#include "passes/Plan/WeightBytes.h"

#include "runtime/formats/FormatSpec.h"
#include "runtime/plan/KernelPlan.h"

#include "llvm/ADT/SetVector.h"

namespace lathe {
#define GEN_PASS_DEF_GROUPLAYERS
#include "passes/Passes.h.inc"
} // namespace lathe

using namespace mlir;

namespace lathe {
namespace {

struct GroupLayersPass : impl::GroupLayersBase<GroupLayersPass> {
  using GroupLayersBase::GroupLayersBase;

  void runOnOperation() override {
    func::FuncOp fn = getOperation();
    if (fn.isExternal()) // a declaration is no step
      return;
    if (failed(group(fn)))
      signalPassFailure();
  }

  LogicalResult group(func::FuncOp fn) {
    const char *pass = "lathe-group-layers";
    const int64_t groups = this->groups, bytes = this->bytes;
    if (groups != 0 && bytes != 0)
      return fn.emitError() << pass << ": takes groups=N or bytes=B, not both";
    if (groups == 0 && bytes == 0)
      return fn.emitError() << pass << ": expects groups=N (layers split into N groups) or "
                            << "bytes=B (each group's weights within B bytes)";
    if (groups < 0)
      return fn.emitError() << pass << ": groups=" << groups << ": expects at least 1 group";
    if (bytes < 0)
      return fn.emitError() << pass << ": bytes=" << bytes
                            << ": expects a budget of at least 1 byte";
    FailureOr<SmallVector<Operation *>> starts = layerStarts(fn, pass);
    if (failed(starts))
      return failure();
    const int64_t layers = static_cast<int64_t>(starts->size());

    SmallVector<int32_t> first;
    if (groups > 0) {
      if (groups > layers)
        return fn.emitError() << pass << ": groups=" << groups << " for " << layers
                              << (layers == 1 ? " layer" : " layers")
                              << ": a group holds at least one layer";
      // As even as can be; the first layers % groups groups take one more.
      for (int64_t g = 0, layer = 0; g < groups; ++g) {
        first.push_back(static_cast<int32_t>(layer));
        layer += layers / groups + (g < layers % groups ? 1 : 0);
      }
    } else {
      SmallVector<uint64_t> perLayer = layerBytes(fn, *starts);
      // Greedy: a group takes layers while its weights stay within the
      // budget, so that one group's weights fit a buffer of that size.
      uint64_t held = 0;
      for (int64_t layer = 0; layer < layers; ++layer) {
        const uint64_t b = perLayer[layer];
        if (b > uint64_t(bytes))
          fn.emitWarning() << pass << ": layer " << layer << " has " << b
                           << " bytes of weights, more than bytes=" << bytes
                           << ": it is a group of its own";
        if (layer == 0 || held + b > uint64_t(bytes)) {
          first.push_back(static_cast<int32_t>(layer));
          held = 0;
        }
        held += b;
      }
    }
    fn->setAttr(kplan::PlanDialect::getLayerGroupsAttrName(),
                kplan::LayerGroupsAttr::get(&getContext(), first, layers));
    return success();
  }

  /// Each layer's weight bytes: the weights its kernels read, from its
  /// first kernel to the next layer's (the last layer's up to the
  /// classifier; the embedding and the classifier belong to no layer).
  SmallVector<uint64_t> layerBytes(func::FuncOp fn, ArrayRef<Operation *> starts) {
    SmallVector<uint64_t> perLayer(starts.size(), 0);
    int64_t layer = -1;
    llvm::SetVector<Operation *> weights;
    auto close = [&] {
      if (layer >= 0)
        for (Operation *w : weights)
          perLayer[layer] += weightBytes(cast<tfm::WeightOp>(w));
      weights.clear();
    };
    for (Operation &op : fn.getBody().front()) {
      if (layer + 1 < static_cast<int64_t>(starts.size()) && &op == starts[layer + 1]) {
        close();
        ++layer;
      }
      if (isa<kplan::LogitsOp>(op)) {
        close();
        layer = -1;
        continue;
      }
      if (layer >= 0)
        for (Value operand : op.getOperands())
          if (auto w = operand.getDefiningOp<tfm::WeightOp>())
            weights.insert(w);
    }
    close();
    return perLayer;
  }
};

} // namespace
} // namespace lathe
