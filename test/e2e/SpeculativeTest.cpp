// Speculative decoding on stories15M (FP32, the generated code; and a 4-bit
// build): the tokens of a speculative run equal plain decoding's (generate)
// on the reference prompts and on prompts of our own, 200 tokens past
// end-of-text, for several tree shapes (the one compiled into the artifact,
// lathe-compile --spec-tree, among them); at the end of the context; and
// sampled with a seed.
// A verification step of up to 16 tokens gives each node a single-token
// step's logits bit for bit (BatchedStepTest), so argmax agrees by
// construction there; larger trees agree to 1e-5.
#include "test/e2e/ModelFixture.h"

#include "runtime/speculative/SpeculativeGeneration.h"

namespace lathe::test {
namespace {

using speculative::SpeculativeOptions;
using speculative::SpeculativeStats;

class SpeculativeTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!haveModel())
      GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
    // Compiled for a tree (lathe-compile --spec-tree) larger than every
    // shape the tests run: --speculate without a shape runs it.
    static std::shared_ptr<const artifact::Artifact> artifact = [] {
      compiler::CompileOptions options;
      options.input = modelDir() + "/stories15M.bin";
      options.tokenizer = modelDir() + "/tokenizer.bin";
      options.specTree = kCompiledTree;
      return compileAndLoad(options, "speculative");
    }();
    ASSERT_NE(artifact, nullptr);
    static std::shared_ptr<backend::Executable> loaded = loadOnTwoThreads(artifact);
    ASSERT_NE(loaded, nullptr);
    executable = loaded;
  }

  static constexpr const char *kCompiledTree = "4x2x2x2x1x1x1x1"; // 189 nodes

  /// `position`: where the session stands afterwards (the tokens cached).
  std::vector<int32_t> plain(const std::vector<int32_t> &prompt, const GenerationOptions &o,
                             GenerationStats *stats = nullptr, int64_t *position = nullptr) {
    std::vector<int32_t> out;
    auto session = Session::create(executable);
    EXPECT_TRUE(session);
    auto s = generate(*session, prompt, o, [&](int32_t t) { out.push_back(t); });
    EXPECT_TRUE(s) << s.error().message();
    if (s && stats)
      *stats = *s;
    if (position)
      *position = session->position();
    return out;
  }

  std::vector<int32_t> speculate(const std::vector<int32_t> &prompt, const GenerationOptions &o,
                                 const std::string &shape, SpeculativeStats *stats = nullptr,
                                 std::shared_ptr<speculative::TreeDrafter> drafter = nullptr,
                                 int64_t *position = nullptr) {
    std::vector<int32_t> out;
    auto session = Session::create(executable);
    EXPECT_TRUE(session);
    SpeculativeOptions so;
    so.drafter = std::move(drafter);
    // "": the compiled tree, as lathe-run --speculate picks it.
    auto parsed = speculative::resolveTreeShape(*executable, shape);
    EXPECT_TRUE(parsed) << parsed.error().message();
    so.shape = *parsed;
    auto s = speculative::generateSpeculative(*session, prompt, o, so,
                                              [&](int32_t t) { out.push_back(t); });
    EXPECT_TRUE(s) << s.error().message();
    if (s && stats)
      *stats = *s;
    if (position)
      *position = session->position();
    return out;
  }

  static GenerationOptions pastEndOfText(int64_t n) {
    GenerationOptions o;
    o.maxNewTokens = n;
    o.stopAtEndOfText = false;
    return o;
  }

  static std::vector<std::vector<int32_t>> referencePrompts() {
    std::vector<std::vector<int32_t>> out;
    const nlohmann::json reference = loadReference();
    for (const auto &p : reference["prompts"])
      out.push_back(p["prompt_ids"].get<std::vector<int32_t>>());
    return out;
  }

  std::shared_ptr<backend::Executable> executable;
};

TEST_F(SpeculativeTest, GreedyEqualsPlainOnTheReferencePrompts) {
  // Plain decoding once per prompt, stopping at end-of-text and past it.
  const std::vector<std::vector<int32_t>> prompts = referencePrompts();
  std::vector<std::vector<int32_t>> plainIds[2];
  std::vector<GenerationStats> plainStats[2];
  for (int stop = 0; stop < 2; ++stop)
    for (const std::vector<int32_t> &prompt : prompts) {
      GenerationOptions o = pastEndOfText(200);
      o.stopAtEndOfText = stop;
      plainStats[stop].emplace_back();
      plainIds[stop].push_back(plain(prompt, o, &plainStats[stop].back()));
    }
  // The compiled tree ("": 4x2x2x2x1x1x1x1), and two others; the runtime's
  // default is the own prompts' shape.
  for (const std::string shape : {"", "4x2x2", "2x1x1x1x1x1"}) {
    int64_t steps = 0, tokens = 0;
    for (size_t i = 0; i < prompts.size(); ++i) {
      const std::vector<int32_t> &prompt = prompts[i];
      for (int stop = 0; stop < 2; ++stop) {
        GenerationOptions o = pastEndOfText(200);
        o.stopAtEndOfText = stop;
        const GenerationStats &want = plainStats[stop][i];
        const std::vector<int32_t> &expected = plainIds[stop][i];
        SpeculativeStats got;
        EXPECT_EQ(speculate(prompt, o, shape, &got), expected) << shape;
        EXPECT_EQ(got.generation.generatedTokens, want.generatedTokens);
        EXPECT_EQ(got.generation.reachedContextEnd, want.reachedContextEnd);
        steps += got.steps;
        tokens += got.generation.generatedTokens;
      }
    }
    // Drafting must pay: fewer steps than tokens.
    EXPECT_LT(steps, tokens) << shape;
    std::printf("shape %s: %lld tokens in %lld steps\n", shape.empty() ? "(compiled)" : shape.c_str(), (long long)tokens,
                (long long)steps);
  }
}

TEST_F(SpeculativeTest, TheCompiledTreeIsTheDefaultAndBoundsTheStep) {
  const speculative::TreeShape *compiled = speculative::compiledTreeShape(*executable);
  ASSERT_NE(compiled, nullptr);
  EXPECT_EQ(compiled->str(), kCompiledTree);
  auto none = speculative::resolveTreeShape(*executable, "");
  ASSERT_TRUE(none) << none.error().message();
  EXPECT_EQ(none->str(), kCompiledTree);
  auto runtimeDefault = speculative::resolveTreeShape(*executable, "default");
  ASSERT_TRUE(runtimeDefault) << runtimeDefault.error().message();
  EXPECT_EQ(runtimeDefault->str(), speculative::kDefaultTreeShape);
  // 1 + 8 + 64 + 512 = 585 nodes: more than one verification step runs.
  auto larger = speculative::resolveTreeShape(*executable, "8x8x8");
  ASSERT_FALSE(larger);
  EXPECT_NE(larger.error().message().find("tree shape '8x8x8' has 585 nodes, more than the 189 "
                                          "tokens of"),
            std::string::npos)
      << larger.error().message();
  // generateSpeculative checks it too (for callers that build the options).
  auto session = Session::create(executable);
  ASSERT_TRUE(session);
  SpeculativeOptions so;
  so.shape = *speculative::parseTreeShape("8x8x8");
  auto run = speculative::generateSpeculative(*session, std::vector<int32_t>{1, 9038},
                                              pastEndOfText(4), so, [](int32_t) {});
  ASSERT_FALSE(run);
  EXPECT_NE(run.error().message().find("(compiled with --spec-tree=4x2x2x2x1x1x1x1)"),
            std::string::npos)
      << run.error().message();
}

TEST_F(SpeculativeTest, GreedyEqualsPlainOnOwnPrompts) {
  // Two hundred prompts, 200 tokens each past end-of-text: stretches of
  // reference text, invented id sequences, and repetitive ones that the
  // n-gram drafter matches. The second hundred share one drafter, which
  // drafts from the texts of those before (its index of earlier texts and
  // its Token Recycling table), as a server's does.
  std::vector<std::vector<int32_t>> prompts;
  const auto ref = loadReference()["prompts"];
  uint64_t state = 21;
  const std::vector<int32_t> phrase{450, 11203, 471, 1532, 29889, 13, 3118, 2462};
  for (size_t i = 0; i < 200; ++i) {
    std::vector<int32_t> p{1};
    switch (i % 4) {
    case 0:
    case 1: { // reference text: 3 to 42 tokens from somewhere in the first 150
      const auto ids = ref[(i / 4) % ref.size()]["greedy_ids"].get<std::vector<int32_t>>();
      const size_t from = (13 * i) % 150, length = 3 + (7 * i) % 40;
      p.insert(p.end(), ids.begin() + from, ids.begin() + from + length);
      break;
    }
    case 2: // invented ids, 4 to 40
      for (size_t j = 0; j < 4 + (5 * i) % 37; ++j)
        p.push_back(int32_t(splitmix64Next(state) % 32000));
      break;
    default: { // a phrase of 3 to 8 tokens, repeated 2 to 6 times
      const size_t words = 3 + (i / 4) % 6, times = 2 + (i / 4) % 5;
      for (size_t j = 0; j < times; ++j)
        p.insert(p.end(), phrase.begin(), phrase.begin() + words);
      break;
    }
    }
    prompts.push_back(p);
  }
  auto shape = speculative::parseTreeShape("default");
  ASSERT_TRUE(shape);
  auto shared = std::make_shared<speculative::TreeDrafter>(executable->config().vocab, *shape,
                                                           speculative::DraftOptions{});
  int64_t steps[2] = {}, tokens[2] = {};
  for (size_t i = 0; i < prompts.size(); ++i) {
    ASSERT_LE(prompts[i].size() + 200, 256u);
    const GenerationOptions o = pastEndOfText(200);
    int64_t plainPosition = 0, position = 0;
    const std::vector<int32_t> expected = plain(prompts[i], o, nullptr, &plainPosition);
    ASSERT_EQ(expected.size(), 200u);
    SpeculativeStats got;
    const bool warm = i >= 100;
    ASSERT_EQ(speculate(prompts[i], o, "default", &got, warm ? shared : nullptr, &position),
              expected)
        << "prompt " << i;
    // The cache holds what plain decoding's does: the last token is not run.
    EXPECT_EQ(position, plainPosition) << "prompt " << i;
    steps[warm] += got.steps;
    tokens[warm] += got.generation.generatedTokens;
  }
  // The kept drafter remembered each of its hundred texts.
  EXPECT_EQ(shared->history().texts(), 100u);
  std::printf("own prompts: %lld tokens in %lld steps alone, %lld in %lld with a kept drafter\n",
              (long long)tokens[0], (long long)steps[0], (long long)tokens[1],
              (long long)steps[1]);
}

TEST_F(SpeculativeTest, GreedyEqualsPlainOnA4BitBuild) {
  // int4 weights with int8 activations, rounded per row: a row's numbers do
  // not depend on the other rows of the step.
  static std::shared_ptr<const artifact::Artifact> int4 =
      compileAndLoad(modelDir() + "/stories15M.bin", "speculative-int4", "int4");
  ASSERT_NE(int4, nullptr);
  SessionOptions options;
  options.threads = 2;
  auto loaded = backend::load(int4, options);
  ASSERT_TRUE(loaded) << loaded.error().message();
  executable = *loaded;
  for (const std::vector<int32_t> &prompt : referencePrompts()) {
    const GenerationOptions o = pastEndOfText(200);
    EXPECT_EQ(speculate(prompt, o, "default"), plain(prompt, o));
  }
}

TEST_F(SpeculativeTest, ADrafterKeptAcrossPromptsStaysExact) {
  // Token Recycling keeps its table across queries: a second pass over the
  // reference prompts drafts from the first pass's logits.
  auto shape = speculative::parseTreeShape("default");
  ASSERT_TRUE(shape);
  auto drafter = std::make_shared<speculative::TreeDrafter>(executable->config().vocab, *shape,
                                                            speculative::DraftOptions{});
  for (int pass = 1; pass <= 2; ++pass) {
    int64_t steps = 0, accepted = 0;
    for (const std::vector<int32_t> &prompt : referencePrompts()) {
      const GenerationOptions o = pastEndOfText(200);
      SpeculativeStats got;
      EXPECT_EQ(speculate(prompt, o, "default", &got, drafter), plain(prompt, o));
      steps += got.steps;
      accepted += got.acceptedDrafts + got.steps;
    }
    std::printf("pass %d with a kept drafter: %.2f accepted tokens per step\n", pass,
                double(accepted) / double(steps));
  }
}

TEST_F(SpeculativeTest, StopsAtTheEndOfTheContextAsPlainDoes) {
  const int64_t context = executable->config().context;
  std::vector<int32_t> prompt{1};
  const auto ids = loadReference()["prompts"][0]["greedy_ids"].get<std::vector<int32_t>>();
  while (int64_t(prompt.size()) < context - 9)
    prompt.insert(prompt.end(), ids.begin(), ids.begin() + 20);
  prompt.resize(context - 9);
  GenerationStats want;
  const std::vector<int32_t> expected = plain(prompt, pastEndOfText(50), &want);
  ASSERT_TRUE(want.reachedContextEnd);
  SpeculativeStats got;
  EXPECT_EQ(speculate(prompt, pastEndOfText(50), "4x2x2", &got), expected);
  EXPECT_TRUE(got.generation.reachedContextEnd);
}

TEST_F(SpeculativeTest, SeededSamplingEqualsPlainSampling) {
  for (const std::vector<int32_t> &prompt : referencePrompts()) {
    GenerationOptions o = pastEndOfText(100);
    o.sampler.temperature = 0.8f;
    o.sampler.topP = 0.9f;
    o.sampler.seed = 1234;
    EXPECT_EQ(speculate(prompt, o, "default"), plain(prompt, o));
  }
}

TEST_F(SpeculativeTest, ZeroTokensAndKeepGoing) {
  const std::vector<int32_t> prompt = referencePrompts()[0];
  EXPECT_TRUE(speculate(prompt, pastEndOfText(0), "default").empty());
  GenerationOptions o = pastEndOfText(100);
  int calls = 0;
  o.keepGoing = [&] { return ++calls < 7; };
  const std::vector<int32_t> expected = plain(prompt, o);
  calls = 0;
  EXPECT_EQ(speculate(prompt, o, "default"), expected);
  EXPECT_EQ(expected.size(), 7u);
}

} // namespace
} // namespace lathe::test
