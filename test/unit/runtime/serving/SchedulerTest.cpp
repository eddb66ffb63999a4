// The continuous-batching scheduler over a fake model: each row of logits
// is a hash of everything its token has seen (every token before it in its
// sequence, or in a token tree its ancestors, and their positions), so a
// token dropped, repeated or misplaced by the scheduler changes every later
// token. The fake keeps each token's hash in its KV cache row, where the
// next token reads it: a speculative step's commit that keeps the wrong
// rows changes the tokens too. The fake checks each batch with validateBatch
// and grows the cache as a backend does. Every request's tokens are compared
// with a plain loop that runs the request alone, without the scheduler.
// For layered prefill the fake has layer groups: group 0 hashes the tokens
// into the history (and grows the cache), each later group mixes every
// row's state in a way of its own, and only the last returns logits, so a
// group skipped, repeated or run out of order changes the tokens; it also
// refuses, as the CPU backend does, a group that does not continue the
// same, unchanged batch, and any step that touches a sequence whose batch
// is between its groups.
#include "runtime/serving/Scheduler.h"

#include "test/unit/runtime/backend/HostDevice.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <thread>

namespace lathe::serving {
namespace {

using backend::Batch;
using backend::SequenceId;

constexpr int64_t kVocab = 32;
constexpr int64_t kContext = 64;

plan::ModelConfig fakeConfig() {
  plan::ModelConfig c;
  c.vocab = kVocab;
  c.context = kContext;
  return c;
}

bool sameBatch(const Batch &a, const Batch &b) {
  return a.tokens == b.tokens && a.sequences == b.sequences && a.positions == b.positions &&
         a.parents == b.parents && a.wantsLogits == b.wantsLogits;
}

/// A model whose logits depend on the whole history of their sequence, in
/// `groups` layer groups (execute runs them all).
struct FakeModel {
  struct Carry final : backend::LayerCarry {
    explicit Carry(FakeModel &model) : model(&model) { ++model.liveCarries; }
    ~Carry() override {
      --model->liveCarries;
      for (SequenceId s : copy.sequences)
        model->inFlight.erase(s);
    }
    FakeModel *model;
    const Batch *batch = nullptr;
    const kv::PagedKVCache *kv = nullptr;
    Batch copy; // the batch at group 0: later groups must see the same
    size_t next = 1;
    std::vector<uint64_t> rows; // each token's state
  };

  size_t groups = 1;
  /// Adds `bump` to the logit of (token * 5 + 1) % vocab after most
  /// tokens, so that greedy decoding mostly follows a cycle drafters can
  /// predict; the hash decides the rest.
  float bump = 0;
  std::vector<float> logits;
  std::vector<int64_t> batchSizes;             // execute()'s batches
  std::vector<std::pair<size_t, size_t>> ran;  // layer groups: (group, batch size)
  std::set<SequenceId> inFlight;               // in a batch between its groups
  int liveCarries = 0;
  bool failNext = false;        // the next step or layer group fails
  bool failExecuteNext = false; // the next step fails

  /// Group 0: checks the batch, hashes each token into its sequence's
  /// history and grows the cache.
  Status begin(const Batch &batch, kv::PagedKVCache &kv, std::vector<uint64_t> &rows) {
    if (Status s = backend::validateBatch(batch, kVocab, kContext, kv); !s)
      return s;
    for (SequenceId s : batch.sequences)
      if (inFlight.count(s))
        return Error(fmt::format("sequence {} is in a batch between its layer groups", s));
    // Each token's state follows its parent's, or the state in its
    // sequence's last cache row; it is stored in the token's own row
    // (the sequence's tail, in batch order).
    std::map<SequenceId, int64_t> lengths;
    for (SequenceId s : batch.sequences)
      lengths.emplace(s, kv.length(s));
    rows.clear();
    for (size_t i = 0; i < batch.size(); ++i) {
      const SequenceId s = batch.sequences[i];
      const uint64_t before = batch.parents[i] >= 0 ? rows[size_t(batch.parents[i])]
                              : lengths.at(s) > 0   ? stored(kv, s, lengths.at(s) - 1)
                                                    : 0;
      rows.push_back(before * 1000003 + uint64_t(batch.tokens[i]) * 131 +
                     uint64_t(batch.positions[i]));
    }
    backend::StepLayout layout;
    if (Status s = layout.prepare(batch, kv); !s)
      return s;
    std::map<SequenceId, int64_t> slot = lengths;
    for (size_t i = 0; i < batch.size(); ++i)
      std::memcpy(kv.keys(0) + kv.layout().rowBytes() * size_t(kv.row(batch.sequences[i],
                                                                       slot[batch.sequences[i]]++)),
                  &rows[i], sizeof(uint64_t));
    return Status::ok();
  }
  static uint64_t stored(kv::PagedKVCache &kv, SequenceId s, int64_t slot) {
    uint64_t state;
    std::memcpy(&state, kv.keys(0) + kv.layout().rowBytes() * size_t(kv.row(s, slot)),
                sizeof(state));
    return state;
  }
  /// Group g > 0: its own mix of every row, so that the order matters.
  static void mix(std::vector<uint64_t> &rows, size_t group) {
    for (uint64_t &r : rows)
      r = r * 0x9E3779B97F4A7C15ull + group;
  }
  std::span<const float> finish(const Batch &batch, const std::vector<uint64_t> &rows) {
    logits.clear();
    for (size_t i = 0; i < batch.size(); ++i)
      if (batch.wantsLogits[i])
        for (int64_t v = 0; v < kVocab; ++v) {
          uint64_t state = rows[i] ^ (uint64_t(v) << 40);
          // Not after one token in 8, picked by the hash: there the noise
          // decides, so that greedy tokens too depend on the whole history.
          const bool bumped =
              v == (int64_t(batch.tokens[i]) * 5 + 1) % kVocab && (rows[i] >> 29) % 8 != 0;
          logits.push_back(float(splitmix64Next(state) % 1000) / 250.0f + (bumped ? bump : 0.0f));
        }
    return logits;
  }

  Expected<std::span<const float>> operator()(const Batch &batch, kv::PagedKVCache &kv) {
    if (failNext || failExecuteNext) {
      failNext = failExecuteNext = false;
      return Error("the device fell over");
    }
    std::vector<uint64_t> rows;
    if (Status s = begin(batch, kv, rows); !s)
      return s.error();
    for (size_t g = 1; g < groups; ++g)
      mix(rows, g);
    batchSizes.push_back(static_cast<int64_t>(batch.size()));
    return finish(batch, rows);
  }

  Expected<std::span<const float>> layers(const Batch &batch, kv::PagedKVCache &kv, size_t group,
                                          std::unique_ptr<backend::LayerCarry> &carry) {
    if (failNext) {
      failNext = false;
      return Error("the device fell over");
    }
    if (group >= groups)
      return Error(fmt::format("no layer group {}: the model has {}", group, groups));
    Carry *c = nullptr;
    if (group == 0) {
      auto fresh = std::make_unique<Carry>(*this);
      if (Status s = begin(batch, kv, fresh->rows); !s)
        return s.error();
      fresh->batch = &batch;
      fresh->kv = &kv;
      fresh->copy = batch;
      for (SequenceId s : batch.sequences)
        inFlight.insert(s);
      c = fresh.get();
      carry = std::move(fresh);
    } else {
      c = dynamic_cast<Carry *>(carry.get());
      if (!c || c->batch != &batch || c->kv != &kv || c->next != group ||
          !sameBatch(c->copy, batch))
        return Error(fmt::format("layer group {} runs after group {} of the same, unchanged batch",
                                 group, group - 1));
      mix(c->rows, group);
      c->next = group + 1;
    }
    ran.push_back({group, batch.size()});
    if (group + 1 < groups)
      return std::span<const float>();
    const std::vector<uint64_t> rows = std::move(c->rows);
    carry.reset();
    return finish(batch, rows);
  }
};

Request request(std::vector<int32_t> prompt, int64_t maxNewTokens, float temperature = 0,
                uint64_t seed = 0) {
  Request r;
  r.prompt = std::move(prompt);
  r.maxNewTokens = maxNewTokens;
  r.sampler.temperature = temperature;
  r.sampler.topP = temperature > 0 ? 0.9f : 1.0f;
  r.sampler.seed = seed;
  return r;
}

std::vector<int32_t> promptOf(int64_t n, int32_t salt) {
  std::vector<int32_t> p;
  for (int64_t i = 0; i < n; ++i)
    p.push_back(int32_t((i * 7 + salt * 13 + 1) % kVocab));
  return p;
}

class SchedulerTest : public ::testing::Test {
protected:
  std::unique_ptr<kv::PagedKVCache> makeCache(int64_t blocks) {
    kv::KVLayout layout;
    layout.layers = 1;
    layout.width = 2;
    layout.blockSize = 4;
    layout.blocks = blocks;
    auto kv = kv::PagedKVCache::create(device, layout, kContext);
    EXPECT_TRUE(kv) << kv.error().message();
    return kv ? kv.take() : nullptr;
  }

  Scheduler make(const SchedulerOptions &options, int64_t blocks = 128) {
    return makeOver(model, options, blocks);
  }
  /// A scheduler over `m` and its layer groups.
  /// With `greedyIds`, the scheduler also gets a greedy step function:
  /// the model's step, then each row's argmax (counted in greedySteps;
  /// wrongIds drops its last id).
  Scheduler makeOver(FakeModel &m, const SchedulerOptions &options, int64_t blocks = 128,
                     bool greedyIds = false) {
    GreedyStepFunction greedy;
    if (greedyIds)
      greedy = [this, &m](const Batch &b, kv::PagedKVCache &kv) -> Expected<std::vector<int32_t>> {
        auto logits = m(b, kv);
        if (!logits)
          return logits.error();
        ++greedySteps;
        std::vector<int32_t> ids = backend::argmaxRows(*logits, kVocab);
        if (wrongIds)
          ids.pop_back();
        if (outsideIds)
          ids.back() = int32_t(kVocab);
        return ids;
      };
    auto s = Scheduler::create(
        fakeConfig(), [&m](const Batch &b, kv::PagedKVCache &kv) { return m(b, kv); },
        [&m](const Batch &b, kv::PagedKVCache &kv, size_t group,
             std::unique_ptr<backend::LayerCarry> &carry) {
          return m.layers(b, kv, group, carry);
        },
        m.groups, makeCache(blocks), options, std::move(greedy));
    EXPECT_TRUE(s) << s.error().message();
    return s.take();
  }
  int64_t greedySteps = 0;
  bool wrongIds = false, outsideIds = false;

  /// Runs `s` to its end (at most 100 steps), collecting each request's
  /// tokens. At the steps in `failing` the model's next step or layer group
  /// fails, at those in `failingDecodes` its decodes' step: each such step
  /// must fail with the model's error.
  std::map<RequestId, std::vector<int32_t>> runThroughFailures(Scheduler &s,
                                                               const std::set<int> &failing,
                                                               const std::set<int> &failingDecodes) {
    std::map<RequestId, std::vector<int32_t>> tokens;
    for (int k = 0; k < 100 && s.busy(); ++k) {
      model.failNext = failing.count(k) > 0;
      model.failExecuteNext = failingDecodes.count(k) > 0;
      auto result = s.step();
      if (failing.count(k) || failingDecodes.count(k)) {
        EXPECT_FALSE(result) << "step " << k;
        if (!result)
          EXPECT_EQ(result.error().message(), "the device fell over");
        continue;
      }
      EXPECT_TRUE(result) << result.error().message();
      if (!result)
        break;
      for (const Event &e : result->events)
        if (e.kind == Event::Kind::Token)
          tokens[e.request].push_back(e.token);
    }
    EXPECT_FALSE(s.busy());
    return tokens;
  }

  /// What `request` gives alone: one prefill step, then one decode step
  /// per token, ending as generate() ends.
  struct Output {
    std::vector<int32_t> tokens;
    FinishReason reason = FinishReason::MaxTokens;
  };
  Output runAlone(const Request &request) {
    FakeModel alone;
    alone.groups = model.groups;
    alone.bump = model.bump;
    auto kv = makeCache(64);
    const SequenceId seq = kv->addSequence();
    Sampler sampler(request.sampler);
    Batch batch;
    batch.addChain(seq, request.prompt, 0, Batch::Logits::Last);
    Output out;
    while (true) {
      auto logits = alone(batch, *kv);
      EXPECT_TRUE(logits) << logits.error().message();
      const int32_t t = sampler.sampleFrom(*logits);
      if (std::count(request.stopTokens.begin(), request.stopTokens.end(), t)) {
        out.reason = FinishReason::StopToken;
        return out;
      }
      out.tokens.push_back(t);
      if (int64_t(out.tokens.size()) >= request.maxNewTokens)
        return out;
      if (kv->length(seq) >= kContext) {
        out.reason = FinishReason::ContextEnd;
        return out;
      }
      batch.clear();
      batch.add(seq, t, int32_t(kv->length(seq)), -1, true);
    }
  }

  /// Runs `arrivals` (request, the step before which it is submitted)
  /// through `s` until every request has finished; checks the budget of
  /// every step and that step stats add up.
  std::vector<Output> runAll(Scheduler &s, const std::vector<std::pair<Request, int>> &arrivals) {
    std::vector<Output> out(arrivals.size());
    std::map<RequestId, size_t> index;
    std::vector<bool> finished(arrivals.size());
    for (int step = 0; step < 1000; ++step) {
      for (size_t i = 0; i < arrivals.size(); ++i)
        if (arrivals[i].second == step) {
          auto id = s.submit(arrivals[i].first);
          EXPECT_TRUE(id) << id.error().message();
          index[*id] = i;
        }
      if (!s.busy() && index.size() == arrivals.size())
        break;
      auto result = s.step();
      EXPECT_TRUE(result) << result.error().message();
      if (!result)
        break;
      const StepStats &st = result->stats;
      steps.push_back(st);
      EXPECT_LE(st.tokens, s.options().tokenBudget) << "step " << step;
      EXPECT_EQ(st.tokens, st.decodeTokens + st.prefillTokens);
      EXPECT_EQ(st.kvBlocksUsed, s.kvCache().usedBlocks());
      EXPECT_LE(s.runningCount(), s.options().maxSequences);
      for (const Event &e : result->events) {
        const size_t i = index.at(e.request);
        EXPECT_FALSE(finished[i]) << "request " << i << " had an event after its end";
        if (e.kind == Event::Kind::Token) {
          // Once a request has its first token it decodes at every step:
          // prefill work never stalls it.
          if (out[i].tokens.empty())
            firstTokenStep[i] = step;
          else
            // (A speculative step may emit several.)
            EXPECT_GE(lastTokenStep[i], step - 1) << "request " << i << " skipped a step";
          lastTokenStep[i] = step;
          out[i].tokens.push_back(e.token);
          continue;
        }
        finished[i] = true;
        out[i].reason = e.reason;
        finalStats[i] = e.stats;
        EXPECT_EQ(e.stats.generatedTokens, int64_t(out[i].tokens.size()));
      }
    }
    for (size_t i = 0; i < arrivals.size(); ++i)
      EXPECT_TRUE(finished[i]) << "request " << i << " never finished";
    return out;
  }

  backend::testing::HostDevice device;
  FakeModel model;
  std::vector<StepStats> steps;
  std::map<size_t, RequestStats> finalStats;
  std::map<size_t, int> firstTokenStep, lastTokenStep;
};

/// Four requests decode (greedy and seeded sampling, different lengths)
/// while a 40-token prompt arrives before step 3.
std::vector<std::pair<Request, int>> fourAndALongOne() {
  return {{request({1, 5, 9}, 12), 0},
          {request({1, 2}, 20, 0.8f, 7), 0},
          {request({1, 30, 4, 4, 8, 2, 3}, 9), 0},
          {request({1}, 16, 1.0f, 123), 0},
          {request(promptOf(40, 3), 10), 3}};
}

class SchedulerPolicyTest : public SchedulerTest,
                            public ::testing::WithParamInterface<PrefillPolicy> {
protected:
  // Layered: a model of 3 layer groups (the others run it whole).
  void SetUp() override { model.groups = GetParam() == PrefillPolicy::Layered ? 3 : 1; }
};

TEST_P(SchedulerPolicyTest, EachRequestGetsTheTokensItGetsAlone) {
  SchedulerOptions options;
  options.prefill = GetParam();
  options.maxSequences = 5;
  // Chunked: 8 tokens a step, so the 40-token prompt runs 3 or 4 at a time
  // beside the decodes. Whole: room for the prompt and the decodes.
  // Layered: the budget bounds the decodes only.
  options.tokenBudget = GetParam() == PrefillPolicy::Whole ? 48 : 8;
  Scheduler s = make(options);
  const auto arrivals = fourAndALongOne();
  const std::vector<Output> together = runAll(s, arrivals);
  for (size_t i = 0; i < arrivals.size(); ++i) {
    const Output alone = runAlone(arrivals[i].first);
    EXPECT_EQ(together[i].tokens, alone.tokens) << "request " << i;
    EXPECT_EQ(together[i].reason, FinishReason::MaxTokens) << "request " << i;
  }
  // The long prompt's prefill: cut into chunks of what the decodes left,
  // or in one step with the decodes.
  int64_t prefillSteps = 0;
  for (size_t k = 3; k < steps.size(); ++k)
    prefillSteps += steps[k].prefillTokens > 0 ? 1 : 0;
  if (GetParam() == PrefillPolicy::Layered) {
    // Every prompt is its own batch through the 3 groups, one a step.
    EXPECT_EQ(prefillSteps, 0);
    std::vector<std::pair<size_t, size_t>> want;
    for (const auto &[r, step] : arrivals)
      for (size_t g = 0; g < 3; ++g)
        want.push_back({g, r.prompt.size()});
    EXPECT_EQ(model.ran, want);
    EXPECT_EQ(model.liveCarries, 0);
  } else if (GetParam() == PrefillPolicy::Chunked) {
    EXPECT_GE(prefillSteps, 40 / (8 - 4));
  } else {
    EXPECT_EQ(prefillSteps, 1);
    EXPECT_EQ(steps[3].prefillTokens, 40);
  }
  EXPECT_EQ(s.kvCache().usedBlocks(), 0);
  for (int64_t size : model.batchSizes)
    EXPECT_LE(size, options.tokenBudget);
}

TEST_P(SchedulerPolicyTest, StepsOfGreedyRowsOnlyTakeTheIdsAlone) {
  // Greedy requests only: every step runs the greedy step function (ids,
  // no logits), and each request gets what it gets alone.
  SchedulerOptions options;
  options.prefill = GetParam();
  options.maxSequences = 5;
  options.tokenBudget = GetParam() == PrefillPolicy::Whole ? 48 : 8;
  const std::vector<std::pair<Request, int>> greedyOnly = {{request({1, 5, 9}, 12), 0},
                                                           {request({1, 30, 4, 4, 8}, 9), 0},
                                                           {request(promptOf(40, 3), 10), 3}};
  {
    Scheduler s = makeOver(model, options, 128, true);
    const std::vector<Output> together = runAll(s, greedyOnly);
    for (size_t i = 0; i < greedyOnly.size(); ++i)
      EXPECT_EQ(together[i].tokens, runAlone(greedyOnly[i].first).tokens) << "request " << i;
    // Every step with tokens went through it (a layered prompt's groups
    // are the layer step function's).
    EXPECT_EQ(greedySteps, static_cast<int64_t>(model.batchSizes.size()));
    EXPECT_GT(greedySteps, 10);
  }
  // Sampled requests beside them: their steps take the logits, the rest
  // the ids; every request still gets what it gets alone.
  greedySteps = 0;
  model.batchSizes.clear();
  steps.clear();
  {
    Scheduler s = makeOver(model, options, 128, true);
    auto arrivals = fourAndALongOne();
    arrivals.push_back({request({1, 7}, 30), 1}); // greedy, on after the sampled ones end
    const std::vector<Output> together = runAll(s, arrivals);
    for (size_t i = 0; i < arrivals.size(); ++i)
      EXPECT_EQ(together[i].tokens, runAlone(arrivals[i].first).tokens) << "request " << i;
    EXPECT_GT(greedySteps, 0);
    EXPECT_LT(greedySteps, static_cast<int64_t>(model.batchSizes.size()));
  }
  // Speculating: the drafter learns from every logit, and a tree's nodes
  // are rows of their own, so no step takes the ids alone.
  greedySteps = 0;
  steps.clear();
  {
    options.speculate = *speculative::parseTreeShape("3x2x1x1");
    options.measureNodeCost = false;
    options.tokenBudget = 64;
    Scheduler s = makeOver(model, options, 128, true);
    const std::vector<Output> together = runAll(s, greedyOnly);
    for (size_t i = 0; i < greedyOnly.size(); ++i)
      EXPECT_EQ(together[i].tokens, runAlone(greedyOnly[i].first).tokens) << "request " << i;
    EXPECT_EQ(greedySteps, 0);
  }
}

TEST_P(SchedulerPolicyTest, RequestsBeyondMaxSequencesWaitInArrivalOrder) {
  SchedulerOptions options;
  options.prefill = GetParam();
  options.maxSequences = 2;
  options.tokenBudget = 16;
  Scheduler s = make(options);
  std::vector<std::pair<Request, int>> arrivals;
  for (int i = 0; i < 5; ++i)
    arrivals.push_back({request(promptOf(3 + i, i), 4 + i, i % 2 ? 0.7f : 0.0f, i), 0});
  const std::vector<Output> together = runAll(s, arrivals);
  for (size_t i = 0; i < arrivals.size(); ++i)
    EXPECT_EQ(together[i].tokens, runAlone(arrivals[i].first).tokens) << "request " << i;
  for (const StepStats &st : steps)
    EXPECT_LE(st.sequences, 2);
  // Layered admits one prompt at a time.
  EXPECT_EQ(steps[0].waiting, GetParam() == PrefillPolicy::Layered ? 4 : 3);
  // Admitted in arrival order: none starts before the one ahead of it.
  for (size_t i = 1; i < arrivals.size(); ++i)
    EXPECT_GE(firstTokenStep[i], firstTokenStep[i - 1]) << "request " << i;
}

INSTANTIATE_TEST_SUITE_P(Policies, SchedulerPolicyTest,
                         ::testing::Values(PrefillPolicy::Whole, PrefillPolicy::Chunked,
                                           PrefillPolicy::Layered),
                         [](const auto &info) {
                           return std::string(serving::prefillPolicyName(info.param));
                         });

/// Speculation under every policy: the tokens plain decoding gives alone,
/// over a model whose logits are noise (drafts rarely accepted) and over one
/// with a predictable greedy path (drafts accepted, paths committed).
TEST_P(SchedulerPolicyTest, SpeculationEmitsWhatEachRequestGetsAlone) {
  for (float bump : {0.0f, 8.0f}) {
    SCOPED_TRACE(fmt::format("bump {}", bump));
    model = FakeModel();
    model.groups = GetParam() == PrefillPolicy::Layered ? 3 : 1;
    model.bump = bump;
    steps.clear();
    firstTokenStep.clear();
    lastTokenStep.clear();
    SchedulerOptions options;
    options.prefill = GetParam();
    options.maxSequences = 6;
    options.tokenBudget = 64;
    options.speculate = *speculative::parseTreeShape("3x2x1x1");
    options.measureNodeCost = false; // the fake's step times say nothing
    Scheduler s = make(options);
    auto arrivals = fourAndALongOne();
    // One that stops at a token of its cycle (greedy: 1 -> 6 -> 31 -> 28
    // ...), one that reaches the end of the context.
    Request stopping = request({1, 6}, 30);
    stopping.stopTokens = {28};
    arrivals.push_back({stopping, 1});
    arrivals.push_back({request(promptOf(52, 5), 40, 0.9f, 11), 2});
    const std::vector<Output> together = runAll(s, arrivals);
    int64_t drafted = 0, accepted = 0, tokens = 0;
    for (const StepStats &st : steps) {
      drafted += st.draftedTokens;
      accepted += st.acceptedDrafts;
      EXPECT_LE(st.acceptedDrafts, st.draftedTokens);
    }
    int64_t requestAccepted = 0;
    for (size_t i = 0; i < arrivals.size(); ++i) {
      const Output alone = runAlone(arrivals[i].first);
      EXPECT_EQ(together[i].tokens, alone.tokens) << "request " << i;
      EXPECT_EQ(together[i].reason, alone.reason) << "request " << i;
      tokens += static_cast<int64_t>(alone.tokens.size());
      requestAccepted += finalStats[i].acceptedDrafts;
    }
    EXPECT_GT(drafted, 0);
    EXPECT_LE(requestAccepted, accepted); // a request cancelled mid-path is not counted
    if (bump > 0) {
      // The cycle reaches the stop token; the last runs into the context.
      EXPECT_EQ(together[5].reason, FinishReason::StopToken);
      EXPECT_EQ(together[6].reason, FinishReason::ContextEnd);
      // Most drafts of the cycle are accepted: far fewer steps than tokens.
      EXPECT_GT(accepted, drafted / 4);
      EXPECT_LT(int64_t(steps.size()) * 2, tokens);
    }
    EXPECT_EQ(s.kvCache().usedBlocks(), 0);
  }
}

TEST_F(SchedulerTest, SpeculationStaysInEachRequestsBlocksAndTheSpareBudget) {
  model.bump = 8.0f;
  SchedulerOptions options;
  options.prefill = PrefillPolicy::Chunked;
  options.maxSequences = 2;
  options.tokenBudget = 128;
  options.speculate = *speculative::parseTreeShape("4x4x4");
  options.measureNodeCost = false; // the fake's step times say nothing
  // Exactly the two requests' blocks: 6 + 10 tokens, 4 blocks each. A
  // tree past its request's reservation would take the other's blocks.
  Scheduler s = make(options, 8);
  const std::vector<std::pair<Request, int>> arrivals = {{request(promptOf(6, 1), 10), 0},
                                                         {request(promptOf(6, 2), 10, 0.7f, 3), 0}};
  const std::vector<Output> together = runAll(s, arrivals);
  for (size_t i = 0; i < arrivals.size(); ++i)
    EXPECT_EQ(together[i].tokens, runAlone(arrivals[i].first).tokens) << "request " << i;
  // Trees take only what the decode tokens and the prefill leave.
  options.tokenBudget = 12;
  options.maxSequences = 4;
  FakeModel other;
  other.bump = 8.0f;
  Scheduler tight = makeOver(other, options);
  steps.clear();
  runAll(tight, {{request({1, 2}, 30), 0}, {request({3}, 30), 0}, {request(promptOf(20, 4), 5), 2}});
  for (const StepStats &st : steps) {
    EXPECT_LE(st.tokens, 12);
    if (st.prefillTokens > 0)
      EXPECT_EQ(st.draftedTokens, 0) << "a tree took budget a prompt needed";
  }
}

/// Two sequences speculating over 3x2x1x1 trees with a drafter the caller
/// keeps (options.drafter), nodes first taken as nearly free.
SchedulerOptions withGivenDrafter() {
  SchedulerOptions options;
  options.maxSequences = 2;
  options.tokenBudget = 64;
  options.speculate = *speculative::parseTreeShape("3x2x1x1");
  options.drafting.nodeCost = 0.05f;
  options.drafter = std::make_shared<speculative::TreeDrafter>(kVocab, *options.speculate,
                                                               options.drafting);
  return options;
}

TEST_F(SchedulerTest, SpeculationDraftsWithTheDrafterGivenAndTeachesIt) {
  model.bump = 8.0f;
  SchedulerOptions options = withGivenDrafter();
  options.measureNodeCost = false;
  const auto drafter = options.drafter;
  Scheduler s = make(options);
  EXPECT_EQ(s.drafter(), drafter.get());
  const std::vector<std::pair<Request, int>> arrivals = {{request({1, 6}, 20), 0},
                                                         {request(promptOf(5, 3), 12), 0}};
  const std::vector<Output> together = runAll(s, arrivals);
  // Each finished text (prompt and every token emitted) is in the drafter
  // the caller keeps, and its table has learnt the cycle's successors.
  ASSERT_EQ(drafter->history().texts(), arrivals.size());
  std::vector<std::vector<int32_t>> texts;
  for (auto text : drafter->history().contents())
    texts.emplace_back(text.begin(), text.end());
  for (size_t i = 0; i < arrivals.size(); ++i) {
    std::vector<int32_t> want = arrivals[i].first.prompt;
    want.insert(want.end(), together[i].tokens.begin(), together[i].tokens.end());
    EXPECT_NE(std::find(texts.begin(), texts.end(), want), texts.end()) << "request " << i;
  }
  EXPECT_FALSE(drafter->recycling().successors(together[0].tokens.front()).empty());

  // A drafter of another shape or vocabulary is refused.
  options.drafter = std::make_shared<speculative::TreeDrafter>(
      kVocab, *speculative::parseTreeShape("2x2"), options.drafting);
  auto shape = Scheduler::create(
      fakeConfig(), [this](const Batch &b, kv::PagedKVCache &kv) { return model(b, kv); },
      makeCache(8), options);
  ASSERT_FALSE(shape);
  EXPECT_NE(shape.error().message().find("drafts trees of shape 2x2, not the scheduler's "
                                         "3x2x1x1"),
            std::string::npos)
      << shape.error().message();
  options.drafter = std::make_shared<speculative::TreeDrafter>(kVocab + 1, *options.speculate,
                                                               options.drafting);
  auto vocab = Scheduler::create(
      fakeConfig(), [this](const Batch &b, kv::PagedKVCache &kv) { return model(b, kv); },
      makeCache(8), options);
  ASSERT_FALSE(vocab);
  EXPECT_NE(vocab.error().message().find("vocabulary of 33 tokens, the model 32"),
            std::string::npos)
      << vocab.error().message();
}

// A prompt's last logits row seeds Token Recycling with its token's
// successors, greedy or sampled, before any tree has run.
TEST_F(SchedulerTest, SpeculationSeedsRecyclingFromEachPromptsLastRow) {
  SchedulerOptions options = withGivenDrafter();
  options.measureNodeCost = false;
  const auto drafter = options.drafter;
  Scheduler s = make(options);
  runAll(s, {{request({1, 6, 11}, 1), 0}, {request({2, 9, 13}, 1, 0.8f, 5), 0}});
  EXPECT_FALSE(drafter->recycling().successors(11).empty());
  EXPECT_FALSE(drafter->recycling().successors(13).empty());
  EXPECT_TRUE(drafter->recycling().successors(6).empty()); // only the last row comes back
}

// Steps that take 2 ms plus 1 ms a token: a node costs 1 / (2 + 1) of a
// step of one root. Sleeping only lengthens them, so the bounds are loose.
auto sleepingStepOf(FakeModel &model) {
  return [&model](const Batch &b, kv::PagedKVCache &kv) {
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + 1000 * b.size()));
    return model(b, kv);
  };
}

void expectNodeCostOfSleepingSteps(const speculative::TreeDrafter &drafter) {
  EXPECT_TRUE(drafter.cost().measured());
  EXPECT_GT(drafter.cost().nodeCost(), 0.15);
  EXPECT_LT(drafter.cost().nodeCost(), 0.6);
}

TEST_F(SchedulerTest, SpeculationMeasuresWhatANodeCostsFromTheDecodeSteps) {
  // The scheduler fits its decode steps' times (sleepingStepOf).
  model.bump = 8.0f;
  SchedulerOptions options = withGivenDrafter();
  const auto drafter = options.drafter;
  auto s = Scheduler::create(
      fakeConfig(),
      sleepingStepOf(model),
      makeCache(64), options);
  ASSERT_TRUE(s) << s.error().message();
  runAll(*s, {{request({1, 6}, 40), 0}, {request({2, 6}, 40), 0}});
  expectNodeCostOfSleepingSteps(*drafter);
  // Off, the drafter keeps the cost it has.
  options = withGivenDrafter();
  options.measureNodeCost = false;
  const auto fresh = options.drafter;
  Scheduler unmeasured = make(options);
  runAll(unmeasured, {{request({1, 6}, 40), 0}});
  EXPECT_FALSE(fresh->cost().measured());
  EXPECT_DOUBLE_EQ(fresh->cost().nodeCost(), 0.05f);
}

// A step that also ran a layer group of a long prompt is timed with it:
// such steps stay out of the node-cost fit, or their groups' time would
// read as the decode tokens' fixed cost.
TEST_F(SchedulerTest, SpeculationLeavesStepsWithALayerGroupOutOfTheNodeCost) {
  model.bump = 8.0f;
  model.groups = 3;
  SchedulerOptions options = withGivenDrafter();
  options.prefill = PrefillPolicy::Layered;
  options.maxSequences = 3;
  const auto drafter = options.drafter;
  auto s = Scheduler::create(
      fakeConfig(),
      sleepingStepOf(model),
      [this](const Batch &b, kv::PagedKVCache &kv, size_t group,
             std::unique_ptr<backend::LayerCarry> &carry) {
        std::this_thread::sleep_for(std::chrono::milliseconds(40));
        return model.layers(b, kv, group, carry);
      },
      model.groups, makeCache(64), options);
  ASSERT_TRUE(s) << s.error().message();
  runAll(*s, {{request({1, 6}, 40), 0},
              {request(promptOf(40, 3), 4), 8},
              {request(promptOf(40, 5), 4), 20}});
  bool layered = false;
  for (const StepStats &st : steps)
    layered = layered || (st.layerGroup >= 0 && st.decodeTokens > 0);
  ASSERT_TRUE(layered) << "no layer group ran beside the decodes";
  expectNodeCostOfSleepingSteps(*drafter);
}

TEST_F(SchedulerTest, LayeredPrefillRunsAGroupPerStepBesideTheDecodes) {
  model.groups = 3;
  SchedulerOptions options;
  options.prefill = PrefillPolicy::Layered;
  options.maxSequences = 5;
  options.tokenBudget = 5; // the decodes; the 40-token prompt is a batch of its own
  Scheduler s = make(options);
  std::vector<std::pair<Request, int>> arrivals = {{request({1, 5, 9}, 30), 0},
                                                   {request({1, 2}, 30, 0.8f, 7), 0},
                                                   {request({1, 30, 4, 4, 8, 2, 3}, 30), 0},
                                                   {request({1}, 30, 1.0f, 123), 0},
                                                   {request(promptOf(40, 3), 10), 14}};
  const std::vector<Output> together = runAll(s, arrivals);
  for (size_t i = 0; i < arrivals.size(); ++i)
    EXPECT_EQ(together[i].tokens, runAlone(arrivals[i].first).tokens) << "request " << i;
  // The four prompts one after the other, 3 steps each: the fourth's
  // first token comes at step 11.
  for (size_t i = 0; i < 4; ++i)
    EXPECT_EQ(firstTokenStep[i], int(3 * i + 2)) << "request " << i;
  // The long prompt: a group a step beside the four decodes, its first
  // token after its last group (runAll checks that no decode skips a step).
  for (int k = 14; k < 17; ++k) {
    EXPECT_EQ(steps[k].layerGroup, k - 14) << "step " << k;
    EXPECT_EQ(steps[k].layeredTokens, 40) << "step " << k;
    EXPECT_EQ(steps[k].decodeTokens, 4) << "step " << k;
    EXPECT_EQ(steps[k].prefillTokens, 0) << "step " << k;
    EXPECT_EQ(steps[k].sequences, 5) << "step " << k;
  }
  EXPECT_EQ(steps[17].layerGroup, -1);
  EXPECT_EQ(firstTokenStep[4], 16);
  EXPECT_EQ(model.ran.size(), 15u);
  for (int64_t size : model.batchSizes)
    EXPECT_LE(size, options.tokenBudget);
  const RequestStats &st = finalStats[4];
  ASSERT_TRUE(st.timeToFirstToken);
  EXPECT_GE(*st.timeToFirstToken, st.queueSeconds);
  EXPECT_EQ(st.timesBetweenTokens.size(), 9u);
  EXPECT_EQ(s.kvCache().usedBlocks(), 0);
  EXPECT_EQ(model.liveCarries, 0);
}

TEST_F(SchedulerTest, CancelDuringALayeredPrefillDropsItsCarryAndBlocks) {
  model.groups = 3;
  SchedulerOptions options;
  options.prefill = PrefillPolicy::Layered;
  options.maxSequences = 3;
  options.tokenBudget = 4;
  Scheduler s = make(options);
  const int64_t freeAtStart = s.kvCache().freeBlocks();
  const Request a = request(promptOf(9, 1), 20), b = request(promptOf(6, 2), 20, 0.9f, 5),
                later = request(promptOf(30, 3), 8), next = request(promptOf(11, 4), 6);
  auto ia = s.submit(a), ib = s.submit(b);
  ASSERT_TRUE(ia && ib);
  std::map<RequestId, std::vector<int32_t>> tokens;
  std::vector<StepStats> ran;
  auto run = [&](int n) {
    for (int k = 0; k < n; ++k) {
      auto result = s.step();
      ASSERT_TRUE(result) << result.error().message();
      ran.push_back(result->stats);
      for (const Event &e : result->events)
        if (e.kind == Event::Kind::Token)
          tokens[e.request].push_back(e.token);
    }
  };
  run(6); // a's and b's prefills
  ASSERT_EQ(tokens[*ia].size(), 4u);
  ASSERT_EQ(tokens[*ib].size(), 1u);
  const int64_t freeBefore = s.kvCache().freeBlocks();
  auto il = s.submit(later), in = s.submit(next);
  ASSERT_TRUE(il && in);
  run(2); // groups 0 and 1 of `later`; `next` waits behind it
  EXPECT_EQ(ran.back().layerGroup, 1);
  EXPECT_EQ(s.waitingCount(), 1);
  EXPECT_EQ(model.liveCarries, 1);
  EXPECT_LT(s.kvCache().freeBlocks(), freeBefore);
  const int64_t freeInFlight = s.kvCache().freeBlocks();
  ASSERT_TRUE(s.cancel(*il));
  EXPECT_EQ(model.liveCarries, 0) << "the carry goes with the cancel";
  EXPECT_TRUE(model.inFlight.empty());
  EXPECT_EQ(s.kvCache().freeBlocks(), freeInFlight + s.kvCache().blocksFor(30))
      << "the prompt's 30 rows are free";
  // The next prompt starts its own groups at once; the others go on.
  auto result = s.step();
  ASSERT_TRUE(result) << result.error().message();
  ASSERT_FALSE(result->events.empty());
  EXPECT_EQ(result->events[0].request, *il);
  EXPECT_EQ(result->events[0].reason, FinishReason::Cancelled);
  EXPECT_EQ(result->stats.layerGroup, 0);
  EXPECT_EQ(result->stats.layeredTokens, 11);
  for (const Event &e : result->events)
    if (e.kind == Event::Kind::Token)
      tokens[e.request].push_back(e.token);
  for (int k = 0; k < 100 && s.busy(); ++k)
    run(1);
  EXPECT_FALSE(s.busy());
  EXPECT_EQ(tokens.count(*il), 0u);
  EXPECT_EQ(tokens[*ia], runAlone(a).tokens);
  EXPECT_EQ(tokens[*ib], runAlone(b).tokens);
  EXPECT_EQ(tokens[*in], runAlone(next).tokens);
  EXPECT_EQ(s.kvCache().freeBlocks(), freeAtStart);
  EXPECT_EQ(model.liveCarries, 0);
}

TEST_F(SchedulerTest, LayeredWithoutGroupsRunsAsWhole) {
  SchedulerOptions options;
  options.maxSequences = 5;
  options.tokenBudget = 48;
  options.prefill = PrefillPolicy::Whole;
  FakeModel whole;
  Scheduler w = makeOver(whole, options);
  const auto arrivals = fourAndALongOne();
  const std::vector<Output> want = runAll(w, arrivals);
  const std::vector<StepStats> wholeSteps = std::move(steps);
  steps.clear();
  // One group (model.groups = 1): the prompts go into execute's batches
  // exactly as under Whole, and never through the layer step.
  options.prefill = PrefillPolicy::Layered;
  Scheduler s = make(options);
  EXPECT_EQ(runAll(s, arrivals)[4].tokens, want[4].tokens);
  EXPECT_TRUE(model.ran.empty());
  EXPECT_EQ(model.batchSizes, whole.batchSizes);
  ASSERT_EQ(steps.size(), wholeSteps.size());
  for (size_t k = 0; k < steps.size(); ++k) {
    EXPECT_EQ(steps[k].prefillTokens, wholeSteps[k].prefillTokens) << "step " << k;
    EXPECT_EQ(steps[k].layerGroup, -1) << "step " << k;
  }
  auto tooLong = s.submit(request(promptOf(49, 0), 4));
  ASSERT_FALSE(tooLong);
  EXPECT_NE(tooLong.error().message().find("more than the step's token budget of 48"),
            std::string::npos);
}

TEST_F(SchedulerTest, AFailedLayerGroupOrDecodeStepLosesNothing) {
  model.groups = 3;
  SchedulerOptions options;
  options.prefill = PrefillPolicy::Layered;
  options.tokenBudget = 2;
  options.maxSequences = 2;
  Scheduler s = make(options);
  const Request a = request(promptOf(10, 1), 8), b = request(promptOf(4, 2), 8, 0.8f, 3);
  auto ia = s.submit(a), ib = s.submit(b);
  ASSERT_TRUE(ia && ib);
  // Step 1 fails in a's group 1; step 6 in b's last group; step 7 in the
  // decodes, after b's last group has run (its first token waits for the
  // next step).
  auto tokens = runThroughFailures(s, {1, 6}, {7});
  EXPECT_EQ(tokens[*ia], runAlone(a).tokens);
  EXPECT_EQ(tokens[*ib], runAlone(b).tokens);
  const std::vector<std::pair<size_t, size_t>> want = {{0, 10}, {1, 10}, {2, 10},
                                                       {0, 4},  {1, 4},  {2, 4}};
  EXPECT_FALSE(s.busy());
  EXPECT_EQ(model.ran, want) << "each group ran once";
  EXPECT_EQ(model.liveCarries, 0);
}

TEST_F(SchedulerTest, ChunkedPrefillSplitsAPromptLongerThanTheBudget) {
  SchedulerOptions options;
  options.tokenBudget = 5;
  options.maxSequences = 1;
  Scheduler s = make(options);
  const Request r = request(promptOf(23, 1), 3);
  const std::vector<Output> out = runAll(s, {{r, 0}});
  EXPECT_EQ(out[0].tokens, runAlone(r).tokens);
  // 5 + 5 + 5 + 5 + 3 prompt tokens, then two decodes.
  const std::vector<int64_t> want = {5, 5, 5, 5, 3, 1, 1};
  EXPECT_EQ(model.batchSizes, want);
}

TEST_F(SchedulerTest, CancelFreesTheBlocksAtOnceAndTheOthersGoOn) {
  SchedulerOptions options;
  options.maxSequences = 3;
  options.tokenBudget = 8;
  Scheduler s = make(options);
  const int64_t freeAtStart = s.kvCache().freeBlocks();
  const Request a = request(promptOf(9, 1), 20), b = request(promptOf(6, 2), 20, 0.9f, 5),
                c = request(promptOf(5, 3), 20), waiting = request(promptOf(4, 4), 20);
  auto ia = s.submit(a), ib = s.submit(b), ic = s.submit(c), iw = s.submit(waiting);
  ASSERT_TRUE(ia && ib && ic && iw);
  std::map<RequestId, std::vector<int32_t>> tokens;
  auto run = [&](int n) {
    for (int k = 0; k < n; ++k) {
      auto result = s.step();
      ASSERT_TRUE(result) << result.error().message();
      for (const Event &e : result->events)
        if (e.kind == Event::Kind::Token)
          tokens[e.request].push_back(e.token);
        else if (e.request != *iw && e.request != *ib)
          EXPECT_EQ(e.reason, FinishReason::MaxTokens);
    }
  };
  run(6);
  // b holds its prompt and every emitted token but the last (not yet run).
  ASSERT_FALSE(tokens[*ib].empty());
  const int64_t bSlots = 6 + int64_t(tokens[*ib].size()) - 1;
  const int64_t freeBefore = s.kvCache().freeBlocks();
  ASSERT_TRUE(s.cancel(*ib));
  EXPECT_EQ(s.kvCache().freeBlocks(), freeBefore + s.kvCache().blocksFor(bSlots));
  EXPECT_FALSE(s.cancel(*ib)) << "a request ends once";
  // The waiting request never held blocks; its end is reported too.
  ASSERT_TRUE(s.cancel(*iw));
  EXPECT_EQ(s.kvCache().freeBlocks(), freeBefore + s.kvCache().blocksFor(bSlots));
  auto next = s.step();
  ASSERT_TRUE(next) << next.error().message();
  ASSERT_GE(next->events.size(), 2u);
  EXPECT_EQ(next->events[0].request, *ib);
  EXPECT_EQ(next->events[0].kind, Event::Kind::Finished);
  EXPECT_EQ(next->events[0].reason, FinishReason::Cancelled);
  EXPECT_EQ(next->events[1].request, *iw);
  EXPECT_EQ(next->events[1].reason, FinishReason::Cancelled);
  for (const Event &e : next->events)
    if (e.kind == Event::Kind::Token)
      tokens[e.request].push_back(e.token);
  const size_t bEmitted = tokens[*ib].size();
  while (s.busy())
    run(1);
  EXPECT_EQ(tokens[*ib].size(), bEmitted) << "nothing after the cancel";
  EXPECT_EQ(tokens[*ia], runAlone(a).tokens);
  EXPECT_EQ(tokens[*ic], runAlone(c).tokens);
  EXPECT_EQ(tokens.count(*iw), 0u);
  EXPECT_EQ(s.kvCache().freeBlocks(), freeAtStart);
  auto unknown = s.cancel(999);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message(), "no request 999 is waiting or running");
}

TEST_F(SchedulerTest, EndsAtAStopTokenTheCountOrTheContext) {
  SchedulerOptions options;
  options.tokenBudget = 64;
  // Greedy alone gives t0 t1 t2 ...: stopping at the first new id that did
  // not come before ends the request just before it.
  Request stopping = request(promptOf(5, 2), 30);
  const std::vector<int32_t> unstopped = runAlone(stopping).tokens;
  size_t k = 1;
  while (k < unstopped.size() && std::count(unstopped.begin(), unstopped.begin() + k, unstopped[k]))
    ++k;
  ASSERT_LT(k, unstopped.size());
  stopping.stopTokens = {unstopped[k]};
  const Request counted = request(promptOf(4, 3), 6);
  // 62 prompt tokens: the context holds 2 more, so the third token emitted
  // has no slot to run in.
  const Request atContext = request(promptOf(kContext - 2, 4), 50);
  Scheduler s = make(options);
  const std::vector<Output> out = runAll(s, {{stopping, 0}, {counted, 0}, {atContext, 1}});
  EXPECT_EQ(out[0].reason, FinishReason::StopToken);
  EXPECT_EQ(out[0].tokens, std::vector<int32_t>(unstopped.begin(), unstopped.begin() + k));
  EXPECT_EQ(out[1].reason, FinishReason::MaxTokens);
  EXPECT_EQ(out[1].tokens.size(), 6u);
  EXPECT_EQ(out[2].reason, FinishReason::ContextEnd);
  EXPECT_EQ(out[2].tokens.size(), 3u);
  EXPECT_EQ(out[2].tokens, runAlone(atContext).tokens);
  EXPECT_EQ(finishReasonName(out[2].reason), "context end");
}

TEST_F(SchedulerTest, StatsFollowEachRequestAndStep) {
  SchedulerOptions options;
  options.tokenBudget = 16;
  Scheduler s = make(options);
  const std::vector<Output> out =
      runAll(s, {{request(promptOf(7, 1), 5), 0}, {request(promptOf(3, 2), 8), 2}});
  for (size_t i = 0; i < out.size(); ++i) {
    const RequestStats &st = finalStats[i];
    EXPECT_EQ(st.promptTokens, i == 0 ? 7 : 3);
    EXPECT_EQ(st.generatedTokens, int64_t(out[i].tokens.size()));
    ASSERT_TRUE(st.timeToFirstToken);
    EXPECT_GE(*st.timeToFirstToken, st.queueSeconds);
    EXPECT_EQ(st.timesBetweenTokens.size(), out[i].tokens.size() - 1);
  }
  // Step 0: the first prompt; step 2: one decode and the second prompt.
  EXPECT_EQ(steps[0].prefillTokens, 7);
  EXPECT_EQ(steps[0].decodeTokens, 0);
  EXPECT_EQ(steps[0].kvBlocksUsed, 2);
  EXPECT_EQ(steps[2].decodeTokens, 1);
  EXPECT_EQ(steps[2].prefillTokens, 3);
  EXPECT_EQ(steps[2].sequences, 2);
  EXPECT_EQ(steps.back().kvBlocksUsed, 0);
  EXPECT_EQ(steps.back().kvBlocks, 128);
}

TEST_F(SchedulerTest, AGreedyStepOfTheWrongCountFailsTheStep) {
  Scheduler s = makeOver(model, {}, 128, true);
  wrongIds = true;
  ASSERT_TRUE(s.submit(request({1, 2, 3}, 4)));
  ASSERT_TRUE(s.submit(request({1, 4}, 4)));
  auto result = s.step();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message(), "the greedy step returned 1 ids, expected 2");
  // (A step that fails after the model ran leaves the cache grown: a
  // scheduler of its own.)
  FakeModel other;
  Scheduler t = makeOver(other, {}, 128, true);
  wrongIds = false;
  outsideIds = true;
  ASSERT_TRUE(t.submit(request({1, 2, 3}, 4)));
  result = t.step();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().message(),
            fmt::format("the greedy step returned id {}, outside the vocabulary of {}", kVocab,
                        kVocab));
}

TEST_F(SchedulerTest, AFailedStepChangesNothing) {
  SchedulerOptions options;
  options.tokenBudget = 6;
  options.maxSequences = 2;
  Scheduler s = make(options);
  const Request a = request(promptOf(10, 1), 6), b = request(promptOf(4, 2), 6, 0.8f, 3);
  auto ia = s.submit(a), ib = s.submit(b);
  ASSERT_TRUE(ia && ib);
  auto tokens = runThroughFailures(s, {1, 4}, {});
  EXPECT_EQ(tokens[*ia], runAlone(a).tokens);
  EXPECT_EQ(tokens[*ib], runAlone(b).tokens);
}

TEST_F(SchedulerTest, RefusesBadRequestsWithAClearMessage) {
  SchedulerOptions options;
  options.prefill = PrefillPolicy::Whole;
  options.tokenBudget = 16;
  Scheduler s = make(options, /*blocks=*/8);
  auto refused = [&](Request r) {
    auto id = s.submit(std::move(r));
    EXPECT_FALSE(id);
    return id ? std::string() : id.error().message();
  };
  EXPECT_EQ(refused(request({}, 4)), "the prompt is empty");
  EXPECT_NE(refused(request({1, int32_t(kVocab)}, 4)).find("outside the vocabulary"),
            std::string::npos);
  EXPECT_NE(refused(request({1, -1}, 4)).find("outside the vocabulary"), std::string::npos);
  EXPECT_NE(refused(request(promptOf(kContext + 1, 0), 4)).find("longer than the model's context"),
            std::string::npos);
  EXPECT_EQ(refused(request({1}, 0)), "max new tokens must be at least 1, got 0");
  EXPECT_EQ(refused(request({1}, 4, -1.0f)).rfind("--temperature must be", 0), 0u);
  EXPECT_NE(refused(request(promptOf(17, 0), 4)).find("more than the step's token budget of 16"),
            std::string::npos);
  // 8 blocks of 4 slots: 30 prompt tokens and 10 new ones need 10.
  Scheduler small = make(SchedulerOptions{}, 8);
  auto tooBig = small.submit(request(promptOf(30, 0), 10));
  ASSERT_FALSE(tooBig);
  EXPECT_EQ(tooBig.error().message(),
            "the request needs 10 KV blocks (its prompt and new tokens), more than the whole "
            "cache of 8");
  // Nothing was queued, and a good request still runs.
  EXPECT_FALSE(s.busy());
  EXPECT_EQ(runAll(s, {{request({1, 2, 3}, 3), 0}})[0].tokens,
            runAlone(request({1, 2, 3}, 3)).tokens);
}

TEST_F(SchedulerTest, RefusesBadOptions) {
  auto refused = [&](SchedulerOptions o) {
    auto s = Scheduler::create(fakeConfig(), FakeModel{}, makeCache(8), o);
    EXPECT_FALSE(s);
    return s ? std::string() : s.error().message();
  };
  SchedulerOptions o;
  o.tokenBudget = 0;
  EXPECT_EQ(refused(o), "the token budget per step must be at least 1, got 0");
  o.tokenBudget = 4;
  o.maxSequences = 8;
  EXPECT_EQ(refused(o), "the token budget per step (4) must be at least the number of "
                        "concurrent sequences (8): every running sequence decodes one token "
                        "per step");
  o.maxSequences = 0;
  EXPECT_EQ(refused(o), "the scheduler needs at least 1 concurrent sequence, got 0");
  o.maxSequences = 2;
  o.kvTokens = -1;
  EXPECT_NE(refused(o).find("KV cache size must be at least 0"), std::string::npos);
}

// A prompt of exactly the step's token budget and a request whose prompt
// and new tokens fill exactly the whole cache are admitted (both bounds are
// inclusive), also when the prompt's first step fails; the blocks reserved
// come back when it ends, so the next such request runs after it.
TEST_P(SchedulerPolicyTest, ARequestOfTheWholeBudgetAndCacheRunsAndGivesItsBlocksBack) {
  SchedulerOptions options;
  options.prefill = GetParam();
  options.maxSequences = 2; // the blocks, not the count, hold the second back
  options.tokenBudget = 16;
  // 16 prompt tokens and 16 new ones: 32 slots, the cache's 8 blocks of 4.
  Scheduler s = make(options, /*blocks=*/8);
  const Request first = request(promptOf(16, 1), 16),
                second = request(promptOf(16, 2), 16, 0.8f, 9);
  auto i1 = s.submit(first);
  ASSERT_TRUE(i1) << i1.error().message();
  auto i2 = s.submit(second);
  ASSERT_TRUE(i2) << i2.error().message();
  auto tokens = runThroughFailures(s, {0}, {});
  EXPECT_EQ(tokens[*i1], runAlone(first).tokens);
  EXPECT_EQ(tokens[*i2], runAlone(second).tokens);
  EXPECT_EQ(s.kvCache().usedBlocks(), 0);
}

// New tokens past the context (any int64 may come in, even the largest)
// reserve one context of blocks: no more (a cache of one context takes the
// request) and no less (another request waits for them). Trees are drafted
// for such a request all the same, as large as the spare budget allows
// (root included) and within the context's slots.
TEST_F(SchedulerTest, NewTokensPastTheContextReserveOneContext) {
  model.bump = 8.0f;
  SchedulerOptions options;
  options.maxSequences = 2;
  options.tokenBudget = 16;
  options.speculate = *speculative::parseTreeShape("4x4x4");
  options.measureNodeCost = false;
  // Trees as large as the budget allows, up to the context's last slot.
  options.drafting.nodeCost = 0.005f;
  options.drafting.minScore = 0;
  Scheduler s = make(options, /*blocks=*/kContext / 4);
  const Request endless = request(promptOf(10, 1), std::numeric_limits<int64_t>::max());
  const Request small = request({1, 2}, 3);
  auto ie = s.submit(endless);
  ASSERT_TRUE(ie) << ie.error().message();
  auto is = s.submit(small);
  ASSERT_TRUE(is) << is.error().message();
  std::map<RequestId, std::vector<int32_t>> tokens;
  int64_t endlessDrafted = -1, mostDecodeTokens = 0;
  for (int k = 0; k < 100 && s.busy(); ++k) {
    auto result = s.step();
    ASSERT_TRUE(result) << result.error().message();
    if (result->stats.prefillTokens == 0)
      mostDecodeTokens = std::max(mostDecodeTokens, result->stats.tokens);
    if (k == 0) {
      EXPECT_EQ(s.runningCount(), 1);
      EXPECT_EQ(result->stats.waiting, 1) << "the small request waits for the blocks";
    }
    for (const Event &e : result->events)
      if (e.kind == Event::Kind::Token)
        tokens[e.request].push_back(e.token);
      else if (e.request == *ie)
        endlessDrafted = e.stats.draftedTokens;
  }
  EXPECT_FALSE(s.busy());
  EXPECT_EQ(tokens[*ie], runAlone(endless).tokens);
  EXPECT_EQ(tokens[*is], runAlone(small).tokens);
  EXPECT_GT(endlessDrafted, 0) << "the request without a limit drafted no tree";
  EXPECT_EQ(mostDecodeTokens, 16) << "a tree takes the whole spare budget, beside its root";
}

// A request cancelled while it waits reports its prompt's size, as one
// cancelled while running does: servers log it as the prompt tokens used.
TEST_F(SchedulerTest, ACancelledWaitingRequestReportsItsPromptTokens) {
  Scheduler s = make(SchedulerOptions{});
  auto id = s.submit(request(promptOf(5, 2), 4));
  ASSERT_TRUE(id);
  ASSERT_TRUE(s.cancel(*id));
  auto result = s.step();
  ASSERT_TRUE(result) << result.error().message();
  ASSERT_EQ(result->events.size(), 1u);
  EXPECT_EQ(result->events[0].reason, FinishReason::Cancelled);
  EXPECT_EQ(result->events[0].stats.promptTokens, 5);
  EXPECT_EQ(result->events[0].stats.generatedTokens, 0);
}

// The time to the first token runs from the submit, each time between
// tokens from the token before: together they add up to no more than the
// time from the submit to the last token.
TEST_F(SchedulerTest, TimesBetweenTokensRunFromTheTokenBefore) {
  Scheduler s = make(SchedulerOptions{});
  const auto before = std::chrono::steady_clock::now();
  auto id = s.submit(request({1, 2, 3}, 4));
  ASSERT_TRUE(id);
  // A first token well after the submit.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::optional<RequestStats> stats;
  while (s.busy()) {
    auto result = s.step();
    ASSERT_TRUE(result) << result.error().message();
    for (const Event &e : result->events)
      if (e.kind == Event::Kind::Finished)
        stats = e.stats;
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - before).count();
  ASSERT_TRUE(stats);
  ASSERT_TRUE(stats->timeToFirstToken);
  EXPECT_GE(*stats->timeToFirstToken, 0.02);
  ASSERT_EQ(stats->timesBetweenTokens.size(), 3u);
  double total = *stats->timeToFirstToken;
  for (double t : stats->timesBetweenTokens)
    total += t;
  EXPECT_LE(total, elapsed);
}

} // namespace
} // namespace lathe::serving
