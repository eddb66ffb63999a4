//===- TransformerDialect.cpp - tfm dialect registration ------------------===//
#include "dialects/Transformer/TransformerDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace lathe::tfm;

#include "dialects/Transformer/TransformerOpsDialect.cpp.inc"
#include "dialects/Transformer/TransformerEnums.cpp.inc"
#include "dialects/Transformer/TransformerTypeInterfaces.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/Transformer/TransformerAttrs.cpp.inc"

/// `!tfm.kv_quant`'s options after its block: `, group = G` and `, window =
/// R` in that order, each left out when 0.
static ParseResult parseKvQuantOptions(AsmParser &parser, int64_t &keyGroup,
                                       int64_t &window) {
  keyGroup = 0;
  window = 0;
  bool group = false, windowed = false;
  while (succeeded(parser.parseOptionalComma())) {
    const SMLoc at = parser.getCurrentLocation();
    if (!group && !windowed && succeeded(parser.parseOptionalKeyword("group"))) {
      group = true;
      if (parser.parseEqual() || parser.parseInteger(keyGroup))
        return failure();
    } else if (!windowed && succeeded(parser.parseOptionalKeyword("window"))) {
      windowed = true;
      if (parser.parseEqual() || parser.parseInteger(window))
        return failure();
    } else {
      return parser.emitError(at, windowed ? "expected '>'"
                                  : group  ? "expected 'window'"
                                           : "expected 'group' or 'window'");
    }
  }
  return success();
}

static void printKvQuantOptions(AsmPrinter &printer, int64_t keyGroup, int64_t window) {
  if (keyGroup != 0)
    printer << ", group = " << keyGroup;
  if (window != 0)
    printer << ", window = " << window;
}

#define GET_TYPEDEF_CLASSES
#include "dialects/Transformer/TransformerOpsTypes.cpp.inc"

void TransformerDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/Transformer/TransformerOps.cpp.inc"
      >();
  addTypes<
#define GET_TYPEDEF_LIST
#include "dialects/Transformer/TransformerOpsTypes.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/Transformer/TransformerAttrs.cpp.inc"
      >();
}
