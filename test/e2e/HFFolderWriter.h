// stories15M (or any llama2.c checkpoint) written as a Hugging Face
// LlamaForCausalLM folder: config.json and two safetensors shards, q/k rows
// in HF's rotate-half order (as transformers' conversion script permutes
// them), f32 or bf16, tied or untied. Shared by the end-to-end tests of the
// HF frontend and of parameter files packed from a checkpoint.
#pragma once

#include "compiler/Frontend/LlamaCheckpoint.h"
#include "compiler/Frontend/Safetensors.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace lathe::test {

using frontend::TensorView;

/// Meta's interleaved rows (2i, 2i+1) of each head -> HF rows (i, i + half).
inline std::vector<uint8_t> toRotateHalf(const TensorView &w, int64_t headDim) {
  int64_t rows = w.shape[0], cols = w.shape[1], half = headDim / 2;
  size_t rowBytes = cols * sizeof(float);
  std::vector<uint8_t> out(w.bytes.size());
  for (int64_t r = 0; r < rows; ++r) {
    int64_t head = r / headDim, within = r % headDim;
    int64_t i = within / 2, j = within % 2;
    int64_t hfRow = head * headDim + j * half + i;
    std::memcpy(out.data() + hfRow * rowBytes, w.bytes.data() + r * rowBytes, rowBytes);
  }
  return out;
}

/// F32 -> BF16 with round-to-nearest-even, for the bf16 variant.
inline std::vector<uint8_t> toBF16(std::span<const uint8_t> f32) {
  std::vector<uint8_t> out(f32.size() / 2);
  for (size_t i = 0; i < f32.size() / 4; ++i) {
    uint32_t bits;
    std::memcpy(&bits, f32.data() + 4 * i, 4);
    uint16_t h = static_cast<uint16_t>((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
    std::memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}

struct HFWriter {
  std::vector<std::unique_ptr<std::vector<uint8_t>>> owned;
  bool bf16 = false;

  TensorView keep(std::vector<uint8_t> bytes, const TensorView &like) {
    owned.push_back(std::make_unique<std::vector<uint8_t>>(std::move(bytes)));
    TensorView v = like;
    v.bytes = *owned.back();
    return v;
  }
  TensorView convert(const TensorView &v) {
    if (!bf16)
      return v;
    TensorView out = keep(toBF16(v.bytes), v);
    out.type = ElementType::BF16;
    return out;
  }

  /// Writes `folder`: two shards (layers split in halves), tied or untied.
  void write(const frontend::LlamaCheckpoint &ck, const std::string &folder,
             bool tied) {
    const auto &c = ck.config;
    std::filesystem::create_directories(folder);
    std::vector<std::pair<std::string, TensorView>> shard[2];
    shard[0].push_back({"model.embed_tokens.weight", convert(ck.embedding)});
    for (int64_t l = 0; l < c.layers; ++l) {
      const auto &w = ck.layers[l];
      auto &s = shard[l < c.layers / 2 ? 0 : 1];
      std::string p = "model.layers." + std::to_string(l) + ".";
      s.push_back({p + "input_layernorm.weight", convert(w.attnNorm)});
      s.push_back({p + "self_attn.q_proj.weight",
                   convert(keep(toRotateHalf(w.wq, c.headDim), w.wq))});
      s.push_back({p + "self_attn.k_proj.weight",
                   convert(keep(toRotateHalf(w.wk, c.headDim), w.wk))});
      s.push_back({p + "self_attn.v_proj.weight", convert(w.wv)});
      s.push_back({p + "self_attn.o_proj.weight", convert(w.wo)});
      s.push_back({p + "post_attention_layernorm.weight", convert(w.ffnNorm)});
      s.push_back({p + "mlp.gate_proj.weight", convert(w.w1)});
      s.push_back({p + "mlp.down_proj.weight", convert(w.w2)});
      s.push_back({p + "mlp.up_proj.weight", convert(w.w3)});
    }
    shard[1].push_back({"model.norm.weight", convert(ck.finalNorm)});
    if (!tied)
      shard[1].push_back({"lm_head.weight", convert(ck.embedding)});
    for (int i = 0; i < 2; ++i) {
      Status s = frontend::writeSafetensors(
          folder + "/model-0000" + std::to_string(i + 1) + "-of-00002.safetensors",
          shard[i], {{"format", "pt"}});
      ASSERT_TRUE(s) << s.error().message();
    }
    nlohmann::json config = {
        {"architectures", {"LlamaForCausalLM"}},
        {"model_type", "llama"},
        {"hidden_size", c.dim},
        {"intermediate_size", c.hidden},
        {"num_hidden_layers", c.layers},
        {"num_attention_heads", c.heads},
        {"num_key_value_heads", c.kvHeads},
        {"vocab_size", c.vocab},
        {"max_position_embeddings", c.context},
        {"rms_norm_eps", 1e-5},
        {"rope_theta", 10000.0},
        {"hidden_act", "silu"},
        {"tie_word_embeddings", tied},
        {"torch_dtype", bf16 ? "bfloat16" : "float32"}};
    std::ofstream(folder + "/config.json") << config.dump(2);
  }
};

} // namespace lathe::test
