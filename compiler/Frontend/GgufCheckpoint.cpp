#include "compiler/Frontend/GgufCheckpoint.h"

#include "compiler/Frontend/GgmlBlocks.h"
#include "compiler/Frontend/Gguf.h"
#include "runtime/formats/RowCodec.h"

#include <map>
#include <new>
#include <set>

namespace lathe::frontend {

namespace {

/// 64-byte aligned memory owned by the checkpoint, for rewritten tensors.
std::span<uint8_t> allocate(LlamaCheckpoint &ckpt, size_t bytes) {
  auto *p = static_cast<uint8_t *>(::operator new(bytes, std::align_val_t(64)));
  ckpt.memory.emplace_back(p, [](uint8_t *q) { ::operator delete(q, std::align_val_t(64)); });
  return {p, bytes};
}

class Reader {
public:
  Reader(const GgufFile &file, LlamaCheckpoint &ckpt) : file_(file), ckpt_(ckpt) {}

  Error fail(const std::string &what) const { return Error(file_.path() + ": " + what); }

  /// A required positive integer of the llama.* metadata.
  Expected<int64_t> required(const std::string &key) {
    Expected<std::optional<int64_t>> v = file_.integer(key);
    if (!v)
      return v.error();
    if (!*v)
      return fail("metadata '" + key + "' is missing (a llama GGUF has it)");
    return **v;
  }

  Status readConfig() {
    Expected<std::optional<std::string>> arch = file_.string("general.architecture");
    if (!arch)
      return arch.error();
    if (!*arch)
      return fail("metadata 'general.architecture' is missing");
    if (**arch != "llama")
      return fail("architecture '" + printableName(**arch) + "' is not supported (Lathe imports GGUF 'llama')");
    LlamaConfig &c = ckpt_.config;
    struct Field {
      const char *key;
      int64_t &value;
    };
    const Field fields[] = {{"llama.embedding_length", c.dim},
                            {"llama.feed_forward_length", c.hidden},
                            {"llama.block_count", c.layers},
                            {"llama.attention.head_count", c.heads},
                            {"llama.context_length", c.context}};
    for (const Field &f : fields) {
      Expected<int64_t> v = required(f.key);
      if (!v)
        return v.error();
      f.value = *v;
    }
    Expected<std::optional<int64_t>> kv = file_.integer("llama.attention.head_count_kv");
    if (!kv)
      return kv.error();
    c.kvHeads = kv->value_or(c.heads);
    if (c.heads <= 0 || c.dim % c.heads != 0)
      return fail("embedding length " + std::to_string(c.dim) +
                  " is not divisible by the head count " + std::to_string(c.heads));
    c.headDim = c.dim / c.heads;
    for (const char *key : {"llama.attention.key_length", "llama.attention.value_length",
                            "llama.rope.dimension_count"}) {
      Expected<std::optional<int64_t>> v = file_.integer(key);
      if (!v)
        return v.error();
      if (*v && **v != c.headDim)
        return fail("metadata '" + std::string(key) + "' is " + std::to_string(**v) +
                    ", but Lathe's llama import needs the head dim " +
                    std::to_string(c.headDim) + " (embedding length / head count)");
    }
    Expected<std::optional<int64_t>> experts = file_.integer("llama.expert_count");
    if (!experts)
      return experts.error();
    if (*experts && **experts > 0)
      return fail("a mixture of " + std::to_string(**experts) + " experts is not supported");
    Expected<std::optional<std::string>> scaling = file_.string("llama.rope.scaling.type");
    if (!scaling)
      return scaling.error();
    if (*scaling && **scaling != "none")
      return fail("rope scaling '" + printableName(**scaling) + "' is not supported by the GGUF import");
    Expected<std::optional<double>> eps = file_.number("llama.attention.layer_norm_rms_epsilon");
    if (!eps)
      return eps.error();
    if (!*eps)
      return fail("metadata 'llama.attention.layer_norm_rms_epsilon' is missing");
    c.normEps = static_cast<float>(**eps);
    Expected<std::optional<double>> theta = file_.number("llama.rope.freq_base");
    if (!theta)
      return theta.error();
    c.ropeTheta = static_cast<float>(theta->value_or(10000.0)); // llama.cpp's default
    c.rope = RopeLayout::Interleaved;
    return Status::ok();
  }

  /// The tensor `name` as a view: in the file, repacked or decoded.
  Expected<TensorView> tensor(const std::string &name, bool matrix) {
    const GgufTensor *t = file_.tensor(name);
    if (!t)
      return fail("tensor '" + name + "' is missing");
    used_.insert(name);
    ++typeCounts_[t->type];
    TensorView view;
    view.shape = t->shape();
    const GgmlType type = static_cast<GgmlType>(t->type);
    if (type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16) {
      view.type = type == GgmlType::F32   ? ElementType::F32
                  : type == GgmlType::F16 ? ElementType::F16
                                          : ElementType::BF16;
      view.bytes = t->bytes;
      became_[t->type] = std::string(elementTypeName(view.type));
      return view;
    }
    const int64_t cols = t->dims[0], rows = t->numElements() / cols;
    if (std::optional<formats::FormatSpec> spec = losslessFormat(t->type); spec && matrix) {
      std::span<uint8_t> out = allocate(ckpt_, size_t(rows) * formats::packedRowBytes(*spec, cols));
      if (Status s = repackGgmlBlocks(t->type, t->bytes, rows, cols, out); !s)
        return fail("tensor '" + name + "' (" + ggmlTypeName(t->type) + "): " +
                    s.error().message());
      view.packed = spec;
      view.bytes = out;
      became_[t->type] = formats::formatName(*spec);
      return view;
    }
    if (!canDequantizeGgml(t->type))
      return fail("tensor '" + name + "' has type " + ggmlTypeName(t->type) +
                  ", which Lathe does not import (it reads F32, F16, BF16, Q8_0 and Q4_0, and "
                  "decodes Q4_1, Q5_0, Q5_1 and Q2_K to Q6_K to f32)");
    std::span<uint8_t> out = allocate(ckpt_, size_t(t->numElements()) * sizeof(float));
    dequantizeGgml(t->type, t->bytes,
                   {reinterpret_cast<float *>(out.data()), size_t(t->numElements())});
    view.type = ElementType::F32;
    view.bytes = out;
    became_[t->type] = "f32";
    if (!losslessFormat(t->type))
      decoded_[t->type].push_back(name);
    return view;
  }

  Status readTensors() {
    LlamaConfig &c = ckpt_.config;
    auto get = [&](const std::string &name, TensorView &into, bool matrix) -> Status {
      Expected<TensorView> v = tensor(name, matrix);
      if (!v)
        return v.error();
      into = v.take();
      return Status::ok();
    };
    if (Status s = get("token_embd.weight", ckpt_.embedding, true); !s)
      return s;
    if (ckpt_.embedding.shape.size() != 2 || ckpt_.embedding.shape[1] != c.dim)
      return fail("tensor 'token_embd.weight' has shape " + formatShape(ckpt_.embedding.shape) +
                  ", expected [vocab, " + std::to_string(c.dim) + "]");
    c.vocab = ckpt_.embedding.shape[0];
    Expected<std::optional<int64_t>> vocab = file_.integer("llama.vocab_size");
    if (!vocab)
      return vocab.error();
    if (*vocab && **vocab != c.vocab)
      return fail("metadata 'llama.vocab_size' is " + std::to_string(**vocab) +
                  " but token_embd.weight has " + std::to_string(c.vocab) + " rows");
    if (Status s = validateConfig(c, file_.path()); !s)
      return s;
    // Layer by layer as their tensors are found: a corrupt block count then
    // fails at the first missing tensor, not by sizing tables for it.
    for (int64_t l = 0; l < c.layers; ++l) {
      LlamaLayerWeights &w = ckpt_.layers.emplace_back();
      const std::string p = "blk." + std::to_string(l) + ".";
      struct Entry {
        const char *name;
        TensorView &view;
        bool matrix;
      };
      const Entry entries[] = {
          {"attn_norm", w.attnNorm, false}, {"attn_q", w.wq, true},
          {"attn_k", w.wk, true},           {"attn_v", w.wv, true},
          {"attn_output", w.wo, true},      {"ffn_norm", w.ffnNorm, false},
          {"ffn_gate", w.w1, true},         {"ffn_down", w.w2, true},
          {"ffn_up", w.w3, true},
      };
      for (const Entry &e : entries)
        if (Status s = get(p + e.name + ".weight", e.view, e.matrix); !s)
          return s;
    }
    if (Status s = get("output_norm.weight", ckpt_.finalNorm, false); !s)
      return s;
    c.tiedEmbedding = file_.tensor("output.weight") == nullptr;
    if (!c.tiedEmbedding) {
      TensorView classifier;
      if (Status s = get("output.weight", classifier, true); !s)
        return s;
      ckpt_.classifier = std::move(classifier);
    }
    // Biases, per-layer rope factors and the like would change what the
    // model computes: refuse rather than leave them out.
    for (const GgufTensor &t : file_.tensors())
      if (!used_.count(t.name))
        return fail("tensor '" + printableName(t.name) +
                    "' is not part of a llama model as Lathe imports it");
    return Status::ok();
  }

  void describe() {
    std::string what = "GGUF v" + std::to_string(file_.version()) + " llama";
    std::string sep = ": ";
    for (const auto &[type, count] : typeCounts_) {
      what += sep + std::to_string(count) + " " + ggmlTypeName(type) + " as " + became_[type];
      sep = ", ";
    }
    ckpt_.provenance = what;
    for (const auto &[type, names] : decoded_)
      ckpt_.notes.push_back(
          file_.path() + ": " + std::to_string(names.size()) + " " + ggmlTypeName(type) +
          (names.size() == 1 ? " tensor (" : " tensors (first " ) + names.front() +
          ") decoded to f32: no Lathe format holds " + ggmlTypeName(type) +
          " blocks exactly; --quant=FORMAT packs them again");
  }

private:
  const GgufFile &file_;
  LlamaCheckpoint &ckpt_;
  std::set<std::string> used_;
  std::map<uint32_t, int> typeCounts_;
  std::map<uint32_t, std::string> became_;
  std::map<uint32_t, std::vector<std::string>> decoded_;
};

} // namespace

Expected<LlamaCheckpoint> readGgufCheckpoint(const std::string &path) {
  Expected<GgufFile> file = GgufFile::open(path);
  if (!file)
    return file.error();
  LlamaCheckpoint ckpt;
  ckpt.storage.push_back(file->storage());
  Reader reader(*file, ckpt);
  if (Status s = reader.readConfig(); !s)
    return s.error();
  if (Status s = reader.readTensors(); !s)
    return s.error();
  if (Status s = validateCheckpoint(ckpt, path); !s)
    return s.error();
  reader.describe();
  return ckpt;
}

} // namespace lathe::frontend
