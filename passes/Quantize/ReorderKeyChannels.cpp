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
#include "passes/Quantize/RotatedProjection.h"
#include "passes/Quantize/WeightData.h"
#include "runtime/plan/RopeFrequencies.h"

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
    FailureOr<KeyQueryProjections> kq = keyQueryProjections(attention, why);
    if (failed(kq)) {
      attention.emitWarning() << "keys left in order: " << why;
      return success();
    }
    tfm::RopeOp kRope = kq->keys.rope, qRope = kq->queries.rope;
    const int64_t headDim = kq->headDim, half = headDim / 2;
    const int64_t kvHeads = kq->kvHeads, heads = kq->heads;

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

    FailureOr<PairMeanSquares> squares = pairMeanSquares(*kq);
    if (failed(squares))
      return failure();
    const tfm::RopeLayout layout = kRope.getLayout();
    std::vector<std::vector<int64_t>> perm(kvHeads);
    bool identity = true;
    for (int64_t g = 0; g < kvHeads; ++g) {
      // Per pair: the key's mean square, and the queries' that weigh its
      // rounding error in the scores.
      const std::vector<double> keyMs(squares->keys.begin() + g * half,
                                      squares->keys.begin() + (g + 1) * half);
      const std::vector<double> queryMs(squares->queries.begin() + g * half,
                                        squares->queries.begin() + (g + 1) * half);
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
          auto [a, b] = ropePairChannels(h * headDim, order[j], headDim, layout);
          from[h * headDim + 2 * j] = a;
          from[h * headDim + 2 * j + 1] = b;
        }
      }
      return from;
    };
    // The new pair order: position j of group g turns at the frequency
    // that the old pair perm[g][j] turned at.
    const std::vector<uint32_t> oldOrder = kRope.getPairOrderVector();
    const int64_t oldGroups = plan::ropeTableGroups(oldOrder.size(), headDim);
    std::vector<int32_t> order(kvHeads * half);
    for (int64_t g = 0; g < kvHeads; ++g)
      for (int64_t j = 0; j < half; ++j) {
        const int64_t old = perm[g][j];
        order[g * half + j] = oldOrder.empty()
                                  ? int32_t(old)
                                  : int32_t(oldOrder[(g * oldGroups / kvHeads) * half + old]);
      }
    // Whole rows move: a packed weight stays packed.
    auto permuteRows = [](RotatedProjection p, const std::vector<int64_t> &from) {
      return rewriteProjectionWeights(p, [&](OpBuilder &b, tfm::WeightOp weight) {
        return permuteWeightRows(b, weight, from);
      });
    };
    if (failed(permuteRows(kq->keys, channelMap(kvHeads))) ||
        failed(permuteRows(kq->queries, channelMap(heads))))
      return failure();
    for (tfm::RopeOp rope : {kRope, qRope}) {
      rope.setLayoutAttr(tfm::RopeLayoutAttr::get(rope.getContext(), tfm::RopeLayout::interleaved));
      rope.setPairOrder(order);
    }
    return success();
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

};

} // namespace
} // namespace lathe
