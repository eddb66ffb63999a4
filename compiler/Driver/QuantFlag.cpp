#include "compiler/Driver/QuantFlag.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

namespace lathe::compiler {

Expected<QuantOptions> parseQuantFlag(std::string_view text) {
  QuantOptions options;
  if (text.empty())
    return Error("--quant is empty (use --quant=none or a format such as bfp4)");
  if (text == "none")
    return options;
  // ':reorder' may stand anywhere after the format name; the rest is the format.
  std::string format;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = std::min(text.find(':', pos), text.size());
    std::string_view part = text.substr(pos, end - pos);
    if ((part == "reorder" || part == "classifier") && pos > 0) {
      bool &flag = part == "reorder" ? options.reorder : options.classifier;
      if (flag)
        return Error("--quant: '" + std::string(part) + "' is given twice");
      flag = true;
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
    if (options.classifier)
      return Error("--quant=" + std::string(text) +
                   ": ':classifier' applies to a single format, not to mixed");
    options.mixedBits = bits;
    return options;
  }
  Expected<formats::FormatSpec> spec = formats::parseFormatSpec(format);
  if (!spec)
    return Error("--quant: " + spec.error().message());
  options.format = *spec;
  return options;
}

} // namespace lathe::compiler
