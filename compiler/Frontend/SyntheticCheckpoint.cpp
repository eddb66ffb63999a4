#include "compiler/Frontend/SyntheticCheckpoint.h"

#include "compiler/Frontend/HFCheckpoint.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sys/mman.h>

namespace lathe::frontend {
namespace {

/// torch_dtype of config.json, as the element type of the zero tensors.
ElementType dtypeOf(const std::string &path) {
  std::ifstream in(path);
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_object())
    if (auto it = j.find("torch_dtype"); it != j.end() && it->is_string()) {
      if (*it == "float32")
        return ElementType::F32;
      if (*it == "float16")
        return ElementType::F16;
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
  // Norm gains are ones, as the loader makes them (SyntheticWeights.h): the
  // CPU target's generated code holds the gains it was compiled with.
  auto ones = std::make_shared<std::vector<uint8_t>>(size_t(d) * elementSize(type));
  encodeFloats(std::vector<float>(size_t(d), 1.0f).data(), d, type, ones->data());
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
  for (int64_t i = 0; i < c.layers; ++i)
    ckpt.layers.push_back({view({d}), view({q, d}), view({kv, d}), view({kv, d}), view({d, q}),
                           view({d}), view({c.hidden, d}), view({d, c.hidden}),
                           view({c.hidden, d})});
  if (Status s = validateCheckpoint(ckpt, path); !s)
    return s.error();
  return ckpt;
}

} // namespace lathe::frontend
