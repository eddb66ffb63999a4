//===- KernelPlanDialect.cpp - plan dialect registration ------------------===//
#include "dialects/KernelPlan/KernelPlanDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace lathe::kplan;

#include "dialects/KernelPlan/KernelPlanOpsDialect.cpp.inc"
#include "dialects/KernelPlan/KernelPlanEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/KernelPlan/KernelPlanAttrs.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "dialects/KernelPlan/KernelPlanOpsTypes.cpp.inc"

void PlanDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/KernelPlan/KernelPlanOps.cpp.inc"
      >();
  addTypes<
#define GET_TYPEDEF_LIST
#include "dialects/KernelPlan/KernelPlanOpsTypes.cpp.inc"
      >();
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/KernelPlan/KernelPlanAttrs.cpp.inc"
      >();
}

LogicalResult BufferType::verify(function_ref<InFlightDiagnostic()> emitError, int64_t width,
                                 Type elementType) {
  if (width <= 0)
    return emitError() << "buffer width must be positive, got " << width;
  if (!elementType.isF32())
    return emitError() << "buffers hold f32 elements, got " << elementType;
  return success();
}

LogicalResult SpecTreeAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                   ArrayRef<int32_t> branching, int64_t nodes) {
  // The runtime's rules, so that every shape the IR holds loads as an artifact.
  lathe::Expected<lathe::speculative::TreeShape> shape =
      lathe::speculative::makeTreeShape(branching);
  if (!shape)
    return emitError() << shape.error().message();
  if (nodes != shape->nodeCount())
    return emitError() << "#plan.spec_tree has nodes = " << nodes << " but the tree "
                       << shape->str() << " has " << shape->nodeCount()
                       << " (the root included)";
  return success();
}

LogicalResult PlanDialect::verifyOperationAttribute(Operation *op, NamedAttribute attribute) {
  if (attribute.getName() != getSpecTreeAttrName())
    return op->emitError() << "unknown plan attribute '" << attribute.getName().getValue() << "'";
  if (!isa<SpecTreeAttr>(attribute.getValue()))
    return op->emitError() << "'" << getSpecTreeAttrName()
                           << "' expects a #plan.spec_tree, got " << attribute.getValue();
  if (!isa<FunctionOpInterface>(op))
    return op->emitError() << "'" << getSpecTreeAttrName() << "' belongs on the step's function";
  return success();
}
