// End to end through the Hugging Face frontend: the test writes stories15M as
// a LlamaForCausalLM folder (config.json + safetensors shards, q/k rows in
// HF's rotate-half order, as transformers' conversion script permutes them)
// and checks that it compiles to the same outputs as the llama2.c checkpoint.
#include "test/e2e/ModelFixture.h"

#include "compiler/Frontend/Llama2cCheckpoint.h"
#include "compiler/Frontend/Safetensors.h"
#include "runtime/engine/Generation.h"
#include "runtime/engine/Session.h"

#include <cstring>

namespace lathe::test {
namespace {

using frontend::TensorView;

/// Meta's interleaved rows (2i, 2i+1) of each head -> HF rows (i, i + half).
std::vector<uint8_t> toRotateHalf(const TensorView &w, int64_t headDim) {
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
std::vector<uint8_t> toBF16(std::span<const uint8_t> f32) {
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

std::vector<float> lastLogits(std::shared_ptr<const artifact::Artifact> a,
                              const std::vector<int32_t> &prompt) {
  auto session = Session::create(a);
  auto logits = session->forward(prompt);
  EXPECT_TRUE(logits);
  return {logits->begin(), logits->end()};
}

class HFCheckpointTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!haveModel())
      GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  }
};

TEST_F(HFCheckpointTest, SameOutputsAsLlama2c) {
  auto ck = frontend::readLlama2cCheckpoint(modelDir() + "/stories15M.bin");
  ASSERT_TRUE(ck) << ck.error().message();
  auto reference = compileAndLoad(modelDir() + "/stories15M.bin", "llama2c");
  ASSERT_NE(reference, nullptr);
  nlohmann::json ref = loadReference();
  std::vector<int32_t> prompt = ref["prompts"][0]["prompt_ids"];
  std::vector<int32_t> expected = ref["prompts"][0]["greedy_ids"];
  std::vector<float> refLogits = lastLogits(reference, prompt);

  for (bool tied : {true, false}) {
    HFWriter writer;
    std::string folder = tempPath(tied ? "hf-tied" : "hf-untied");
    writer.write(*ck, folder, tied);
    auto hf = compileAndLoad(folder, tied ? "hf-tied" : "hf-untied");
    ASSERT_NE(hf, nullptr);
    EXPECT_EQ(hf->tensors().size(), reference->tensors().size() + (tied ? 0 : 1));
    EXPECT_EQ(greedyIds(hf, prompt, expected.size()), expected) << "tied " << tied;
    std::vector<float> logits = lastLogits(hf, prompt);
    ASSERT_EQ(logits.size(), refLogits.size());
    for (size_t v = 0; v < logits.size(); ++v)
      ASSERT_NEAR(logits[v], refLogits[v], 1e-4) << "token " << v;
  }
}

TEST_F(HFCheckpointTest, BF16WeightsStayBF16AndStayClose) {
  auto ck = frontend::readLlama2cCheckpoint(modelDir() + "/stories15M.bin");
  ASSERT_TRUE(ck);
  HFWriter writer;
  writer.bf16 = true;
  std::string folder = tempPath("hf-bf16");
  writer.write(*ck, folder, /*tied=*/true);
  auto hf = compileAndLoad(folder, "hf-bf16");
  ASSERT_NE(hf, nullptr);
  for (const auto &t : hf->tensors())
    EXPECT_EQ(t.type, ElementType::BF16) << t.name;
  // bf16 keeps 8 bits of mantissa: the greedy story starts the same way.
  nlohmann::json ref = loadReference();
  std::vector<int32_t> prompt = ref["prompts"][0]["prompt_ids"];
  std::vector<int32_t> expected = ref["prompts"][0]["greedy_ids"];
  std::vector<int32_t> got = greedyIds(hf, prompt, 10);
  EXPECT_EQ(got, std::vector<int32_t>(expected.begin(), expected.begin() + 10));
}

} // namespace
} // namespace lathe::test
