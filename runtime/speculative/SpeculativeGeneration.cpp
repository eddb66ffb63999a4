#include "runtime/speculative/SpeculativeGeneration.h"

#include "runtime/speculative/DraftTree.h"

#include <algorithm>
#include <chrono>
#include <fmt/format.h>

namespace lathe::speculative {
namespace {

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// splitmix64's increment: the Sampler's state after k draws is seed + k * this.
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

} // namespace

int32_t chooseToken(const SamplerOptions &options, int64_t index, std::span<const float> logits) {
  if (!(options.temperature > 0.0f))
    return argmax(logits);
  SamplerOptions keyed = options;
  keyed.seed = options.seed + uint64_t(index) * kGolden;
  Sampler sampler(keyed);
  return sampler.sampleFrom(logits);
}

const TreeShape *compiledTreeShape(const backend::Executable &executable) {
  const plan::KernelPlan *plan = executable.artifact().schedule(executable.options().target);
  return plan && plan->specTree ? &*plan->specTree : nullptr;
}

Status checkTreeShape(const backend::Executable &executable, const TreeShape &shape) {
  const TreeShape *compiled = compiledTreeShape(executable);
  if (compiled && shape.nodeCount() > compiled->nodeCount())
    return Error(fmt::format("tree shape '{}' has {} nodes, more than the {} tokens of {}'s "
                             "verification step (compiled with --spec-tree={})",
                             shape.str(), shape.nodeCount(), compiled->nodeCount(),
                             executable.artifact().path(), compiled->str()));
  return Status::ok();
}

Expected<TreeShape> resolveTreeShape(const backend::Executable &executable,
                                     std::string_view requested) {
  const TreeShape *compiled = compiledTreeShape(executable);
  Expected<TreeShape> shape = !requested.empty() ? parseTreeShape(requested)
                              : compiled         ? Expected<TreeShape>(*compiled)
                                                 : parseTreeShape(kDefaultTreeShape);
  if (!shape)
    return shape;
  if (Status s = checkTreeShape(executable, *shape); !s)
    return s.error();
  return shape;
}

Expected<SpeculativeStats> generateSpeculative(Session &session, std::span<const int32_t> prompt,
                                               const GenerationOptions &options,
                                               const SpeculativeOptions &speculative,
                                               const TokenSink &sink) {
  const plan::ModelConfig &c = session.config();
  if (Status s = validateGeneration(c, prompt, options); !s)
    return s.error();
  if (speculative.shape.branching.empty())
    return Error("speculative decoding needs a tree shape of at least one level");
  if (Status s = checkTreeShape(session.executable(), speculative.shape); !s)
    return s.error();
  SpeculativeStats stats;
  GenerationStats &gen = stats.generation;
  gen.promptTokens = static_cast<int64_t>(prompt.size());
  const int64_t promptLength = gen.promptTokens;

  auto start = std::chrono::steady_clock::now();
  Expected<std::span<const float>> logits = session.forward(prompt, speculative.seedFromPrompt);
  if (!logits)
    return logits.error();
  gen.prefillSeconds = secondsSince(start);
  start = std::chrono::steady_clock::now();

  std::shared_ptr<TreeDrafter> handle = speculative.drafter;
  if (!handle)
    handle = std::make_shared<TreeDrafter>(c.vocab, speculative.shape, speculative.drafting);
  if (handle->vocab() != c.vocab)
    return Error(fmt::format("the drafter was built for a vocabulary of {} tokens, the model "
                             "has {}",
                             handle->vocab(), c.vocab));
  TreeDrafter &drafter = *handle;
  if (speculative.seedFromPrompt) {
    drafter.observePrompt(prompt, *logits);
    logits = logits->subspan(logits->size() - size_t(c.vocab));
  }
  std::vector<int32_t> text(prompt.begin(), prompt.end());
  // Emits one chosen token the way generate() does; false ends generation.
  auto emit = [&](int32_t token) {
    if (endsText(options, token))
      return false;
    sink(token);
    text.push_back(token);
    ++gen.generatedTokens;
    if (gen.generatedTokens >= options.maxNewTokens ||
        (options.keepGoing && !options.keepGoing()))
      return false;
    // Where plain decoding's cache would stand: every token but this one.
    if (promptLength + gen.generatedTokens - 1 >= c.context) {
      gen.reachedContextEnd = true;
      return false;
    }
    return true;
  };

  kv::PagedKVCache &cache = session.kvCache();
  const backend::SequenceId seq = session.sequence();
  backend::Batch batch;
  TextIndex index; // the text's own pairs, for the drafter's lookups
  const bool greedy = !(options.sampler.temperature > 0.0f);
  std::vector<int32_t> greedyIds;
  std::vector<int64_t> kept;
  std::vector<int32_t> path;
  bool running = options.maxNewTokens > 0 && emit(chooseToken(options.sampler, 0, *logits));
  while (running) {
    const int64_t base = cache.length(seq);
    index.update(text);
    const DraftTree tree = drafter.draft(text, c.context - base, 1, &index);

    batch.clear();
    for (size_t n = 0; n < tree.size(); ++n)
      batch.add(seq, tree.token(int32_t(n)), static_cast<int32_t>(base + tree.depth(int32_t(n))),
                tree.parent(int32_t(n)), true);
    // Greedy steps take each node's argmax from the backend, and scores
    // that may be its cheaper estimates of the logits (the CPU's screened
    // classifier): the drafter's tables need no more.
    const auto stepStart = std::chrono::steady_clock::now();
    std::span<const float> scores;
    if (greedy) {
      Expected<backend::Executable::GreedyScores> step =
          session.executable().executeGreedyScored(batch, cache);
      if (!step)
        return step.error();
      greedyIds = std::move(step->ids);
      scores = step->scores;
    } else {
      logits = session.executable().execute(batch, cache);
      if (!logits)
        return logits.error();
      scores = *logits;
    }
    drafter.observeStep(static_cast<int64_t>(tree.size()), secondsSince(stepStart));
    ++stats.steps;
    stats.draftedTokens += static_cast<int64_t>(tree.size()) - 1;
    auto row = [&](int32_t node) { return scores.subspan(size_t(node) * c.vocab, c.vocab); };

    // Walk down while the chosen token is a drafted child.
    kept.assign(1, base);
    path.clear();
    int32_t node = 0;
    while (true) {
      const int32_t token = greedy ? greedyIds[size_t(node)]
                                   : chooseToken(options.sampler, gen.generatedTokens, row(node));
      const int32_t next = tree.child(node, token);
      running = emit(token);
      if (next < 0 || !running)
        break;
      ++stats.acceptedDrafts;
      kept.push_back(base + next);
      path.push_back(next);
      node = next;
    }
    drafter.observe(tree, scores, path);
    if (Status s = cache.commit(seq, base, kept); !s)
      return s.error();
  }
  gen.decodeSeconds = secondsSince(start);
  // For the generations a kept drafter drafts next.
  drafter.remember(text);
  stats.nodeCost = drafter.cost().nodeCost();
  stats.nodeCostMeasured = drafter.cost().measured();
  return stats;
}

} // namespace lathe::speculative
