#include "compiler/Driver/QuantFlag.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

namespace lathe::compiler {

formats::FormatSpec defaultClassifierFormat(const std::optional<formats::FormatSpec> &weights) {
  using formats::FormatKind;
  formats::FormatSpec spec;
  spec.kind = FormatKind::INT8;
  spec.blockSize = 32;
  if (!weights)
    return spec;
  switch (weights->kind) {
  case FormatKind::INT8:
  case FormatKind::INT4:
    spec.blockSize = weights->blockSize;
    spec.symmetric = weights->symmetric;
    return spec;
  case FormatKind::BFP:
    spec.kind = FormatKind::BFP;
    spec.mantissaBits = 8;
    spec.blockSize = weights->blockSize;
    return spec;
  case FormatKind::MXINT8:
  case FormatKind::MXFP8_E4M3:
  case FormatKind::MXFP8_E5M2:
    return *weights; // already 8 bits
  default:           // MXFP6/MXFP4, FP6 4+2
    spec.kind = FormatKind::MXINT8;
    return spec;
  }
}

std::optional<formats::FormatSpec> QuantOptions::classifierFormat() const {
  if (!quantizes() || classifier == ClassifierChoice::Float)
    return std::nullopt;
  if (classifier == ClassifierChoice::SameFormat)
    return format;
  return defaultClassifierFormat(format);
}

Expected<QuantOptions> parseQuantFlag(std::string_view text) {
  QuantOptions options;
  if (text.empty())
    return Error("--quant is empty (use --quant=none or a format such as bfp4)");
  if (text == "none")
    return options;
  // ':reorder', ':no-equalize' and the classifier choices may stand anywhere
  // after the format name; the rest is the format.
  std::string format;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = std::min(text.find(':', pos), text.size());
    std::string_view part = text.substr(pos, end - pos);
    if (part == "reorder" && pos > 0) {
      if (options.reorder)
        return Error("--quant: 'reorder' is given twice");
      options.reorder = true;
    } else if (part == "no-equalize" && pos > 0) {
      if (!options.equalize)
        return Error("--quant: 'no-equalize' is given twice");
      options.equalize = false;
    } else if ((part == "classifier" || part == "float-classifier") && pos > 0) {
      if (options.classifier != ClassifierChoice::Default)
        return Error("--quant: give one of ':classifier' and ':float-classifier', once");
      options.classifier =
          part == "classifier" ? ClassifierChoice::SameFormat : ClassifierChoice::Float;
    } else {
      format += (format.empty() ? "" : ":") + std::string(part);
    }
    pos = end + 1;
  }
  if (format == "mixed" || format.rfind("mixed:", 0) == 0) {
    std::string_view rest = std::string_view(format).substr(5);
    if (rest.rfind(":bits=", 0) != 0)
      return Error("--quant=" + std::string(text) + ": expected mixed:bits=B, e.g. mixed:bits=4.5");
    std::string number(rest.substr(6));
    char *end = nullptr;
    double bits = std::strtod(number.c_str(), &end);
    if (number.empty() || end != number.c_str() + number.size() || !(bits > 0) ||
        !std::isfinite(bits))
      return Error("--quant=" + std::string(text) + ": bits must be a positive number, got '" +
                   number + "'");
    if (options.classifier == ClassifierChoice::SameFormat)
      return Error("--quant=" + std::string(text) +
                   ": ':classifier' applies to a single format, not to mixed");
    options.mixedBits = bits;
    return options;
  }
  Expected<formats::FormatSpec> spec = formats::parseFormatSpec(format);
  if (!spec) {
    // A misspelt flag of --quant's own reaches the format parser as an
    // option of the format: name both kinds.
    std::string message = spec.error().message();
    if (message.find("unknown option") != std::string::npos && message.back() == ')')
      message.insert(message.size() - 1,
                     "; or one of --quant's :reorder, :no-equalize, :classifier, "
                     ":float-classifier");
    return Error("--quant: " + message);
  }
  options.format = *spec;
  return options;
}

} // namespace lathe::compiler
