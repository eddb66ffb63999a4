// --quant-report: a text table of every linear weight's format, bits per
// weight and relative errors, read back from the IR after quantization.
#pragma once

#include "runtime/support/Expected.h"

#include "mlir/IR/BuiltinOps.h"

#include <string>

namespace lathe::compiler {

Status writeQuantReport(mlir::ModuleOp module, const std::string &quantFlag,
                        const std::string &activations, const std::string &path);

} // namespace lathe::compiler
