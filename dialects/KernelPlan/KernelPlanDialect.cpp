//===- KernelPlanDialect.cpp - plan dialect registration ------------------===//
#include "dialects/KernelPlan/KernelPlanDialect.h"

#include "runtime/formats/FormatSpec.h"
#include "runtime/formats/RowCodec.h"

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

LogicalResult HlsArrayPartitionAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                            StringRef array, HlsPartitionKind kind,
                                            int64_t factor, int64_t dim) {
  if (array.empty() || !llvm::all_of(array, [](char c) { return llvm::isAlnum(c) || c == '_'; }))
    return emitError() << "#plan.hls_array_partition: array '" << array
                       << "' is not a name (letters, digits, '_')";
  if (kind == HlsPartitionKind::complete && factor != 0)
    return emitError() << "#plan.hls_array_partition: a complete partition takes no factor "
                          "(one bank per element), got factor = "
                       << factor;
  if (kind != HlsPartitionKind::complete && factor < 2)
    return emitError() << "#plan.hls_array_partition: a " << stringifyHlsPartitionKind(kind)
                       << " partition expects factor = 2 or more banks, got " << factor;
  if (dim < 1)
    return emitError() << "#plan.hls_array_partition: dim = " << dim
                       << ": expects a dimension from 1";
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

/// The weights a product reads; empty for any other op.
static SmallVector<Value> productWeights(Operation *op) {
  if (auto m = dyn_cast<MatmulOp>(op))
    return {m.getWeight()};
  if (auto m = dyn_cast<MatmulsOp>(op))
    return SmallVector<Value>(m.getWeights().begin(), m.getWeights().end());
  if (auto l = dyn_cast<LogitsOp>(op))
    return {l.getClassifier()};
  return {};
}

/// Whether a product rounds its input to int8 (#plan.activations<int8>).
static bool takesInt8(Operation *op) {
  auto a = op->getAttrOfType<ActivationsAttr>("activations");
  return a && a.getValue() == Activations::int8;
}

/// The rows a product computes at once: its plan.hls unroll, 1 without.
static int64_t unrollOf(Operation *op) {
  auto loop = op->getAttrOfType<HlsLoopAttr>(PlanDialect::getHlsLoopAttrName());
  return loop ? loop.getUnroll() : 1;
}

/// plan.hls on a kernel: a #plan.hls_loop; on a product its unroll divides
/// the rows of each of its weights, on the other kernels it is 1.
static LogicalResult verifyHlsLoop(Operation *op, Attribute value) {
  auto loop = dyn_cast<HlsLoopAttr>(value);
  if (!loop)
    return op->emitError() << "'plan.hls' expects a #plan.hls_loop, got " << value;
  SmallVector<Value> weights = productWeights(op);
  if (weights.empty()) {
    if (!isa<EmbeddingOp, RMSNormOp, AddRMSNormOp, RopeOp, AttentionOp, SiluMulOp, BiasAddOp,
             AddOp>(op))
      return op->emitError() << "'plan.hls' belongs on a kernel (a product, plan.embedding, "
                                "plan.rms_norm, plan.add_rms_norm, plan.rope, plan.attention, "
                                "plan.silu_mul, plan.bias_add, plan.add)";
    if (loop.getUnroll() != 1)
      return op->emitError() << "'plan.hls' unrolls " << loop.getUnroll()
                             << " rows at a time, but only a product has rows to unroll "
                                "(expected unroll = 1)";
    // The HLS attention takes float queries.
    if (auto a = op->getAttrOfType<ActivationsAttr>("activations");
        a && a.getValue() == Activations::bf16)
      return op->emitError() << "'plan.hls' schedules attention of float queries; this one "
                                "asks for bf16 (compile with --activations=float)";
    return success();
  }
  // The HLS kernels (codegen/HLS) multiply float or int8 inputs only.
  if (auto a = op->getAttrOfType<ActivationsAttr>("activations");
      a && a.getValue() == Activations::bf16)
    return op->emitError() << "'plan.hls' schedules products of float or int8 activations; this "
                              "one asks for bf16 (compile with --activations=float)";
  for (Value w : weights) {
    const int64_t rows = cast<ShapedType>(w.getType()).getShape()[0];
    if (rows % loop.getUnroll() != 0)
      return op->emitError() << "'plan.hls' unrolls " << loop.getUnroll()
                             << " rows at a time, which does not divide the " << rows
                             << " rows of a weight";
  }
  return success();
}

/// The int8 codes a product's input is rounded to for `weight`: its
/// columns padded to whole weight blocks. 0 when the format has no blocks.
static int64_t codesLength(Value weight) {
  auto type = cast<ShapedType>(weight.getType());
  auto quantized = dyn_cast<lathe::tfm::QuantizedTypeInterface>(type.getElementType());
  if (!quantized)
    return 0;
  lathe::Expected<lathe::formats::FormatSpec> spec =
      lathe::formats::parseFormatSpec(quantized.getFormatName());
  if (!spec)
    return 0;
  const int64_t cols = type.getShape()[1];
  const int64_t block = int64_t(lathe::formats::rowBlockValues(*spec, cols));
  return block > 0 ? (cols + block - 1) / block * block : 0;
}

/// plan.hls_partitions on a product: #plan.hls_array_partition each, of the
/// local arrays its generated code has, once each, split so that the
/// loops that read them in parallel have the banks they need.
static LogicalResult verifyHlsPartitions(Operation *op, Attribute value) {
  auto list = dyn_cast<ArrayAttr>(value);
  if (!list)
    return op->emitError() << "'plan.hls_partitions' expects an array of "
                              "#plan.hls_array_partition";
  SmallVector<Value> weights = productWeights(op);
  if (weights.empty())
    return op->emitError() << "'plan.hls_partitions' belongs on a product (plan.matmul, "
                              "plan.matmuls, plan.logits)";
  const bool int8 = takesInt8(op);
  llvm::StringSet<> arrays;
  for (Attribute a : list) {
    auto p = dyn_cast<HlsArrayPartitionAttr>(a);
    if (!p)
      return op->emitError() << "'plan.hls_partitions' expects an array of "
                                "#plan.hls_array_partition, got "
                             << a;
    const StringRef array = p.getArray();
    if (array != (int8 ? "codes" : "rows"))
      return op->emitError() << "'plan.hls_partitions': a product with "
                             << (int8 ? "int8" : "float") << " activations has no local array '"
                             << array << "' (expected '" << (int8 ? "codes" : "rows") << "')";
    if (!arrays.insert(array).second)
      return op->emitError() << "'plan.hls_partitions' partitions '" << array << "' twice";
    if (p.getDim() != 1)
      return op->emitError() << "'plan.hls_partitions': '" << array << "' is read in parallel "
                             << "along dimension 1, not " << p.getDim();
    if (p.getKind() == HlsPartitionKind::complete)
      continue;
    if (array == "rows") {
      // [unroll][columns]: each of the rows at once reads its own row.
      const int64_t unroll = unrollOf(op);
      if (unroll % p.getFactor() != 0)
        return op->emitError() << "'plan.hls_partitions' splits 'rows' into " << p.getFactor()
                               << " banks, which does not divide the " << unroll
                               << " rows the product computes at once (#plan.hls_loop)";
      continue;
    }
    for (Value w : weights)
      if (const int64_t length = codesLength(w); length > 0 && length % p.getFactor() != 0)
        return op->emitError() << "'plan.hls_partitions' splits 'codes' into " << p.getFactor()
                               << " banks, which does not divide its " << length << " codes";
  }
  return success();
}

/// plan.hls_dataflow on a float product whose stages can overlap: at
/// least two row groups. (Its input is read by the accumulating stage only
/// and its outputs written by it only: a product's output is never its
/// input, which the ops' verifiers check.)
static LogicalResult verifyHlsDataflow(Operation *op, Attribute value) {
  if (!isa<HlsDataflowAttr>(value))
    return op->emitError() << "'plan.hls_dataflow' expects a #plan.hls_dataflow, got " << value;
  SmallVector<Value> weights = productWeights(op);
  if (weights.empty())
    return op->emitError() << "'plan.hls_dataflow' belongs on a product (plan.matmul, "
                              "plan.matmuls, plan.logits)";
  if (takesInt8(op))
    return op->emitError() << "'plan.hls_dataflow' needs float activations: the int8 product "
                              "has no decode stage to overlap";
  const int64_t unroll = unrollOf(op);
  for (Value w : weights)
    if (cast<ShapedType>(w.getType()).getShape()[0] / unroll < 2)
      return op->emitError() << "'plan.hls_dataflow': a weight of "
                             << cast<ShapedType>(w.getType()).getShape()[0] << " rows at "
                             << unroll << " at a time is one row group, nothing to overlap";
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
  if (name == getHlsPartitionsAttrName())
    return verifyHlsPartitions(op, attribute.getValue());
  if (name == getHlsDataflowAttrName())
    return verifyHlsDataflow(op, attribute.getValue());
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
