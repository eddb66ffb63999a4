#include "compiler/Frontend/LlamaImporter.h"

#include "dialects/Transformer/TransformerDialect.h"
#include "passes/Quantize/WeightData.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"

#include <map>
#include <string>

using namespace mlir;

namespace lathe::frontend {
namespace {

class Importer {
public:
  Importer(MLIRContext &ctx, const LlamaCheckpoint &ckpt)
      : ctx_(ctx), ckpt_(ckpt), b_(&ctx), loc_(UnknownLoc::get(&ctx)) {
    for (const auto &[name, view] : namedTensors(ckpt))
      names_.emplace(view, name);
  }

  OwningOpRef<ModuleOp> run(StringRef modelName) {
    const LlamaConfig &c = ckpt_.config;
    OwningOpRef<ModuleOp> module = ModuleOp::create(loc_);
    (*module)->setAttr("tfm.model_name", b_.getStringAttr(modelName));
    b_.setInsertionPointToEnd(module->getBody());

    Type f32 = b_.getF32Type();
    auto ids = RankedTensorType::get({ShapedType::kDynamic}, b_.getI32Type());
    auto cacheType = tfm::KVCacheType::get(&ctx_, c.layers, c.kvHeads, c.headDim,
                                           c.context, f32);
    auto logitsType = activation(c.vocab);
    auto fn = func::FuncOp::create(b_, loc_, "forward",
                                   b_.getFunctionType({ids, ids, cacheType}, {logitsType}));
    Block *body = fn.addEntryBlock();
    b_.setInsertionPointToStart(body);
    Value tokens = body->getArgument(0), positions = body->getArgument(1),
          cache = body->getArgument(2);

    Value table = weight(ckpt_.embedding);
    Value x = tfm::EmbeddingOp::create(b_, loc_, activation(c.dim), table, tokens);
    auto layout = tfm::RopeLayoutAttr::get(&ctx_, tfm::fromPlanLayout(c.rope));
    for (int64_t l = 0; l < c.layers; ++l) {
      const LlamaLayerWeights &w = ckpt_.layers[l];
      std::string p = "layers." + std::to_string(l) + ".";
      Value h = rmsNorm(x, weight(w.attnNorm));
      Value q = biased(linear(h, weight(w.wq)), w.bq);
      Value k = biased(linear(h, weight(w.wk)), w.bk);
      Value v = biased(linear(h, weight(w.wv)), w.bv);
      // Qwen3 normalizes each head of q and k before rotating it: a gain of
      // head_dim values normalizes each head-wide slice of the row.
      if (w.qNorm)
        q = rmsNorm(q, weight(*w.qNorm));
      if (w.kNorm)
        k = rmsNorm(k, weight(*w.kNorm));
      q = rope(q, positions, layout);
      k = rope(k, positions, layout);
      Value a = tfm::AttentionOp::create(b_, loc_, q.getType(), q, k, v, positions,
                                         cache, b_.getI64IntegerAttr(l),
                                         b_.getI64IntegerAttr(c.heads));
      x = tfm::AddOp::create(b_, loc_, x,
                             biased(linear(a, weight(w.wo)), w.bo));
      h = rmsNorm(x, weight(w.ffnNorm));
      Value gate = linear(h, weight(w.w1));
      Value up = linear(h, weight(w.w3));
      Value act = tfm::SiluMulOp::create(b_, loc_, gate, up);
      x = tfm::AddOp::create(b_, loc_, x, linear(act, weight(w.w2)));
    }
    x = rmsNorm(x, weight(ckpt_.finalNorm));
    Value classifier =
        ckpt_.classifier ? weight(*ckpt_.classifier) : table;
    Value logits = tfm::LogitsOp::create(b_, loc_, logitsType, x, classifier);
    func::ReturnOp::create(b_, loc_, logits);
    return module;
  }

private:
  RankedTensorType activation(int64_t width) {
    return RankedTensorType::get({ShapedType::kDynamic, width}, b_.getF32Type());
  }

  Type elementType(ElementType t) {
    switch (t) {
    case ElementType::F32: return b_.getF32Type();
    case ElementType::F16: return b_.getF16Type();
    case ElementType::BF16: return b_.getBF16Type();
    }
    return {};
  }

  /// A `tfm.weight` whose value points into the mapped checkpoint when the
  /// bytes are aligned for their element type, and holds a copy otherwise.
  Value weight(const TensorView &view) {
    // Named once, by namedTensors: lathe-pack finds the tensor by that name.
    const std::string &name = names_.at(&view);
    if (view.packed)
      return packedWeight(name, view);
    auto type = RankedTensorType::get(view.shape, elementType(view.type));
    size_t align = elementSize(view.type);
    ArrayRef<char> data(reinterpret_cast<const char *>(view.bytes.data()),
                        view.bytes.size());
    AsmResourceBlob blob =
        reinterpret_cast<uintptr_t>(view.bytes.data()) % align == 0
            ? UnmanagedAsmResourceBlob::allocateWithAlign(data, align)
            : HeapAsmResourceBlob::allocateAndCopyWithAlign(data, align,
                                                            /*dataIsMutable=*/false);
    auto value = DenseResourceElementsAttr::get(type, name, std::move(blob));
    return tfm::WeightOp::create(b_, loc_, type, b_.getStringAttr(name), value);
  }

  /// A weight whose rows the reader packed already (GGUF Q8_0/Q4_0): the
  /// tfm.weight a quantize pass would have made, bytes as they are.
  Value packedWeight(const std::string &name, const TensorView &view) {
    auto type = RankedTensorType::get(view.shape, formatType(&ctx_, *view.packed));
    auto bytesType = RankedTensorType::get({static_cast<int64_t>(view.bytes.size())},
                                           b_.getIntegerType(8));
    ArrayRef<char> data(reinterpret_cast<const char *>(view.bytes.data()), view.bytes.size());
    AsmResourceBlob blob =
        reinterpret_cast<uintptr_t>(view.bytes.data()) % 64 == 0
            ? UnmanagedAsmResourceBlob::allocateWithAlign(data, 64)
            : HeapAsmResourceBlob::allocateAndCopyWithAlign(data, 64, /*dataIsMutable=*/false);
    auto value = DenseResourceElementsAttr::get(bytesType, name, std::move(blob));
    return tfm::WeightOp::create(b_, loc_, type, b_.getStringAttr(name), value);
  }

  Value rmsNorm(Value x, Value gain) {
    return tfm::RMSNormOp::create(b_, loc_, x.getType(), x, gain,
                                  b_.getF32FloatAttr(ckpt_.config.normEps));
  }

  Value linear(Value x, Value w) {
    int64_t out = cast<RankedTensorType>(w.getType()).getDimSize(0);
    return tfm::LinearOp::create(b_, loc_, activation(out), x, w);
  }

  Value rope(Value x, Value positions, tfm::RopeLayoutAttr layout) {
    const plan::RopeScaling &s = ckpt_.config.ropeScaling;
    return tfm::RopeOp::create(
        b_, loc_, x.getType(), x, positions, b_.getI64IntegerAttr(ckpt_.config.headDim),
        b_.getF32FloatAttr(ckpt_.config.ropeTheta), layout, b_.getF32FloatAttr(s.factor),
        b_.getF32FloatAttr(s.lowFreqFactor), b_.getF32FloatAttr(s.highFreqFactor),
        b_.getI64IntegerAttr(s.originalContext));
  }

  /// x + bias when the checkpoint has the bias.
  Value biased(Value x, const std::optional<TensorView> &bias) {
    if (!bias)
      return x;
    return tfm::BiasAddOp::create(b_, loc_, x.getType(), x, weight(*bias));
  }

  MLIRContext &ctx_;
  const LlamaCheckpoint &ckpt_;
  OpBuilder b_;
  Location loc_;
  std::map<const TensorView *, std::string> names_;
};

} // namespace

OwningOpRef<ModuleOp> importLlama(MLIRContext &context,
                                  const LlamaCheckpoint &checkpoint,
                                  StringRef modelName) {
  context.loadDialect<tfm::TransformerDialect, func::FuncDialect>();
  return Importer(context, checkpoint).run(modelName);
}

} // namespace lathe::frontend
