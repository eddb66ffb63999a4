#include "compiler/Driver/QuantFlag.h"

namespace lathe::compiler {

Expected<QuantOptions> parseQuantFlag(std::string_view text) {
  QuantOptions options;
  if (text.empty())
    return Error("--quant is empty (use --quant=none or a format such as bfp4)");
  if (text == "none")
    return options;
  Expected<formats::FormatSpec> spec = formats::parseFormatSpec(text);
  if (!spec)
    return Error("--quant: " + spec.error().message());
  options.format = *spec;
  return options;
}

} // namespace lathe::compiler
