#include "passes/Quantize/ChannelSpaces.h"

#include "passes/Quantize/CalibratedLinear.h"
#include "passes/Quantize/WeightData.h"

using namespace mlir;

namespace lathe {

int ChannelSpaces::node(Value v, unsigned dim) {
  auto key = std::make_pair(v.getAsOpaquePointer(), dim);
  auto [it, inserted] = ids_.try_emplace(key, static_cast<int>(nodes_.size()));
  if (inserted) {
    nodes_.push_back({v, dim});
    sets_.insert(it->second);
  }
  return it->second;
}

int ChannelSpaces::fixedNode() {
  int n = node(Value(), static_cast<unsigned>(nodes_.size() + 1000000));
  fix(n);
  return n;
}

bool ChannelSpaces::isFixed(int set) const {
  return llvm::any_of(fixed_, [&](int f) { return leader(f) == set; });
}

int64_t ChannelSpaces::headDimOf(int set) const {
  for (auto [n, d] : headLocal_)
    if (leader(n) == set)
      return d;
  return 0;
}

void buildChannelSpaces(func::FuncOp fn, ChannelChange change, ChannelSpaces &s) {
  const bool scale = change == ChannelChange::Scale;
  auto weightDims = [&](Value w, int rowsSpace, int colsSpace) {
    auto type = cast<RankedTensorType>(w.getType());
    bool isWeight = w.getDefiningOp<tfm::WeightOp>() != nullptr;
    if (type.getRank() >= 1) {
      s.join(s.node(w, 0), rowsSpace);
      if (!isWeight) s.fix(rowsSpace);
    }
    if (type.getRank() == 2) {
      s.join(s.node(w, 1), colsSpace);
      if (!isWeight) s.fix(colsSpace);
    }
  };
  // The caller supplies arguments in their own channel order and scale.
  for (BlockArgument arg : fn.getArguments())
    if (auto t = dyn_cast<RankedTensorType>(arg.getType()); t && t.getRank() == 2)
      s.fix(s.act(arg));
  fn.walk([&](Operation *op) {
    if (auto e = dyn_cast<tfm::EmbeddingOp>(op)) {
      weightDims(e.getTable(), s.fixedNode(), s.act(e.getResult()));
      // A table's columns produce its rows' channels, where a weight's
      // columns consume them: scaling both one way is wrong for one.
      if (scale) s.fix(s.act(e.getResult()));
    } else if (auto n = dyn_cast<tfm::RMSNormOp>(op)) {
      int in = s.act(n.getInput()), out = s.act(n.getResult());
      int gain = s.node(n.getGain(), 0);
      auto gainType = cast<RankedTensorType>(n.getGain().getType());
      auto rowType = cast<RankedTensorType>(n.getInput().getType());
      bool perChannel = gainType.getDimSize(0) == rowType.getDimSize(1);
      if (scale) {
        // The norm divides by the rms over all channels, so its input
        // cannot be scaled per channel; its output is the gain's.
        s.fix(in);
        s.join(gain, out);
      } else {
        s.join(in, out);
        s.join(gain, in);
      }
      // A gain of one head's width serves every head alike (Qwen3's q/k
      // norms): no channel of the row can move or scale alone.
      if (!n.getGain().getDefiningOp<tfm::WeightOp>() || !perChannel) {
        s.fix(in);
        s.fix(out);
      }
    } else if (auto l = dyn_cast<tfm::LinearOp>(op)) {
      weightDims(l.getWeight(), s.act(l.getResult()), s.act(l.getInput()));
    } else if (auto l = dyn_cast<tfm::LogitsOp>(op)) {
      weightDims(l.getClassifier(), s.act(l.getResult()), s.act(l.getInput()));
      s.fix(s.act(l.getResult()));
    } else if (auto a = dyn_cast<tfm::AddOp>(op)) {
      s.join(s.act(a.getLhs()), s.act(a.getResult()));
      s.join(s.act(a.getRhs()), s.act(a.getResult()));
    } else if (auto m = dyn_cast<tfm::SiluMulOp>(op)) {
      s.join(s.act(m.getUp()), s.act(m.getResult()));
      if (scale)
        s.fix(s.act(m.getGate())); // silu is not linear
      else
        s.join(s.act(m.getGate()), s.act(m.getResult()));
    } else if (auto r = dyn_cast<tfm::RopeOp>(op)) {
      s.fix(s.act(r.getInput()));
      s.fix(s.act(r.getResult()));
    } else if (auto a = dyn_cast<tfm::AttentionOp>(op)) {
      s.fix(s.act(a.getQueries()));
      s.fix(s.act(a.getKeys()));
      auto cache = cast<tfm::KVCacheType>(a.getCache().getType());
      int values = s.act(a.getValues()), out = s.act(a.getResult());
      // Each output channel is a weighted sum of one value channel over
      // positions: permuting or scaling values does the same to the output,
      // when every query head has a KV head of its own. A scaled value is
      // stored exactly only in an f32 cache.
      bool oneToOne = int64_t(a.getHeads()) == cache.getKvHeads();
      if (oneToOne && (!scale || cache.getElementType().isF32())) {
        s.join(values, out);
        if (!scale) s.headLocal(values, cache.getHeadDim());
      } else {
        s.fix(values);
        s.fix(out);
      }
    } else if (isa<tfm::WeightOp, func::FuncOp>(op)) {
      // Weights join through their users; the function is the container.
    } else {
      // Anything else (returns, biases, unknown ops) keeps its channels.
      for (Value v : llvm::concat<Value>(op->getOperands(), op->getResults()))
        if (auto t = dyn_cast<RankedTensorType>(v.getType()); t && t.getRank() == 2)
          s.fix(s.act(v));
    }
  });
}

LogicalResult rewriteWeights(
    func::FuncOp fn, ChannelSpaces &s, function_ref<bool(int)> changed, StringRef pass,
    function_ref<void(std::vector<float> &, int64_t, int64_t, int, int)> rewrite) {
  auto changedSet = [&](int node) {
    int set = s.leader(node);
    return changed(set) ? set : -1;
  };
  SmallVector<tfm::WeightOp> weights(fn.getOps<tfm::WeightOp>());
  for (tfm::WeightOp w : weights) {
    auto type = cast<RankedTensorType>(w.getType());
    int rowSet = changedSet(s.node(w.getResult(), 0));
    int colSet = type.getRank() == 2 ? changedSet(s.node(w.getResult(), 1)) : -1;
    if (rowSet < 0 && colSet < 0)
      continue;
    if (weightFormat(type.getElementType()))
      return w.emitOpError() << "is already quantized: run " << pass << " before lathe-quantize";
    FailureOr<std::vector<float>> values = readWeightFloats(w);
    if (failed(values))
      return failure();
    int64_t rows = type.getDimSize(0), cols = type.getRank() == 2 ? type.getDimSize(1) : 1;
    rewrite(*values, rows, cols, rowSet, colSet);
    OpBuilder b(w);
    auto replaced = createFloatWeight(b, w.getLoc(), w.getSymName(), type.getShape(), *values);
    w.getResult().replaceAllUsesWith(replaced.getResult());
    w.erase();
  }
  return success();
}

void rewriteCalibration(func::FuncOp fn, ChannelSpaces &s, function_ref<bool(int)> changed,
                        function_ref<void(std::vector<float> &, int)> rewrite) {
  fn.walk([&](tfm::LinearOp l) {
    int set = s.leader(s.act(l.getInput()));
    if (!changed(set))
      return;
    int64_t width = cast<RankedTensorType>(l.getInput().getType()).getDimSize(1);
    for (StringRef name : {kCalibRmsAttr, kCalibAbsMaxAttr}) {
      std::vector<float> v = readF32Attr(l, name);
      if (v.size() != size_t(width))
        continue;
      rewrite(v, set);
      writeF32Attr(l, name, v);
    }
  });
}

} // namespace lathe
