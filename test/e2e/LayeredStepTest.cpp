// Layered prefill's step (issue 22) on stories15M compiled with
// --prefill-groups=3: a batch run one layer group at a time
// (Executable::executeLayers), with another sequence's decode steps run
// between its groups, gives the logits and the KV cache rows of one whole
// step. The groups run on the CPU interpreter, so against the interpreted
// whole step they agree to the bit; against the generated code, to the
// rounding of its element-wise loops (1e-5, as CpuBackendTest allows).
#include "test/e2e/ModelFixture.h"

#include <algorithm>
#include <cmath>

namespace lathe::test {
namespace {

using backend::Batch;

std::shared_ptr<const artifact::Artifact> groupedArtifact() {
  static std::shared_ptr<const artifact::Artifact> artifact = [] {
    compiler::CompileOptions options;
    options.input = modelDir() + "/stories15M.bin";
    options.tokenizer = modelDir() + "/tokenizer.bin";
    options.prefillGroups = 3;
    return compileAndLoad(options, "layered");
  }();
  return artifact;
}

std::shared_ptr<backend::Executable> load(std::shared_ptr<const artifact::Artifact> artifact,
                                          bool nativeCode) {
  SessionOptions options;
  options.nativeCode = nativeCode;
  auto loaded = backend::load(std::move(artifact), options);
  EXPECT_TRUE(loaded) << loaded.error().message();
  return loaded ? *loaded : nullptr;
}

/// Equal to the bit (tolerance 0) or within `tolerance` relative.
void expectAgree(std::span<const float> got, std::span<const float> want, float tolerance,
                 const std::string &what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    if (tolerance == 0)
      ASSERT_EQ(got[i], want[i]) << what << ", element " << i;
    else
      ASSERT_NEAR(got[i], want[i], tolerance * (1 + std::fabs(want[i])))
          << what << ", element " << i;
  }
}

std::vector<float> copy(std::span<const float> logits) { return {logits.begin(), logits.end()}; }

class LayeredStepTest : public ::testing::TestWithParam<bool> {
protected:
  void SetUp() override {
    if (!haveModel())
      GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
    artifact = groupedArtifact();
    ASSERT_NE(artifact, nullptr);
    executable = load(artifact, GetParam());
    whole = load(artifact, false);
    ASSERT_TRUE(executable && whole);
    ASSERT_EQ(executable->usesNativeCode(), GetParam());
    tolerance = GetParam() ? 1e-5f : 0.0f;
    nlohmann::json ref = loadReference();
    for (const auto &p : ref["prompts"])
      prompts.push_back(p["prompt_ids"].get<std::vector<int32_t>>());
    ASSERT_GE(prompts.size(), 3u);
  }

  std::shared_ptr<const artifact::Artifact> artifact;
  std::shared_ptr<backend::Executable> executable, whole;
  float tolerance = 0;
  std::vector<std::vector<int32_t>> prompts;
};

TEST_P(LayeredStepTest, GroupsBetweenDecodeStepsMatchOneWholeStep) {
  // 6 layers in 3 groups of 2; each later group begins at the add_rms_norm
  // that finishes the previous layer's residual.
  const std::vector<plan::LayerGroup> &groups = executable->layerGroups();
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0], (plan::LayerGroup{0, 0}));
  EXPECT_EQ(groups[1].firstLayer, 2u);
  EXPECT_EQ(groups[2].firstLayer, 4u);
  const plan::KernelPlan &plan = *artifact->schedule("cpu");
  for (size_t g = 1; g < groups.size(); ++g)
    EXPECT_EQ(plan::stepName(plan.steps[groups[g].firstStep]), std::string("add_rms_norm"));

  // Sequence d decodes while two new prompts (p: every token's logits, q:
  // the last one's) prefill, in the same cache.
  const int64_t vocab = executable->config().vocab;
  struct Run {
    std::unique_ptr<kv::PagedKVCache> kv;
    backend::SequenceId d, p, q;
    std::vector<std::vector<float>> decode; // d's logits, step by step
    std::vector<float> prefill;             // p's and q's
  };
  auto start = [&](backend::Executable &e) {
    Run r;
    auto kv = e.createKVCache(3 * e.config().context);
    EXPECT_TRUE(kv) << kv.error().message();
    r.kv = kv.take();
    r.d = r.kv->addSequence();
    r.p = r.kv->addSequence();
    r.q = r.kv->addSequence();
    Batch prompt;
    prompt.addChain(r.d, prompts[0], 0, Batch::Logits::None);
    EXPECT_TRUE(whole->execute(prompt, *r.kv)); // the same d in both runs
    return r;
  };
  Batch prefill;
  auto decodeStep = [&](backend::Executable &e, Run &r, int32_t token) {
    Batch step;
    step.add(r.d, token, int32_t(r.kv->length(r.d)), -1, true);
    auto logits = e.execute(step, *r.kv);
    ASSERT_TRUE(logits) << logits.error().message();
    r.decode.push_back(copy(*logits));
  };
  const int32_t decoded[] = {403, 931, 263};

  // The reference: d's decode steps, then the prefill as one whole step.
  Run a = start(*whole);
  for (int32_t t : decoded)
    decodeStep(*whole, a, t);
  prefill.addChain(a.p, prompts[1], 0, Batch::Logits::All);
  prefill.addChain(a.q, prompts[2], 0, Batch::Logits::Last);
  auto logits = whole->execute(prefill, *a.kv);
  ASSERT_TRUE(logits) << logits.error().message();
  a.prefill = copy(*logits);

  // Layered: a decode step of d before each group.
  Run b = start(*whole);
  ASSERT_EQ(b.p, a.p);
  std::unique_ptr<backend::LayerCarry> carry;
  for (size_t g = 0; g < groups.size(); ++g) {
    decodeStep(*executable, b, decoded[g]);
    auto got = executable->executeLayers(prefill, *b.kv, g, carry);
    ASSERT_TRUE(got) << got.error().message();
    if (g + 1 < groups.size()) {
      EXPECT_TRUE(got->empty());
      ASSERT_NE(carry, nullptr);
      // The cache grew with the first group: the rows are the step's.
      EXPECT_EQ(b.kv->length(b.p), int64_t(prompts[1].size()));
    } else {
      b.prefill = copy(*got);
      EXPECT_EQ(carry, nullptr);
    }
  }
  const size_t rows = prompts[1].size() + 1;
  ASSERT_EQ(b.prefill.size(), rows * vocab);
  expectAgree(b.prefill, a.prefill, tolerance, "prefill logits");
  for (size_t s = 0; s < std::size(decoded); ++s)
    expectAgree(b.decode[s], a.decode[s], tolerance, "decode step " + std::to_string(s));

  // The groups stored the keys and values of the whole step: all three
  // sequences' next step agrees.
  Batch next;
  for (backend::SequenceId id : {a.d, a.p, a.q})
    next.add(id, 2501, int32_t(a.kv->length(id)), -1, true);
  auto after = whole->execute(next, *a.kv);
  ASSERT_TRUE(after) << after.error().message();
  const std::vector<float> want = copy(*after);
  auto got = whole->execute(next, *b.kv);
  ASSERT_TRUE(got) << got.error().message();
  expectAgree(*got, want, tolerance, "the step after");
}

TEST_P(LayeredStepTest, GroupsRunInOrderOnOneBatch) {
  auto kv = executable->createKVCache(2 * executable->config().context);
  ASSERT_TRUE(kv) << kv.error().message();
  const backend::SequenceId p = (*kv)->addSequence();
  Batch batch;
  batch.addChain(p, prompts[1], 0, Batch::Logits::Last);
  std::unique_ptr<backend::LayerCarry> carry;
  auto refused = [&](const Batch &b, size_t group) {
    auto r = executable->executeLayers(b, **kv, group, carry);
    return r ? std::string("ran") : r.error().message();
  };
  EXPECT_EQ(refused(batch, 3), "no layer group 3: the plan has 3");
  EXPECT_EQ(refused(batch, 1), "layer group 1 runs after group 0 of the same batch and KV cache");
  EXPECT_EQ((*kv)->length(p), 0) << "a refused group changes nothing";
  // A bad batch is refused by group 0 as execute refuses it.
  Batch bad = batch;
  bad.tokens[0] = int32_t(executable->config().vocab);
  EXPECT_NE(refused(bad, 0).find("token"), std::string::npos) << refused(bad, 0);
  EXPECT_EQ((*kv)->length(p), 0);

  EXPECT_EQ(refused(batch, 0), "ran");
  EXPECT_EQ(refused(batch, 2), "layer group 2 runs after group 1 of the same batch and KV cache");
  Batch other = batch;
  EXPECT_EQ(refused(other, 1), "layer group 1 runs after group 0 of the same batch and KV cache");
  EXPECT_EQ(refused(batch, 1), "ran");
  EXPECT_EQ(refused(batch, 2), "ran");
  EXPECT_EQ(carry, nullptr);
}

INSTANTIATE_TEST_SUITE_P(CodePaths, LayeredStepTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool> &info) {
                           return info.param ? std::string("Generated")
                                             : std::string("Interpreted");
                         });

// Without groups compiled in, a step is one group: group 0 is execute.
TEST(LayeredStepWithoutGroupsTest, GroupZeroIsTheWholeStep) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  auto artifact = compileAndLoad(modelDir() + "/stories15M.bin", "ungrouped");
  ASSERT_NE(artifact, nullptr);
  auto executable = load(artifact, false);
  ASSERT_NE(executable, nullptr);
  EXPECT_TRUE(executable->layerGroups().empty());
  std::vector<int32_t> prompt = loadReference()["prompts"][0]["prompt_ids"];
  std::vector<std::vector<float>> logits;
  for (bool layered : {false, true}) {
    auto kv = executable->createKVCache(executable->config().context);
    ASSERT_TRUE(kv) << kv.error().message();
    Batch batch;
    batch.addChain((*kv)->addSequence(), prompt, 0, Batch::Logits::Last);
    std::unique_ptr<backend::LayerCarry> carry;
    auto got = layered ? executable->executeLayers(batch, **kv, 0, carry)
                       : executable->execute(batch, **kv);
    ASSERT_TRUE(got) << got.error().message();
    logits.push_back(copy(*got));
    if (layered) {
      auto next = executable->executeLayers(batch, **kv, 1, carry);
      ASSERT_FALSE(next);
      EXPECT_EQ(next.error().message(), "no layer group 1: the plan has 1");
    }
  }
  expectAgree(logits[1], logits[0], 0, "group 0");
}

} // namespace
} // namespace lathe::test
