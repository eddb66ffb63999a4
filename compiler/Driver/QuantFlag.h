// The --quant flag of lathe-compile: which weight compression to apply.
//
//   --quant=none                      unquantized (the default)
//   --quant=FORMAT[:reorder]          every linear weight in FORMAT
//                                     (docs/formats.md: bfp4:block=32, mxfp6_e3m2,
//                                     fp6_4p2, int4:group=32:asym, ...); with
//                                     :reorder, outlier channels are clustered
//                                     first (lathe-reorder-channels). The
//                                     classifier (and an embedding table tied
//                                     to it) is packed too, at 8 bits
//                                     (defaultClassifierFormat); with
//                                     :classifier in FORMAT itself, with
//                                     :float-classifier not at all
//   --quant=mixed:bits=B[:reorder]    a format per linear weight, chosen to
//                                     minimise calibrated error at an average
//                                     of B bits per weight (lathe-select-formats);
//                                     the classifier at int8:group=32, or
//                                     unpacked with :float-classifier
//   ...:no-equalize                   any of these without per-channel
//                                     equalization (lathe-equalize-channels),
//                                     which runs by default wherever the
//                                     model can be calibrated
#pragma once

#include "runtime/formats/FormatSpec.h"
#include "runtime/support/Expected.h"

#include <optional>
#include <string_view>

namespace lathe::compiler {

/// How a quantized build stores the classifier.
enum class ClassifierChoice {
  Default,    // defaultClassifierFormat
  SameFormat, // FORMAT:classifier
  Float,      // :float-classifier: as the checkpoint has it
};

/// The format a quantized build gives its classifier (and a tied embedding):
/// the 8-bit member of the weights' family (INT -> int8 of the same group
/// and symmetry, BFP -> bfp8 of the same block, MX and FP6 -> mxint8), so
/// that the largest matrix of a small model keeps its precision (llama.cpp
/// keeps a 4-bit model's classifier at 6-8 bits) and still runs the int8
/// activation kernels; int8:group=32 for mixed builds (no format given).
formats::FormatSpec defaultClassifierFormat(const std::optional<formats::FormatSpec> &weights);

struct QuantOptions {
  std::optional<formats::FormatSpec> format;  // empty: no quantization
  bool reorder = false;
  /// Per-channel equalization before packing (lathe-equalize-channels);
  /// :no-equalize turns it off. It needs calibration, so it runs only where
  /// a tokenizer is available.
  bool equalize = true;
  ClassifierChoice classifier = ClassifierChoice::Default;
  std::optional<double> mixedBits;            // mixed:bits=B
  /// Whether the model must be calibrated first.
  bool needsCalibration() const { return reorder || mixedBits.has_value(); }
  bool quantizes() const { return format || mixedBits; }
  /// The classifier's format; empty when it stays as the checkpoint has it.
  std::optional<formats::FormatSpec> classifierFormat() const;
};

Expected<QuantOptions> parseQuantFlag(std::string_view text);

} // namespace lathe::compiler
