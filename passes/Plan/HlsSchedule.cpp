//===- HlsSchedule.cpp - loop pragmas and interfaces as plan attributes ---===//
#include "passes/Passes.h"
#include "passes/Plan/WeightBytes.h"

#include "runtime/formats/RowCodec.h"
#include "runtime/plan/RopeFrequencies.h"

#include "llvm/ADT/SetVector.h"

#include <set>

namespace lathe {
#define GEN_PASS_DEF_HLSSCHEDULE
#include "passes/Passes.h.inc"
} // namespace lathe

using namespace mlir;

namespace lathe {
namespace {

/// The weights a product reads.
SmallVector<Value> productWeights(Operation *op) {
  if (auto m = dyn_cast<kplan::MatmulOp>(op))
    return {m.getWeight()};
  if (auto m = dyn_cast<kplan::MatmulsOp>(op))
    return SmallVector<Value>(m.getWeights().begin(), m.getWeights().end());
  if (auto l = dyn_cast<kplan::LogitsOp>(op))
    return {l.getClassifier()};
  return {};
}

/// Values per weight block of every weight `read` holds (their greatest
/// common divisor): the codes the int8-activation product multiplies per
/// iteration. 0 if a weight has no block format.
int64_t weightBlock(ArrayRef<Value> read) {
  int64_t block = 0;
  for (Value w : read) {
    auto type = cast<ShapedType>(w.getType());
    auto quantized = dyn_cast<tfm::QuantizedTypeInterface>(type.getElementType());
    if (!quantized)
      return 0;
    Expected<formats::FormatSpec> spec = formats::parseFormatSpec(quantized.getFormatName());
    if (!spec)
      return 0;
    block = std::gcd(block, int64_t(formats::rowBlockValues(*spec, type.getShape()[1])));
  }
  return block;
}

struct HlsSchedulePass : impl::HlsScheduleBase<HlsSchedulePass> {
  using HlsScheduleBase::HlsScheduleBase;

  void runOnOperation() override {
    func::FuncOp fn = getOperation();
    if (fn.isExternal()) // a declaration is no step
      return;
    if (failed(schedule(fn)))
      signalPassFailure();
  }

  LogicalResult schedule(func::FuncOp fn) {
    const char *pass = "lathe-hls-schedule";
    const int64_t ii = this->ii, unroll = this->unroll;
    if (ii < 1)
      return fn.emitError() << pass << ": ii=" << ii << ": expects at least 1";
    if (unroll < 1)
      return fn.emitError() << pass << ": unroll=" << unroll << ": expects at least 1";
    MLIRContext *ctx = &getContext();
    // The weights in the order the generator places them, the rotary
    // frequency sets, the cache and the classifier's rows.
    llvm::SetVector<Operation *> weights;
    std::set<std::vector<double>> frequencies;
    int64_t capacity = 0, cacheFloats = 0, logits = 0;
    for (Operation &op : fn.getBody().front()) {
      if (auto e = dyn_cast<kplan::EmbeddingOp>(op))
        if (Operation *w = e.getTable().getDefiningOp())
          weights.insert(w);
      SmallVector<Value> read = productWeights(&op);
      if (read.empty() && isa<kplan::EmbeddingOp, kplan::RMSNormOp, kplan::AddRMSNormOp,
                              kplan::RopeOp, kplan::AttentionOp, kplan::SiluMulOp,
                              kplan::BiasAddOp, kplan::AddOp>(op))
        op.setAttr(kplan::PlanDialect::getHlsLoopAttrName(), kplan::HlsLoopAttr::get(ctx, ii, 1));
      if (!read.empty()) {
        // The largest factor of every weight's rows within `unroll`.
        int64_t rows = 0;
        for (Value w : read) {
          rows = std::gcd(rows, cast<ShapedType>(w.getType()).getShape()[0]);
          if (Operation *def = w.getDefiningOp())
            weights.insert(def);
        }
        int64_t factor = std::min(unroll, rows);
        while (factor > 1 && rows % factor != 0)
          --factor;
        factor = std::max<int64_t>(factor, 1);
        op.setAttr(kplan::PlanDialect::getHlsLoopAttrName(),
                   kplan::HlsLoopAttr::get(ctx, ii, factor));
        schedulePartitionsAndDataflow(op, read, factor);
      }
      if (auto l = dyn_cast<kplan::LogitsOp>(op))
        logits = cast<ShapedType>(l.getClassifier().getType()).getShape()[0];
      if (auto a = dyn_cast<kplan::AttentionOp>(op)) {
        auto cache = cast<tfm::KVCacheType>(a.getCache().getType());
        capacity = cache.getCapacity();
        cacheFloats = cache.getLayers() * 2 * capacity * cache.getKvHeads() * cache.getHeadDim();
      }
      if (auto r = dyn_cast<kplan::RopeOp>(op))
        frequencies.insert(plan::orderedFrequencies(
            plan::ropeFrequencies(r.getTheta().convertToFloat(), r.getHeadDim(), r.getScaling()),
            r.getPairOrderVector()));
    }
    if (capacity == 0 || logits == 0)
      return fn.emitError() << pass << ": expects a decode step: attention over a KV cache "
                            << "and a plan.logits";
    uint64_t weightBytes = 0;
    for (Operation *w : weights)
      weightBytes = (weightBytes + 63) / 64 * 64 + lathe::weightBytes(cast<tfm::WeightOp>(w));
    int64_t tableDoubles = 0;
    for (const std::vector<double> &f : frequencies)
      tableDoubles += 2 * capacity * static_cast<int64_t>(f.size());
    auto port = [&](StringRef name, int bundle, int64_t depth) -> Attribute {
      return kplan::HlsInterfaceAttr::get(ctx, name, ("gmem" + Twine(bundle)).str(),
                                          std::max<int64_t>(depth, 1));
    };
    fn->setAttr(kplan::PlanDialect::getHlsInterfacesAttrName(),
                ArrayAttr::get(ctx, {port("weights", 0, static_cast<int64_t>(weightBytes)),
                                     port("tables", 1, tableDoubles),
                                     port("cache", 2, cacheFloats), port("logits", 3, logits)}));
    return success();
  }

  /// The local arrays of a product that its loops read in parallel, split
  /// into banks, and dataflow between its stages where that is legal.
  void schedulePartitionsAndDataflow(Operation &op, ArrayRef<Value> read, int64_t unroll) {
    MLIRContext *ctx = &getContext();
    auto activations = op.getAttrOfType<kplan::ActivationsAttr>("activations");
    const bool int8 = activations && activations.getValue() == kplan::Activations::int8;
    SmallVector<Attribute> partitions;
    if (int8) {
      // The block loop multiplies a weight block's codes with as many
      // input codes per iteration: one bank each.
      if (const int64_t block = weightBlock(read); block > 1)
        partitions.push_back(kplan::HlsArrayPartitionAttr::get(
            ctx, "codes", kplan::HlsPartitionKind::cyclic, block, 1));
    } else if (unroll > 1) {
      // Each of the rows at once decodes into, and its dot product reads
      // from, a row of its own.
      partitions.push_back(kplan::HlsArrayPartitionAttr::get(
          ctx, "rows", kplan::HlsPartitionKind::complete, 0, 1));
    }
    if (!partitions.empty())
      op.setAttr(kplan::PlanDialect::getHlsPartitionsAttrName(), ArrayAttr::get(ctx, partitions));
    // Decoding a row group overlaps the previous group's dot products: one
    // buffer between the stages (the decoded rows), the input read by the
    // second only and the output written by it only (a product's output is
    // never its input: the ops' verifiers say so). Worth it from two row
    // groups on.
    const bool groups = llvm::all_of(read, [&](Value w) {
      return cast<ShapedType>(w.getType()).getShape()[0] / unroll >= 2;
    });
    if (!int8 && groups)
      op.setAttr(kplan::PlanDialect::getHlsDataflowAttrName(), kplan::HlsDataflowAttr::get(ctx));
  }
};

} // namespace
} // namespace lathe
