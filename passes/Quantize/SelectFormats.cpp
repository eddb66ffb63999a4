//===- SelectFormats.cpp - a format per tensor under a bit budget ---------===//
#include "passes/Passes.h"
#include "passes/Quantize/PackWeights.h"

#include "runtime/formats/RowCodec.h"

#include <cmath>
#include <iomanip>
#include <sstream>

namespace lathe {
#define GEN_PASS_DEF_SELECTFORMATS
#include "passes/Passes.h.inc"
} // namespace lathe

using namespace mlir;

namespace lathe {
namespace {

constexpr const char *kDefaultCandidates[] = {
    "mxfp4_e2m1",    "bfp4:block=32", "bfp4:block=16", "int4:group=32",
    "fp6_4p2",       "mxfp6_e3m2",    "bfp6:block=32", "mxint8",
    "int8:group=32", "bfp8:block=32"};

struct Candidate {
  formats::FormatSpec spec;
  PackedMatrix packed;
};

struct SelectFormatsPass : impl::SelectFormatsBase<SelectFormatsPass> {
  using SelectFormatsBase::SelectFormatsBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    std::vector<formats::FormatSpec> specs;
    std::vector<std::string> names(candidates.begin(), candidates.end());
    if (names.empty())
      names.assign(std::begin(kDefaultCandidates), std::end(kDefaultCandidates));
    for (const std::string &name : names) {
      Expected<formats::FormatSpec> spec = formats::parseFormatSpec(name);
      if (!spec) {
        module.emitError() << "lathe-select-formats: " << spec.error().message();
        return signalPassFailure();
      }
      specs.push_back(*spec);
    }
    if (!(bits > 0)) {
      module.emitError() << "lathe-select-formats: bits must be a positive budget in "
                            "bits per weight, got "
                         << bits;
      return signalPassFailure();
    }

    FailureOr<std::vector<LinearWeight>> weights = collectLinearWeights(module);
    if (failed(weights))
      return signalPassFailure();
    if (weights->empty())
      return;

    // Every tensor in every candidate format.
    std::vector<std::vector<Candidate>> options(weights->size());
    double totalWeights = 0;
    for (size_t t = 0; t < weights->size(); ++t) {
      const LinearWeight &w = (*weights)[t];
      totalWeights += double(w.rows * w.cols);
      for (const formats::FormatSpec &spec : specs) {
        FailureOr<PackedMatrix> packed = packMatrix(w, spec);
        if (failed(packed))
          return signalPassFailure();
        options[t].push_back({spec, std::move(*packed)});
      }
    }
    auto cost = [&](size_t t, size_t o) {
      const LinearWeight &w = (*weights)[t];
      return options[t][o].packed.bitsPerWeight * double(w.rows * w.cols);
    };
    auto loss = [&](size_t t, size_t o) {
      double e = options[t][o].packed.outputError;
      return e * e;
    };

    // Start from the cheapest candidate of each tensor (least error on ties).
    std::vector<size_t> choice(weights->size(), 0);
    double used = 0;
    for (size_t t = 0; t < weights->size(); ++t) {
      for (size_t o = 1; o < specs.size(); ++o)
        if (cost(t, o) < cost(t, choice[t]) ||
            (cost(t, o) == cost(t, choice[t]) && loss(t, o) < loss(t, choice[t])))
          choice[t] = o;
      used += cost(t, choice[t]);
    }
    double budget = bits * totalWeights;
    if (used > budget * (1 + 1e-12)) {
      std::ostringstream msg;
      msg << "lathe-select-formats: a budget of " << bits
          << " bits per weight is impossible: the cheapest candidates already need "
          << std::fixed << std::setprecision(3) << used / totalWeights
          << " bits per weight";
      module.emitError() << msg.str();
      return signalPassFailure();
    }
    // Upgrade by the best error reduction per added bit while it fits.
    while (true) {
      double bestRatio = 0;
      size_t bestT = 0, bestO = 0;
      for (size_t t = 0; t < weights->size(); ++t)
        for (size_t o = 0; o < specs.size(); ++o) {
          double extra = cost(t, o) - cost(t, choice[t]);
          double gain = loss(t, choice[t]) - loss(t, o);
          if (gain <= 0 || used + extra > budget)
            continue;
          double ratio = extra > 0 ? gain / extra : INFINITY;
          if (ratio > bestRatio) {
            bestRatio = ratio;
            bestT = t;
            bestO = o;
          }
        }
      if (bestRatio == 0)
        break;
      used += cost(bestT, bestO) - cost(bestT, choice[bestT]);
      choice[bestT] = bestO;
    }
    for (size_t t = 0; t < weights->size(); ++t)
      replaceWithPacked((*weights)[t], options[t][choice[t]].spec,
                        &options[t][choice[t]].packed);
  }
};

} // namespace
} // namespace lathe
