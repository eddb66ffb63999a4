//===- KernelPlanDialect.cpp - plan dialect registration ------------------===//
#include "dialects/KernelPlan/KernelPlanDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
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

LogicalResult HlsLoopAttr::verify(function_ref<InFlightDiagnostic()> emitError, int64_t ii,
                                  int64_t unroll) {
  if (ii < 1)
    return emitError() << "#plan.hls_loop: ii = " << ii << ": expects at least 1";
  if (unroll < 1)
    return emitError() << "#plan.hls_loop: unroll = " << unroll << ": expects at least 1";
  return success();
}

/// The memory arguments of the HLS target's top function.
static bool isHlsPort(StringRef port) {
  return port == "weights" || port == "tables" || port == "cache" || port == "logits";
}

LogicalResult HlsInterfaceAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                       StringRef port, StringRef bundle, int64_t depth) {
  if (!isHlsPort(port))
    return emitError() << "#plan.hls_interface: unknown port '" << port
                       << "' (expected weights, tables, cache or logits)";
  if (bundle.empty() || !llvm::all_of(bundle, [](char c) { return llvm::isAlnum(c) || c == '_'; }))
    return emitError() << "#plan.hls_interface: bundle '" << bundle
                       << "' is not a name (letters, digits, '_')";
  if (depth < 1)
    return emitError() << "#plan.hls_interface: depth = " << depth << ": expects at least 1";
  return success();
}

/// plan.hls on a product: a #plan.hls_loop whose unroll divides the rows
/// of each of its weights.
static LogicalResult verifyHlsLoop(Operation *op, Attribute value) {
  auto loop = dyn_cast<HlsLoopAttr>(value);
  if (!loop)
    return op->emitError() << "'plan.hls' expects a #plan.hls_loop, got " << value;
  SmallVector<Value> weights;
  if (auto m = dyn_cast<MatmulOp>(op))
    weights.push_back(m.getWeight());
  else if (auto m = dyn_cast<MatmulsOp>(op))
    weights.append(m.getWeights().begin(), m.getWeights().end());
  else if (auto l = dyn_cast<LogitsOp>(op))
    weights.push_back(l.getClassifier());
  else
    return op->emitError() << "'plan.hls' belongs on a product (plan.matmul, plan.matmuls, "
                              "plan.logits)";
  for (Value w : weights) {
    const int64_t rows = cast<ShapedType>(w.getType()).getShape()[0];
    if (rows % loop.getUnroll() != 0)
      return op->emitError() << "'plan.hls' unrolls " << loop.getUnroll()
                             << " rows at a time, which does not divide the " << rows
                             << " rows of a weight";
  }
  return success();
}

/// plan.hls_interfaces on the step function: #plan.hls_interface each, one
/// per port.
static LogicalResult verifyHlsInterfaces(Operation *op, Attribute value) {
  auto list = dyn_cast<ArrayAttr>(value);
  if (!list)
    return op->emitError() << "'plan.hls_interfaces' expects an array of #plan.hls_interface";
  llvm::StringSet<> ports;
  for (Attribute a : list) {
    auto i = dyn_cast<HlsInterfaceAttr>(a);
    if (!i)
      return op->emitError() << "'plan.hls_interfaces' expects an array of #plan.hls_interface, "
                                "got "
                             << a;
    if (!ports.insert(i.getPort()).second)
      return op->emitError() << "'plan.hls_interfaces' has port '" << i.getPort() << "' twice";
  }
  return success();
}

LogicalResult PlanDialect::verifyOperationAttribute(Operation *op, NamedAttribute attribute) {
  StringRef name = attribute.getName().getValue();
  if (name == getHlsLoopAttrName())
    return verifyHlsLoop(op, attribute.getValue());
  if (name == getHlsInterfacesAttrName() && !isa<FunctionOpInterface>(op))
    return op->emitError() << "'" << name << "' belongs on the step's function";
  if (name == getHlsInterfacesAttrName())
    return verifyHlsInterfaces(op, attribute.getValue());
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
