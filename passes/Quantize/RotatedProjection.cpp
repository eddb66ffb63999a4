#include "passes/Quantize/RotatedProjection.h"

#include "passes/Quantize/CalibratedLinear.h"
#include "passes/Quantize/WeightData.h"

using namespace mlir;

namespace lathe {
namespace {

int64_t widthOf(Value v) { return cast<RankedTensorType>(v.getType()).getShape().back(); }

/// The projection behind `rotated`, or a reason it cannot be rewritten.
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

/// Each output channel's mean square (see PairMeanSquares).
FailureOr<std::vector<double>> channelMeanSquares(RotatedProjection p) {
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

} // namespace

FailureOr<KeyQueryProjections> keyQueryProjections(tfm::AttentionOp attention,
                                                   std::string &why) {
  KeyQueryProjections p;
  FailureOr<RotatedProjection> keys = projectionOf(attention.getKeys(), why);
  if (failed(keys)) {
    why = "the keys " + why;
    return failure();
  }
  FailureOr<RotatedProjection> queries = projectionOf(attention.getQueries(), why);
  if (failed(queries)) {
    why = "the queries " + why;
    return failure();
  }
  tfm::RopeOp kRope = keys->rope, qRope = queries->rope;
  p.headDim = kRope.getHeadDim();
  if (int64_t(qRope.getHeadDim()) != p.headDim || qRope.getTheta() != kRope.getTheta() ||
      qRope.getScaling() != kRope.getScaling() || qRope.getLayout() != kRope.getLayout() ||
      qRope.getPairOrderVector() != kRope.getPairOrderVector()) {
    why = "the queries and keys are rotated differently";
    return failure();
  }
  p.keys = *keys;
  p.queries = *queries;
  p.kvHeads = widthOf(attention.getKeys()) / p.headDim;
  p.heads = widthOf(attention.getQueries()) / p.headDim;
  return p;
}

std::pair<int64_t, int64_t> ropePairChannels(int64_t head, int64_t pair, int64_t headDim,
                                             tfm::RopeLayout layout) {
  if (layout == tfm::RopeLayout::interleaved)
    return {head + 2 * pair, head + 2 * pair + 1};
  return {head + pair, head + pair + headDim / 2};
}

FailureOr<PairMeanSquares> pairMeanSquares(KeyQueryProjections p) {
  FailureOr<std::vector<double>> kSquares = channelMeanSquares(p.keys);
  FailureOr<std::vector<double>> qSquares = channelMeanSquares(p.queries);
  if (failed(kSquares) || failed(qSquares))
    return failure();
  const tfm::RopeLayout layout = p.keys.rope.getLayout();
  const int64_t half = p.headDim / 2, groupHeads = p.heads / p.kvHeads;
  PairMeanSquares s;
  s.keys.assign(p.kvHeads * half, 0.0);
  s.queries.assign(p.kvHeads * half, 0.0);
  for (int64_t g = 0; g < p.kvHeads; ++g)
    for (int64_t j = 0; j < half; ++j) {
      auto [a, b] = ropePairChannels(g * p.headDim, j, p.headDim, layout);
      s.keys[g * half + j] = (*kSquares)[a] + (*kSquares)[b];
      for (int64_t h = g * groupHeads; h < (g + 1) * groupHeads; ++h) {
        auto [qa, qb] = ropePairChannels(h * p.headDim, j, p.headDim, layout);
        s.queries[g * half + j] += (*qSquares)[qa] + (*qSquares)[qb];
      }
    }
  return s;
}

LogicalResult rewriteProjectionWeights(
    RotatedProjection p,
    llvm::function_ref<FailureOr<tfm::WeightOp>(OpBuilder &, tfm::WeightOp)> rewrite) {
  auto replace = [&](tfm::WeightOp weight, OpOperand &use) -> LogicalResult {
    OpBuilder b(weight);
    FailureOr<tfm::WeightOp> copy = rewrite(b, weight);
    if (failed(copy))
      return failure();
    use.set(copy->getResult());
    if (weight->use_empty())
      weight.erase();
    return success();
  };
  if (failed(replace(p.weight, p.linear.getWeightMutable())))
    return failure();
  if (p.bias && failed(replace(p.biasWeight, p.bias.getBiasMutable())))
    return failure();
  return success();
}

} // namespace lathe
