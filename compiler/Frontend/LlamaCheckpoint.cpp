#include "compiler/Frontend/LlamaCheckpoint.h"

#include "runtime/formats/RowCodec.h"

#include <cmath>
#include <limits>

namespace lathe::frontend {

std::string formatShape(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}


namespace {

// Every size fits in an int32 in the formats we read, and capping here means
// a product of any two sizes cannot overflow int64 further down.
constexpr int64_t kMaxSize = std::numeric_limits<int32_t>::max();

/// Checks one view against the shape the config implies.
Status checkTensor(const TensorView &view, const std::string &name,
                   const std::vector<int64_t> &expected,
                   const std::string &source) {
  if (view.shape != expected)
    return Error(source + ": tensor '" + name + "' has shape " +
                 formatShape(view.shape) + " but the config implies " +
                 formatShape(expected));
  // The shape equals `expected`, whose entries are validated config sizes,
  // but their product can still exceed 64 bits (e.g. vocab * dim * 4).
  uint64_t bytes = elementSize(view.type);
  std::vector<int64_t> dims = expected;
  if (view.packed) {
    // Packed rows: the row's byte count stands for its values.
    if (expected.size() != 2)
      return Error(source + ": tensor '" + name + "' is packed as " +
                   formats::formatName(*view.packed) + ", but only matrices may be");
    bytes = formats::packedRowBytes(*view.packed, expected[1]);
    if (bytes == 0)
      return Error(source + ": tensor '" + name + "' has rows of " + std::to_string(expected[1]) +
                   " values, which " + formats::formatName(*view.packed) + " cannot pack");
    dims = {expected[0]};
  }
  for (int64_t d : dims)
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes))
      return Error(source + ": tensor '" + name + "' of shape " +
                   formatShape(expected) + " is too large to address");
  if (view.bytes.size() != bytes)
    return Error(source + ": tensor '" + name + "' (" +
                 (view.packed ? formats::formatName(*view.packed)
                              : std::string(elementTypeName(view.type))) + " " +
                 formatShape(expected) + ") needs " + std::to_string(bytes) +
                 " bytes but its view holds " +
                 std::to_string(view.bytes.size()));
  if (view.bytes.data() == nullptr && bytes != 0)
    return Error(source + ": tensor '" + name + "' has no data");
  return Status::ok();
}

} // namespace

Status validateConfig(const LlamaConfig &c, const std::string &source) {
  struct Field {
    const char *name;
    int64_t value;
  };
  const Field fields[] = {{"dim", c.dim},       {"hidden", c.hidden},
                          {"layers", c.layers}, {"heads", c.heads},
                          {"kv heads", c.kvHeads}, {"vocab", c.vocab},
                          {"seq len", c.context}};
  for (const Field &f : fields) {
    if (f.value <= 0)
      return Error(source + ": " + f.name + " is " + std::to_string(f.value) +
                   ", expected a positive number");
    if (f.value > kMaxSize)
      return Error(source + ": " + f.name + " is " + std::to_string(f.value) +
                   ", larger than the supported maximum " +
                   std::to_string(kMaxSize));
  }
  // headDim * heads is the attention's width, which may differ from dim
  // only where the checkpoint spells head_dim out; readers that derive it
  // must find dim divisible.
  if (c.headDim <= 0 || c.headDim > kMaxSize / c.heads)
    return Error(source + ": head dim " + std::to_string(c.headDim) + " with " +
                 std::to_string(c.heads) + " heads is not a supported attention width (dim " +
                 std::to_string(c.dim) + ")");
  if (c.heads % c.kvHeads != 0)
    return Error(source + ": heads " + std::to_string(c.heads) +
                 " is not a multiple of kv heads " +
                 std::to_string(c.kvHeads));
  // Rotary embedding rotates dimensions in pairs.
  if (c.headDim % 2 != 0)
    return Error(source + ": head dim " + std::to_string(c.headDim) +
                 " (dim " + std::to_string(c.dim) + " / " +
                 std::to_string(c.heads) +
                 " heads) is odd; rotary embedding needs an even head dim");
  if (!std::isfinite(c.normEps) || c.normEps <= 0.0f)
    return Error(source + ": norm epsilon " + std::to_string(c.normEps) +
                 " is not a positive finite number");
  if (!std::isfinite(c.ropeTheta) || c.ropeTheta <= 0.0f)
    return Error(source + ": rope theta " + std::to_string(c.ropeTheta) +
                 " is not a positive finite number");
  if (const char *problem = plan::ropeScalingProblem(c.ropeScaling))
    return Error(source + ": rope scaling: " + problem);
  return Status::ok();
}

Status validateCheckpoint(const LlamaCheckpoint &ckpt,
                          const std::string &source) {
  const LlamaConfig &c = ckpt.config;
  if (Status s = validateConfig(c, source); !s)
    return s;
  if (static_cast<int64_t>(ckpt.layers.size()) != c.layers)
    return Error(source + ": config has " + std::to_string(c.layers) +
                 " layers but the checkpoint holds " +
                 std::to_string(ckpt.layers.size()));
  if (!c.tiedEmbedding && !ckpt.classifier)
    return Error(source + ": the classifier is not tied to the embedding, "
                          "but no classifier tensor is present");
  if (c.tiedEmbedding && ckpt.classifier)
    return Error(source + ": the classifier is tied to the embedding, "
                          "but a separate classifier tensor is present");

  const int64_t q = c.heads * c.headDim, kv = c.kvDim();
  if (Status s = checkTensor(ckpt.embedding, "embedding", {c.vocab, c.dim},
                             source);
      !s)
    return s;
  for (size_t i = 0; i < ckpt.layers.size(); ++i) {
    const LlamaLayerWeights &l = ckpt.layers[i];
    const std::string p = "layers." + std::to_string(i) + ".";
    struct Expect {
      const TensorView &view;
      const char *name;
      std::vector<int64_t> shape;
    };
    const Expect expected[] = {
        {l.attnNorm, "attn_norm", {c.dim}},
        {l.wq, "wq", {q, c.dim}},
        {l.wk, "wk", {kv, c.dim}},
        {l.wv, "wv", {kv, c.dim}},
        {l.wo, "wo", {c.dim, q}},
        {l.ffnNorm, "ffn_norm", {c.dim}},
        {l.w1, "w1", {c.hidden, c.dim}},
        {l.w2, "w2", {c.dim, c.hidden}},
        {l.w3, "w3", {c.hidden, c.dim}},
    };
    for (const Expect &e : expected)
      if (Status s = checkTensor(e.view, p + e.name, e.shape, source); !s)
        return s;
    struct Optional {
      const std::optional<TensorView> &view;
      bool wanted;
      const char *name;
      int64_t size;
    };
    const Optional optional[] = {
        {l.bq, c.qkvBias, "bq", q},           {l.bk, c.qkvBias, "bk", kv},
        {l.bv, c.qkvBias, "bv", kv},          {l.bo, c.outputBias, "bo", c.dim},
        {l.qNorm, c.qkNorm, "q_norm", c.headDim}, {l.kNorm, c.qkNorm, "k_norm", c.headDim},
    };
    for (const Optional &o : optional) {
      if (o.view.has_value() != o.wanted)
        return Error(source + ": tensor '" + p + o.name + "' is " +
                     (o.wanted ? "missing but the config asks for it"
                               : "present but the config does not use it"));
      if (o.view)
        if (Status s = checkTensor(*o.view, p + o.name, {o.size}, source); !s)
          return s;
    }
  }
  if (Status s = checkTensor(ckpt.finalNorm, "final_norm", {c.dim}, source);
      !s)
    return s;
  if (ckpt.classifier)
    if (Status s = checkTensor(*ckpt.classifier, "classifier",
                               {c.vocab, c.dim}, source);
        !s)
      return s;
  return Status::ok();
}

std::vector<std::pair<std::string, const TensorView *>> namedTensors(const LlamaCheckpoint &ckpt) {
  std::vector<std::pair<std::string, const TensorView *>> named;
  named.emplace_back("tok_embeddings", &ckpt.embedding);
  for (size_t l = 0; l < ckpt.layers.size(); ++l) {
    const LlamaLayerWeights &w = ckpt.layers[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    auto add = [&](const char *name, const TensorView &view) { named.emplace_back(p + name, &view); };
    auto addIf = [&](const char *name, const std::optional<TensorView> &view) {
      if (view)
        add(name, *view);
    };
    add("attention_norm", w.attnNorm);
    add("wq", w.wq);
    add("wk", w.wk);
    add("wv", w.wv);
    addIf("bq", w.bq);
    addIf("bk", w.bk);
    addIf("bv", w.bv);
    addIf("q_norm", w.qNorm);
    addIf("k_norm", w.kNorm);
    add("wo", w.wo);
    addIf("bo", w.bo);
    add("ffn_norm", w.ffnNorm);
    add("w1", w.w1);
    add("w3", w.w3);
    add("w2", w.w2);
  }
  named.emplace_back("norm", &ckpt.finalNorm);
  if (ckpt.classifier)
    named.emplace_back("output", &*ckpt.classifier);
  return named;
}

} // namespace lathe::frontend
