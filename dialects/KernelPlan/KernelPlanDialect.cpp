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

LogicalResult LayerGroupsAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                      ArrayRef<int32_t> first, int64_t layers) {
  // The runtime's rules (plan::validatePlan), so that every grouping the IR
  // holds loads as an artifact.
  if (layers < 1)
    return emitError() << "#plan.layer_groups expects at least 1 layer, got " << layers;
  if (first.empty() || first.front() != 0)
    return emitError() << "#plan.layer_groups expects its first group to start at layer 0";
  for (size_t g = 1; g < first.size(); ++g)
    if (first[g] <= first[g - 1] || first[g] >= layers)
      return emitError() << "#plan.layer_groups expects first layers increasing below "
                         << layers << ", got " << first[g] << " after " << first[g - 1];
  return success();
}

LogicalResult PlanDialect::verifyOperationAttribute(Operation *op, NamedAttribute attribute) {
  StringRef name = attribute.getName().getValue();
  if (name == getSpecTreeAttrName() && !isa<SpecTreeAttr>(attribute.getValue()))
    return op->emitError() << "'" << name << "' expects a #plan.spec_tree, got "
                           << attribute.getValue();
  if (name == getLayerGroupsAttrName() && !isa<LayerGroupsAttr>(attribute.getValue()))
    return op->emitError() << "'" << name << "' expects a #plan.layer_groups, got "
                           << attribute.getValue();
  if (name != getSpecTreeAttrName() && name != getLayerGroupsAttrName())
    return op->emitError() << "unknown plan attribute '" << name << "'";
  if (!isa<FunctionOpInterface>(op))
    return op->emitError() << "'" << name << "' belongs on the step's function";
  return success();
}
