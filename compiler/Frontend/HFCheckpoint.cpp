#include "compiler/Frontend/HFCheckpoint.h"

#include "compiler/Frontend/Safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

namespace lathe::frontend {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

Expected<json> readJsonFile(const std::string &path) {
  auto file = MappedFile::open(path);
  if (!file)
    return file.error();
  auto bytes = (*file)->bytes();
  const char *first = reinterpret_cast<const char *>(bytes.data());
  json j = json::parse(first, first + bytes.size(), nullptr,
                       /*allow_exceptions=*/false);
  if (j.is_discarded())
    return Error(path + ": not valid JSON");
  if (!j.is_object())
    return Error(path + ": not a JSON object");
  return j;
}

/// Reads the keys of config.json that LlamaConfig needs, rejecting the
/// LlamaForCausalLM options the importer does not implement.
class ConfigReader {
public:
  ConfigReader(const json &j, std::string path)
      : j_(j), path_(std::move(path)) {}

  /// A positive integer; `fallback` when the key is absent or null.
  Expected<int64_t> positiveInt(const char *key,
                                std::optional<int64_t> fallback = {}) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (fallback) return *fallback;
      return Error(path_ + ": missing required key \"" + key + "\"");
    }
    if (!it->is_number_integer() ||
        (it->is_number_unsigned() &&
         it->get<uint64_t>() >
             static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) ||
        it->get<int64_t>() <= 0)
      return Error(path_ + ": \"" + key + "\" is " + it->dump() +
                   ", expected a positive integer");
    return it->get<int64_t>();
  }

  Expected<float> positiveFloat(const char *key, float fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null())
      return fallback;
    if (!it->is_number() || !(it->get<double>() > 0.0) ||
        it->get<double>() > std::numeric_limits<float>::max())
      return Error(path_ + ": \"" + key + "\" is " + it->dump() +
                   ", expected a positive number");
    return static_cast<float>(it->get<double>());
  }

  Expected<bool> boolean(const char *key, bool fallback) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null())
      return fallback;
    if (!it->is_boolean())
      return Error(path_ + ": \"" + key + "\" is " + it->dump() +
                   ", expected true or false");
    return it->get<bool>();
  }

  const json *find(const char *key) const {
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }

private:
  const json &j_;
  std::string path_;
};

/// The decoder families that share Llama's layer and what each adds.
struct Architecture {
  const char *className, *modelType;
  /// Qwen2: biases on q/k/v always, never on o. The others put biases on
  /// q, k, v and o when the config's attention_bias says so.
  bool qkvBiasAlways;
  /// Qwen3: an RMSNorm of each query and key head.
  bool qkNorm;
  /// Qwen2/Qwen3: sliding_window applies only with use_sliding_window.
  bool slidingWindowOptIn;
};
constexpr Architecture kArchitectures[] = {
    {"LlamaForCausalLM", "llama", false, false, false},
    {"MistralForCausalLM", "mistral", false, false, false},
    {"Qwen2ForCausalLM", "qwen2", true, false, true},
    {"Qwen3ForCausalLM", "qwen3", false, true, true},
};

/// Reads rope_scaling (or transformers 5's rope_parameters): absent, null,
/// "default", or "llama3" with its four numbers.
Status parseRopeScaling(const ConfigReader &r, const std::string &path, LlamaConfig &c) {
  const json *scaling = r.find("rope_scaling");
  if (!scaling)
    scaling = r.find("rope_parameters");
  if (!scaling)
    return Status::ok();
  if (!scaling->is_object())
    return Error(path + ": rope_scaling " + scaling->dump() + " is not an object");
  auto type = scaling->find("rope_type");
  if (type == scaling->end())
    type = scaling->find("type");
  const std::string kind =
      type != scaling->end() && type->is_string() ? type->get<std::string>() : "";
  if (auto theta = scaling->find("rope_theta"); theta != scaling->end()) {
    if (!theta->is_number() || !(theta->get<double>() > 0.0))
      return Error(path + ": rope_theta " + theta->dump() + " is not a positive number");
    c.ropeTheta = static_cast<float>(theta->get<double>());
  }
  if (kind == "default")
    return Status::ok();
  if (kind != "llama3")
    return Error(path + ": rope scaling " + scaling->dump() +
                 " is not supported; plain RoPE and \"llama3\" are");
  ConfigReader s(*scaling, path + " (rope_scaling)");
  auto factor = s.positiveFloat("factor", 0.0f);
  auto low = s.positiveFloat("low_freq_factor", 0.0f);
  auto high = s.positiveFloat("high_freq_factor", 0.0f);
  auto context = s.positiveInt("original_max_position_embeddings");
  if (!factor) return factor.error();
  if (!low) return low.error();
  if (!high) return high.error();
  if (!context) return context.error();
  c.ropeScaling = {*factor, *low, *high, *context};
  if (const char *problem = plan::ropeScalingProblem(c.ropeScaling))
    return Error(path + ": rope_scaling " + scaling->dump() + ": " + problem);
  return Status::ok();
}

Expected<LlamaConfig> parseConfig(const std::string &path) {
  auto parsed = readJsonFile(path);
  if (!parsed)
    return parsed.error();
  const json &j = *parsed;
  ConfigReader r(j, path);

  const Architecture *arch = nullptr;
  const json *classes = r.find("architectures");
  const json *type = r.find("model_type");
  for (const Architecture &a : kArchitectures) {
    if ((classes && classes->is_array() &&
         std::find(classes->begin(), classes->end(), a.className) != classes->end()) ||
        (type && *type == a.modelType))
      arch = &a;
  }
  if (!arch) {
    std::string supported;
    for (const Architecture &a : kArchitectures)
      supported += std::string(supported.empty() ? "" : ", ") + a.className;
    return Error(path + ": architecture not supported (architectures " +
                 (classes ? classes->dump() : "absent") + ", model_type " +
                 (type ? type->dump() : "absent") + "); expected one of " + supported);
  }

  if (const json *act = r.find("hidden_act"); act && *act != "silu")
    return Error(path + ": hidden_act " + act->dump() +
                 " is not supported; only \"silu\" is");
  if (const json *b = r.find("mlp_bias"); b && *b != false)
    return Error(path + ": \"mlp_bias\" is " + b->dump() +
                 "; MLP projections with biases are not supported");
  auto attentionBias = r.boolean("attention_bias", false);
  if (!attentionBias)
    return attentionBias.error();

  LlamaConfig c;
  c.qkvBias = arch->qkvBiasAlways || *attentionBias;
  c.outputBias = !arch->qkvBiasAlways && *attentionBias;
  c.qkNorm = arch->qkNorm;
  struct IntKey {
    const char *key;
    int64_t *field;
  };
  for (auto [key, field] :
       {IntKey{"hidden_size", &c.dim}, IntKey{"intermediate_size", &c.hidden},
        IntKey{"num_hidden_layers", &c.layers},
        IntKey{"num_attention_heads", &c.heads},
        IntKey{"vocab_size", &c.vocab},
        IntKey{"max_position_embeddings", &c.context}}) {
    auto v = r.positiveInt(key);
    if (!v)
      return v.error();
    *field = *v;
  }
  auto kvHeads = r.positiveInt("num_key_value_heads", c.heads);
  if (!kvHeads)
    return kvHeads.error();
  c.kvHeads = *kvHeads;
  // Newer configs spell out head_dim, which may differ from hidden_size /
  // num_attention_heads (Qwen3); older ones imply it.
  if (r.find("head_dim")) {
    auto headDim = r.positiveInt("head_dim");
    if (!headDim)
      return headDim.error();
    c.headDim = *headDim;
  } else {
    if (c.dim % c.heads != 0)
      return Error(path + ": hidden_size " + std::to_string(c.dim) +
                   " is not divisible by num_attention_heads " + std::to_string(c.heads) +
                   " and no head_dim is given");
    c.headDim = c.dim / c.heads;
  }
  // Sliding-window attention (Mistral v0.1, some Qwen2 configs): within the
  // window it is plain causal attention, so the context is capped at the
  // window instead of attending outside it.
  const json *sliding = r.find("sliding_window");
  auto useSliding = r.boolean("use_sliding_window", !arch->slidingWindowOptIn);
  if (!useSliding)
    return useSliding.error();
  if (sliding && *useSliding) {
    auto window = r.positiveInt("sliding_window");
    if (!window)
      return window.error();
    c.context = std::min(c.context, *window);
  }

  auto eps = r.positiveFloat("rms_norm_eps", 1e-6f);
  if (!eps)
    return eps.error();
  auto theta = r.positiveFloat("rope_theta", 10000.0f);
  if (!theta)
    return theta.error();
  auto tied = r.boolean("tie_word_embeddings", false);
  if (!tied)
    return tied.error();
  c.normEps = *eps;
  c.ropeTheta = *theta;
  c.tiedEmbedding = *tied;
  c.rope = RopeLayout::RotateHalf;
  if (Status s = parseRopeScaling(r, path, c); !s)
    return s.error();
  if (Status s = validateConfig(c, path); !s)
    return s.error();
  return c;
}

/// The shard files to open, sorted: those named by the index when there is
/// one, else every *.safetensors file in the folder.
Expected<std::vector<fs::path>> listShards(const fs::path &folder) {
  std::vector<fs::path> shards;
  fs::path index = folder / "model.safetensors.index.json";
  std::error_code ec;
  if (fs::exists(index, ec)) {
    auto parsed = readJsonFile(index.string());
    if (!parsed)
      return parsed.error();
    auto map = parsed->find("weight_map");
    if (map == parsed->end() || !map->is_object())
      return Error(index.string() + ": no \"weight_map\" object");
    std::set<std::string> names;
    for (const auto &[tensor, file] : map->items()) {
      if (!file.is_string())
        return Error(index.string() + ": weight_map entry '" + tensor +
                     "' is not a file name");
      const std::string &name = file.get_ref<const std::string &>();
      // Only plain file names: the index must not reach outside the folder.
      if (name.empty() || name.find('/') != std::string::npos ||
          name.find('\\') != std::string::npos || name == "." || name == "..")
        return Error(index.string() + ": weight_map entry '" + tensor +
                     "' names '" + name + "', not a file in the folder");
      names.insert(name);
    }
    for (const std::string &name : names) shards.push_back(folder / name);
  } else {
    fs::directory_iterator it(folder, ec), end;
    if (ec)
      return Error(folder.string() + ": cannot list folder: " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec)
        return Error(folder.string() + ": cannot list folder: " +
                     ec.message());
      if (it->path().extension() == ".safetensors")
        shards.push_back(it->path());
    }
    std::sort(shards.begin(), shards.end());
  }
  if (shards.empty())
    return Error(folder.string() + ": no *.safetensors files");
  return shards;
}

struct NamedTensor {
  TensorView view;
  const std::string *file;
};

} // namespace

Expected<LlamaConfig> readHFConfig(const std::string &path) { return parseConfig(path); }

Expected<LlamaCheckpoint> readHFCheckpoint(const std::string &folderName) {
  const fs::path folder(folderName);
  auto config = parseConfig((folder / "config.json").string());
  if (!config)
    return config.error();
  auto shards = listShards(folder);
  if (!shards)
    return shards.error();

  LlamaCheckpoint ckpt;
  ckpt.config = *config;
  std::vector<std::string> shardPaths;
  shardPaths.reserve(shards->size());
  std::map<std::string, NamedTensor, std::less<>> tensors;
  for (const fs::path &shard : *shards) {
    auto file = SafetensorsFile::open(shard.string());
    if (!file)
      return file.error();
    const std::string &shardPath = shardPaths.emplace_back(shard.string());
    for (const auto &[name, view] : file->tensors()) {
      auto [it, inserted] = tensors.try_emplace(name, view, &shardPath);
      if (!inserted)
        return Error(folderName + ": tensor '" + name + "' appears in both " +
                     *it->second.file + " and " + shardPath);
    }
    ckpt.storage.push_back(file->storage());
  }

  // Where each view goes, under which name, in which shape.
  struct Wanted {
    TensorView &out;
    std::string name;
    std::vector<int64_t> shape;
  };
  auto resolve = [&](const std::vector<Wanted> &wanted) -> Status {
    for (const Wanted &w : wanted) {
      auto it = tensors.find(w.name);
      if (it == tensors.end())
        return Error(folderName + ": tensor '" + w.name +
                     "' not found in any .safetensors file");
      const TensorView &view = it->second.view;
      if (view.shape != w.shape)
        return Error(*it->second.file + ": tensor '" + w.name +
                     "' has shape " + formatShape(view.shape) +
                     " but config.json implies " + formatShape(w.shape));
      w.out = view;
    }
    return Status::ok();
  };

  const LlamaConfig &c = ckpt.config;
  const int64_t d = c.dim, q = c.heads * c.headDim, kv = c.kvDim();
  // A tied checkpoint may still carry lm_head.weight (a copy of the
  // embedding); config.json decides, so it is ignored then.
  std::vector<Wanted> outer = {
      {ckpt.embedding, "model.embed_tokens.weight", {c.vocab, d}},
      {ckpt.finalNorm, "model.norm.weight", {d}}};
  if (!c.tiedEmbedding)
    outer.push_back({ckpt.classifier.emplace(), "lm_head.weight",
                     {c.vocab, d}});
  if (Status s = resolve(outer); !s)
    return s.error();
  // Layers are added one at a time, so an absurd num_hidden_layers fails on
  // the first missing tensor instead of allocating a huge vector.
  for (int64_t i = 0; i < c.layers; ++i) {
    LlamaLayerWeights &l = ckpt.layers.emplace_back();
    const std::string p = "model.layers." + std::to_string(i) + ".";
    Status s = resolve({
        {l.attnNorm, p + "input_layernorm.weight", {d}},
        {l.wq, p + "self_attn.q_proj.weight", {q, d}},
        {l.wk, p + "self_attn.k_proj.weight", {kv, d}},
        {l.wv, p + "self_attn.v_proj.weight", {kv, d}},
        {l.wo, p + "self_attn.o_proj.weight", {d, q}},
        {l.ffnNorm, p + "post_attention_layernorm.weight", {d}},
        {l.w1, p + "mlp.gate_proj.weight", {c.hidden, d}},
        {l.w2, p + "mlp.down_proj.weight", {d, c.hidden}},
        {l.w3, p + "mlp.up_proj.weight", {c.hidden, d}},
    });
    if (!s)
      return s.error();
    std::vector<Wanted> optional;
    if (c.qkvBias) {
      optional.push_back({l.bq.emplace(), p + "self_attn.q_proj.bias", {q}});
      optional.push_back({l.bk.emplace(), p + "self_attn.k_proj.bias", {kv}});
      optional.push_back({l.bv.emplace(), p + "self_attn.v_proj.bias", {kv}});
    }
    if (c.outputBias)
      optional.push_back({l.bo.emplace(), p + "self_attn.o_proj.bias", {d}});
    if (c.qkNorm) {
      optional.push_back({l.qNorm.emplace(), p + "self_attn.q_norm.weight", {c.headDim}});
      optional.push_back({l.kNorm.emplace(), p + "self_attn.k_norm.weight", {c.headDim}});
    }
    if (Status st = resolve(optional); !st)
      return st.error();
  }

  if (Status s = validateCheckpoint(ckpt, folderName); !s)
    return s.error();
  return ckpt;
}

} // namespace lathe::frontend
