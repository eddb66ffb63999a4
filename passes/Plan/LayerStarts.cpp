//===- LayerStarts.cpp - where each layer of a plan step begins -----------===//
#include "passes/Plan/LayerStarts.h"

#include "dialects/KernelPlan/KernelPlanDialect.h"

#include "mlir/Interfaces/SideEffectInterfaces.h"

using namespace mlir;

namespace lathe {
namespace {

/// The buffers a kernel reads or writes (its MemRead / MemWrite operands).
SmallVector<Value> buffersOf(Operation *op, bool writes) {
  SmallVector<Value> found;
  auto effects = dyn_cast<MemoryEffectOpInterface>(op);
  if (!effects)
    return found;
  SmallVector<MemoryEffects::EffectInstance> all;
  effects.getEffects(all);
  for (const MemoryEffects::EffectInstance &e : all)
    if (Value v = e.getValue(); v && isa<kplan::BufferType>(v.getType()) &&
                                 (writes ? isa<MemoryEffects::Write>(e.getEffect())
                                         : isa<MemoryEffects::Read>(e.getEffect())))
      found.push_back(v);
  return found;
}

} // namespace

FailureOr<SmallVector<Operation *>> layerStarts(func::FuncOp fn, StringRef pass) {
  if (fn.getBody().empty())
    return fn.emitError() << pass << ": expects a plan step with a body";
  // Kernels in order: buffers and weights are no steps.
  SmallVector<Operation *> kernels;
  for (Operation &op : fn.getBody().front())
    if (isa<kplan::PlanDialect>(op.getDialect()) && !isa<kplan::BufferOp>(op))
      kernels.push_back(&op);
  // Buffers are reused (lathe-plan-reuse-buffers): a value is the last
  // write of its buffer before the reader.
  auto writerBefore = [&](Value buffer, size_t before) -> std::optional<size_t> {
    for (size_t k = before; k-- > 0;)
      if (llvm::is_contained(buffersOf(kernels[k], /*writes=*/true), buffer))
        return k;
    return std::nullopt;
  };

  SmallVector<Operation *> starts;
  std::optional<size_t> previousAttention;
  for (size_t at = 0; at < kernels.size(); ++at) {
    auto attention = dyn_cast<kplan::AttentionOp>(kernels[at]);
    if (!attention)
      continue;
    const int64_t layer = static_cast<int64_t>(starts.size());
    if (static_cast<int64_t>(attention.getLayer()) != layer)
      return attention.emitError() << pass << ": expects the attentions in layer order, found "
                                   << "layer " << attention.getLayer() << " where layer "
                                   << layer << " belongs";
    auto lost = [&](const Twine &why) {
      return attention.emitError() << pass << ": cannot find where layer " << layer
                                   << " begins: " << why;
    };
    // Back from the queries to the product that computes them.
    Value value = attention.getQueries();
    size_t reader = at;
    std::optional<size_t> start;
    while (!start) {
      std::optional<size_t> writer = writerBefore(value, reader);
      if (!writer)
        return lost("its queries are not written before it");
      Operation *op = kernels[*writer];
      SmallVector<Value> inputs = buffersOf(op, /*writes=*/false);
      if (inputs.size() != 1)
        return lost("its queries come from a " + op->getName().getStringRef() +
                    ", not from a product of the layer's normalised input");
      if (isa<kplan::MatmulOp, kplan::MatmulsOp>(op)) {
        start = writerBefore(inputs.front(), *writer);
        if (!start)
          return lost("the input of its query product is not written before it");
      }
      value = inputs.front();
      reader = *writer;
    }
    if (previousAttention && *start <= *previousAttention)
      return lost("its first kernel, a " + kernels[*start]->getName().getStringRef() +
                  ", comes before the attention of layer " + Twine(layer - 1));
    starts.push_back(kernels[*start]);
    previousAttention = at;
  }
  if (starts.empty())
    return fn.emitError() << pass << ": expects a plan step with plan.attention kernels (run "
                          << "lathe-lower-to-plan first)";
  return starts;
}

} // namespace lathe
