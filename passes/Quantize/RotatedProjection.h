// The keys and queries of a tfm.attention as the projections that produce
// them, rope(linear(x) [+ bias]), shared by the passes that rewrite key
// channels for a compressed KV cache (lathe-reorder-key-channels,
// lathe-equalize-key-channels): both move or scale whole RoPE pairs of
// rows, in the key projection and in the query projections meeting it.
#pragma once

#include "dialects/Transformer/TransformerDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/Support/LLVM.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lathe {

/// rope(linear(x) [+ bias]): a projection whose rows a pass may permute or
/// scale pair by pair.
struct RotatedProjection {
  tfm::RopeOp rope;
  tfm::LinearOp linear;
  tfm::BiasAddOp bias; // null without one
  tfm::WeightOp weight, biasWeight;
};

/// The key and query projections of one attention, rotated alike.
struct KeyQueryProjections {
  RotatedProjection keys, queries;
  int64_t headDim = 0, kvHeads = 0, heads = 0;
};

/// The projections of `attention`'s keys and queries, or failure with
/// `why` completing "the keys ..." / "the queries ..." (no diagnostic: the
/// passes leave such an attention alone with a warning).
mlir::FailureOr<KeyQueryProjections> keyQueryProjections(tfm::AttentionOp attention,
                                                         std::string &why);

/// Replaces the projection's weight (and bias) by `rewrite`'s copy of each
/// (built beside the old one), erasing an old weight nothing else uses.
mlir::LogicalResult rewriteProjectionWeights(
    RotatedProjection p,
    llvm::function_ref<mlir::FailureOr<tfm::WeightOp>(mlir::OpBuilder &, tfm::WeightOp)> rewrite);

/// The two channels of a head (starting at channel `head`) that RoPE pair
/// `pair` rotates.
std::pair<int64_t, int64_t> ropePairChannels(int64_t head, int64_t pair, int64_t headDim,
                                             tfm::RopeLayout layout);

/// Per RoPE pair of each KV head (index g * head_dim / 2 + j): the keys'
/// mean square, and that of the queries of the KV head's query heads,
/// summed. Each channel's mean square is estimated from its weight row (any
/// format, decoded) and the calibrated rms of the projection's inputs (1
/// without calibration), assuming uncorrelated inputs, plus its bias
/// squared; rotation keeps a pair's.
struct PairMeanSquares {
  std::vector<double> keys, queries;
};
mlir::FailureOr<PairMeanSquares> pairMeanSquares(KeyQueryProjections p);

} // namespace lathe
