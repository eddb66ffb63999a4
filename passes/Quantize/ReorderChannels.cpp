//===- ReorderChannels.cpp - cluster outlier channels into blocks ---------===//
//
// Channel spaces: every activation's channel dimension and every weight
// dimension is a node; ops that require two dimensions to share one channel
// order (an add's operands, a linear's input and its weight's columns, ...)
// join their nodes with union-find. A set of nodes is one channel space and
// gets one permutation; sets that touch something whose order is fixed
// (vocabulary, RoPE pairs, results) keep the identity.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "passes/Quantize/WeightData.h"

#include "runtime/formats/RowCodec.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/EquivalenceClasses.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace lathe {
#define GEN_PASS_DEF_REORDERCHANNELS
#include "passes/Passes.h.inc"
} // namespace lathe

using namespace mlir;

namespace lathe {
namespace {

constexpr const char *kCalibRms = "tfm.calib_rms";
constexpr const char *kCalibAbsMax = "tfm.calib_absmax";

/// A channel dimension: of an activation value (dim 1) or of a weight.
struct Node {
  Value value;   // activation or weight result
  unsigned dim;  // 1 for activations; 0 or 1 for weights
};

class ChannelSpaces {
public:
  int node(Value v, unsigned dim) {
    auto key = std::make_pair(v.getAsOpaquePointer(), dim);
    auto [it, inserted] = ids_.try_emplace(key, static_cast<int>(nodes_.size()));
    if (inserted) {
      nodes_.push_back({v, dim});
      sets_.insert(it->second);
    }
    return it->second;
  }
  int act(Value v) { return node(v, 1); }
  void join(int a, int b) { sets_.unionSets(a, b); }
  void fix(int a) { fixed_.push_back(a); }
  /// Attention values/outputs: may only move within heads of `headDim`.
  void headLocal(int a, int64_t headDim) { headLocal_.push_back({a, headDim}); }

  int leader(int a) const { return sets_.getLeaderValue(a); }
  const std::vector<Node> &nodes() const { return nodes_; }
  bool isFixed(int set) const {
    return llvm::any_of(fixed_, [&](int f) { return leader(f) == set; });
  }
  int64_t headDimOf(int set) const {
    for (auto [n, d] : headLocal_)
      if (leader(n) == set)
        return d;
    return 0;
  }

private:
  std::map<std::pair<const void *, unsigned>, int> ids_;
  std::vector<Node> nodes_;
  llvm::EquivalenceClasses<int> sets_;
  std::vector<int> fixed_;
  std::vector<std::pair<int, int64_t>> headLocal_;
};

std::vector<float> readF32Attr(Operation *op, StringRef name) {
  auto attr = op->getAttrOfType<DenseElementsAttr>(name);
  if (!attr)
    return {};
  auto values = attr.getValues<float>();
  return {values.begin(), values.end()};
}

struct ReorderChannelsPass : impl::ReorderChannelsBase<ReorderChannelsPass> {
  using ReorderChannelsBase::ReorderChannelsBase;

  void runOnOperation() override {
    Expected<formats::FormatSpec> spec = formats::parseFormatSpec(format);
    if (!spec) {
      getOperation().emitError() << "lathe-reorder-channels: " << spec.error().message();
      return signalPassFailure();
    }
    spec_ = *spec;
    for (auto fn : getOperation().getOps<func::FuncOp>())
      if (failed(reorder(fn)))
        return signalPassFailure();
  }

  LogicalResult reorder(func::FuncOp fn) {
    ChannelSpaces spaces;
    if (failed(buildSpaces(fn, spaces)))
      return failure();

    // Gather the linears reading each space and score its channels.
    std::map<int, std::vector<tfm::LinearOp>> readers;
    fn.walk([&](tfm::LinearOp l) {
      readers[spaces.leader(spaces.act(l.getInput()))].push_back(l);
    });
    std::map<int, std::vector<int64_t>> perms;
    for (auto &[set, linears] : readers) {
      if (spaces.isFixed(set))
        continue;
      FailureOr<std::vector<int64_t>> chosen =
          chooseOrder(linears, spaces.headDimOf(set), spec_);
      if (failed(chosen))
        return failure();
      std::vector<int64_t> perm = std::move(*chosen);
      bool identity = true;
      for (size_t i = 0; i < perm.size(); ++i)
        identity &= perm[i] == int64_t(i);
      if (!identity)
        perms[set] = std::move(perm);
    }
    return apply(fn, spaces, perms);
  }

  /// Joins the nodes that must share one channel order.
  LogicalResult buildSpaces(func::FuncOp fn, ChannelSpaces &s) {
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
    auto fixedNode = [&]() {
      int n = s.node(Value(), static_cast<unsigned>(s.nodes().size() + 1000000));
      s.fix(n);
      return n;
    };
    // The caller supplies arguments in their own channel order.
    for (BlockArgument arg : fn.getArguments())
      if (auto t = dyn_cast<RankedTensorType>(arg.getType()); t && t.getRank() == 2)
        s.fix(s.act(arg));
    WalkResult result = fn.walk([&](Operation *op) -> WalkResult {
      if (auto e = dyn_cast<tfm::EmbeddingOp>(op)) {
        weightDims(e.getTable(), fixedNode(), s.act(e.getResult()));
      } else if (auto n = dyn_cast<tfm::RMSNormOp>(op)) {
        s.join(s.act(n.getInput()), s.act(n.getResult()));
        s.join(s.node(n.getGain(), 0), s.act(n.getInput()));
        if (!n.getGain().getDefiningOp<tfm::WeightOp>()) s.fix(s.act(n.getInput()));
      } else if (auto l = dyn_cast<tfm::LinearOp>(op)) {
        weightDims(l.getWeight(), s.act(l.getResult()), s.act(l.getInput()));
      } else if (auto l = dyn_cast<tfm::LogitsOp>(op)) {
        weightDims(l.getClassifier(), s.act(l.getResult()), s.act(l.getInput()));
        s.fix(s.act(l.getResult()));
      } else if (auto a = dyn_cast<tfm::AddOp>(op)) {
        s.join(s.act(a.getLhs()), s.act(a.getResult()));
        s.join(s.act(a.getRhs()), s.act(a.getResult()));
      } else if (auto m = dyn_cast<tfm::SiluMulOp>(op)) {
        s.join(s.act(m.getGate()), s.act(m.getResult()));
        s.join(s.act(m.getUp()), s.act(m.getResult()));
      } else if (auto r = dyn_cast<tfm::RopeOp>(op)) {
        s.fix(s.act(r.getInput()));
        s.fix(s.act(r.getResult()));
      } else if (auto a = dyn_cast<tfm::AttentionOp>(op)) {
        s.fix(s.act(a.getQueries()));
        s.fix(s.act(a.getKeys()));
        auto cache = cast<tfm::KVCacheType>(a.getCache().getType());
        int values = s.act(a.getValues()), out = s.act(a.getResult());
        if (int64_t(a.getHeads()) == cache.getKvHeads()) {
          s.join(values, out);
          s.headLocal(values, cache.getHeadDim());
        } else {
          s.fix(values);
          s.fix(out);
        }
      } else if (isa<tfm::WeightOp, func::FuncOp>(op)) {
        // Weights join through their users; the function is the container.
      } else {
        // Anything else (returns, unknown ops) keeps its channels in order.
        for (Value v : llvm::concat<Value>(op->getOperands(), op->getResults()))
          if (auto t = dyn_cast<RankedTensorType>(v.getType()); t && t.getRank() == 2)
            s.fix(s.act(v));
      }
      return WalkResult::advance();
    });
    return failure(result.wasInterrupted());
  }

  /// A reader's weight as floats with the rms of its input channels.
  struct Reader {
    std::vector<float> w;
    std::vector<double> rms2; // squared input rms per channel (1 without calibration)
    int64_t rows, cols;
  };

  FailureOr<std::vector<Reader>> loadReaders(ArrayRef<tfm::LinearOp> linears) {
    std::vector<Reader> readers;
    for (tfm::LinearOp l : linears) {
      auto w = l.getWeight().getDefiningOp<tfm::WeightOp>();
      FailureOr<std::vector<float>> values = readWeightFloats(w);
      if (failed(values))
        return failure();
      auto type = cast<RankedTensorType>(w.getType());
      Reader r{std::move(*values), {}, type.getDimSize(0), type.getDimSize(1)};
      std::vector<float> rms = readF32Attr(l, kCalibRms);
      r.rms2.assign(r.cols, 1.0);
      if (rms.size() == size_t(r.cols))
        for (int64_t k = 0; k < r.cols; ++k)
          r.rms2[k] = double(rms[k]) * rms[k];
      readers.push_back(std::move(r));
    }
    return readers;
  }

  /// Per channel, the largest over readers of a column magnitude normalised
  /// to the reader's maximum: absmax, norm, or norm x input rms.
  static std::vector<double> channelMagnitude(const std::vector<Reader> &readers,
                                              int kind) {
    std::vector<double> score(readers.front().cols, 0.0);
    for (const Reader &r : readers) {
      std::vector<double> c(r.cols, 0.0);
      for (int64_t n = 0; n < r.rows; ++n)
        for (int64_t k = 0; k < r.cols; ++k) {
          double v = r.w[n * r.cols + k];
          c[k] = kind == 0 ? std::max(c[k], std::fabs(v)) : c[k] + v * v;
        }
      for (int64_t k = 0; k < r.cols && kind != 0; ++k)
        c[k] = std::sqrt(c[k] * (kind == 2 ? r.rms2[k] : 1.0));
      double top = *std::max_element(c.begin(), c.end());
      for (int64_t k = 0; k < r.cols; ++k)
        score[k] = std::max(score[k], top > 0 ? c[k] / top : 0.0);
    }
    return score;
  }

  /// Calibrated quantization error of the readers with their columns in
  /// `perm` order, each reader's error relative to its weighted energy.
  static double permutedError(const std::vector<Reader> &readers,
                              const std::vector<int64_t> &perm,
                              const formats::FormatSpec &spec) {
    double total = 0;
    for (const Reader &r : readers) {
      std::vector<float> row(r.cols), back(r.cols);
      std::vector<uint8_t> packed(formats::packedRowBytes(spec, r.cols));
      double err = 0, energy = 0;
      for (int64_t n = 0; n < r.rows; ++n) {
        for (int64_t i = 0; i < r.cols; ++i)
          row[i] = r.w[n * r.cols + perm[i]];
        if (!formats::quantizeRow(spec, row, packed))
          return INFINITY;
        formats::dequantizeRow(spec, packed, back);
        for (int64_t i = 0; i < r.cols; ++i) {
          double d = double(row[i]) - back[i];
          err += r.rms2[perm[i]] * d * d;
          energy += r.rms2[perm[i]] * double(row[i]) * row[i];
        }
      }
      total += energy > 0 ? err / energy : 0;
    }
    return total;
  }

  /// The candidate order with the smallest error in the target format.
  FailureOr<std::vector<int64_t>> chooseOrder(ArrayRef<tfm::LinearOp> linears,
                                              int64_t headDim,
                                              const formats::FormatSpec &spec) {
    FailureOr<std::vector<Reader>> readers = loadReaders(linears);
    if (failed(readers))
      return failure();
    std::vector<int64_t> best(readers->front().cols);
    std::iota(best.begin(), best.end(), 0);
    double bestError = permutedError(*readers, best, spec);
    for (int kind = 0; kind < 3; ++kind) {
      std::vector<int64_t> perm = sortedOrder(channelMagnitude(*readers, kind), headDim);
      double error = permutedError(*readers, perm, spec);
      if (error < bestError) {
        bestError = error;
        best = std::move(perm);
      }
    }
    return best;
  }

  /// perm[i] = the old channel that moves to position i: largest first, so
  /// the outliers fill blocks of their own. Within heads when headDim > 0.
  static std::vector<int64_t> sortedOrder(const std::vector<double> &score,
                                          int64_t headDim) {
    int64_t n = static_cast<int64_t>(score.size());
    auto byScore = [](const std::vector<double> &s) {
      std::vector<int64_t> order(s.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return s[a] > s[b]; });
      return order;
    };
    if (headDim <= 0 || n % headDim != 0)
      return byScore(score);
    std::vector<double> perDim(headDim, 0.0);
    for (int64_t i = 0; i < n; ++i)
      perDim[i % headDim] = std::max(perDim[i % headDim], score[i]);
    std::vector<int64_t> inHead = byScore(perDim), perm(n);
    for (int64_t h = 0; h < n / headDim; ++h)
      for (int64_t d = 0; d < headDim; ++d)
        perm[h * headDim + d] = h * headDim + inHead[d];
    return perm;
  }

  formats::FormatSpec spec_;

  LogicalResult apply(func::FuncOp fn, ChannelSpaces &s,
                      const std::map<int, std::vector<int64_t>> &perms) {
    if (perms.empty())
      return success();
    auto permOf = [&](int node) -> const std::vector<int64_t> * {
      auto it = perms.find(s.leader(node));
      return it == perms.end() ? nullptr : &it->second;
    };
    // Weights: permute rows and/or columns, replace with a new f32 weight.
    SmallVector<tfm::WeightOp> weights(fn.getOps<tfm::WeightOp>());
    for (tfm::WeightOp w : weights) {
      auto type = cast<RankedTensorType>(w.getType());
      const std::vector<int64_t> *rowPerm = permOf(s.node(w.getResult(), 0));
      const std::vector<int64_t> *colPerm =
          type.getRank() == 2 ? permOf(s.node(w.getResult(), 1)) : nullptr;
      if (!rowPerm && !colPerm)
        continue;
      if (weightFormat(type.getElementType()))
        return w.emitOpError() << "is already quantized: run lathe-reorder-channels "
                                  "before lathe-quantize";
      FailureOr<std::vector<float>> values = readWeightFloats(w);
      if (failed(values))
        return failure();
      int64_t rows = type.getDimSize(0), cols = type.getRank() == 2 ? type.getDimSize(1) : 1;
      std::vector<float> out(values->size());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          out[r * cols + c] = (*values)[(rowPerm ? (*rowPerm)[r] : r) * cols +
                                        (colPerm ? (*colPerm)[c] : c)];
      OpBuilder b(w);
      auto permuted = createFloatWeight(b, w.getLoc(), w.getSymName(), type.getShape(), out);
      w.getResult().replaceAllUsesWith(permuted.getResult());
      w.erase();
    }
    // Calibration statistics follow their channels.
    fn.walk([&](tfm::LinearOp l) {
      const std::vector<int64_t> *perm = permOf(s.act(l.getInput()));
      if (!perm)
        return;
      for (StringRef name : {kCalibRms, kCalibAbsMax}) {
        std::vector<float> v = readF32Attr(l, name);
        if (v.size() != perm->size())
          continue;
        std::vector<float> moved(v.size());
        for (size_t i = 0; i < v.size(); ++i)
          moved[i] = v[(*perm)[i]];
        auto type = RankedTensorType::get({int64_t(v.size())}, Float32Type::get(l.getContext()));
        l->setAttr(name, DenseElementsAttr::get(type, ArrayRef(moved)));
      }
    });
    return success();
  }
};

} // namespace
} // namespace lathe
