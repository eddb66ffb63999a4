// The continuous-batching scheduler on stories15M (FP32, the generated
// code): four requests decode while a long prompt arrives, under whole,
// chunked and layered prefill (the last on an artifact compiled with
// --prefill-groups=3; without groups it runs as whole), and each request's
// greedy tokens equal those it gets alone (generate() in a session of its
// own); a cancel gives its blocks back at once, during a layered prefill
// too. A batched step's logits match a single-token step's to 1e-5
// (BatchedStepTest), and layer groups, which run on the interpreter, match
// the generated code to 1e-5 (LayeredStepTest), so argmax agrees unless two
// logits tie that closely.
#include "test/e2e/ModelFixture.h"

#include "runtime/serving/Scheduler.h"

#include <map>

namespace lathe::test {
namespace {

using serving::Event;
using serving::FinishReason;
using serving::PrefillPolicy;
using serving::Request;
using serving::RequestId;
using serving::Scheduler;
using serving::SchedulerOptions;

class ContinuousBatchingTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (!haveModel())
      GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
    static std::shared_ptr<const artifact::Artifact> artifact =
        compileAndLoad(modelDir() + "/stories15M.bin", "scheduler");
    ASSERT_NE(artifact, nullptr);
    static std::shared_ptr<backend::Executable> loaded = loadOnTwoThreads(artifact);
    ASSERT_NE(loaded, nullptr);
    executable = loaded;
  }

  /// The reference prompts, and one of 133 tokens made of them.
  std::vector<std::vector<int32_t>> prompts() {
    std::vector<std::vector<int32_t>> out;
    // A named json: a range-for over a temporary's member would dangle.
    const nlohmann::json reference = loadReference();
    for (const auto &p : reference["prompts"])
      out.push_back(p["prompt_ids"].get<std::vector<int32_t>>());
    std::vector<int32_t> longer = {1};
    while (longer.size() < 120)
      for (const std::vector<int32_t> &p : out)
        longer.insert(longer.end(), p.begin() + 1, p.end());
    out.push_back(longer);
    return out;
  }

  /// The same model compiled with --prefill-groups=3.
  std::shared_ptr<backend::Executable> grouped() {
    static std::shared_ptr<backend::Executable> loaded = [] {
      compiler::CompileOptions options;
      options.input = modelDir() + "/stories15M.bin";
      options.tokenizer = modelDir() + "/tokenizer.bin";
      options.prefillGroups = 3;
      auto artifact = compileAndLoad(options, "scheduler-layered");
      return artifact ? loadOnTwoThreads(artifact) : nullptr;
    }();
    EXPECT_NE(loaded, nullptr);
    if (loaded)
      EXPECT_EQ(loaded->layerGroups().size(), 3u);
    return loaded;
  }

  /// Greedy tokens of `prompt` alone, past end-of-text.
  std::vector<int32_t> alone(const std::vector<int32_t> &prompt, int64_t n,
                             std::shared_ptr<backend::Executable> on = nullptr) {
    return greedyIds(on ? on : executable, prompt, n);
  }

  static Request greedy(std::vector<int32_t> prompt, int64_t n) {
    Request r;
    r.prompt = std::move(prompt);
    r.maxNewTokens = n;
    return r;
  }

  Scheduler make(const SchedulerOptions &options,
                 std::shared_ptr<backend::Executable> on = nullptr) {
    auto s = Scheduler::create(on ? on : executable, options);
    EXPECT_TRUE(s) << s.error().message();
    return s.take();
  }

  std::shared_ptr<backend::Executable> executable;
};

TEST_F(ContinuousBatchingTest, EachSequenceGetsItsTokensAloneUnderEveryPolicy) {
  const auto ps = prompts();
  const std::vector<int32_t> &longPrompt = ps.back();
  ASSERT_GE(longPrompt.size(), 120u);
  std::vector<std::vector<int32_t>> want;
  for (int i = 0; i < 4; ++i)
    want.push_back(alone(ps[i], 20 + 4 * i));
  want.push_back(alone(longPrompt, 16));

  // Layered on this artifact, which has no layer groups, is Whole.
  for (PrefillPolicy policy :
       {PrefillPolicy::Whole, PrefillPolicy::Chunked, PrefillPolicy::Layered}) {
    const bool chunked = policy == PrefillPolicy::Chunked;
    SCOPED_TRACE(chunked ? "chunked" : policy == PrefillPolicy::Whole ? "whole" : "layered");
    SchedulerOptions options;
    options.prefill = policy;
    options.maxSequences = 5;
    // Chunked: 12 prompt tokens a step beside the four decodes, far fewer
    // than the long prompt's.
    options.tokenBudget = chunked ? 16 : 160;
    Scheduler s = make(options);
    std::map<RequestId, size_t> index;
    std::vector<std::vector<int32_t>> got(5);
    std::vector<FinishReason> reasons(5, FinishReason::Cancelled);
    int64_t longPrefillSteps = 0;
    for (int step = 0; step < 200 && (step <= 3 || s.busy()); ++step) {
      for (int i = 0; i < 4 && step == 0; ++i)
        index[*s.submit(greedy(ps[i], 20 + 4 * i))] = i;
      if (step == 3) {
        auto id = s.submit(greedy(longPrompt, 16));
        ASSERT_TRUE(id) << id.error().message();
        index[*id] = 4;
      }
      auto result = s.step();
      ASSERT_TRUE(result) << result.error().message();
      EXPECT_LE(result->stats.tokens, options.tokenBudget);
      EXPECT_EQ(result->stats.layerGroup, -1);
      if (step >= 3 && result->stats.prefillTokens > 0) {
        ++longPrefillSteps;
        EXPECT_EQ(result->stats.decodeTokens, 4) << "step " << step;
      }
      for (const Event &e : result->events)
        if (e.kind == Event::Kind::Token)
          got[index.at(e.request)].push_back(e.token);
        else
          reasons[index.at(e.request)] = e.reason;
    }
    for (size_t i = 0; i < 5; ++i) {
      EXPECT_EQ(got[i], want[i]) << "request " << i;
      EXPECT_EQ(reasons[i], FinishReason::MaxTokens) << "request " << i;
    }
    if (chunked)
      EXPECT_EQ(longPrefillSteps, int64_t(longPrompt.size() + 11) / 12);
    else
      EXPECT_EQ(longPrefillSteps, 1);
    EXPECT_EQ(s.kvCache().usedBlocks(), 0);
  }
}

TEST_F(ContinuousBatchingTest, SpeculationGivesEachSequenceItsGreedyTokensUnderEveryPolicy) {
  std::shared_ptr<backend::Executable> model = grouped();
  ASSERT_NE(model, nullptr);
  const auto ps = prompts();
  // The reference prompts, the long one and a repetitive one (which
  // n-gram lookup drafts well), arriving over the first steps.
  std::vector<std::vector<int32_t>> inputs(ps.begin(), ps.begin() + 4);
  inputs.push_back(ps.back());
  std::vector<int32_t> repeated = {1};
  for (int i = 0; i < 6; ++i)
    repeated.insert(repeated.end(), ps[0].begin() + 1, ps[0].end());
  inputs.push_back(repeated);
  std::vector<std::vector<int32_t>> want;
  for (size_t i = 0; i < inputs.size(); ++i)
    want.push_back(alone(inputs[i], 48, model));
  for (PrefillPolicy policy :
       {PrefillPolicy::Whole, PrefillPolicy::Chunked, PrefillPolicy::Layered}) {
    SCOPED_TRACE(std::string(serving::prefillPolicyName(policy)));
    SchedulerOptions options;
    options.prefill = policy;
    options.maxSequences = 6;
    options.tokenBudget = policy == PrefillPolicy::Chunked ? 48 : 192;
    options.speculate = *speculative::parseTreeShape(speculative::kDefaultTreeShape);
    // Trees must be drafted here, whatever six sequences' nodes cost.
    options.measureNodeCost = false;
    Scheduler s = make(options, model);
    std::map<RequestId, size_t> index;
    std::vector<std::vector<int32_t>> got(inputs.size());
    int64_t steps = 0, drafted = 0, accepted = 0;
    for (int step = 0; step < 400 && (step <= 2 || s.busy()); ++step) {
      for (size_t i = 0; i < inputs.size(); ++i)
        if (int(i) / 2 == step) {
          auto id = s.submit(greedy(inputs[i], 48));
          ASSERT_TRUE(id) << id.error().message();
          index[*id] = i;
        }
      auto result = s.step();
      ASSERT_TRUE(result) << result.error().message();
      EXPECT_LE(result->stats.tokens, options.tokenBudget);
      ++steps;
      drafted += result->stats.draftedTokens;
      accepted += result->stats.acceptedDrafts;
      for (const Event &e : result->events)
        if (e.kind == Event::Kind::Token)
          got[index.at(e.request)].push_back(e.token);
    }
    for (size_t i = 0; i < inputs.size(); ++i)
      EXPECT_EQ(got[i], want[i]) << "request " << i;
    EXPECT_GT(accepted, 0) << drafted << " drafted in " << steps << " steps";
    EXPECT_EQ(s.kvCache().usedBlocks(), 0);
  }
}

TEST_F(ContinuousBatchingTest, LayeredPrefillRunsAGroupPerStepWhileFourSequencesDecode) {
  std::shared_ptr<backend::Executable> layered = grouped();
  ASSERT_NE(layered, nullptr);
  const auto ps = prompts();
  const std::vector<int32_t> &longPrompt = ps.back();
  std::vector<std::vector<int32_t>> want;
  for (int i = 0; i < 4; ++i)
    want.push_back(alone(ps[i], 24 + 2 * i, layered));
  want.push_back(alone(longPrompt, 12, layered));

  SchedulerOptions options;
  options.prefill = PrefillPolicy::Layered;
  options.maxSequences = 5;
  options.tokenBudget = 8; // bounds the decodes; the long prompt is a batch of its own
  Scheduler s = make(options, layered);
  std::map<RequestId, size_t> index;
  std::vector<std::vector<int32_t>> got(5);
  std::vector<FinishReason> reasons(5, FinishReason::Cancelled);
  std::vector<int> lastToken(5, -1);
  std::vector<int64_t> groups;
  // The four prompts take 3 steps each, one after the other (the fourth's
  // first token comes at step 11): all four decode from step 12, when the
  // long prompt arrives.
  const int arrival = 12;
  for (int step = 0; step < 200 && (step <= arrival || s.busy()); ++step) {
    for (int i = 0; i < 4 && step == 0; ++i)
      index[*s.submit(greedy(ps[i], 24 + 2 * i))] = i;
    if (step == arrival) {
      auto id = s.submit(greedy(longPrompt, 12));
      ASSERT_TRUE(id) << id.error().message();
      index[*id] = 4;
    }
    auto result = s.step();
    ASSERT_TRUE(result) << result.error().message();
    EXPECT_LE(result->stats.tokens, options.tokenBudget);
    EXPECT_EQ(result->stats.prefillTokens, 0);
    if (step >= arrival && result->stats.layerGroup >= 0) {
      groups.push_back(result->stats.layerGroup);
      EXPECT_EQ(result->stats.layeredTokens, int64_t(longPrompt.size()));
      EXPECT_EQ(result->stats.decodeTokens, 4) << "step " << step;
    }
    for (const Event &e : result->events) {
      const size_t i = index.at(e.request);
      if (e.kind != Event::Kind::Token) {
        reasons[i] = e.reason;
        continue;
      }
      // Decodes never stall: a sequence emits at every step once started.
      if (!got[i].empty())
        EXPECT_EQ(lastToken[i], step - 1) << "request " << i;
      lastToken[i] = step;
      got[i].push_back(e.token);
    }
    if (step == arrival + 2)
      EXPECT_EQ(got[4].size(), 1u) << "the first token after the last group";
  }
  EXPECT_EQ(groups, (std::vector<int64_t>{0, 1, 2}));
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(got[i], want[i]) << "request " << i;
    EXPECT_EQ(reasons[i], FinishReason::MaxTokens) << "request " << i;
  }
  EXPECT_EQ(s.kvCache().usedBlocks(), 0);
}

TEST_F(ContinuousBatchingTest, CancelDuringALayeredPrefillFreesItsBlocks) {
  std::shared_ptr<backend::Executable> layered = grouped();
  ASSERT_NE(layered, nullptr);
  const auto ps = prompts();
  SchedulerOptions options;
  options.prefill = PrefillPolicy::Layered;
  options.tokenBudget = 4;
  options.maxSequences = 3;
  Scheduler s = make(options, layered);
  const int64_t freeAtStart = s.kvCache().freeBlocks();
  std::map<RequestId, std::vector<int32_t>> got;
  auto run = [&]() -> serving::StepStats {
    auto result = s.step();
    EXPECT_TRUE(result) << result.error().message();
    if (!result)
      return {};
    for (const Event &e : result->events)
      if (e.kind == Event::Kind::Token)
        got[e.request].push_back(e.token);
    return result->stats;
  };
  const RequestId first = *s.submit(greedy(ps[2], 20));
  for (int k = 0; k < 3; ++k)
    run();
  ASSERT_EQ(got[first].size(), 1u);
  const RequestId cancelled = *s.submit(greedy(ps[5], 20));
  const RequestId after = *s.submit(greedy(ps[3], 16));
  EXPECT_EQ(run().layerGroup, 0);
  EXPECT_EQ(run().layerGroup, 1);
  const int64_t freeBefore = s.kvCache().freeBlocks();
  ASSERT_TRUE(s.cancel(cancelled));
  EXPECT_EQ(s.kvCache().freeBlocks(), freeBefore + s.kvCache().blocksFor(int64_t(ps[5].size())));
  // The next prompt starts its groups; nothing of the cancelled one runs.
  EXPECT_EQ(run().layerGroup, 0);
  for (int k = 0; k < 200 && s.busy(); ++k)
    run();
  EXPECT_FALSE(s.busy());
  EXPECT_TRUE(got[cancelled].empty());
  EXPECT_EQ(got[first], alone(ps[2], 20, layered));
  EXPECT_EQ(got[after], alone(ps[3], 16, layered));
  EXPECT_EQ(s.kvCache().freeBlocks(), freeAtStart);
}

TEST_F(ContinuousBatchingTest, CancelFreesItsBlocksAndTheOthersGoOn) {
  const auto ps = prompts();
  SchedulerOptions options;
  options.tokenBudget = 16;
  options.maxSequences = 3;
  Scheduler s = make(options);
  const int64_t freeAtStart = s.kvCache().freeBlocks();
  std::vector<RequestId> ids;
  for (int i : {2, 5, 3})
    ids.push_back(*s.submit(greedy(ps[i], 24)));
  std::map<RequestId, std::vector<int32_t>> got;
  auto run = [&] {
    auto result = s.step();
    ASSERT_TRUE(result) << result.error().message();
    for (const Event &e : result->events)
      if (e.kind == Event::Kind::Token)
        got[e.request].push_back(e.token);
  };
  // The long prompt (second) is still being prefilled after 4 steps.
  for (int k = 0; k < 4; ++k)
    run();
  EXPECT_TRUE(got[ids[1]].empty());
  // 3 + 15 + 15 + 15 of its tokens ran beside the first request's prompt
  // and decodes; the third request waits for a free budget.
  EXPECT_EQ(s.runningCount(), 2);
  const int64_t freeBefore = s.kvCache().freeBlocks();
  ASSERT_TRUE(s.cancel(ids[1]));
  EXPECT_EQ(s.kvCache().freeBlocks(), freeBefore + s.kvCache().blocksFor(48));
  while (s.busy())
    run();
  EXPECT_TRUE(got[ids[1]].empty());
  EXPECT_EQ(got[ids[0]], alone(ps[2], 24));
  EXPECT_EQ(got[ids[2]], alone(ps[3], 24));
  EXPECT_EQ(s.kvCache().freeBlocks(), freeAtStart);
}

TEST_F(ContinuousBatchingTest, RefusesBadInput) {
  const int64_t vocab = executable->config().vocab, context = executable->config().context;
  Scheduler s = make({});
  auto refused = [&](std::vector<int32_t> prompt) {
    auto id = s.submit(greedy(std::move(prompt), 4));
    EXPECT_FALSE(id);
    return id ? std::string() : id.error().message();
  };
  EXPECT_EQ(refused({}), "the prompt is empty");
  EXPECT_NE(refused({1, int32_t(vocab)}).find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(refused(std::vector<int32_t>(context + 1, 1)).find("longer than the model's context"),
            std::string::npos);
  SchedulerOptions zero;
  zero.tokenBudget = 0;
  auto none = Scheduler::create(executable, zero);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().message(), "the token budget per step must be at least 1, got 0");
}

} // namespace
} // namespace lathe::test
