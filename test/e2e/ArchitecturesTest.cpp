// Each decoder family the Hugging Face frontend imports (Llama 3 with rope
// scaling, Llama with attention biases, Mistral, Qwen2 with q/k/v biases,
// Qwen3 with q/k norms and a head size of its own, with and without
// attention biases) against the logits of Hugging Face transformers for the
// same files. The test writes each small
// random checkpoint itself, with the generator that
// scripts/make-arch-reference.py used where transformers ran (the recorded
// checksum proves the weights are the same), compiles it for the CPU and
// compares every position's logits, decoding one token at a time and as one
// prefill. Tolerance 1e-4 absolute (issue 19): both sides compute in float32,
// in different orders.
#include "test/e2e/ModelFixture.h"

#include "compiler/Frontend/Safetensors.h"
#include "runtime/engine/Session.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <fstream>

namespace lathe::test {
namespace {

uint64_t fnv1a64(const uint8_t *data, size_t n, uint64_t h = 0xCBF29CE484222325ull) {
  for (size_t i = 0; i < n; ++i)
    h = (h ^ data[i]) * 0x100000001B3ull;
  return h;
}

/// The script's values(): u in [-1, 1) in steps of 2^-15 from splitmix64
/// seeded with fnv1a64(name); matrices and biases u / 4, gains 1 + u / 4.
/// Every value is exact in float32.
std::vector<float> values(const std::string &name, int64_t count, const std::string &kind) {
  uint64_t x = fnv1a64(reinterpret_cast<const uint8_t *>(name.data()), name.size());
  std::vector<float> out(count);
  for (int64_t i = 0; i < count; ++i) {
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const double u = (double(z >> 48) - 32768.0) / 32768.0;
    out[i] = float(kind == "gain" ? 1.0 + u / 4 : u / 4);
  }
  return out;
}

nlohmann::json loadCase(const std::string &name) {
  std::ifstream in(std::string(LATHE_TEST_DATA_DIR) + "/architectures/" + name + ".json");
  EXPECT_TRUE(in) << name;
  return nlohmann::json::parse(in);
}

/// Writes the case's folder; returns its path.
std::string writeFolder(const nlohmann::json &c, const std::string &name) {
  const std::string folder = tempPath("arch-" + name);
  std::filesystem::create_directories(folder);
  std::ofstream(folder + "/config.json") << c["config"].dump(2);
  std::vector<std::vector<float>> data;
  std::vector<std::pair<std::string, frontend::TensorView>> tensors;
  uint64_t checksum = 0xCBF29CE484222325ull;
  for (const auto &t : c["tensors"]) {
    std::vector<int64_t> shape = t["shape"];
    int64_t count = 1;
    for (int64_t d : shape)
      count *= d;
    data.push_back(values(t["name"], count, t["kind"]));
    const auto *bytes = reinterpret_cast<const uint8_t *>(data.back().data());
    checksum = fnv1a64(bytes, count * sizeof(float), checksum);
    frontend::TensorView view;
    view.shape = shape;
    view.bytes = {bytes, count * sizeof(float)};
    tensors.push_back({t["name"], view});
  }
  EXPECT_EQ(fmt::format("{:016x}", checksum), c["weights_fnv1a64"].get<std::string>())
      << name << ": the weights differ from those transformers ran";
  Status s = frontend::writeSafetensors(folder + "/model.safetensors", tensors, {{"format", "pt"}});
  EXPECT_TRUE(s) << s.error().message();
  return folder;
}

std::shared_ptr<const artifact::Artifact> compileFolder(const std::string &folder,
                                                        const std::string &name,
                                                        std::optional<int64_t> groups = {}) {
  compiler::CompileOptions options;
  options.input = folder;
  options.quant = "none";
  options.prefillGroups = groups;
  return compileAndLoad(options, "arch-" + name + (groups ? "-grouped" : ""));
}

class ArchitecturesTest : public ::testing::TestWithParam<const char *> {};

TEST_P(ArchitecturesTest, LogitsMatchTransformers) {
  const std::string name = GetParam();
  const nlohmann::json c = loadCase(name);
  auto artifact = compileFolder(writeFolder(c, name), name);
  ASSERT_NE(artifact, nullptr);
  const std::vector<int32_t> tokens = c["tokens"];
  const auto &want = c["logits"];
  const size_t vocab = want[0].size();

  // The generated code, the interpreted plan on the SIMD kernels, and the
  // reference kernels.
  struct Path {
    const char *name;
    SessionOptions options;
  };
  SessionOptions interpreted, reference;
  interpreted.nativeCode = false;
  reference.kernels = backend::KernelPath::Reference;
  for (const Path &path : {Path{"generated code", {}}, Path{"interpreted", interpreted},
                           Path{"reference kernels", reference}}) {
    // One token a step: every position's logits.
    auto session = Session::create(artifact, path.options);
    ASSERT_TRUE(session) << session.error().message();
    double worst = 0;
    for (size_t t = 0; t < tokens.size(); ++t) {
      auto logits = session->forward(std::span(&tokens[t], 1));
      ASSERT_TRUE(logits) << logits.error().message();
      ASSERT_EQ(logits->size(), vocab);
      for (size_t v = 0; v < vocab; ++v) {
        const double diff = std::abs(double((*logits)[v]) - want[t][v].get<double>());
        worst = std::max(worst, diff);
        ASSERT_LE(diff, 1e-4) << name << ", " << path.name << ": position " << t << ", token "
                              << v;
      }
    }
    // The whole prompt as one prefill step: the last position's logits.
    auto prefill = Session::create(artifact, path.options);
    ASSERT_TRUE(prefill);
    auto last = prefill->forward(tokens);
    ASSERT_TRUE(last) << last.error().message();
    for (size_t v = 0; v < vocab; ++v)
      ASSERT_NEAR((*last)[v], want[tokens.size() - 1][v].get<double>(), 1e-4)
          << name << ", " << path.name << ": prefill, token " << v;
    std::printf("%s, %s: largest difference from transformers %.3g\n", name.c_str(), path.name,
                worst);
  }
}

// Each layer in a group of its own (--prefill-groups): every family's
// layers begin where lathe-group-layers finds their query product's input
// (a bias add, a per-head q norm in between), and the prompt run one group
// at a time on the interpreter is the whole interpreted step, to the bit.
TEST_P(ArchitecturesTest, LayerGroupsRunAsOneStep) {
  const std::string name = GetParam();
  const nlohmann::json c = loadCase(name);
  const int64_t layers = c["config"]["num_hidden_layers"];
  auto artifact = compileFolder(writeFolder(c, name), name, layers);
  ASSERT_NE(artifact, nullptr);
  SessionOptions interpreted;
  interpreted.nativeCode = false;
  auto executable = backend::load(artifact, interpreted);
  ASSERT_TRUE(executable) << executable.error().message();
  ASSERT_EQ(int64_t((*executable)->layerGroups().size()), layers) << name;

  const std::vector<int32_t> tokens = c["tokens"];
  std::vector<std::vector<float>> logits;
  for (bool layered : {false, true}) {
    auto kv = (*executable)->createKVCache((*executable)->config().context);
    ASSERT_TRUE(kv) << kv.error().message();
    backend::Batch batch;
    batch.addChain((*kv)->addSequence(), tokens, 0, backend::Batch::Logits::All);
    Expected<std::span<const float>> got = std::span<const float>();
    std::unique_ptr<backend::LayerCarry> carry;
    for (size_t g = 0; g < (layered ? size_t(layers) : 1); ++g) {
      got = layered ? (*executable)->executeLayers(batch, **kv, g, carry)
                    : (*executable)->execute(batch, **kv);
      ASSERT_TRUE(got) << name << ": " << got.error().message();
    }
    logits.emplace_back(got->begin(), got->end());
  }
  ASSERT_EQ(logits[1].size(), tokens.size() * c["logits"][0].size());
  for (size_t i = 0; i < logits[0].size(); ++i)
    ASSERT_EQ(logits[1][i], logits[0][i]) << name << ": element " << i;
}

INSTANTIATE_TEST_SUITE_P(HuggingFace, ArchitecturesTest,
                         ::testing::Values("llama3", "llama-attention-bias", "mistral", "qwen2",
                                           "qwen3", "qwen3-attention-bias"),
                         [](const auto &info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

} // namespace
} // namespace lathe::test
