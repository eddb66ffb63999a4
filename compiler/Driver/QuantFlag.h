// The --quant flag of lathe-compile: which weight compression to apply.
//
//   --quant=none                      unquantized (the default)
//   --quant=FORMAT[:reorder]          every linear weight in FORMAT
//                                     (docs/formats.md: bfp4:block=32, mxfp6_e3m2,
//                                     fp6_4p2, int4:group=32:asym, ...); with
//                                     :reorder, outlier channels are clustered
//                                     first (lathe-reorder-channels); with
//                                     :classifier, the classifier (and an
//                                     embedding table tied to it) is packed too
//   --quant=mixed:bits=B[:reorder]    a format per linear weight, chosen to
//                                     minimise calibrated error at an average
//                                     of B bits per weight (lathe-select-formats)
#pragma once

#include "runtime/formats/FormatSpec.h"
#include "runtime/support/Expected.h"

#include <optional>
#include <string_view>

namespace lathe::compiler {

struct QuantOptions {
  std::optional<formats::FormatSpec> format;  // empty: no quantization
  bool reorder = false;
  bool classifier = false;                    // FORMAT:classifier
  std::optional<double> mixedBits;            // mixed:bits=B
  /// Whether the model must be calibrated first.
  bool needsCalibration() const { return reorder || mixedBits.has_value(); }
  bool quantizes() const { return format || mixedBits; }
};

Expected<QuantOptions> parseQuantFlag(std::string_view text);

} // namespace lathe::compiler
