//===- EqualizeKeyChannels.cpp - like magnitudes for the key pairs of a head ===//
//
// A compressed KV cache (--kv=bfp4) shares one exponent per block of
// consecutive key channels: the block's largest channel sets the step that
// every channel of the block rounds to, so the small channels beside a
// large one keep few levels. Per KV head, this pass multiplies each RoPE
// pair of key channels by a power of two 2^s_j and the query channels
// meeting it by 2^-s_j, moving the pairs' mean squares part of the way
// (the strength, in log scale) toward their geometric mean. Rotation turns a pair within
// itself, so it commutes with the scaling; every score q . k is the same
// sum of the same products, each exactly so (a product by a power of two is
// exact), and the model computes the same function bit for bit.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "passes/Quantize/RotatedProjection.h"
#include "passes/Quantize/WeightData.h"

#include <cmath>
#include <cstdio>
#include <numeric>

namespace lathe {
#define GEN_PASS_DEF_EQUALIZEKEYCHANNELS
#include "passes/Passes.h.inc"
} // namespace lathe

using namespace mlir;

namespace lathe {
namespace {

/// The most a scale's exponent may be asked for, either way.
constexpr int64_t kShiftLimit = 64;

struct EqualizeKeyChannelsPass : impl::EqualizeKeyChannelsBase<EqualizeKeyChannelsPass> {
  using EqualizeKeyChannelsBase::EqualizeKeyChannelsBase;

  void runOnOperation() override {
    if (maxShift < 0 || maxShift > kShiftLimit) {
      getOperation().emitError() << "lathe-equalize-key-channels: max-shift=" << int64_t(maxShift)
                                 << " is not from 0 to " << kShiftLimit;
      return signalPassFailure();
    }
    if (!(strength >= 0.0 && strength <= 1.0)) {
      char text[32];
      std::snprintf(text, sizeof text, "%g", double(strength));
      getOperation().emitError() << "lathe-equalize-key-channels: strength=" << text
                                 << " is not from 0 to 1";
      return signalPassFailure();
    }
    WalkResult result = getOperation().walk([&](tfm::AttentionOp attention) {
      return succeeded(equalize(attention)) ? WalkResult::advance() : WalkResult::interrupt();
    });
    if (result.wasInterrupted())
      signalPassFailure();
  }

  /// The values of `weight`'s rows `rows` (all of a vector's given
  /// elements), or empty for a null weight.
  static std::vector<float> rowsOf(tfm::WeightOp weight, const std::vector<float> &values,
                                   std::initializer_list<int64_t> rows) {
    std::vector<float> out;
    if (!weight)
      return out;
    auto type = cast<RankedTensorType>(weight.getType());
    const int64_t cols = type.getRank() == 2 ? type.getDimSize(1) : 1;
    for (int64_t r : rows)
      out.insert(out.end(), values.begin() + r * cols, values.begin() + (r + 1) * cols);
    return out;
  }

  LogicalResult equalize(tfm::AttentionOp attention) {
    std::string why;
    FailureOr<KeyQueryProjections> kq = keyQueryProjections(attention, why);
    if (failed(kq)) {
      attention.emitWarning() << "keys left unscaled: " << why;
      return success();
    }
    // Only float weights scale exactly; packed ones (a GGUF model's, or
    // ones quantized before this pass) are left as they are.
    for (tfm::WeightOp w : {kq->keys.weight, kq->keys.biasWeight, kq->queries.weight,
                            kq->queries.biasWeight})
      if (w && weightFormat(cast<RankedTensorType>(w.getType()).getElementType())) {
        attention.emitWarning() << "keys left unscaled: weight '" << w.getSymName()
                                << "' is packed (" << w.getType()
                                << "); only float weights scale exactly";
        return success();
      }
    FailureOr<PairMeanSquares> squares = pairMeanSquares(*kq);
    if (failed(squares))
      return failure();

    // Every weight the scales touch, as floats, to check exactness.
    struct Side {
      RotatedProjection *p;
      std::vector<float> weight, bias;
    };
    Side keys{&kq->keys, {}, {}}, queries{&kq->queries, {}, {}};
    for (Side *side : {&keys, &queries}) {
      FailureOr<std::vector<float>> w = readWeightFloats(side->p->weight);
      if (failed(w))
        return failure();
      side->weight = std::move(*w);
      if (side->p->biasWeight) {
        FailureOr<std::vector<float>> b = readWeightFloats(side->p->biasWeight);
        if (failed(b))
          return failure();
        side->bias = std::move(*b);
      }
    }
    auto exact = [](const Side &side, int64_t a, int64_t b, int shift) {
      auto et = [](tfm::WeightOp w) {
        return cast<RankedTensorType>(w.getType()).getElementType();
      };
      return shiftIsExact(et(side.p->weight), rowsOf(side.p->weight, side.weight, {a, b}),
                          shift) &&
             (!side.p->biasWeight ||
              shiftIsExact(et(side.p->biasWeight), rowsOf(side.p->biasWeight, side.bias, {a, b}),
                           shift));
    };

    const int64_t headDim = kq->headDim, half = headDim / 2, kvHeads = kq->kvHeads;
    const int64_t groupHeads = kq->heads / kvHeads;
    const tfm::RopeLayout layout = kq->keys.rope.getLayout();
    std::vector<int> keyShift(kvHeads * headDim, 0), queryShift(kq->heads * headDim, 0);
    bool changed = false;
    for (int64_t g = 0; g < kvHeads; ++g) {
      // The head's target: the geometric mean of its pairs' mean squares
      // (zero pairs have nothing to scale), so that scaled keys stay near
      // the sizes they had.
      double logSum = 0;
      int64_t counted = 0;
      for (int64_t j = 0; j < half; ++j)
        if (const double k = squares->keys[g * half + j]; k > 0 && std::isfinite(k)) {
          logSum += std::log2(k);
          ++counted;
        }
      if (counted == 0)
        continue;
      const double target = logSum / double(counted);
      for (int64_t j = 0; j < half; ++j) {
        const double k = squares->keys[g * half + j];
        if (!(k > 0) || !std::isfinite(k))
          continue;
        // A factor 2^s moves the mean square by 4^s; strength 1 would
        // bring it to the target.
        int shift = int(std::clamp<double>(std::round(strength * (target - std::log2(k)) / 2),
                                           -double(maxShift), double(maxShift)));
        auto [ka, kb] = ropePairChannels(g * headDim, j, headDim, layout);
        auto fits = [&](int s) {
          if (!exact(keys, ka, kb, s))
            return false;
          for (int64_t h = g * groupHeads; h < (g + 1) * groupHeads; ++h) {
            auto [qa, qb] = ropePairChannels(h * headDim, j, headDim, layout);
            if (!exact(queries, qa, qb, -s))
              return false;
          }
          return true;
        };
        // Toward 1 until both sides store their products exactly (an f16
        // weight may overflow or turn subnormal).
        while (shift != 0 && !fits(shift))
          shift += shift > 0 ? -1 : 1;
        if (shift == 0)
          continue;
        changed = true;
        keyShift[ka] = keyShift[kb] = shift;
        for (int64_t h = g * groupHeads; h < (g + 1) * groupHeads; ++h) {
          auto [qa, qb] = ropePairChannels(h * headDim, j, headDim, layout);
          queryShift[qa] = queryShift[qb] = -shift;
        }
      }
    }
    if (!changed)
      return success();
    // Each row n of the key (query) weight and bias times 2^shifts[n].
    auto shiftRows = [](RotatedProjection p, const std::vector<int> &shifts) {
      return rewriteProjectionWeights(p, [&](OpBuilder &b, tfm::WeightOp weight) {
        return shiftWeightRows(b, weight, shifts);
      });
    };
    return failure(failed(shiftRows(kq->keys, keyShift)) ||
                   failed(shiftRows(kq->queries, queryShift)));
  }

};

} // namespace
} // namespace lathe
