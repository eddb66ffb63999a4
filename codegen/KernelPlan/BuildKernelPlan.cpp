#include "codegen/KernelPlan/BuildKernelPlan.h"

#include "dialects/Transformer/TransformerDialect.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <map>
#include <set>

using namespace mlir;

namespace lathe::codegen {
namespace {

int64_t widthOf(Value v) { return cast<RankedTensorType>(v.getType()).getDimSize(1); }

class PlanBuilder {
public:
  PlanBuilder(func::FuncOp fn, StringRef target) : fn_(fn) {
    model_.plan.target = target.str();
  }

  FailureOr<LoweredModel> run() {
    if (fn_.getNumArguments() != 3 ||
        !isa<tfm::KVCacheType>(fn_.getArgument(2).getType()))
      return fn_.emitOpError()
             << "expects arguments (tokens, positions, !tfm.kv_cache) for lowering";
    tokens_ = fn_.getArgument(0);
    positions_ = fn_.getArgument(1);
    auto cache = cast<tfm::KVCacheType>(fn_.getArgument(2).getType());
    if (!cache.getElementType().isF32())
      return fn_.emitOpError() << "the CPU kernels keep the KV cache in f32";
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

    // Count uses so that a buffer returns to the free list after its last use.
    fn_.walk([&](Operation *op) {
      for (Value v : op->getOperands())
        ++remainingUses_[v];
    });

    for (Operation &op : fn_.getBody().front()) {
      if (failed(lower(op)))
        return failure();
    }
    if (c.vocab == 0 || c.dim == 0 || c.heads == 0)
      return fn_.emitOpError()
             << "expects an embedding, attention and logits to lower";
    if (static_cast<int64_t>(attentionLayers_.size()) != c.layers)
      return fn_.emitOpError() << "has a KV cache of " << c.layers
                               << " layers but attention uses "
                               << attentionLayers_.size();
    if (c.hidden == 0)
      c.hidden = c.dim;
    return std::move(model_);
  }

private:
  LogicalResult lower(Operation &op) {
    LogicalResult result =
        llvm::TypeSwitch<Operation *, LogicalResult>(&op)
            .Case([&](tfm::WeightOp w) { return addTensor(w); })
            .Case([&](tfm::EmbeddingOp e) -> LogicalResult {
              if (e.getTokens() != tokens_)
                return e.emitOpError() << "expects the function's token argument";
              model_.config.dim = widthOf(e.getResult());
              model_.plan.steps.push_back(
                  plan::EmbeddingStep{tensor(e.getTable()), define(e.getResult())});
              return success();
            })
            .Case([&](tfm::RMSNormOp n) {
              if (model_.config.normEps == 0 || first_.insert("norm").second)
                model_.config.normEps = n.getEpsilon().convertToFloat();
              model_.plan.steps.push_back(plan::RmsNormStep{
                  use(n.getInput()), tensor(n.getGain()), define(n.getResult()),
                  n.getEpsilon().convertToFloat()});
              return success();
            })
            .Case([&](tfm::LinearOp l) {
              model_.plan.steps.push_back(plan::MatMulStep{
                  use(l.getInput()), tensor(l.getWeight()), define(l.getResult())});
              return success();
            })
            .Case([&](tfm::RopeOp r) -> LogicalResult {
              if (r.getPositions() != positions_)
                return r.emitOpError() << "expects the function's positions argument";
              if (first_.insert("rope").second)
                model_.config.ropeTheta = r.getTheta().convertToFloat();
              auto layout = r.getLayout() == tfm::RopeLayout::interleaved
                                ? plan::RopeLayout::Interleaved
                                : plan::RopeLayout::RotateHalf;
              model_.plan.steps.push_back(plan::RopeStep{
                  use(r.getInput()), define(r.getResult()),
                  static_cast<uint32_t>(r.getHeadDim()),
                  r.getTheta().convertToFloat(), layout});
              return success();
            })
            .Case([&](tfm::AttentionOp a) -> LogicalResult {
              if (a.getPositions() != positions_ || a.getCache() != fn_.getArgument(2))
                return a.emitOpError()
                       << "expects the function's positions and cache arguments";
              model_.config.heads = a.getHeads();
              if (!attentionLayers_.insert(a.getLayer()).second)
                return a.emitOpError() << "reuses KV cache layer " << a.getLayer();
              model_.plan.steps.push_back(plan::AttentionStep{
                  use(a.getQueries()), use(a.getKeys()), use(a.getValues()),
                  define(a.getResult()), static_cast<uint32_t>(a.getLayer()),
                  static_cast<uint32_t>(a.getHeads()),
                  static_cast<uint32_t>(model_.config.kvHeads),
                  static_cast<uint32_t>(model_.config.headDim)});
              return success();
            })
            .Case([&](tfm::SiluMulOp s) {
              model_.config.hidden = widthOf(s.getResult());
              model_.plan.steps.push_back(plan::SiluMulStep{
                  use(s.getGate()), use(s.getUp()), define(s.getResult())});
              return success();
            })
            .Case([&](tfm::AddOp s) {
              model_.plan.steps.push_back(
                  plan::AddStep{use(s.getLhs()), use(s.getRhs()), define(s.getResult())});
              return success();
            })
            .Case([&](tfm::LogitsOp l) {
              model_.config.vocab = widthOf(l.getResult());
              uint32_t out = define(l.getResult());
              model_.plan.steps.push_back(
                  plan::LogitsStep{use(l.getInput()), tensor(l.getClassifier()), out});
              return success();
            })
            .Case([&](func::ReturnOp r) -> LogicalResult {
              if (r.getNumOperands() != 1 || !r.getOperand(0).getDefiningOp<tfm::LogitsOp>())
                return r.emitOpError() << "expects to return the result of tfm.logits";
              model_.plan.logits = buffers_.lookup(r.getOperand(0));
              return success();
            })
            .Default([&](Operation *other) {
              return other->emitOpError()
                     << "cannot be lowered to a " << model_.plan.target
                     << " kernel plan";
            });
    if (failed(result))
      return failure();
    while (model_.stepOps.size() < model_.plan.steps.size())
      model_.stepOps.push_back(&op);
    release(op);
    return success();
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
    tensors_[w.getResult()] = static_cast<uint32_t>(model_.tensors.size());
    model_.tensors.push_back(std::move(t));
    return success();
  }

  uint32_t tensor(Value v) { return tensors_.lookup(v); }
  uint32_t use(Value v) { return buffers_.lookup(v); }

  /// Gives `v` a buffer of its width, reusing a dead one when possible.
  uint32_t define(Value v) {
    uint64_t width = static_cast<uint64_t>(widthOf(v));
    uint32_t id;
    auto &free = freeBuffers_[width];
    if (!free.empty()) {
      id = free.back();
      free.pop_back();
    } else {
      id = static_cast<uint32_t>(model_.plan.bufferWidths.size());
      model_.plan.bufferWidths.push_back(width);
    }
    buffers_[v] = id;
    return id;
  }

  /// Returns the buffers of operands that `op` used for the last time.
  void release(Operation &op) {
    for (Value v : op.getOperands()) {
      if (--remainingUses_[v] == 0 && buffers_.count(v))
        freeBuffers_[static_cast<uint64_t>(widthOf(v))].push_back(buffers_[v]);
    }
  }

  func::FuncOp fn_;
  Value tokens_, positions_;
  LoweredModel model_;
  llvm::DenseMap<Value, uint32_t> buffers_, tensors_;
  llvm::DenseMap<Value, int> remainingUses_;
  std::map<uint64_t, std::vector<uint32_t>> freeBuffers_;
  std::set<std::string> first_;
  std::set<int64_t> attentionLayers_;
};

} // namespace

FailureOr<LoweredModel> buildKernelPlan(ModuleOp module, StringRef target) {
  auto fn = module.lookupSymbol<func::FuncOp>("forward");
  if (!fn)
    return module.emitError() << "expects a function @forward to compile";
  if (!fn.getBody().hasOneBlock())
    return fn.emitOpError() << "expects a single block";
  return PlanBuilder(fn, target).run();
}

void printKernelPlan(const LoweredModel &m, llvm::raw_ostream &os) {
  const plan::ModelConfig &c = m.config;
  os << "kernel plan '" << m.plan.target << "': dim " << c.dim << ", hidden "
     << c.hidden << ", layers " << c.layers << ", heads " << c.heads << "/"
     << c.kvHeads << " x " << c.headDim << ", vocab " << c.vocab << ", context "
     << c.context << "\n";
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const auto &t = m.tensors[i].info;
    os << "tensor " << i << " '" << t.name << "' " << t.formatName() << " [";
    llvm::interleaveComma(t.shape, os);
    os << "]\n";
  }
  os << "buffers";
  for (size_t i = 0; i < m.plan.bufferWidths.size(); ++i)
    os << " b" << i << ":" << m.plan.bufferWidths[i];
  os << "\n";
  auto b = [](uint32_t i) { return "b" + std::to_string(i); };
  auto t = [](uint32_t i) { return "t" + std::to_string(i); };
  for (const plan::Step &step : m.plan.steps) {
    os << plan::stepName(step) << " ";
    std::visit(
        [&](const auto &s) {
          using T = std::decay_t<decltype(s)>;
          if constexpr (std::is_same_v<T, plan::EmbeddingStep>)
            os << t(s.table) << " -> " << b(s.output);
          else if constexpr (std::is_same_v<T, plan::RmsNormStep>)
            os << b(s.input) << ", " << t(s.gain) << " -> " << b(s.output);
          else if constexpr (std::is_same_v<T, plan::MatMulStep>)
            os << b(s.input) << ", " << t(s.weight) << " -> " << b(s.output);
          else if constexpr (std::is_same_v<T, plan::RopeStep>)
            os << b(s.input) << " -> " << b(s.output) << " head_dim " << s.headDim
               << (s.layout == plan::RopeLayout::Interleaved ? " interleaved"
                                                              : " rotate_half");
          else if constexpr (std::is_same_v<T, plan::AttentionStep>)
            os << b(s.queries) << ", " << b(s.keys) << ", " << b(s.values) << " -> "
               << b(s.output) << " layer " << s.layer << " heads " << s.heads << "/"
               << s.kvHeads;
          else if constexpr (std::is_same_v<T, plan::SiluMulStep>)
            os << b(s.gate) << ", " << b(s.up) << " -> " << b(s.output);
          else if constexpr (std::is_same_v<T, plan::AddStep>)
            os << b(s.lhs) << ", " << b(s.rhs) << " -> " << b(s.output);
          else
            os << b(s.input) << ", " << t(s.classifier) << " -> " << b(s.output);
        },
        step);
    os << "\n";
  }
  os << "logits " << b(m.plan.logits) << "\n";
  os << "activations " << plan::activationsName(m.plan.activations) << "\n";
}

} // namespace lathe::codegen
