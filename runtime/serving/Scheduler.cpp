#include "runtime/serving/Scheduler.h"

#include "runtime/engine/Generation.h"
#include "runtime/speculative/SpeculativeGeneration.h"

#include <algorithm>
#include <fmt/format.h>

namespace lathe::serving {
namespace {

double secondsBetween(std::chrono::steady_clock::time_point from,
                      std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

Status validateOptions(const SchedulerOptions &o) {
  if (o.maxSequences < 1)
    return Error(
        fmt::format("the scheduler needs at least 1 concurrent sequence, got {}", o.maxSequences));
  if (o.tokenBudget < 1)
    return Error(
        fmt::format("the token budget per step must be at least 1, got {}", o.tokenBudget));
  if (o.tokenBudget < o.maxSequences)
    return Error(fmt::format("the token budget per step ({}) must be at least the number of "
                             "concurrent sequences ({}): every running sequence decodes one "
                             "token per step",
                             o.tokenBudget, o.maxSequences));
  if (o.speculate && o.speculate->branching.empty())
    return Error("speculative decoding needs a tree shape of at least one level");
  if (o.drafter && (!o.speculate || o.drafter->shape().branching != o.speculate->branching))
    return Error(fmt::format("the drafter given drafts trees of shape {}, not the {}",
                             o.drafter->shape().str(),
                             o.speculate ? "scheduler's " + o.speculate->str()
                                         : std::string("none: speculation is off")));
  if (o.kvTokens < 0)
    return Error(fmt::format("the KV cache size must be at least 0 tokens (0: one context per "
                             "sequence), got {}",
                             o.kvTokens));
  return Status::ok();
}

} // namespace

std::string_view prefillPolicyName(PrefillPolicy policy) {
  switch (policy) {
  case PrefillPolicy::Whole:
    return "whole";
  case PrefillPolicy::Chunked:
    return "chunked";
  case PrefillPolicy::Layered:
    return "layered";
  }
  return "unknown";
}

std::optional<PrefillPolicy> parsePrefillPolicy(std::string_view name) {
  for (PrefillPolicy p : {PrefillPolicy::Whole, PrefillPolicy::Chunked, PrefillPolicy::Layered})
    if (prefillPolicyName(p) == name)
      return p;
  return std::nullopt;
}

std::string noLayerGroupsMessage(std::string_view path, std::string_view flag) {
  return fmt::format("{} has no layer groups: layered prefill needs an artifact compiled with "
                     "lathe-compile --prefill-groups=N (N >= 2); use {} whole or chunked",
                     path, flag);
}

std::string_view finishReasonName(FinishReason reason) {
  switch (reason) {
  case FinishReason::StopToken:
    return "stop token";
  case FinishReason::MaxTokens:
    return "max tokens";
  case FinishReason::ContextEnd:
    return "context end";
  case FinishReason::Cancelled:
    return "cancelled";
  }
  return "unknown";
}

Expected<Scheduler> Scheduler::create(std::shared_ptr<backend::Executable> executable,
                                      const SchedulerOptions &options) {
  if (Status s = validateOptions(options); !s)
    return s.error();
  if (options.speculate)
    if (Status s = speculative::checkTreeShape(*executable, *options.speculate); !s)
      return s.error();
  const plan::ModelConfig &config = executable->config();
  // Clamped before multiplying: any int64 may come in.
  const int64_t tokens =
      options.kvTokens > 0
          ? options.kvTokens
          : std::min<int64_t>(options.maxSequences, int64_t{1} << 20) * config.context;
  auto kv = executable->createKVCache(tokens);
  if (!kv)
    return kv.error();
  StepFunction step = [executable](const backend::Batch &batch, kv::PagedKVCache &cache) {
    return executable->execute(batch, cache);
  };
  LayerStepFunction layers = [executable](const backend::Batch &batch, kv::PagedKVCache &cache,
                                          size_t group,
                                          std::unique_ptr<backend::LayerCarry> &carry) {
    return executable->executeLayers(batch, cache, group, carry);
  };
  GreedyStepFunction greedy = [executable](const backend::Batch &batch,
                                           kv::PagedKVCache &cache) {
    return executable->executeGreedy(batch, cache);
  };
  return create(config, std::move(step), std::move(layers), executable->layerGroups().size(),
                kv.take(), options, std::move(greedy));
}

Expected<Scheduler> Scheduler::create(const plan::ModelConfig &config, StepFunction step,
                                      std::unique_ptr<kv::PagedKVCache> kv,
                                      const SchedulerOptions &options) {
  return create(config, std::move(step), nullptr, 0, std::move(kv), options);
}

Expected<Scheduler> Scheduler::create(const plan::ModelConfig &config, StepFunction step,
                                      LayerStepFunction layers, size_t layerGroups,
                                      std::unique_ptr<kv::PagedKVCache> kv,
                                      const SchedulerOptions &options,
                                      GreedyStepFunction greedy) {
  if (Status s = validateOptions(options); !s)
    return s.error();
  if (!kv || !step)
    return Error("the scheduler needs a KV cache and a step function");
  if (options.drafter && options.drafter->vocab() != config.vocab)
    return Error(fmt::format("the drafter given has a vocabulary of {} tokens, the model {}",
                             options.drafter->vocab(), config.vocab));
  if (layerGroups > 1 && !layers)
    return Error(fmt::format("the scheduler needs a layer step function to run {} layer groups",
                             layerGroups));
  return Scheduler(config, std::move(step), std::move(layers), layerGroups, std::move(kv),
                   options, std::move(greedy));
}

Scheduler::Scheduler(const plan::ModelConfig &config, StepFunction step, LayerStepFunction layers,
                     size_t layerGroups, std::unique_ptr<kv::PagedKVCache> kv,
                     const SchedulerOptions &options, GreedyStepFunction greedy)
    : config_(config), step_(std::move(step)), greedy_(std::move(greedy)),
      layers_(std::move(layers)),
      layerGroups_(layerGroups),
      layered_(options.prefill == PrefillPolicy::Layered && layerGroups > 1),
      wholePrompts_(options.prefill == PrefillPolicy::Whole ||
                    (options.prefill == PrefillPolicy::Layered && layerGroups <= 1)),
      kv_(std::move(kv)), options_(options) {
  if (options_.speculate)
    drafter_ = options_.drafter ? options_.drafter
                                : std::make_shared<speculative::TreeDrafter>(
                                      config_.vocab, *options_.speculate, options_.drafting);
}

int64_t Scheduler::blocksNeeded(const Request &request) const {
  const int64_t prompt = static_cast<int64_t>(request.prompt.size());
  const int64_t newTokens = std::clamp<int64_t>(request.maxNewTokens, 0, config_.context);
  return kv_->blocksFor(std::min(config_.context, prompt + newTokens));
}

Expected<RequestId> Scheduler::submit(Request request) {
  if (Status s = validatePrompt(config_, request.prompt); !s)
    return s.error();
  if (Status s = validateSamplerOptions(request.sampler); !s)
    return s.error();
  if (request.maxNewTokens < 1)
    return Error(fmt::format("max new tokens must be at least 1, got {}", request.maxNewTokens));
  const int64_t promptTokens = static_cast<int64_t>(request.prompt.size());
  if (wholePrompts_ && promptTokens > options_.tokenBudget)
    return Error(fmt::format("the prompt is {} tokens, more than the step's token budget of {}: "
                             "whole-prompt prefill runs a prompt in one step (chunked prefill "
                             "splits it, layered prefill runs it a layer group at a time)",
                             promptTokens, options_.tokenBudget));
  const int64_t blocks = blocksNeeded(request);
  if (blocks > kv_->layout().blocks)
    return Error(fmt::format("the request needs {} KV blocks (its prompt and new tokens), more "
                             "than the whole cache of {}",
                             blocks, kv_->layout().blocks));
  const RequestId id = nextId_++;
  waiting_.push_back({id, std::move(request), Clock::now()});
  return id;
}

Status Scheduler::cancel(RequestId id) {
  auto waiting =
      std::find_if(waiting_.begin(), waiting_.end(), [&](const Waiting &w) { return w.id == id; });
  if (waiting != waiting_.end()) {
    Event e;
    e.kind = Event::Kind::Finished;
    e.request = id;
    e.reason = FinishReason::Cancelled;
    e.stats.promptTokens = static_cast<int64_t>(waiting->request.prompt.size());
    cancelled_.push_back(std::move(e));
    waiting_.erase(waiting);
    return Status::ok();
  }
  auto running =
      std::find_if(running_.begin(), running_.end(), [&](const Running &r) { return r.id == id; });
  if (running == running_.end())
    return Error(fmt::format("no request {} is waiting or running", id));
  // A layered prefill in flight stops here: its carry goes, and its
  // sequence's rows with the sequence.
  if (inFlight_ && inFlight_->id == id)
    inFlight_.reset();
  finish(*running, FinishReason::Cancelled, cancelled_);
  running_.erase(running);
  return Status::ok();
}

void Scheduler::finish(Running &r, FinishReason reason, std::vector<Event> &events) {
  if (r.finished) // once: its blocks and reservation are returned once
    return;
  // The blocks go back now, so the next admission can use them.
  kv_->removeSequence(r.sequence);
  reservedBlocks_ -= r.reservedBlocks;
  r.finished = true;
  // Later requests draft from every finished text (a cancelled one too:
  // what it generated is the model's output all the same).
  if (drafter_)
    drafter_->remember(r.text);
  Event e;
  e.kind = Event::Kind::Finished;
  e.request = r.id;
  e.reason = reason;
  e.stats = std::move(r.stats);
  events.push_back(std::move(e));
}

Scheduler::Running &Scheduler::admit() {
  Waiting &w = waiting_.front();
  const int64_t blocks = blocksNeeded(w.request);
  const int64_t prompt = static_cast<int64_t>(w.request.prompt.size());
  Running r(w.id, std::move(w.request), kv_->addSequence(), blocks);
  if (drafter_)
    r.text = r.request.prompt;
  r.submitted = w.submitted;
  r.stats.promptTokens = prompt;
  r.stats.queueSeconds = secondsBetween(w.submitted, Clock::now());
  reservedBlocks_ += blocks;
  waiting_.pop_front();
  running_.push_back(std::move(r));
  return running_.back();
}

void Scheduler::admitLayered() {
  // The same admission as the others, first come first served, but one
  // prompt in flight at a time: its whole prompt is one group's batch.
  if (inFlight_ || waiting_.empty() ||
      static_cast<int64_t>(running_.size()) >= options_.maxSequences ||
      reservedBlocks_ + blocksNeeded(waiting_.front().request) > kv_->layout().blocks)
    return;
  Running &r = admit();
  inFlight_ = std::make_unique<LayeredPrefill>();
  inFlight_->id = r.id;
  inFlight_->batch.addChain(r.sequence, r.request.prompt, 0, backend::Batch::Logits::Last);
}

Status Scheduler::runLayerGroup(StepStats &stats) {
  LayeredPrefill &p = *inFlight_;
  const size_t group = p.next;
  Expected<std::span<const float>> logits = layers_(p.batch, *kv_, group, p.carry);
  if (!logits)
    return logits.error();
  stats.layerGroup = static_cast<int64_t>(group);
  stats.layeredTokens = static_cast<int64_t>(p.batch.size());
  ++p.next;
  if (p.next < layerGroups_)
    return Status::ok();
  if (logits->size() != size_t(config_.vocab))
    return Error(fmt::format("the last layer group returned {} logits, expected one row of {}",
                             logits->size(), config_.vocab));
  // Copied: the decodes' execute() that follows reuses the executable's
  // buffers.
  p.logits.assign(logits->begin(), logits->end());
  p.done = true;
  return Status::ok();
}

std::vector<Scheduler::Chunk> Scheduler::planPrefill(int64_t budget) {
  std::vector<Chunk> chunks;
  const bool whole = wholePrompts_;
  // Prompts already started come first (Chunked; under Whole only a prompt
  // whose step failed is left half-way, at 0).
  for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
    const int64_t left =
        static_cast<int64_t>(running_[i].request.prompt.size()) - running_[i].prefilled;
    if (left == 0 || (whole && left > budget))
      continue;
    const int64_t n = std::min(left, budget);
    chunks.push_back({i, n});
    budget -= n;
  }
  // Then admissions in arrival order; the head of the queue waits for room
  // rather than being overtaken, so no request starves.
  while (!waiting_.empty() && budget > 0 &&
         static_cast<int64_t>(running_.size()) < options_.maxSequences) {
    Waiting &w = waiting_.front();
    const int64_t prompt = static_cast<int64_t>(w.request.prompt.size());
    const int64_t blocks = blocksNeeded(w.request);
    if ((whole && prompt > budget) || reservedBlocks_ + blocks > kv_->layout().blocks)
      break;
    admit();
    const int64_t n = std::min(prompt, budget);
    chunks.push_back({running_.size() - 1, n});
    budget -= n;
  }
  return chunks;
}

std::vector<Scheduler::Decode> Scheduler::planDecodes(int64_t spare) {
  std::vector<Decode> decodes;
  for (size_t i = 0; i < running_.size(); ++i)
    if (running_[i].next)
      decodes.push_back({i, 0, std::nullopt});
  // Each tree's share of the spare budget, beside its root.
  const int64_t share =
      decodes.empty() ? 0 : std::max<int64_t>(spare, 0) / static_cast<int64_t>(decodes.size());
  for (Decode &d : decodes) {
    Running &r = running_[d.index];
    const int64_t base = kv_->length(r.sequence);
    d.first = static_cast<int32_t>(batch_.size());
    if (!drafter_) {
      batch_.add(r.sequence, *r.next, static_cast<int32_t>(base), -1, true);
      continue;
    }
    // Within the context and the request's reserved blocks (its prompt and
    // new tokens): a tree never takes another request's blocks, and no
    // node runs that could not be emitted.
    // (maxNewTokens clamped as blocksNeeded clamps it: any int64 may come in.)
    const int64_t end = std::min<int64_t>(
        config_.context, static_cast<int64_t>(r.request.prompt.size()) +
                             std::clamp<int64_t>(r.request.maxNewTokens, 0, config_.context));
    const int64_t nodes = std::max<int64_t>(1, std::min(1 + share, end - base));
    r.textIndex.update(r.text);
    d.tree = drafter_->draft(r.text, nodes, static_cast<int64_t>(decodes.size()), &r.textIndex);
    const speculative::DraftTree &tree = *d.tree;
    for (int32_t n = 0; n < static_cast<int32_t>(tree.size()); ++n)
      batch_.add(r.sequence, tree.token(n), static_cast<int32_t>(base + tree.depth(n)),
                 n == 0 ? -1 : d.first + tree.parent(n), true);
  }
  return decodes;
}

Expected<StepResult> Scheduler::step() {
  StepResult result;
  batch_.clear();
  // Decodes first: every sequence that has sampled a token decodes it in
  // this step, so prefill work is planned in the budget they leave; then
  // drafted trees below the decode tokens in what the prefill leaves.
  int64_t decoding = 0;
  for (const Running &r : running_)
    decoding += r.next ? 1 : 0;
  std::vector<Chunk> chunks;
  if (layered_)
    admitLayered();
  else
    chunks = planPrefill(options_.tokenBudget - decoding);
  int64_t prefillTokens = 0;
  for (const Chunk &c : chunks)
    prefillTokens += c.tokens;
  const std::vector<Decode> decodes =
      planDecodes(options_.tokenBudget - decoding - prefillTokens);
  result.stats.decodeTokens = static_cast<int64_t>(batch_.size());
  result.stats.draftedTokens = result.stats.decodeTokens - decoding;
  // Logit rows come in batch order: every decode token (and tree node),
  // then the chunks that end their prompt.
  std::vector<size_t> promptEnds;
  for (const Chunk &c : chunks) {
    Running &r = running_[c.index];
    const bool last = r.prefilled + c.tokens == static_cast<int64_t>(r.request.prompt.size());
    batch_.addChain(r.sequence,
                    std::span<const int32_t>(r.request.prompt).subspan(r.prefilled, c.tokens),
                    static_cast<int32_t>(r.prefilled),
                    last ? backend::Batch::Logits::Last : backend::Batch::Logits::None);
    if (last)
      promptEnds.push_back(c.index);
  }
  result.stats.prefillTokens = prefillTokens;
  result.stats.tokens = static_cast<int64_t>(batch_.size());
  result.stats.sequences = static_cast<int64_t>(decodes.size() + chunks.size());

  // Layered: the prompt in flight's next group runs first, so that when
  // it fails nothing has advanced; once its last group has run, its
  // logits wait (past a failed decode step) to be sampled with the
  // decodes'.
  const Clock::time_point start = Clock::now();
  if (inFlight_ && !inFlight_->done) {
    if (Status s = runLayerGroup(result.stats); !s)
      return s.error();
    ++result.stats.sequences;
  }
  const bool prefilled = inFlight_ && inFlight_->done;

  if (!batch_.empty() || prefilled) {
    // Every row greedy: the ids alone (no logits to sample from).
    const bool greedyIds = greedyRows(decodes, promptEnds);
    std::span<const float> logits;
    std::vector<int32_t> ids;
    if (!batch_.empty() && greedyIds) {
      Expected<std::vector<int32_t>> got = greedy_(batch_, *kv_);
      if (!got)
        return got.error();
      ids = got.take();
    } else if (!batch_.empty()) {
      Expected<std::span<const float>> got = step_(batch_, *kv_);
      if (!got)
        return got.error();
      logits = *got;
    }
    const Clock::time_point end = Clock::now();
    result.stats.seconds = secondsBetween(start, end);
    // What this step's tokens cost, for the next trees' nodes: decode
    // steps only (prompt chunks cost otherwise per token, and a step that
    // also ran a layer group is timed with it).
    if (drafter_ && options_.measureNodeCost && result.stats.decodeTokens > 0 &&
        result.stats.prefillTokens == 0 && result.stats.layerGroup < 0)
      drafter_->observeStep(result.stats.tokens, result.stats.seconds);
    const size_t vocab = size_t(config_.vocab);
    const size_t rows = size_t(result.stats.decodeTokens) + promptEnds.size();
    // A step function that breaks its contract; the cache has grown, so
    // the scheduler cannot go on from here.
    if (greedyIds && ids.size() != rows)
      return Error(fmt::format("the greedy step returned {} ids, expected {}", ids.size(), rows));
    for (int32_t id : ids)
      if (id < 0 || id >= config_.vocab)
        return Error(fmt::format("the greedy step returned id {}, outside the vocabulary of {}",
                                 id, config_.vocab));
    if (!greedyIds && logits.size() != rows * vocab)
      return Error(fmt::format("the step returned {} logits, expected {} rows of {}",
                               logits.size(), rows, config_.vocab));
    for (const Chunk &c : chunks)
      running_[c.index].prefilled += c.tokens;
    for (const Decode &d : decodes)
      running_[d.index].next.reset();
    result.events = std::move(cancelled_);
    cancelled_.clear();
    size_t row = 0;
    for (const Decode &d : decodes) {
      const size_t nodes = d.tree ? d.tree->size() : 1;
      if (greedyIds) { // no trees: greedyRows asks for no drafter
        emit(d.index, ids[row++], end, result.events);
        continue;
      }
      const std::span<const float> own = logits.subspan(row * vocab, nodes * vocab);
      row += nodes;
      if (!d.tree) {
        sample(d.index, own, end, result.events);
      } else if (Status s = acceptTree(d, own, end, result.events, result.stats); !s) {
        // The cache refused a commit its reservation should have allowed:
        // the step fails after some tokens were chosen, so the requests
        // that ended leave the running set before the error goes up.
        std::erase_if(running_, [](const Running &r) { return r.finished; });
        return s.error();
      }
    }
    for (size_t index : promptEnds)
      if (greedyIds)
        emit(index, ids[row++], end, result.events);
      else
        sample(index, logits.subspan(row++ * vocab, vocab), end, result.events);
    if (prefilled) {
      // After the last group: the prompt's first token, and from the next
      // step its decodes.
      const RequestId id = inFlight_->id;
      const std::vector<float> last = std::move(inFlight_->logits);
      inFlight_.reset();
      for (size_t i = 0; i < running_.size(); ++i)
        if (running_[i].id == id) {
          running_[i].prefilled = static_cast<int64_t>(running_[i].request.prompt.size());
          sample(i, last, end, result.events);
        }
    }
    std::erase_if(running_, [](const Running &r) { return r.finished; });
  } else {
    result.stats.seconds = secondsBetween(start, Clock::now());
    result.events = std::move(cancelled_);
    cancelled_.clear();
  }
  result.stats.waiting = static_cast<int64_t>(waiting_.size());
  result.stats.kvBlocksUsed = kv_->usedBlocks();
  result.stats.kvBlocks = kv_->layout().blocks;
  return result;
}

Status Scheduler::acceptTree(const Decode &d, std::span<const float> logits,
                             Clock::time_point now, std::vector<Event> &events,
                             StepStats &stats) {
  Running &r = running_[d.index];
  const speculative::DraftTree &tree = *d.tree;
  const size_t vocab = size_t(config_.vocab);
  const int64_t base = batch_.positions[size_t(d.first)];
  std::vector<int64_t> kept{base};
  std::vector<int32_t> path;
  r.stats.draftedTokens += static_cast<int64_t>(tree.size()) - 1;
  // Down the tree while the token chosen at a node is one of its drafted
  // children: that child's row is then the logits plain decoding would
  // have had for the next token.
  int32_t node = 0;
  while (true) {
    if (!sample(d.index, logits.subspan(size_t(node) * vocab, vocab), now, events))
      return Status::ok(); // ended: its sequence and cache rows are gone
    const int32_t child = tree.child(node, *r.next);
    if (child < 0)
      break;
    kept.push_back(base + child);
    path.push_back(child);
    ++r.stats.acceptedDrafts;
    ++stats.acceptedDrafts;
    node = child;
  }
  drafter_->observe(tree, logits, path);
  // The root and the accepted path stay, moved to the sequence's tail; the
  // last token chosen (the bonus) is the next step's decode token.
  return kv_->commit(r.sequence, base, kept);
}

bool Scheduler::sample(size_t index, std::span<const float> logits, Clock::time_point now,
                       std::vector<Event> &events) {
  Running &r = running_[index];
  RequestStats &st = r.stats;
  // Speculating: the token keyed by its index, which is the one the
  // Sampler draws as its index-th (speculative::chooseToken), since a step
  // may choose several.
  const int32_t token = drafter_ ? speculative::chooseToken(r.request.sampler,
                                                            st.generatedTokens, logits)
                                 : r.sampler.sampleFrom(logits);
  // The prompt's last row seeds Token Recycling with that token's
  // successors (only that row comes back from a prefill).
  if (drafter_ && st.generatedTokens == 0)
    drafter_->observePrompt(std::span<const int32_t>(r.request.prompt).last(1), logits);
  return emit(index, token, now, events);
}

bool Scheduler::greedyRows(const std::vector<Decode> &decodes,
                           const std::vector<size_t> &promptEnds) const {
  if (!greedy_ || drafter_)
    return false;
  for (const Decode &d : decodes)
    if (!running_[d.index].sampler.greedy())
      return false;
  for (size_t index : promptEnds)
    if (!running_[index].sampler.greedy())
      return false;
  return true;
}

bool Scheduler::emit(size_t index, int32_t token, Clock::time_point now,
                     std::vector<Event> &events) {
  Running &r = running_[index];
  RequestStats &st = r.stats;
  const std::vector<int32_t> &stops = r.request.stopTokens;
  if (std::find(stops.begin(), stops.end(), token) != stops.end()) {
    finish(r, FinishReason::StopToken, events);
    return false;
  }
  Event e;
  e.request = r.id;
  e.token = token;
  events.push_back(e);
  if (st.generatedTokens == 0)
    st.timeToFirstToken = secondsBetween(r.submitted, now);
  else
    st.timesBetweenTokens.push_back(secondsBetween(r.lastToken, now));
  r.lastToken = now;
  ++st.generatedTokens;
  // The drafter's view of the text (remembered whole when it ends).
  if (drafter_)
    r.text.push_back(token);
  // The same ends as generate(): the token is emitted, then either the
  // count is reached or the context has no slot left to decode it (the
  // cache holds the prompt and every token before this one).
  if (st.generatedTokens >= r.request.maxNewTokens) {
    finish(r, FinishReason::MaxTokens, events);
    return false;
  }
  if (st.promptTokens + st.generatedTokens - 1 >= config_.context) {
    finish(r, FinishReason::ContextEnd, events);
    return false;
  }
  r.next = token;
  return true;
}

} // namespace lathe::serving
