#include "codegen/KernelPlan/BuildKernelPlan.h"

#include "dialects/KernelPlan/KernelPlanDialect.h"
#include "dialects/Transformer/TransformerDialect.h"
#include "passes/Passes.h"
#include "passes/Plan/LayerStarts.h"
#include "runtime/plan/StepCodec.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/OperationSupport.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <set>

using namespace mlir;

namespace lathe::codegen {

void buildPlanPipeline(OpPassManager &pm, const PlanOptions &options) {
  pm.addPass(createLowerToPlan());
  OpPassManager &fn = pm.nest<func::FuncOp>();
  PlanActivationsOptions activations;
  activations.precision = plan::activationsName(options.activations);
  activations.fallback = plan::activationsName(options.fallback);
  activations.maxInt8Width = options.maxInt8Width;
  activations.maxBf16Width = options.maxBf16Width;
  fn.addPass(createPlanActivations(activations));
  if (options.fuse) {
    fn.addPass(createPlanGroupMatmuls());
    fn.addPass(createPlanFuseAddRMSNorm());
  }
  // Last: grouping and fusion change which values live at once.
  fn.addPass(createPlanReuseBuffers());
  if (!options.specTree.empty()) {
    PlanSpecTreeOptions tree;
    tree.shape = options.specTree;
    fn.addPass(createPlanSpecTree(tree));
  }
  // After every pass that moves kernels: the groups' cuts are step indices.
  if (options.prefillGroups != 0 || options.groupBytes != 0) {
    GroupLayersOptions groups;
    groups.groups = options.prefillGroups;
    groups.bytes = options.groupBytes;
    fn.addPass(createGroupLayers(groups));
  }
}

func::FuncOp LoweredModel::forward() const {
  ModuleOp module = planModule.get();
  return module ? module.lookupSymbol<func::FuncOp>("forward") : func::FuncOp();
}

namespace {

plan::Activations toPlanActivations(kplan::Activations a) {
  switch (a) {
  case kplan::Activations::int8: return plan::Activations::Int8;
  case kplan::Activations::bf16: return plan::Activations::Bf16;
  case kplan::Activations::float_: break;
  }
  return plan::Activations::Float;
}

int64_t widthOf(Value buffer) { return cast<kplan::BufferType>(buffer.getType()).getWidth(); }

class PlanSerializer {
public:
  PlanSerializer(LoweredModel &model, func::FuncOp fn) : model_(model), fn_(fn) {}

  LogicalResult run() {
    if (fn_.getNumArguments() != 3 || !isa<tfm::KVCacheType>(fn_.getArgument(2).getType()))
      return fn_.emitOpError()
             << "expects arguments (tokens, positions, !tfm.kv_cache) for lowering";
    auto cache = cast<tfm::KVCacheType>(fn_.getArgument(2).getType());
    Type element = cache.getElementType();
    if (auto quant = dyn_cast<tfm::KVQuantType>(element)) {
      formats::KvKind kind = formats::KvKind::Bfp4;
      if (quant.getKind() == tfm::KVQuantKind::int8)
        kind = formats::KvKind::Int8;
      else if (quant.getKind() == tfm::KVQuantKind::bfp8)
        kind = formats::KvKind::Bfp8;
      else if (quant.getKind() == tfm::KVQuantKind::int4)
        kind = formats::KvKind::Int4;
      else if (quant.getKind() == tfm::KVQuantKind::int2)
        kind = formats::KvKind::Int2;
      model_.plan.kvFormat = {kind, static_cast<int32_t>(quant.getBlock()),
                              static_cast<int32_t>(quant.getKeyGroup()),
                              static_cast<int32_t>(quant.getWindow())};
      model_.plan.kvElement = ElementType::F32;
    } else {
      model_.plan.kvElement = element.isF16()    ? ElementType::F16
                              : element.isBF16() ? ElementType::BF16
                                                 : ElementType::F32;
      model_.plan.kvFormat = formats::plainKvFormat(model_.plan.kvElement);
    }
    plan::ModelConfig &c = model_.config;
    c.layers = cache.getLayers();
    c.kvHeads = cache.getKvHeads();
    c.headDim = cache.getHeadDim();
    c.context = cache.getCapacity();
    model_.plan.kvLayers = static_cast<uint32_t>(c.layers);
    model_.plan.kvWidth = static_cast<uint64_t>(c.kvHeads * c.headDim);
    if (auto name = fn_->getParentOfType<ModuleOp>()->getAttrOfType<StringAttr>(
            "tfm.model_name"))
      c.name = name.str();
    for (Operation &op : fn_.getBody().front())
      if (failed(serialize(op)))
        return failure();
    if (c.vocab == 0 || c.dim == 0 || c.heads == 0)
      return fn_.emitOpError() << "expects an embedding, attention and logits to lower";
    if (static_cast<int64_t>(attentionLayers_.size()) != c.layers)
      return fn_.emitOpError() << "has a KV cache of " << c.layers
                               << " layers but attention uses " << attentionLayers_.size();
    if (c.hidden == 0)
      c.hidden = c.dim;
    return success();
  }

private:
  /// One op of the plan: its buffer, its tensor, or its step.
  LogicalResult serialize(Operation &op) {
    plan::KernelPlan &p = model_.plan;
    return llvm::TypeSwitch<Operation *, LogicalResult>(&op)
        .Case([&](tfm::WeightOp w) { return addTensor(w); })
        .Case([&](kplan::BufferOp b) {
          model_.bufferIndex[b.getResult()] = static_cast<uint32_t>(p.bufferWidths.size());
          p.bufferWidths.push_back(static_cast<uint64_t>(widthOf(b.getResult())));
          return success();
        })
        .Case([&](func::ReturnOp r) -> LogicalResult {
          if (r.getNumOperands() != 1 || !isa<kplan::BufferType>(r.getOperand(0).getType()))
            return r.emitOpError() << "expects to return the logits buffer";
          p.logits = model_.bufferIndex.lookup(r.getOperand(0));
          return success();
        })
        .Default([&](Operation *kernel) -> LogicalResult {
          if (!isa<kplan::PlanDialect>(kernel->getDialect()))
            return kernel->emitOpError() << "cannot be lowered to a " << p.target
                                         << " kernel plan";
          if (failed(readModel(*kernel)))
            return failure();
          FailureOr<plan::Step> step = serializeKernel(*kernel);
          if (failed(step))
            return failure();
          model_.stepIndex[kernel] = static_cast<uint32_t>(p.steps.size());
          p.steps.push_back(std::move(*step));
          return success();
        });
  }

  /// The one generic path from a plan op to the runtime's step
  /// (runtime/plan/StepCodec.h): the step kind named like the op, its
  /// fields taken in the order the step declares them: operands in order
  /// (the function's arguments left out, a variadic operand as a list),
  /// attributes by their names.
  FailureOr<plan::Step> serializeKernel(Operation &op) {
    const std::string kind = op.getName().stripDialect().str();
    std::span<const plan::FieldInfo> fields = plan::stepFields(kind);
    if (fields.empty())
      return op.emitOpError() << "has no step in the runtime's schedule";
    // Operand groups: one per ODS operand, function arguments dropped.
    SmallVector<OperandRange> groups;
    auto segments = dyn_cast_or_null<DenseI32ArrayAttr>(op.getInherentAttr(
        "operandSegmentSizes").value_or(Attribute()));
    unsigned at = 0;
    auto addGroup = [&](unsigned size) {
      OperandRange group = op.getOperands().slice(at, size);
      at += size;
      if (size == 1 && isa<BlockArgument>(group.front()))
        return;
      groups.push_back(group);
    };
    if (segments)
      for (int32_t size : segments.asArrayRef())
        addGroup(static_cast<unsigned>(size));
    else
      for (unsigned i = 0, n = op.getNumOperands(); i < n; ++i)
        addGroup(1);

    plan::FlatStep flat;
    flat.kind = kind;
    size_t next = 0;
    for (const plan::FieldInfo &field : fields) {
      switch (field.role) {
      case plan::FieldRole::Buffer:
      case plan::FieldRole::Tensor:
      case plan::FieldRole::BufferList:
      case plan::FieldRole::TensorList: {
        if (next >= groups.size())
          return op.emitOpError() << "has no operand for the step's field '" << field.name << "'";
        OperandRange group = groups[next++];
        const bool list = field.role == plan::FieldRole::BufferList ||
                          field.role == plan::FieldRole::TensorList;
        const bool buffers = field.role == plan::FieldRole::Buffer ||
                             field.role == plan::FieldRole::BufferList;
        if (list)
          flat.ints.push_back(static_cast<int64_t>(group.size()));
        else if (group.size() != 1)
          return op.emitOpError() << "expects one operand for '" << field.name << "'";
        for (Value v : group) {
          auto &index = buffers ? model_.bufferIndex : model_.tensorIndex;
          auto found = index.find(v);
          if (found == index.end())
            return op.emitOpError() << "operand for '" << field.name << "' is not a "
                                    << (buffers ? "plan.buffer" : "tfm.weight");
          flat.ints.push_back(found->second);
        }
        break;
      }
      case plan::FieldRole::Number:
      case plan::FieldRole::Float:
      case plan::FieldRole::Enum: {
        Attribute attr = op.getInherentAttr(field.name).value_or(Attribute());
        if (auto i = dyn_cast_or_null<IntegerAttr>(attr))
          flat.ints.push_back(i.getInt());
        else if (auto f = dyn_cast_or_null<FloatAttr>(attr))
          flat.floats.push_back(static_cast<float>(f.getValueAsDouble()));
        else if (auto layout = dyn_cast_or_null<tfm::RopeLayoutAttr>(attr))
          flat.ints.push_back(int64_t(tfm::toPlanLayout(layout.getValue())));
        else if (auto activations = dyn_cast_or_null<kplan::ActivationsAttr>(attr))
          flat.ints.push_back(int64_t(toPlanActivations(activations.getValue())));
        else if (!attr && field.role == plan::FieldRole::Enum)
          flat.ints.push_back(0); // a defaulted enum: its first value
        else if (!attr && field.role == plan::FieldRole::Float)
          flat.floats.push_back(0.0f); // a defaulted float (RoPE scaling): zero, off
        else if (!attr && field.role == plan::FieldRole::Number)
          flat.ints.push_back(0); // a defaulted count: zero
        else
          return op.emitOpError() << "has no attribute '" << field.name
                                  << "' the runtime's step can store";
        break;
      }
      case plan::FieldRole::NumberList: {
        // A list's length, then its items; an absent (defaulted) array is
        // an empty list.
        Attribute attr = op.getInherentAttr(field.name).value_or(Attribute());
        auto array = dyn_cast_or_null<DenseI32ArrayAttr>(attr);
        if (attr && !array)
          return op.emitOpError() << "has no attribute '" << field.name
                                  << "' the runtime's step can store";
        flat.ints.push_back(array ? int64_t(array.size()) : 0);
        if (array)
          for (int32_t v : array.asArrayRef())
            flat.ints.push_back(v);
        break;
      }
      }
    }
    if (next != groups.size())
      return op.emitOpError() << "has operands the runtime's step does not store";
    Expected<plan::Step> step = plan::unflatten(flat.kind, flat.ints, flat.floats);
    if (!step)
      return op.emitOpError() << step.error().message();
    return std::move(*step);
  }

  /// What the model's config learns from a kernel, and the checks of the
  /// function's arguments that the runtime relies on.
  LogicalResult readModel(Operation &op) {
    plan::ModelConfig &c = model_.config;
    return llvm::TypeSwitch<Operation *, LogicalResult>(&op)
        .Case([&](kplan::EmbeddingOp e) -> LogicalResult {
          if (e.getTokens() != fn_.getArgument(0))
            return e.emitOpError() << "expects the function's token argument";
          c.dim = widthOf(e.getOut());
          return success();
        })
        .Case([&](kplan::RMSNormOp n) {
          normEpsilon(n.getEpsilon().convertToFloat());
          return success();
        })
        .Case([&](kplan::AddRMSNormOp n) {
          normEpsilon(n.getEpsilon().convertToFloat());
          return success();
        })
        .Case([&](kplan::RopeOp r) -> LogicalResult {
          if (r.getPositions() != fn_.getArgument(1))
            return r.emitOpError() << "expects the function's positions argument";
          if (first_.insert("rope").second)
            c.ropeTheta = r.getTheta().convertToFloat();
          if (r.getHeadDim() != c.headDim && c.headDim != 0)
            return r.emitOpError() << "head_dim " << r.getHeadDim()
                                   << " differs from the attention's " << c.headDim;
          return success();
        })
        .Case([&](kplan::AttentionOp a) -> LogicalResult {
          if (a.getPositions() != fn_.getArgument(1) || a.getCache() != fn_.getArgument(2))
            return a.emitOpError() << "expects the function's positions and cache arguments";
          c.heads = a.getHeads();
          if (!attentionLayers_.insert(a.getLayer()).second)
            return a.emitOpError() << "reuses KV cache layer " << a.getLayer();
          return success();
        })
        .Case([&](kplan::SiluMulOp s) {
          c.hidden = widthOf(s.getOut());
          return success();
        })
        .Case([&](kplan::LogitsOp l) {
          c.vocab = widthOf(l.getOut());
          return success();
        })
        .Default([](Operation *) { return success(); });
  }

  void normEpsilon(float epsilon) {
    if (first_.insert("norm").second)
      model_.config.normEps = epsilon;
  }

  LogicalResult addTensor(tfm::WeightOp w) {
    auto type = cast<RankedTensorType>(w.getResult().getType());
    artifact::TensorData t;
    t.info.name = w.getSymName().str();
    Type et = type.getElementType();
    t.info.type = et.isF32() ? ElementType::F32
                  : et.isF16() ? ElementType::F16
                               : ElementType::BF16;
    t.info.shape.assign(type.getShape().begin(), type.getShape().end());
    if (auto quantized = dyn_cast<tfm::QuantizedTypeInterface>(et)) {
      Expected<formats::FormatSpec> spec =
          formats::parseFormatSpec(quantized.getFormatName());
      if (!spec)
        return w.emitOpError() << spec.error().message();
      t.info.quant = *spec;
    }
    size_t bytes = static_cast<size_t>(t.info.storageBytes());
    if (bytes == 0)
      return w.emitOpError() << "has a shape the format " << t.info.formatName()
                             << " cannot store";
    if (auto res = dyn_cast<DenseResourceElementsAttr>(w.getValue())) {
      AsmResourceBlob *blob = res.getRawHandle().getBlob();
      if (!blob)
        return w.emitOpError() << "has no data for resource '"
                               << res.getRawHandle().getKey() << "'";
      ArrayRef<char> data = blob->getData();
      if (data.size() != bytes)
        return w.emitOpError() << "holds " << data.size() << " bytes, "
                               << t.info.formatName() << " needs " << bytes;
      t.bytes = {reinterpret_cast<const uint8_t *>(data.data()), data.size()};
    } else if (auto dense = dyn_cast<DenseElementsAttr>(w.getValue())) {
      // Splats are expanded in memory; real checkpoints arrive as resources.
      constexpr size_t kMaxExpandedBytes = size_t(1) << 32;
      if (dense.isSplat() && bytes > kMaxExpandedBytes)
        return w.emitOpError() << "is a splat of " << bytes
                               << " bytes; splat weights above 4 GiB are not supported";
      // Splats store one element: expand them into owned storage.
      ArrayRef<char> raw = dense.getRawData();
      size_t esz = t.info.quant ? 1 : elementSize(t.info.type);
      if (!dense.isSplat() && raw.size() != bytes)
        return w.emitOpError() << "holds " << raw.size() << " bytes, "
                               << t.info.formatName() << " needs " << bytes;
      auto owned = std::make_unique<std::vector<uint8_t>>(bytes);
      for (size_t i = 0; i < bytes; i += esz)
        std::memcpy(owned->data() + i, raw.data() + (dense.isSplat() ? 0 : i), esz);
      t.bytes = *owned;
      model_.ownedBytes.push_back(std::move(owned));
    } else {
      return w.emitOpError() << "expects a dense or dense_resource value";
    }
    model_.tensorIndex[w.getResult()] = static_cast<uint32_t>(model_.tensors.size());
    model_.tensors.push_back(std::move(t));
    return success();
  }

  LoweredModel &model_;
  func::FuncOp fn_;
  std::set<std::string> first_;
  std::set<int64_t> attentionLayers_;
};

/// Each group's first layer and the step at which it begins, where
/// lathe-group-layers cut the layers (passes/Plan/LayerStarts.h); the
/// first group begins at step 0, with the embedding.
LogicalResult serializeLayerGroups(LoweredModel &model, func::FuncOp fn,
                                   kplan::LayerGroupsAttr groups) {
  FailureOr<SmallVector<Operation *>> starts = layerStarts(fn, "plan.layer_groups");
  if (failed(starts))
    return failure();
  if (static_cast<int64_t>(starts->size()) != groups.getLayers())
    return fn.emitOpError() << "has " << starts->size() << " layers but its "
                            << "plan.layer_groups says " << groups.getLayers();
  for (int32_t layer : groups.getFirst())
    model.plan.layerGroups.push_back(
        {static_cast<uint32_t>(layer), layer == 0 ? 0u : model.stepIndex.lookup((*starts)[layer])});
  return success();
}

} // namespace

FailureOr<LoweredModel> serializeKernelPlan(OwningOpRef<ModuleOp> planModule, StringRef target) {
  LoweredModel model;
  model.plan.target = target.str();
  model.planModule = std::move(planModule);
  func::FuncOp fn = model.forward();
  if (!fn)
    return model.planModule->emitError() << "expects a function @forward to compile";
  if (!fn.getBody().hasOneBlock())
    return fn.emitOpError() << "expects a single block";
  if (failed(PlanSerializer(model, fn).run()))
    return failure();
  if (auto tree = fn->getAttrOfType<kplan::SpecTreeAttr>(kplan::PlanDialect::getSpecTreeAttrName()))
    model.plan.specTree = tree.getShape();
  if (auto groups =
          fn->getAttrOfType<kplan::LayerGroupsAttr>(kplan::PlanDialect::getLayerGroupsAttrName()))
    if (failed(serializeLayerGroups(model, fn, groups)))
      return failure();
  return model;
}

FailureOr<LoweredModel> buildKernelPlan(ModuleOp module, StringRef target,
                                        const PlanOptions &options) {
  auto fn = module.lookupSymbol<func::FuncOp>("forward");
  if (!fn)
    return module.emitError() << "expects a function @forward to compile";
  if (!fn.getBody().hasOneBlock())
    return fn.emitOpError() << "expects a single block";
  OwningOpRef<ModuleOp> copy(cast<ModuleOp>(module->clone()));
  PassManager pm(module.getContext());
  buildPlanPipeline(pm, options);
  if (failed(pm.run(*copy)))
    return failure();
  return serializeKernelPlan(std::move(copy), target);
}

void printKernelPlan(const LoweredModel &model, llvm::raw_ostream &os) {
  OpPrintingFlags flags;
  flags.elideLargeElementsAttrs(4);
  flags.elideLargeResourceString(16);
  model.planModule.get()->print(os, flags);
  os << "\n";
}

} // namespace lathe::codegen
