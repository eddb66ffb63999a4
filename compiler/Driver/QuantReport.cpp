#include "compiler/Driver/QuantReport.h"

#include "dialects/Transformer/TransformerDialect.h"
#include "passes/Quantize/PackWeights.h"
#include "passes/Quantize/WeightData.h"
#include "runtime/formats/RowCodec.h"

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <set>

namespace lathe::compiler {

Status writeQuantReport(mlir::ModuleOp module, const std::string &quantFlag,
                        const std::string &activations, const std::string &path) {
  std::string text = fmt::format("# Lathe quantization report: --quant={}\n", quantFlag);
  text += fmt::format("{:<24} {:>11} {:<20} {:>9} {:>12} {:>12}\n", "tensor", "shape",
                      "format", "bits/w", "rel. error", "output err.");
  double bits = 0, weights = 0;
  std::set<mlir::Operation *> seen;
  module.walk([&](tfm::LinearOp linear) {
    auto w = linear.getWeight().getDefiningOp<tfm::WeightOp>();
    if (!w || !seen.insert(w).second)
      return;
    auto type = mlir::cast<mlir::RankedTensorType>(w.getType());
    int64_t rows = type.getDimSize(0), cols = type.getDimSize(1);
    std::optional<formats::FormatSpec> spec = weightFormat(type.getElementType());
    double b = spec ? 8.0 * double(formats::packedRowBytes(*spec, cols)) / double(cols)
                    : 8.0 * type.getElementTypeBitWidth() / 8.0;
    auto attr = [&](const char *name) {
      auto a = w->getAttrOfType<mlir::FloatAttr>(name);
      return a ? fmt::format("{:.6f}", a.getValueAsDouble()) : std::string("-");
    };
    std::string format = spec ? formats::formatName(*spec)
                              : fmt::format("f{}", type.getElementTypeBitWidth());
    text += fmt::format("{:<24} {:>11} {:<20} {:>9.3f} {:>12} {:>12}\n",
                        w.getSymName().str(), fmt::format("{}x{}", rows, cols), format, b,
                        attr(kQuantErrorAttr), attr(kQuantOutputErrorAttr));
    bits += b * double(rows * cols);
    weights += double(rows * cols);
  });
  text += fmt::format("average {:.3f} bits per weight over {:.0f} linear weights\n",
                      weights > 0 ? bits / weights : 0.0, weights);
  module.walk([&](tfm::LogitsOp logits) {
    auto w = logits.getClassifier().getDefiningOp<tfm::WeightOp>();
    if (!w)
      return;
    auto type = mlir::cast<mlir::RankedTensorType>(w.getType());
    std::optional<formats::FormatSpec> spec = weightFormat(type.getElementType());
    text += fmt::format("classifier {} {}x{} {}\n", w.getSymName().str(), type.getDimSize(0),
                        type.getDimSize(1),
                        spec ? formats::formatName(*spec)
                             : fmt::format("f{}", type.getElementTypeBitWidth()));
  });
  text += fmt::format("activations {} (matmul inputs; int8 where the weight format has "
                      "integer kernels)\n",
                      activations);
  text += "rel. error: ||W - Q(W)|| / ||W||; output err.: the same weighted by the "
          "calibrated input rms of each channel (- without calibration)\n";
  std::ofstream out(path);
  if (!out || !(out << text) || !out.flush())
    return Error(path + ": cannot write the quantization report: " + std::strerror(errno));
  return Status::ok();
}

} // namespace lathe::compiler
