//===- ReorderChannels.cpp - cluster outlier channels into blocks ---------===//
//
// Each channel space (passes/Quantize/ChannelSpaces.h, joined for one
// permutation) gets one order; spaces that touch something whose order is
// fixed (vocabulary, RoPE pairs, results) keep the identity.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "passes/Quantize/CalibratedLinear.h"
#include "passes/Quantize/ChannelSpaces.h"
#include "passes/Quantize/WeightData.h"
#include "runtime/formats/RowCodec.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

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

struct ReorderChannelsPass : impl::ReorderChannelsBase<ReorderChannelsPass> {
  using ReorderChannelsBase::ReorderChannelsBase;

  void runOnOperation() override {
    Expected<formats::FormatSpec> spec = formats::parseFormatSpec(format);
    if (!spec) {
      getOperation().emitError() << "lathe-reorder-channels: " << spec.error().message();
      return signalPassFailure();
    }
    spec_ = *spec;
    // bf16 inputs round each value on its own, so no order of channels
    // changes their error: they score as float.
    if (activations != "int8" && activations != "bf16" && activations != "float") {
      getOperation().emitError() << "lathe-reorder-channels: activations must be int8, bf16 or "
                                    "float, got '"
                                 << activations << "'";
      return signalPassFailure();
    }
    int8Activations_ = activations == "int8" && formats::hasIntegerCodes(spec_);
    for (auto fn : getOperation().getOps<func::FuncOp>())
      if (failed(reorder(fn)))
        return signalPassFailure();
  }

  LogicalResult reorder(func::FuncOp fn) {
    ChannelSpaces spaces;
    buildChannelSpaces(fn, ChannelChange::Order, spaces);

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

  /// Per channel, the largest over readers of a column magnitude normalised
  /// to the reader's maximum: absmax, norm, norm x input rms, or the input
  /// rms alone (what int8 activations round).
  static std::vector<double> channelMagnitude(const std::vector<CalibratedLinear> &readers,
                                              int kind) {
    std::vector<double> score(readers.front().cols, 0.0);
    for (const CalibratedLinear &r : readers) {
      std::vector<double> c(r.cols, 0.0);
      for (int64_t n = 0; n < r.rows; ++n)
        for (int64_t k = 0; k < r.cols; ++k) {
          double v = r.w[n * r.cols + k];
          c[k] = kind == 0 ? std::max(c[k], std::fabs(v)) : c[k] + v * v;
        }
      for (int64_t k = 0; k < r.cols && kind != 0; ++k)
        c[k] = kind == 3 ? std::sqrt(r.rms2[k])
                         : std::sqrt(c[k] * (kind == 2 ? r.rms2[k] : 1.0));
      double top = *std::max_element(c.begin(), c.end());
      for (int64_t k = 0; k < r.cols; ++k)
        score[k] = std::max(score[k], top > 0 ? c[k] / top : 0.0);
    }
    return score;
  }

  /// Calibrated quantization error of the readers with their columns in
  /// `perm` order, each reader's error relative to its weighted energy:
  /// the weights in the format, plus, with int8 activations, the rounding
  /// of the inputs with a scale per weight block.
  double permutedError(const std::vector<CalibratedLinear> &readers,
                       const std::vector<int64_t> &perm, const formats::FormatSpec &spec) const {
    double total = 0;
    for (const CalibratedLinear &r : readers) {
      total += calibratedWeightError(r, spec, perm, {});
      if (int8Activations_)
        total += calibratedActivationError(
            r, std::max<int64_t>(1, int64_t(formats::rowBlockValues(spec, r.cols))), perm, {});
    }
    return total;
  }

  /// The candidate order with the smallest error in the target format.
  FailureOr<std::vector<int64_t>> chooseOrder(ArrayRef<tfm::LinearOp> linears,
                                              int64_t headDim,
                                              const formats::FormatSpec &spec) {
    FailureOr<std::vector<CalibratedLinear>> readers = loadCalibratedLinears(linears);
    if (failed(readers))
      return failure();
    std::vector<int64_t> best(readers->front().cols);
    std::iota(best.begin(), best.end(), 0);
    double bestError = permutedError(*readers, best, spec);
    for (int kind = 0; kind < (int8Activations_ ? 4 : 3); ++kind) {
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
  bool int8Activations_ = false;

  LogicalResult apply(func::FuncOp fn, ChannelSpaces &s,
                      const std::map<int, std::vector<int64_t>> &perms) {
    if (perms.empty())
      return success();
    auto changed = [&](int set) { return perms.count(set) != 0; };
    auto permOf = [&](int set) { return set < 0 ? nullptr : &perms.at(set); };
    // Weights: permute rows and/or columns.
    if (failed(rewriteWeights(fn, s, changed, "lathe-reorder-channels",
                              [&](std::vector<float> &values, int64_t rows, int64_t cols,
                                  int rowSet, int colSet) {
                                const std::vector<int64_t> *rowPerm = permOf(rowSet);
                                const std::vector<int64_t> *colPerm = permOf(colSet);
                                std::vector<float> out(values.size());
                                for (int64_t r = 0; r < rows; ++r)
                                  for (int64_t c = 0; c < cols; ++c)
                                    out[r * cols + c] =
                                        values[(rowPerm ? (*rowPerm)[r] : r) * cols +
                                               (colPerm ? (*colPerm)[c] : c)];
                                values = std::move(out);
                              })))
      return failure();
    // Calibration statistics follow their channels.
    rewriteCalibration(fn, s, changed, [&](std::vector<float> &v, int set) {
      const std::vector<int64_t> &perm = perms.at(set);
      std::vector<float> moved(v.size());
      for (size_t i = 0; i < v.size(); ++i)
        moved[i] = v[perm[i]];
      v = std::move(moved);
    });
    return success();
  }
};

} // namespace
} // namespace lathe
