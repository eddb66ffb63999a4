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
