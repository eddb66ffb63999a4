// End to end through the Hugging Face frontend: the test writes stories15M as
// a LlamaForCausalLM folder (config.json + safetensors shards, q/k rows in
// HF's rotate-half order, as transformers' conversion script permutes them)
// and checks that it compiles to the same outputs as the llama2.c checkpoint.
#include "test/e2e/ModelFixture.h"

#include "compiler/Frontend/Llama2cCheckpoint.h"
#include "test/e2e/HFFolderWriter.h"
#include "runtime/engine/Generation.h"
#include "runtime/engine/Session.h"

#include <cstring>

namespace lathe::test {
namespace {

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
