// The --quant flag of lathe-compile: which weight compression to apply.
//
//   --quant=none                      unquantized (the default)
//   --quant=FORMAT[:reorder]          every linear weight in FORMAT
//                                     (docs/formats.md: bfp4:block=32, mxfp6_e3m2,
//                                     fp6_4p2, int4:group=32:asym, ...)
#pragma once

#include "runtime/formats/FormatSpec.h"
#include "runtime/support/Expected.h"

#include <optional>
#include <string_view>

namespace lathe::compiler {

struct QuantOptions {
  std::optional<formats::FormatSpec> format;  // empty: no quantization
};

Expected<QuantOptions> parseQuantFlag(std::string_view text);

} // namespace lathe::compiler
