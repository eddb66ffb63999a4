// Parameter files end to end: stories15M as a Hugging Face folder, compiled
// three ways: with its weights in the artifact; from its config.json alone
// with --external-weights, the parameter file then packed from the
// safetensors by lathe-pack's library (MLIR-free); and from the folder with
// --external-weights, the compiler writing the file. Every tensor's bytes
// must be the embedded artifact's, format by format, and the greedy ids the
// same. An artifact whose weights the compiler changed is refused.
#include "test/e2e/HFFolderWriter.h"
#include "test/e2e/ModelFixture.h"

#include "compiler/Frontend/HFCheckpoint.h"
#include "compiler/Frontend/Llama2cCheckpoint.h"
#include "compiler/Frontend/PackParameters.h"
#include "runtime/artifact/ParameterFile.h"

#include <algorithm>

namespace lathe::test {
namespace {

class ExternalWeightsTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!haveModel())
      GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  }

  /// Compiles `input` (no tokenizer: nothing calibrated) to `name`.lathe.
  std::string compileTo(const std::string &input, const std::string &name,
                        const std::string &quant, bool external) {
    compiler::CompileOptions options;
    options.input = input;
    options.quant = quant;
    options.externalWeights = external;
    options.output = tempPath(name + ".lathe");
    std::string ignored;
    llvm::raw_string_ostream out(ignored);
    Status s = compiler::compile(options, out);
    EXPECT_TRUE(s) << name << ": " << s.error().message();
    return options.output;
  }
};

std::shared_ptr<const artifact::Artifact> load(const std::string &path,
                                               const std::string &parameters = "") {
  artifact::LoadOptions options;
  options.parameters = parameters;
  auto a = artifact::Artifact::load(path, options);
  EXPECT_TRUE(a) << a.error().message();
  return a ? *a : nullptr;
}

void expectSameWeights(const artifact::Artifact &want, const artifact::Artifact &got,
                       const std::string &what) {
  ASSERT_EQ(got.tensors().size(), want.tensors().size()) << what;
  for (size_t i = 0; i < want.tensors().size(); ++i) {
    ASSERT_EQ(got.tensors()[i].name, want.tensors()[i].name) << what;
    ASSERT_EQ(got.tensors()[i].formatName(), want.tensors()[i].formatName()) << what;
    std::span<const uint8_t> a = want.tensorData(i), b = got.tensorData(i);
    ASSERT_EQ(a.size(), b.size()) << what << ": " << want.tensors()[i].name;
    EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin()))
        << what << ": tensor " << want.tensors()[i].name << " differs";
  }
}

TEST_F(ExternalWeightsTest, PackedFromTheCheckpointAsTheCompilerEmbedsThem) {
  auto ck = frontend::readLlama2cCheckpoint(modelDir() + "/stories15M.bin");
  ASSERT_TRUE(ck) << ck.error().message();
  nlohmann::json ref = loadReference();
  const std::vector<int32_t> prompt = ref["prompts"][0]["prompt_ids"];
  struct Case {
    bool bf16, tied;
    std::vector<std::string> quants;
  };
  // Float, INT, FP6 4+2 and MX rows; f32 and bf16 checkpoints (bf16 rows
  // are quantized from their float values, as the compiler does), a
  // separate classifier and a tied one.
  const Case cases[] = {{false, false, {"none", "int4:group=32", "fp6_4p2"}},
                        {true, true, {"none", "int8:group=32", "mxfp4"}}};
  for (const Case &c : cases) {
    HFWriter writer;
    writer.bf16 = c.bf16;
    const std::string folder = tempPath(c.bf16 ? "hf-bf16" : "hf-f32");
    writer.write(*ck, folder, c.tied);
    auto checkpoint = frontend::readHFCheckpoint(folder);
    ASSERT_TRUE(checkpoint) << checkpoint.error().message();
    for (const std::string &quant : c.quants) {
      const std::string what = folder + " " + quant;
      SCOPED_TRACE(what);
      std::string tag = quant.substr(0, quant.find(':'));
      tag = (c.bf16 ? "bf16-" : "f32-") + tag;
      auto embedded = load(compileTo(folder, tag + "-embedded", quant, false));
      ASSERT_NE(embedded, nullptr);
      // From config.json alone: no weights read, the file packed after.
      const std::string path = compileTo(folder + "/config.json", tag + "-config", quant, true);
      artifact::LoadOptions description;
      description.descriptionOnly = true;
      auto table = artifact::Artifact::load(path, description);
      ASSERT_TRUE(table) << table.error().message();
      ASSERT_NE((*table)->externalWeights(), nullptr);
      EXPECT_TRUE((*table)->externalWeights()->fromCheckpoint);
      const std::string packed = tempPath(tag + "-packed.params");
      Status s = frontend::packParameters(**table, *checkpoint, folder, packed);
      ASSERT_TRUE(s) << s.error().message();
      auto fromPack = load(path, packed);
      ASSERT_NE(fromPack, nullptr);
      expectSameWeights(*embedded, *fromPack, what + ", packed");
      // From the folder: the compiler writes the same file beside it.
      const std::string both = compileTo(folder, tag + "-folder", quant, true);
      auto fromCompiler = load(both);
      ASSERT_NE(fromCompiler, nullptr);
      expectSameWeights(*embedded, *fromCompiler, what + ", written by the compiler");
      EXPECT_EQ(fromCompiler->externalWeights()->id, fromPack->externalWeights()->id);
      EXPECT_EQ(greedyIds(fromPack, prompt, 12), greedyIds(embedded, prompt, 12));
    }
  }
}

TEST_F(ExternalWeightsTest, AnotherFormOfTheModelIsRefused) {
  const std::string llama2c = modelDir() + "/stories15M.bin";
  auto ck = frontend::readLlama2cCheckpoint(llama2c);
  ASSERT_TRUE(ck) << ck.error().message();
  // From the llama2.c checkpoint itself: the bytes the compiler embeds
  // (float: a quantized build would calibrate on the tokenizer beside it).
  auto embedded = load(compileTo(llama2c, "llama2c-embedded", "none", false));
  const std::string external = compileTo(llama2c, "llama2c-external", "none", true);
  ASSERT_NE(embedded, nullptr);
  artifact::LoadOptions description;
  description.descriptionOnly = true;
  auto table = artifact::Artifact::load(external, description);
  ASSERT_TRUE(table) << table.error().message();
  const std::string packed = tempPath("llama2c-packed.params");
  Status s = frontend::packParameters(**table, *ck, llama2c, packed);
  ASSERT_TRUE(s) << s.error().message();
  auto fromPack = load(external, packed);
  ASSERT_NE(fromPack, nullptr);
  expectSameWeights(*embedded, *fromPack, "llama2.c, packed");
  // Its Hugging Face conversion holds the same tensors, q/k rows in
  // rotate-half order: not what this artifact's RoPE pairs.
  HFWriter writer;
  const std::string folder = tempPath("hf-untied-form");
  writer.write(*ck, folder, /*tied=*/false);
  auto hf = frontend::readHFCheckpoint(folder);
  ASSERT_TRUE(hf) << hf.error().message();
  Status rope = frontend::packParameters(**table, *hf, folder, tempPath("x.params"));
  ASSERT_FALSE(rope);
  EXPECT_NE(rope.error().message().find("pairs q/k rows for rotate-half (Hugging Face's) RoPE"),
            std::string::npos)
      << rope.error().message();
  // An untied checkpoint for an artifact compiled tied: lm_head is left over.
  HFWriter tiedWriter;
  const std::string tiedFolder = tempPath("hf-tied-form");
  tiedWriter.write(*ck, tiedFolder, /*tied=*/true);
  const std::string tiedPath = compileTo(tiedFolder + "/config.json", "tied-config", "none", true);
  auto tiedTable = artifact::Artifact::load(tiedPath, description);
  ASSERT_TRUE(tiedTable) << tiedTable.error().message();
  Status untied = frontend::packParameters(**tiedTable, *hf, folder, tempPath("y.params"));
  ASSERT_FALSE(untied);
  EXPECT_NE(untied.error().message().find("has tensor 'output', which"), std::string::npos)
      << untied.error().message();
  EXPECT_FALSE(std::filesystem::exists(tempPath("x.params")));
  EXPECT_FALSE(std::filesystem::exists(tempPath("y.params")));
}

TEST_F(ExternalWeightsTest, WeightsTheCompilerChangedAreNotPacked) {
  // With a tokenizer the compiler calibrates and equalizes a 4-bit build's
  // channels: only its own parameter file holds those weights.
  compiler::CompileOptions options;
  options.input = modelDir() + "/stories15M.bin";
  options.tokenizer = modelDir() + "/tokenizer.bin";
  options.quant = "int4:group=32";
  options.externalWeights = true;
  options.output = tempPath("equalized.lathe");
  std::string ignored;
  llvm::raw_string_ostream out(ignored);
  Status s = compiler::compile(options, out);
  ASSERT_TRUE(s) << s.error().message();
  auto equalized = load(options.output); // its own file, beside it
  ASSERT_NE(equalized, nullptr);
  EXPECT_FALSE(equalized->externalWeights()->fromCheckpoint);
  auto ck = frontend::readLlama2cCheckpoint(modelDir() + "/stories15M.bin");
  ASSERT_TRUE(ck);
  Status refused = frontend::packParameters(*equalized, *ck, "stories15M.bin",
                                            tempPath("equalized-packed.params"));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("the compiler changed its weights"),
            std::string::npos)
      << refused.error().message();
  EXPECT_FALSE(std::filesystem::exists(tempPath("equalized-packed.params")));
}

} // namespace
} // namespace lathe::test
