//===- ReorderKeyChannels.cpp - cluster outlier key pairs into KV blocks --===//
//
// A compressed KV cache (--kv=bfp4) shares one exponent per block of
// consecutive key channels, so a few large channels coarsen every block
// they sit in. Per KV head, this pass sorts the RoPE pairs of the keys by
// magnitude, largest first, so that large pairs share blocks with each
// other ("Accurate Block Quantization in LLMs with Outliers", Trukhanov and
// Soloveychik, 2024). The permutation is folded into the rows of the key
// and query projections (and their biases), and the two ropes learn which
// frequency turns which position (tfm.rope's pair_order): every q.k product
// is the same sum of the same terms, so the model computes the same
// function up to the order of float additions in attention.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "passes/Quantize/CalibratedLinear.h"
#include "passes/Quantize/WeightData.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <algorithm>
#include <numeric>
#include <optional>

namespace lathe {
#define GEN_PASS_DEF_REORDERKEYCHANNELS
#include "passes/Passes.h.inc"
} // namespace lathe

using namespace mlir;

namespace lathe {
namespace {

/// rope(linear(x) [+ bias]): a projection whose rows the pass may permute.
struct RotatedProjection {
  tfm::RopeOp rope;
  tfm::LinearOp linear;
  tfm::BiasAddOp bias; // null without one
  tfm::WeightOp weight, biasWeight;
};

int64_t widthOf(Value v) { return cast<RankedTensorType>(v.getType()).getShape().back(); }

/// The projection behind `rotated`, or a reason it cannot be reordered.
FailureOr<RotatedProjection> projectionOf(Value rotated, std::string &why) {
  RotatedProjection p;
  p.rope = rotated.getDefiningOp<tfm::RopeOp>();
  if (!p.rope) {
    why = "are not produced by tfm.rope";
    return failure();
  }
  if (!rotated.hasOneUse()) {
    why = "are read by more than the attention";
    return failure();
  }
  Value in = p.rope.getInput();
  if ((p.bias = in.getDefiningOp<tfm::BiasAddOp>())) {
    if (!in.hasOneUse()) {
      why = "are read before their rotation";
      return failure();
    }
    p.biasWeight = p.bias.getBias().getDefiningOp<tfm::WeightOp>();
    in = p.bias.getInput();
  }
  p.linear = in.getDefiningOp<tfm::LinearOp>();
  if (!p.linear) {
    why = "are not a tfm.linear (+ tfm.bias_add) rotated by tfm.rope";
    return failure();
  }
  p.weight = p.linear.getWeight().getDefiningOp<tfm::WeightOp>();
  if (!in.hasOneUse() || !p.weight || (p.bias && !p.biasWeight)) {
    why = "are read before their rotation, or their weights are not tfm.weight";
    return failure();
  }
  if (!p.weight->hasOneUse() || (p.biasWeight && !p.biasWeight->hasOneUse())) {
    why = "share their weights with another op";
    return failure();
  }
  return p;
}

/// The two channels of a head (at `head`) that pair `pair` rotates.
std::pair<int64_t, int64_t> pairChannels(int64_t head, int64_t pair, int64_t headDim,
                                         tfm::RopeLayout layout) {
  if (layout == tfm::RopeLayout::interleaved)
    return {head + 2 * pair, head + 2 * pair + 1};
  return {head + pair, head + pair + headDim / 2};
}

struct ReorderKeyChannelsPass : impl::ReorderKeyChannelsBase<ReorderKeyChannelsPass> {
  using ReorderKeyChannelsBase::ReorderKeyChannelsBase;

  void runOnOperation() override {
    WalkResult result = getOperation().walk([&](tfm::AttentionOp attention) {
      return succeeded(reorder(attention)) ? WalkResult::advance() : WalkResult::interrupt();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }

  LogicalResult reorder(tfm::AttentionOp attention) {
    std::string why;
    FailureOr<RotatedProjection> keys = projectionOf(attention.getKeys(), why);
    if (failed(keys)) {
      attention.emitWarning() << "keys left in order: the keys " << why;
      return success();
    }
    FailureOr<RotatedProjection> queries = projectionOf(attention.getQueries(), why);
    if (failed(queries)) {
      attention.emitWarning() << "keys left in order: the queries " << why;
      return success();
    }
    tfm::RopeOp kRope = keys->rope, qRope = queries->rope;
    const int64_t headDim = kRope.getHeadDim(), half = headDim / 2;
    if (int64_t(qRope.getHeadDim()) != headDim || qRope.getTheta() != kRope.getTheta() ||
        qRope.getScaling() != kRope.getScaling() || qRope.getLayout() != kRope.getLayout() ||
        qRope.getPairOrderVector() != kRope.getPairOrderVector()) {
      attention.emitWarning() << "keys left in order: the queries and keys are rotated "
                                 "differently";
      return success();
    }
    const int64_t kvHeads = widthOf(attention.getKeys()) / headDim;
    const int64_t heads = widthOf(attention.getQueries()) / headDim;

    // The block the cache shares an exponent over: the option, else the
    // cache's own bfp block.
    int64_t block = blockOption;
    if (block == 0)
      if (auto quant = dyn_cast<tfm::KVQuantType>(attention.getCache().getType().getElementType()))
        if (quant.getKind() == tfm::KVQuantKind::bfp8 || quant.getKind() == tfm::KVQuantKind::bfp4)
          block = quant.getBlock();
    if (block <= 0 || block % 2 != 0 || headDim % block != 0)
      return attention.emitOpError()
             << "needs an even KV block dividing head_dim " << headDim
             << " to order key channels for (a bfp cache, or the pass's block option), got "
             << block;
    if (block == headDim)
      return success(); // one block a head: every order is the same

    FailureOr<std::vector<double>> kSquares = meanSquares(*keys);
    FailureOr<std::vector<double>> qSquares = meanSquares(*queries);
    if (failed(kSquares) || failed(qSquares))
      return failure();
    const tfm::RopeLayout layout = kRope.getLayout();
    const int64_t groupHeads = heads / kvHeads;
    std::vector<std::vector<int64_t>> perm(kvHeads);
    bool identity = true;
    for (int64_t g = 0; g < kvHeads; ++g) {
      // Per pair: the key's mean square (rotation keeps a pair's), and the
      // queries' that weigh its rounding error in the scores.
      std::vector<double> keyMs(half, 0.0), queryMs(half, 0.0);
      for (int64_t j = 0; j < half; ++j) {
        auto [a, b] = pairChannels(g * headDim, j, headDim, layout);
        keyMs[j] = (*kSquares)[a] + (*kSquares)[b];
        for (int64_t h = g * groupHeads; h < (g + 1) * groupHeads; ++h) {
          auto [qa, qb] = pairChannels(h * headDim, j, headDim, layout);
          queryMs[j] += (*qSquares)[qa] + (*qSquares)[qb];
        }
      }
      perm[g] = chooseOrder(keyMs, queryMs, block / 2);
      for (int64_t j = 0; j < half; ++j)
        identity &= perm[g][j] == j;
    }
    if (identity)
      return success();

    // New channel -> old channel, per row of heads of the given count: the
    // pairs move as wholes and land interleaved (2j, 2j + 1), which keeps
    // every pair inside one block of any even size.
    auto channelMap = [&](int64_t rowHeads) {
      std::vector<int64_t> from(rowHeads * headDim);
      for (int64_t h = 0; h < rowHeads; ++h) {
        const std::vector<int64_t> &order = perm[h * kvHeads / rowHeads];
        for (int64_t j = 0; j < half; ++j) {
          auto [a, b] = pairChannels(h * headDim, order[j], headDim, layout);
          from[h * headDim + 2 * j] = a;
          from[h * headDim + 2 * j + 1] = b;
        }
      }
      return from;
    };
    // The new pair order: position j of group g turns at the frequency
    // that the old pair perm[g][j] turned at.
    const std::vector<uint32_t> oldOrder = kRope.getPairOrderVector();
    const int64_t oldGroups = oldOrder.empty() ? 1 : int64_t(oldOrder.size()) / half;
    std::vector<int32_t> order(kvHeads * half);
    for (int64_t g = 0; g < kvHeads; ++g)
      for (int64_t j = 0; j < half; ++j) {
        const int64_t old = perm[g][j];
        order[g * half + j] = oldOrder.empty()
                                  ? int32_t(old)
                                  : int32_t(oldOrder[(g * oldGroups / kvHeads) * half + old]);
      }
    if (failed(permuteRows(*keys, channelMap(kvHeads))) ||
        failed(permuteRows(*queries, channelMap(heads))))
      return failure();
    for (tfm::RopeOp rope : {kRope, qRope}) {
      rope.setLayoutAttr(tfm::RopeLayoutAttr::get(rope.getContext(), tfm::RopeLayout::interleaved));
      rope.setPairOrder(order);
    }
    return success();
  }

  /// Each output channel's mean square, estimated from its weight row (any
  /// format, decoded) and the calibrated rms of the projection's inputs (1
  /// without calibration), assuming uncorrelated inputs, plus its bias
  /// squared.
  static FailureOr<std::vector<double>> meanSquares(RotatedProjection p) {
    FailureOr<std::vector<float>> w = readWeightValues(p.weight);
    if (failed(w))
      return failure();
    auto type = cast<RankedTensorType>(p.weight.getType());
    const int64_t rows = type.getDimSize(0), cols = type.getDimSize(1);
    const std::vector<float> rms = readF32Attr(p.linear, kCalibRmsAttr);
    std::vector<float> bias;
    if (p.biasWeight) {
      FailureOr<std::vector<float>> b = readWeightValues(p.biasWeight);
      if (failed(b))
        return failure();
      bias = std::move(*b);
    }
    std::vector<double> squares(rows, 0.0);
    for (int64_t n = 0; n < rows; ++n) {
      for (int64_t c = 0; c < cols; ++c) {
        const double v = (*w)[n * cols + c];
        const double r = rms.size() == size_t(cols) ? rms[c] : 1.0;
        squares[n] += v * v * r * r;
      }
      if (!bias.empty())
        squares[n] += double(bias[n]) * bias[n];
    }
    return squares;
  }

  /// The estimated error a block order adds to the scores: each block's
  /// rounding step grows with its largest key (mean square M_b) and hits
  /// every query channel meeting the block, so sum_b M_b * sum_(j in b)
  /// query[j], with order[i] the pair at position i.
  static double orderCost(const std::vector<int64_t> &order, const std::vector<double> &key,
                          const std::vector<double> &query, int64_t perBlock) {
    double cost = 0;
    for (size_t b = 0; b < order.size(); b += size_t(perBlock)) {
      double largest = 0, weight = 0;
      for (size_t i = b; i < b + size_t(perBlock); ++i) {
        largest = std::max(largest, key[order[i]]);
        weight += query[order[i]];
      }
      cost += largest * weight;
    }
    return cost;
  }

  /// The pair order of a KV head with the smallest orderCost among three:
  /// as stored; keys sorted largest first (outliers share blocks: the
  /// paper's); and a greedy fill that opens each block with the largest
  /// key left and gives it the pairs that lose least there, the smallest
  /// query[j] * (M - key[j]) (for keys of like weight, the next largest
  /// keys; beside an outlier, the pairs the queries barely read).
  static std::vector<int64_t> chooseOrder(const std::vector<double> &key,
                                          const std::vector<double> &query, int64_t perBlock) {
    const int64_t n = int64_t(key.size());
    std::vector<int64_t> stored(n);
    std::iota(stored.begin(), stored.end(), 0);
    std::vector<int64_t> sorted = stored;
    std::stable_sort(sorted.begin(), sorted.end(),
                     [&](int64_t a, int64_t b) { return key[a] > key[b]; });
    std::vector<int64_t> greedy;
    std::vector<int64_t> left = sorted; // largest key first
    while (!left.empty()) {
      const int64_t leader = left.front();
      const double top = key[leader];
      std::vector<int64_t> rest(left.begin() + 1, left.end());
      std::stable_sort(rest.begin(), rest.end(), [&](int64_t a, int64_t b) {
        return query[a] * (top - key[a]) < query[b] * (top - key[b]);
      });
      const size_t take = std::min<size_t>(rest.size(), size_t(perBlock - 1));
      greedy.push_back(leader);
      greedy.insert(greedy.end(), rest.begin(), rest.begin() + take);
      std::vector<int64_t> next;
      for (int64_t j : left)
        if (std::find(greedy.end() - (take + 1), greedy.end(), j) == greedy.end())
          next.push_back(j);
      left = std::move(next); // still largest key first
    }
    std::vector<int64_t> best = stored;
    double bestCost = orderCost(stored, key, query, perBlock);
    for (std::vector<int64_t> *candidate : {&sorted, &greedy})
      if (double cost = orderCost(*candidate, key, query, perBlock); cost < bestCost) {
        bestCost = cost;
        best = *candidate;
      }
    return best;
  }

  /// Replaces the projection's weight (and bias) by copies whose row n is
  /// the old row from[n] (whole rows: a packed weight stays packed).
  static LogicalResult permuteRows(RotatedProjection p, const std::vector<int64_t> &from) {
    auto permuted = [&](tfm::WeightOp weight, OpOperand &use) -> LogicalResult {
      OpBuilder b(weight);
      FailureOr<tfm::WeightOp> copy = permuteWeightRows(b, weight, from);
      if (failed(copy))
        return failure();
      use.set(copy->getResult());
      if (weight->use_empty())
        weight.erase();
      return success();
    };
    if (failed(permuted(p.weight, p.linear.getWeightMutable())))
      return failure();
    if (p.bias && failed(permuted(p.biasWeight, p.bias.getBiasMutable())))
      return failure();
    return success();
  }
};

} // namespace
} // namespace lathe
