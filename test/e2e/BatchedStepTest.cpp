// The batch form on stories15M (FP32): several sequences in one step, a
// token tree verified in one step, and rollback/commit of the KV cache,
// each against the same tokens run alone. On the generated code and the
// interpreted plan. FP32 tolerance: the products of a batch run over more
// rows at once than those of a single sequence, which may change the
// kernels' tiling but not the sums' inputs: logits agree to 1e-5.
#include "test/e2e/ModelFixture.h"

#include "runtime/engine/Generation.h"
#include "runtime/engine/Session.h"
#include "runtime/sampling/Sampler.h"

#include <algorithm>
#include <cmath>

namespace lathe::test {
namespace {

using backend::Batch;

constexpr float kTolerance = 1e-5f;

void expectClose(std::span<const float> got, std::span<const float> want,
                 const std::string &what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], kTolerance * (1 + std::fabs(want[i])))
        << what << ", element " << i;
}

int32_t argmax(std::span<const float> row) {
  return static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
}

/// Greedy decoding of one sequence alone: `steps` ids and the logits row
/// each was chosen from.
struct Alone {
  std::vector<int32_t> ids;
  std::vector<std::vector<float>> logits;
};

Alone runAlone(std::shared_ptr<backend::Executable> executable,
               const std::vector<int32_t> &prompt, int steps) {
  Alone out;
  auto session = Session::create(std::move(executable));
  EXPECT_TRUE(session) << session.error().message();
  auto logits = session->forward(prompt);
  for (int i = 0; i < steps; ++i) {
    EXPECT_TRUE(logits) << logits.error().message();
    out.logits.emplace_back(logits->begin(), logits->end());
    out.ids.push_back(argmax(*logits));
    logits = session->forward(std::span<const int32_t>(&out.ids.back(), 1));
  }
  return out;
}

class BatchedStepTest : public ::testing::TestWithParam<bool> {
protected:
  void SetUp() override {
    if (!haveModel())
      GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
    static std::shared_ptr<const artifact::Artifact> artifact =
        compileAndLoad(modelDir() + "/stories15M.bin", "batched");
    ASSERT_NE(artifact, nullptr);
    SessionOptions options;
    options.nativeCode = GetParam();
    auto loaded = backend::load(artifact, options);
    ASSERT_TRUE(loaded) << loaded.error().message();
    executable = *loaded;
    ASSERT_EQ(executable->usesNativeCode(), GetParam());
    vocab = executable->config().vocab;
  }

  std::vector<std::vector<int32_t>> prompts() {
    std::vector<std::vector<int32_t>> out;
    nlohmann::json ref = loadReference();
    for (const auto &p : ref["prompts"])
      out.push_back(p["prompt_ids"].get<std::vector<int32_t>>());
    // Three more of other lengths: a single BOS, and continuations.
    out.push_back({1});
    std::vector<int32_t> longer = out[0];
    longer.insert(longer.end(), out[1].begin() + 1, out[1].end());
    out.push_back(longer);
    out.push_back({1, 9038, 2501});
    return out;
  }

  /// A cache for one context whose sequence 0 holds `prompt`.
  std::unique_ptr<kv::PagedKVCache> prefilled(const std::vector<int32_t> &prompt) {
    auto kv = executable->createKVCache(executable->config().context);
    EXPECT_TRUE(kv);
    if (!kv)
      return nullptr;
    const backend::SequenceId seq = (*kv)->addSequence();
    EXPECT_EQ(seq, 0);
    Batch batch;
    batch.addChain(seq, prompt, 0, Batch::Logits::None);
    EXPECT_TRUE(executable->execute(batch, **kv));
    return kv.take();
  }

  std::shared_ptr<backend::Executable> executable;
  int64_t vocab = 0;
};

TEST_P(BatchedStepTest, EightSequencesTogetherMatchEachAlone) {
  const auto ps = prompts();
  ASSERT_EQ(ps.size(), 8u);
  // Different lengths and different numbers of steps: sequences leave the
  // batch at different times.
  std::vector<Alone> alone;
  for (size_t i = 0; i < ps.size(); ++i)
    alone.push_back(runAlone(executable, ps[i], 6 + 3 * int(i)));

  auto kv = executable->createKVCache(8 * executable->config().context);
  ASSERT_TRUE(kv) << kv.error().message();
  std::vector<backend::SequenceId> ids;
  Batch batch;
  for (size_t i = 0; i < ps.size(); ++i) {
    ids.push_back((*kv)->addSequence());
    batch.addChain(ids[i], ps[i], 0, Batch::Logits::Last);
  }
  std::vector<std::vector<int32_t>> together(ps.size());
  for (int step = 0; !batch.empty(); ++step) {
    auto logits = executable->execute(batch, **kv);
    ASSERT_TRUE(logits) << logits.error().message();
    std::vector<size_t> rows;
    for (size_t i = 0; i < ps.size(); ++i)
      if (step < int(alone[i].ids.size()))
        rows.push_back(i);
    ASSERT_EQ(logits->size(), rows.size() * vocab);
    batch.clear();
    for (size_t r = 0; r < rows.size(); ++r) {
      const size_t i = rows[r];
      std::span<const float> row = logits->subspan(r * vocab, vocab);
      expectClose(row, alone[i].logits[step],
                  "sequence " + std::to_string(i) + " step " + std::to_string(step));
      together[i].push_back(argmax(row));
      if (step + 1 < int(alone[i].ids.size()))
        batch.add(ids[i], together[i].back(), int32_t((*kv)->length(ids[i])), -1, true);
    }
  }
  for (size_t i = 0; i < ps.size(); ++i)
    EXPECT_EQ(together[i], alone[i].ids) << "sequence " << i;
  // Every block comes back when the sequences end.
  for (backend::SequenceId id : ids)
    (*kv)->removeSequence(id);
  EXPECT_EQ((*kv)->usedBlocks(), 0);

  // generateMany gives every sequence the ids it gets alone.
  GenerationOptions options;
  options.maxNewTokens = 12;
  options.stopAtEndOfText = false;
  std::vector<std::vector<int32_t>> generated(ps.size());
  auto stats = generateMany(*executable, ps, options,
                            [&](size_t i, int32_t t) { generated[i].push_back(t); });
  ASSERT_TRUE(stats) << stats.error().message();
  for (size_t i = 0; i < ps.size(); ++i) {
    std::vector<int32_t> want = runAlone(executable, ps[i], 12).ids;
    EXPECT_EQ(generated[i], want) << "sequence " << i;
    EXPECT_EQ((*stats)[i].generatedTokens, 12);
  }
}

TEST_P(BatchedStepTest, TreeInOneStepGivesEachBranchsLogits) {
  const std::vector<int32_t> prompt = prompts()[2];
  auto kv = executable->createKVCache(2 * executable->config().context);
  ASSERT_TRUE(kv);
  const backend::SequenceId seq = (*kv)->addSequence();
  Batch batch;
  batch.addChain(seq, prompt, 0, Batch::Logits::None);
  ASSERT_TRUE(executable->execute(batch, **kv));
  const int32_t p = static_cast<int32_t>(prompt.size());

  // root -> {a, b, c}; a -> {a1, a2}; c -> {c1 -> c11}
  batch.clear();
  const int32_t root = batch.add(seq, 403, p, -1, true);
  const int32_t a = batch.add(seq, 931, p + 1, root, true);
  const int32_t b = batch.add(seq, 263, p + 1, root, true);
  const int32_t c = batch.add(seq, 2501, p + 1, root, true);
  const int32_t a1 = batch.add(seq, 471, p + 2, a, true);
  const int32_t a2 = batch.add(seq, 29892, p + 2, a, true);
  const int32_t c1 = batch.add(seq, 338, p + 2, c, true);
  batch.add(seq, 1049, p + 3, c1, true);
  (void)b, (void)a1, (void)a2;
  auto logits = executable->execute(batch, **kv);
  ASSERT_TRUE(logits) << logits.error().message();
  ASSERT_EQ(logits->size(), batch.size() * vocab);
  const std::vector<float> tree(logits->begin(), logits->end());

  for (size_t node = 0; node < batch.size(); ++node) {
    std::vector<int32_t> branch;
    for (int32_t n = int32_t(node); n >= 0; n = batch.parents[n])
      branch.insert(branch.begin(), batch.tokens[n]);
    std::vector<int32_t> chain = prompt;
    chain.insert(chain.end(), branch.begin(), branch.end());
    auto session = Session::create(executable);
    ASSERT_TRUE(session);
    auto alone = session->forward(chain);
    ASSERT_TRUE(alone);
    expectClose(std::span<const float>(tree).subspan(node * vocab, vocab), *alone,
                "node " + std::to_string(node));
  }
}

/// What greedy speculative decoding relies on: a verification step's node
/// gets bit for bit the logits that decoding its path one token at a time
/// gives (the products of up to 16 tokens sum each token in the one-token
/// order, and attention reads the same rows in the same order).
TEST_P(BatchedStepTest, TreeNodesEqualOneTokenStepsBitForBit) {
  const std::vector<int32_t> prompt = prompts()[0];
  const int32_t p = static_cast<int32_t>(prompt.size());
  // root -> {a -> a1 -> a11, b}: the path root, a, a1, a11 one token a step.
  const std::vector<int32_t> path = {403, 931, 471, 338};
  std::unique_ptr<kv::PagedKVCache> stepwise = prefilled(prompt);
  ASSERT_NE(stepwise, nullptr);
  std::vector<std::vector<float>> alone;
  Batch batch;
  for (size_t i = 0; i < path.size(); ++i) {
    batch.clear();
    batch.add(0, path[i], p + int32_t(i), -1, true);
    auto logits = executable->execute(batch, *stepwise);
    ASSERT_TRUE(logits) << logits.error().message();
    alone.emplace_back(logits->begin(), logits->end());
  }
  std::unique_ptr<kv::PagedKVCache> tree = prefilled(prompt);
  ASSERT_NE(tree, nullptr);
  batch.clear();
  const int32_t root = batch.add(0, path[0], p, -1, true);
  const int32_t a = batch.add(0, path[1], p + 1, root, true);
  batch.add(0, 263, p + 1, root, true);
  const int32_t a1 = batch.add(0, path[2], p + 2, a, true);
  const int32_t a11 = batch.add(0, path[3], p + 3, a1, true);
  auto logits = executable->execute(batch, *tree);
  ASSERT_TRUE(logits) << logits.error().message();
  const int32_t nodes[] = {root, a, a1, a11};
  for (size_t i = 0; i < path.size(); ++i) {
    std::span<const float> row = logits->subspan(size_t(nodes[i]) * vocab, vocab);
    EXPECT_TRUE(std::equal(row.begin(), row.end(), alone[i].begin())) << "node " << nodes[i];
  }
}

TEST_P(BatchedStepTest, RollbackLeavesTheCacheAsIfNeverWritten) {
  const std::vector<int32_t> prompt = prompts()[1];
  std::unique_ptr<kv::PagedKVCache> owned = prefilled(prompt);
  ASSERT_NE(owned, nullptr);
  kv::PagedKVCache &cache = *owned;
  const backend::SequenceId seq = 0;
  Batch batch;
  const int64_t length = cache.length(seq);
  const int64_t blocks = cache.usedBlocks();
  auto snapshot = [&] {
    std::vector<uint8_t> bytes;
    const kv::KVLayout &l = cache.layout();
    for (int64_t layer = 0; layer < l.layers; ++layer)
      for (int64_t s = 0; s < cache.length(seq); ++s)
        for (uint8_t *base : {cache.keys(layer), cache.values(layer)}) {
          const uint8_t *row = base + size_t(cache.row(seq, s)) * l.rowBytes();
          bytes.insert(bytes.end(), row, row + l.rowBytes());
        }
    return bytes;
  };
  const std::vector<uint8_t> before = snapshot();

  // A rejected branch of 20 tokens (crossing a block boundary), rolled back.
  batch.clear();
  std::vector<int32_t> branch(20);
  for (size_t i = 0; i < branch.size(); ++i)
    branch[i] = int32_t(100 + 37 * i);
  batch.addChain(seq, branch, int32_t(length), Batch::Logits::All);
  ASSERT_TRUE(executable->execute(batch, cache));
  EXPECT_GT(cache.usedBlocks(), blocks);
  cache.truncate(seq, length);
  EXPECT_EQ(cache.length(seq), length);
  EXPECT_EQ(cache.usedBlocks(), blocks);
  EXPECT_EQ(snapshot(), before);

  // The next token sees exactly what a sequence that never ran the branch
  // sees: the same computation, so the same bits.
  batch.clear();
  batch.add(seq, 450, int32_t(length), -1, true);
  auto after = executable->execute(batch, cache);
  ASSERT_TRUE(after);
  const std::vector<float> afterRollback(after->begin(), after->end());
  auto fresh = Session::create(executable);
  ASSERT_TRUE(fresh);
  ASSERT_TRUE(fresh->forward(prompt));
  const int32_t next = 450;
  auto never = fresh->forward(std::span<const int32_t>(&next, 1));
  ASSERT_TRUE(never);
  EXPECT_EQ(afterRollback, std::vector<float>(never->begin(), never->end()));
}

TEST_P(BatchedStepTest, CommitOfATreePathEqualsRunningThePath) {
  const std::vector<int32_t> prompt = prompts()[3];
  std::unique_ptr<kv::PagedKVCache> owned = prefilled(prompt);
  ASSERT_NE(owned, nullptr);
  kv::PagedKVCache &cache = *owned;
  const backend::SequenceId seq = 0;
  Batch batch;
  const int32_t p = static_cast<int32_t>(prompt.size());
  // root -> {x, y}; y -> {y1, y2}: accept root, y, y2.
  batch.clear();
  const int32_t root = batch.add(seq, 322, p, -1, false);
  batch.add(seq, 931, p + 1, root, false);
  const int32_t y = batch.add(seq, 263, p + 1, root, false);
  batch.add(seq, 471, p + 2, y, false);
  batch.add(seq, 2501, p + 2, y, false);
  ASSERT_TRUE(executable->execute(batch, cache));
  const int64_t kept[] = {p + 0, p + 2, p + 4};
  ASSERT_TRUE(cache.commit(seq, p, kept));
  EXPECT_EQ(cache.length(seq), p + 3);

  batch.clear();
  batch.add(seq, 338, p + 3, -1, true);
  auto committed = executable->execute(batch, cache);
  ASSERT_TRUE(committed);
  const std::vector<float> got(committed->begin(), committed->end());

  std::vector<int32_t> path = prompt;
  path.insert(path.end(), {322, 263, 2501, 338});
  auto session = Session::create(executable);
  ASSERT_TRUE(session);
  auto want = session->forward(path);
  ASSERT_TRUE(want);
  expectClose(got, *want, "after commit");
}

TEST_P(BatchedStepTest, BadBatchesAreRefusedAndChangeNothing) {
  auto kv = executable->createKVCache(executable->config().context);
  ASSERT_TRUE(kv);
  const backend::SequenceId seq = (*kv)->addSequence();
  Batch batch;
  batch.add(seq, 1, 5, -1, true); // the sequence is empty: position 0 expected
  auto r = executable->execute(batch, **kv);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("position 5, expected 0"), std::string::npos);
  EXPECT_EQ((*kv)->length(seq), 0);
  EXPECT_EQ((*kv)->usedBlocks(), 0);
  // A cache of another model's shape is refused.
  kv::KVLayout other = executable->kvLayout(4);
  other.width += 1;
  auto wrong = kv::PagedKVCache::create(executable->device(), other, 256);
  ASSERT_TRUE(wrong);
  batch.clear();
  batch.add((*wrong)->addSequence(), 1, 0, -1, true);
  EXPECT_FALSE(executable->execute(batch, **wrong));
}

// A KV cache of f16 or bf16 rows: half the bytes per block, and logits
// close to the f32 cache's (keys and values rounded to 11 or 8 significant
// bits: relative error about 2^-11 or 2^-8 per element, less after the
// softmax averages them), with the same greedy choice on every reference
// prompt. The generated code, the interpreter and the reference kernels read
// the rounded values alike.
TEST(KVElementTest, HalfPrecisionCachesStayClose) {
  if (!haveModel())
    GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
  auto f32 = compileAndLoad(modelDir() + "/stories15M.bin", "kv-f32");
  ASSERT_NE(f32, nullptr);
  nlohmann::json ref = loadReference();
  for (const auto &[kv, bound] : {std::pair<std::string, double>{"f16", 2e-3},
                                  std::pair<std::string, double>{"bf16", 1.5e-2}}) {
    auto a = compileAndLoad(modelDir() + "/stories15M.bin", "kv-" + kv, "none", kv);
    ASSERT_NE(a, nullptr);
    auto wide = Session::create(f32), narrow = Session::create(a);
    ASSERT_TRUE(wide && narrow);
    EXPECT_EQ(narrow->kvCache().layout().format,
              formats::plainKvFormat(kv == "f16" ? ElementType::F16 : ElementType::BF16));
    EXPECT_EQ(2 * narrow->kvCache().layout().blockBytes(), wide->kvCache().layout().blockBytes());
    for (const auto &prompt : ref["prompts"]) {
      std::vector<int32_t> ids = prompt["prompt_ids"];
      wide->reset();
      narrow->reset();
      auto lw = wide->forward(ids, /*allLogits=*/true);
      ASSERT_TRUE(lw);
      std::vector<float> w(lw->begin(), lw->end());
      auto ln = narrow->forward(ids, /*allLogits=*/true);
      ASSERT_TRUE(ln);
      const double error = relativeL2(*ln, w);
      EXPECT_LT(error, bound) << kv;
      EXPECT_GT(error, 0.0) << kv << ": the cache did not round anything";
      const size_t vocab = f32->config().vocab, last = w.size() - vocab;
      EXPECT_EQ(argmax(std::span<const float>(w).subspan(last, vocab)),
                argmax(ln->subspan(last, vocab)))
          << kv;
    }
    // The generated code, the interpreter and the reference kernels read the
    // same rounded cache alike. They read one cache, written by the generated
    // code: had each path written its own, the rows would differ wherever a
    // float32 value lies within its sums' rounding (~1e-7) of a bf16 halfway
    // point, and such a flip moves the value by a whole unit (2^-8), so the
    // logits' difference would measure where the halfway points fall (2e-5
    // on an AVX2 machine, under 1e-5 on an AVX-512 one), not the reading.
    // The last token's own row is still written by each path (a flip there
    // is one element of one row; about 3e-5 of them a row flip).
    std::vector<std::shared_ptr<backend::Executable>> paths;
    for (const auto &[native, kernels] :
         {std::pair{true, KernelPath::Fast}, std::pair{false, KernelPath::Fast},
          std::pair{false, KernelPath::Reference}}) {
      SessionOptions options;
      options.nativeCode = native;
      options.kernels = kernels;
      auto loaded = backend::load(a, options);
      ASSERT_TRUE(loaded) << loaded.error().message();
      paths.push_back(*loaded);
    }
    ASSERT_TRUE(paths[0]->usesNativeCode());
    ASSERT_FALSE(paths[1]->usesNativeCode());
    std::vector<int32_t> ids = ref["prompts"][0]["prompt_ids"];
    auto cache = paths[0]->createKVCache(paths[0]->config().context);
    ASSERT_TRUE(cache);
    const backend::SequenceId seq = (*cache)->addSequence();
    Batch batch;
    batch.addChain(seq, std::span<const int32_t>(ids).first(ids.size() - 1), 0,
                   Batch::Logits::None);
    ASSERT_TRUE(paths[0]->execute(batch, **cache));
    const int32_t last = int32_t(ids.size() - 1);
    std::vector<std::vector<float>> logits;
    for (const auto &path : paths) {
      batch.clear();
      batch.add(seq, ids.back(), last, -1, true);
      auto row = path->execute(batch, **cache);
      ASSERT_TRUE(row) << row.error().message();
      logits.emplace_back(row->begin(), row->end());
      (*cache)->truncate(seq, last);
    }
    // float32 sums against float64 sums, as for an f32 cache (CpuBackendTest).
    EXPECT_LT(relativeL2(logits[0], logits[2]), 1e-5) << kv << " generated vs reference";
    EXPECT_LT(relativeL2(logits[1], logits[2]), 1e-5) << kv << " interpreted vs reference";
  }
}

INSTANTIATE_TEST_SUITE_P(CpuPaths, BatchedStepTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool> &info) {
                           return info.param ? "GeneratedCode" : "Interpreted";
                         });

} // namespace
} // namespace lathe::test
