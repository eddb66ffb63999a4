//===- EqualizeChannels.cpp - per-channel power-of-two equalization -------===//
//
// Each channel space (passes/Quantize/ChannelSpaces.h, joined for one scale
// per channel) gets exponents e_k: its producers (weight rows, RMSNorm
// gains) are multiplied by 2^e_k and its consumers (weight columns) divided
// by it. The search scores candidates by the calibrated error of the
// consumers in the target format; producers need no scoring, since a row
// scaled by a power of two quantizes to the same codes with shifted scales.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "passes/Quantize/CalibratedLinear.h"
#include "passes/Quantize/ChannelSpaces.h"
#include "passes/Quantize/WeightData.h"

#include "runtime/formats/RowCodec.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Threading.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <map>
#include <set>

namespace lathe {
#define GEN_PASS_DEF_EQUALIZECHANNELS
#include "passes/Passes.h.inc"
} // namespace lathe

using namespace mlir;

namespace lathe {
namespace {

/// Largest |e_k|: far beyond what a weight needs, small enough that no
/// ordinary weight leaves the normal float range (see exponentRange).
constexpr int kMaxShift = 16;
/// alpha = 0, 1/8, ..., 1.
constexpr int kAlphaSteps = 8;

/// The weights whose dimension `dim` belongs to a space.
struct Member {
  tfm::WeightOp weight;
  unsigned dim; // 0: rows or gain entries (multiplied); 1: columns (divided)
};

struct EqualizeChannelsPass : impl::EqualizeChannelsBase<EqualizeChannelsPass> {
  using EqualizeChannelsBase::EqualizeChannelsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    Expected<formats::FormatSpec> spec = formats::parseFormatSpec(format);
    if (!spec) {
      module.emitError() << "lathe-equalize-channels: " << spec.error().message();
      return signalPassFailure();
    }
    // bf16 inputs round relative to each value, as floats do not at all:
    // a power-of-two scale changes neither, so they score as float.
    if (activations != "int8" && activations != "bf16" && activations != "float") {
      module.emitError() << "lathe-equalize-channels: activations must be int8, bf16 or float, "
                            "got '"
                         << activations << "'";
      return signalPassFailure();
    }
    spec_ = *spec;
    int8Activations_ = activations == "int8" && formats::hasIntegerCodes(spec_);
    for (auto fn : module.getOps<func::FuncOp>())
      if (failed(equalize(fn)))
        return signalPassFailure();
  }

  LogicalResult equalize(func::FuncOp fn) {
    ChannelSpaces spaces;
    buildChannelSpaces(fn, ChannelChange::Scale, spaces);

    std::map<int, std::vector<tfm::LinearOp>> readers;
    fn.walk([&](tfm::LinearOp l) {
      readers[spaces.leader(spaces.act(l.getInput()))].push_back(l);
    });
    // The classifier has no calibration to score a scale with.
    std::set<int> skipped;
    fn.walk([&](tfm::LogitsOp l) { skipped.insert(spaces.leader(spaces.act(l.getInput()))); });
    std::map<int, std::vector<Member>> members;
    for (size_t i = 0; i < spaces.nodes().size(); ++i) {
      const ChannelNode &n = spaces.nodes()[i];
      if (auto w = n.value ? n.value.getDefiningOp<tfm::WeightOp>() : nullptr) {
        int set = spaces.leader(int(i));
        members[set].push_back({w, n.dim});
        // Packed data cannot be rescaled exactly.
        if (weightFormat(cast<RankedTensorType>(w.getType()).getElementType()))
          skipped.insert(set);
      }
    }

    struct Space {
      int set;
      std::vector<CalibratedLinear> readers;
      std::vector<int> lo, hi, chosen;
    };
    std::vector<Space> scalable;
    for (auto &[set, linears] : readers) {
      if (spaces.isFixed(set) || skipped.count(set))
        continue;
      if (failed(checkCalibration(linears)))
        return failure();
      FailureOr<std::vector<CalibratedLinear>> loaded = loadCalibratedLinears(linears);
      if (failed(loaded))
        return failure();
      FailureOr<std::pair<std::vector<int>, std::vector<int>>> range =
          exponentRange(members[set], loaded->front().cols);
      if (failed(range))
        return failure();
      scalable.push_back({set, std::move(*loaded), std::move(range->first),
                          std::move(range->second), {}});
    }
    // The searches touch nothing but their own space's data.
    parallelFor(fn.getContext(), 0, scalable.size(), [&](size_t i) {
      Space &space = scalable[i];
      space.chosen = chooseExponents(space.readers, space.lo, space.hi);
    });
    std::map<int, std::vector<int>> exponents;
    for (Space &space : scalable)
      if (llvm::any_of(space.chosen, [](int e) { return e != 0; }))
        exponents[space.set] = std::move(space.chosen);
    return apply(fn, spaces, exponents);
  }

  /// Every reader of a space to be scaled must carry both statistics, one
  /// value per input channel.
  static LogicalResult checkCalibration(ArrayRef<tfm::LinearOp> linears) {
    for (tfm::LinearOp l : linears) {
      int64_t cols = cast<RankedTensorType>(l.getInput().getType()).getDimSize(1);
      for (const char *name : {kCalibRmsAttr, kCalibAbsMaxAttr}) {
        auto attr = l->getAttrOfType<DenseElementsAttr>(name);
        if (!attr)
          return l.emitOpError() << "has no " << name
                                 << ": lathe-equalize-channels needs calibrated input "
                                    "statistics (lathe-compile calibrates before it runs)";
        if (!attr.getElementType().isF32() || attr.getNumElements() != cols)
          return l.emitOpError() << "expects " << name << " to hold " << cols
                                 << " f32 values (one per input channel), got "
                                 << attr.getType();
      }
    }
    return success();
  }

  /// Per channel, the exponents that keep every value of every member a
  /// normal float (or zero) whatever the other dimension of a matrix gets
  /// (at most kMaxShift either way), so that each scaling is exact. A
  /// channel with no such exponent keeps 0, which the other dimension's
  /// range already allows for.
  static FailureOr<std::pair<std::vector<int>, std::vector<int>>>
  exponentRange(MutableArrayRef<Member> members, int64_t width) {
    std::vector<int> lo(width, -kMaxShift), hi(width, kMaxShift);
    for (Member &m : members) {
      FailureOr<std::vector<float>> values = readWeightFloats(m.weight);
      if (failed(values))
        return failure();
      auto type = cast<RankedTensorType>(m.weight.getType());
      int64_t rows = type.getDimSize(0), cols = type.getRank() == 2 ? type.getDimSize(1) : 1;
      int other = type.getRank() == 2 ? kMaxShift : 0;
      std::vector<double> small(width, INFINITY), large(width, 0.0);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          double v = std::fabs((*values)[r * cols + c]);
          int64_t k = m.dim == 0 ? r : c;
          if (v == 0 || !std::isfinite(v))
            continue;
          small[k] = std::min(small[k], v);
          large[k] = std::max(large[k], v);
        }
      for (int64_t k = 0; k < width; ++k) {
        if (large[k] == 0)
          continue;
        // Shifts up to this keep the smallest value normal, the largest
        // below half the float range.
        int down = int(std::floor(std::log2(small[k] / FLT_MIN))) - other;
        int up = int(std::floor(std::log2(FLT_MAX / 2 / large[k]))) - other;
        // Producers are multiplied by 2^e, consumers divided.
        if (m.dim == 0) {
          lo[k] = std::max(lo[k], -down);
          hi[k] = std::min(hi[k], up);
        } else {
          lo[k] = std::max(lo[k], -up);
          hi[k] = std::min(hi[k], down);
        }
      }
    }
    for (int64_t k = 0; k < width; ++k)
      if (lo[k] > hi[k])
        lo[k] = hi[k] = 0;
    return std::make_pair(std::move(lo), std::move(hi));
  }

  /// The readers' columns [begin, end), and the share of each reader's
  /// weighted energy they hold.
  static std::vector<std::pair<CalibratedLinear, double>>
  sliceColumns(const std::vector<CalibratedLinear> &readers, int64_t begin, int64_t end) {
    std::vector<std::pair<CalibratedLinear, double>> slices;
    for (const CalibratedLinear &r : readers) {
      CalibratedLinear s;
      s.rows = r.rows;
      s.cols = end - begin;
      s.rms2.assign(r.rms2.begin() + begin, r.rms2.begin() + end);
      double part = 0, whole = 0;
      for (int64_t n = 0; n < r.rows; ++n)
        for (int64_t k = 0; k < r.cols; ++k) {
          double v = r.w[n * r.cols + k];
          whole += r.rms2[k] * v * v;
          if (k >= begin && k < end) {
            s.w.push_back(float(v));
            part += r.rms2[k] * v * v;
          }
        }
      slices.push_back({std::move(s), whole > 0 ? part / whole : 0});
    }
    return slices;
  }

  /// The calibrated error of one block of channels with channel k's columns
  /// divided by 2^e[k]: the weights in `format`, plus int8 rounding of the
  /// inputs, relative to the readers' whole weighted energy. Blocks are
  /// quantized on their own, weights and inputs alike, so a block's error
  /// depends on its own exponents only.
  double blockError(const std::vector<std::pair<CalibratedLinear, double>> &slices,
                    const std::vector<int> &e) const {
    double total = 0;
    for (const auto &[slice, share] : slices) {
      double err = calibratedWeightError(slice, spec_, {}, e);
      if (int8Activations_)
        err += calibratedActivationError(slice, slice.cols, {}, e);
      total += share * err;
    }
    return total;
  }

  /// Candidate exponents for one space: SmoothQuant's migration strengths
  /// alpha = 0, 1/8, ..., 1, with the rms and with the largest value as the
  /// activation's magnitude.
  static std::vector<std::vector<int>> candidates(const std::vector<CalibratedLinear> &readers,
                                                  const std::vector<int> &lo,
                                                  const std::vector<int> &hi) {
    const int64_t width = readers.front().cols;
    // w_k: the largest weight of channel k's columns; a_k: its input's rms
    // or largest value. A rescaling of the model multiplies both by
    // inverse powers of two, so p_k = a_k w_k is the same, bit for bit.
    std::vector<double> w(width, 0.0), rms(width, 0.0), absMax(width, 0.0);
    for (const CalibratedLinear &r : readers)
      for (int64_t k = 0; k < width; ++k) {
        rms[k] = std::max(rms[k], double(r.rms[k]));
        absMax[k] = std::max(absMax[k], double(r.absMax[k]));
        for (int64_t n = 0; n < r.rows; ++n)
          w[k] = std::max(w[k], double(std::fabs(r.w[n * r.cols + k])));
      }
    std::vector<std::vector<int>> result;
    for (const std::vector<double> *a : {&rms, &absMax}) {
      std::vector<double> p(width), nonzero;
      for (int64_t k = 0; k < width; ++k) {
        p[k] = (*a)[k] * w[k];
        if (p[k] > 0 && std::isfinite(p[k]))
          nonzero.push_back(p[k]);
      }
      if (nonzero.empty())
        continue;
      std::nth_element(nonzero.begin(), nonzero.begin() + nonzero.size() / 2, nonzero.end());
      const double logMedian = std::log2(nonzero[nonzero.size() / 2]);
      for (int step = 0; step <= kAlphaSteps; ++step) {
        const double alpha = double(step) / kAlphaSteps;
        std::vector<int> e(width, 0);
        for (int64_t k = 0; k < width; ++k) {
          if (!(p[k] > 0) || !std::isfinite(p[k]))
            continue;
          // The activation goes to p^(1-alpha) P^alpha: e_k = round(log2(
          // target / a_k)), split so that a power-of-two change of a_k
          // changes e_k by exactly its exponent.
          int exponent = 0;
          double mantissa = std::frexp((*a)[k], &exponent);
          double target = (1 - alpha) * std::log2(p[k]) + alpha * logMedian;
          int64_t shift = std::llround(target - std::log2(mantissa)) - exponent;
          e[k] = int(std::clamp<int64_t>(shift, lo[k], hi[k]));
        }
        result.push_back(std::move(e));
      }
    }
    return result;
  }

  /// Per block of channels, the candidate with the smallest error, the
  /// identity included (and preferred on ties). Candidates that agree on a
  /// block are scored there once.
  std::vector<int> chooseExponents(const std::vector<CalibratedLinear> &readers,
                                   const std::vector<int> &lo, const std::vector<int> &hi) const {
    const int64_t width = readers.front().cols;
    const int64_t block = std::max<int64_t>(1, int64_t(formats::rowBlockValues(spec_, width)));
    std::vector<std::vector<int>> options = candidates(readers, lo, hi);
    options.insert(options.begin(), std::vector<int>(width, 0));
    std::vector<int> best(width, 0);
    for (int64_t begin = 0; begin < width; begin += block) {
      const int64_t end = std::min(width, begin + block);
      const auto slices = sliceColumns(readers, begin, end);
      std::vector<std::vector<int>> scored;
      double bestError = INFINITY;
      for (const std::vector<int> &option : options) {
        std::vector<int> e(option.begin() + begin, option.begin() + end);
        if (llvm::is_contained(scored, e))
          continue;
        double error = blockError(slices, e);
        if (error < bestError) {
          bestError = error;
          std::copy(e.begin(), e.end(), best.begin() + begin);
        }
        scored.push_back(std::move(e));
      }
    }
    return best;
  }

  LogicalResult apply(func::FuncOp fn, ChannelSpaces &s,
                      const std::map<int, std::vector<int>> &exponents) {
    if (exponents.empty())
      return success();
    auto changed = [&](int set) { return exponents.count(set) != 0; };
    auto exponent = [&](int set, int64_t k) { return set < 0 ? 0 : exponents.at(set)[k]; };
    // Producers (rows, gains) times 2^e, consumers (columns) divided.
    if (failed(rewriteWeights(fn, s, changed, "lathe-equalize-channels",
                              [&](std::vector<float> &values, int64_t rows, int64_t cols,
                                  int rowSet, int colSet) {
                                for (int64_t r = 0; r < rows; ++r)
                                  for (int64_t c = 0; c < cols; ++c) {
                                    float &v = values[r * cols + c];
                                    v = std::ldexp(v, exponent(rowSet, r) - exponent(colSet, c));
                                  }
                              })))
      return failure();
    // The readers' inputs are 2^e_k times larger now.
    rewriteCalibration(fn, s, changed, [&](std::vector<float> &v, int set) {
      for (size_t k = 0; k < v.size(); ++k)
        v[k] = std::ldexp(v[k], exponent(set, int64_t(k)));
    });
    return success();
  }

  formats::FormatSpec spec_;
  bool int8Activations_ = false;
};

} // namespace
} // namespace lathe
