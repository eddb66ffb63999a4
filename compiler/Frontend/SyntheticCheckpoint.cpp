#include "compiler/Frontend/SyntheticCheckpoint.h"

#include "compiler/Frontend/HFCheckpoint.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sys/mman.h>

namespace lathe::frontend {
namespace {

/// config.json's dtype (or torch_dtype), as the element type of the zero
/// tensors: bf16 where it says none.
ElementType dtypeOf(const std::string &path) {
  std::ifstream in(path);
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_object())
    // transformers writes "dtype" since 4.56, "torch_dtype" before.
    for (const char *key : {"dtype", "torch_dtype"})
      if (auto it = j.find(key); it != j.end() && it->is_string()) {
        if (*it == "float32")
          return ElementType::F32;
        if (*it == "float16")
          return ElementType::F16;
        return ElementType::BF16;
      }
  return ElementType::BF16;
}

} // namespace

Expected<LlamaCheckpoint> readSyntheticCheckpoint(const std::string &input) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const std::string path =
      fs::is_directory(input, ec) ? (fs::path(input) / "config.json").string() : input;
  Expected<LlamaConfig> config = readHFConfig(path);
  if (!config)
    return config.error();
  LlamaCheckpoint ckpt;
  ckpt.config = *config;
  const LlamaConfig &c = ckpt.config;
  const ElementType type = dtypeOf(path);
  const int64_t d = c.dim, q = c.heads * c.headDim, kv = c.kvDim();
  const int64_t largest = std::max({c.vocab * d, c.hidden * d, q * d});
  const size_t bytes = size_t(largest) * elementSize(type);
  // Zero pages the kernel shares: reading them costs no memory.
  void *zeros = mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (zeros == MAP_FAILED)
    return Error(path + ": cannot map " + std::to_string(bytes) + " bytes of zeros");
  ckpt.memory.emplace_back(zeros, [bytes](void *p) { munmap(p, bytes); });
  // Norm gains are ones, as a speed model's loader makes them
  // (SyntheticWeights.h).
  // Long enough for every vector: a gain of dim, a bias of heads x head_dim.
  const int64_t longest = std::max(d, q);
  auto ones = std::make_shared<std::vector<uint8_t>>(size_t(longest) * elementSize(type));
  encodeFloats(std::vector<float>(size_t(longest), 1.0f).data(), longest, type, ones->data());
  ckpt.memory.push_back(ones);
  auto view = [&](std::vector<int64_t> shape) {
    TensorView v;
    v.type = type;
    v.shape = std::move(shape);
    const void *source = v.shape.size() == 1 ? ones->data() : zeros;
    v.bytes = {static_cast<const uint8_t *>(source), size_t(v.numElements()) * elementSize(type)};
    return v;
  };
  ckpt.embedding = view({c.vocab, d});
  ckpt.finalNorm = view({d});
  if (!c.tiedEmbedding)
    ckpt.classifier = view({c.vocab, d});
  for (int64_t i = 0; i < c.layers; ++i) {
    ckpt.layers.push_back({view({d}), view({q, d}), view({kv, d}), view({kv, d}), view({d, q}),
                           view({d}), view({c.hidden, d}), view({d, c.hidden}),
                           view({c.hidden, d})});
    // The tensors the config asks for beyond Llama's (Qwen2's biases,
    // Qwen3's q/k norms), as the HF reader would find them.
    LlamaLayerWeights &w = ckpt.layers.back();
    if (c.qkvBias) {
      w.bq = view({q});
      w.bk = view({kv});
      w.bv = view({kv});
    }
    if (c.outputBias)
      w.bo = view({d});
    if (c.qkNorm) {
      w.qNorm = view({c.headDim});
      w.kNorm = view({c.headDim});
    }
  }
  if (Status s = validateCheckpoint(ckpt, path); !s)
    return s.error();
  return ckpt;
}

} // namespace lathe::frontend
