// Continuous batching over the batched step (backend/Batch.h): requests
// come and go between steps, and every step carries one decode token of
// each running sequence plus prefill work for new ones, under a budget of
// tokens per step (as in Orca and Sarathi-Serve). Requests wait in a FIFO
// queue until a sequence slot and their KV blocks are free.
//
// With speculation on (SchedulerOptions::speculate), each running
// sequence's decode token is the root of a token tree drafted without a
// draft model (runtime/speculative), verified in the same step; its
// accepted path is committed to the cache, and the tokens it emits are the
// ones plain decoding emits.
//
// One thread drives a scheduler: submit, cancel and step are not
// synchronized (a server posts its requests and disconnects to the thread
// that calls step()). docs/serving.md describes the policies.
#pragma once

#include "runtime/backend/Executable.h"
#include "runtime/kv/PagedKVCache.h"
#include "runtime/plan/KernelPlan.h"
#include "runtime/sampling/Sampler.h"
#include "runtime/speculative/TreeDrafter.h"
#include "runtime/speculative/TreeShape.h"
#include "runtime/support/Expected.h"

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace lathe::serving {

/// How a waiting prompt's prefill is spread over steps.
enum class PrefillPolicy {
  /// The whole prompt in one step, alongside the running sequences'
  /// decodes: a prompt longer than the token budget is refused.
  Whole,
  /// Sarathi-Serve: the prompt is cut into chunks that fill the budget left
  /// after the decode tokens, one chunk per step, so a long prompt never
  /// stalls the running sequences for more than a budget's worth of tokens.
  Chunked,
  /// Lee et al., "From Tokens to Layers" (2025): a prompt's whole prefill
  /// is a batch of its own, run one layer group (lathe-compile
  /// --prefill-groups) per step beside the running sequences' decodes, so
  /// a decode step never waits for more than one group of a prompt. One
  /// prompt is in flight at a time; the others wait in the queue. Without
  /// groups compiled in (fewer than 2), the same as Whole.
  Layered,
};

/// "whole", "chunked", "layered": the policies' names on command lines
/// (lathe-serve --prefill, lathe-bench --policy) and in reports.
std::string_view prefillPolicyName(PrefillPolicy policy);
/// The policy named `name`, or nullopt.
std::optional<PrefillPolicy> parsePrefillPolicy(std::string_view name);
/// Why layered prefill cannot run on the artifact at `path`, which has no
/// layer groups, for a tool whose policy flag is `flag` (lathe-serve's
/// --prefill, lathe-bench's --policy): one line.
std::string noLayerGroupsMessage(std::string_view path, std::string_view flag);

struct SchedulerOptions {
  PrefillPolicy prefill = PrefillPolicy::Chunked;
  /// Most tokens one step carries, decodes and prefill together; at least
  /// maxSequences, so that every running sequence decodes at every step.
  int64_t tokenBudget = 512;
  /// Most sequences running at once; later requests wait in a FIFO queue.
  int64_t maxSequences = 8;
  /// KV cache slots (rounded up to whole blocks) when the scheduler makes
  /// its own cache; 0: one full context per sequence.
  int64_t kvTokens = 0;
  /// Speculative decoding: every decoding sequence drafts a tree of this
  /// shape (n-gram lookup in its own text, and Token Recycling from a
  /// table every request's steps fill, kept across requests as Token
  /// Recycling keeps it across queries) whose root is its decode token. The drafted nodes take only
  /// the budget the decode roots and the prefill work leave, shared evenly
  /// among the decoding sequences, so speculation never delays a prompt.
  /// Unset: one token a sequence a step.
  std::optional<speculative::TreeShape> speculate;
  speculative::DraftOptions drafting;
  /// The drafter to speculate with, when the caller keeps one (to draft
  /// from earlier runs' texts and tables, or to save what it learns: it is
  /// then built for `speculate`'s shape); null: the scheduler makes its
  /// own from `drafting`.
  std::shared_ptr<speculative::TreeDrafter> drafter;
  /// Speculation: weigh each node against what nodes cost in this
  /// scheduler's steps (their time fitted against their tokens); off, the
  /// drafter keeps the cost it has (the prior, for a new one). Tests over
  /// fake step functions turn it off: their times say nothing.
  bool measureNodeCost = true;
};

/// One request: its prompt and how to continue it.
struct Request {
  std::vector<int32_t> prompt;
  /// Its own sampler (seeded): a request draws the same tokens alone or
  /// batched with any others.
  SamplerOptions sampler;
  /// At least 1; generation also ends at the model's context.
  int64_t maxNewTokens = 256;
  /// Ids that end the request when sampled; they are not emitted.
  std::vector<int32_t> stopTokens;
};

using RequestId = uint64_t;

enum class FinishReason { StopToken, MaxTokens, ContextEnd, Cancelled };
/// "stop token", "max tokens", "context end", "cancelled".
std::string_view finishReasonName(FinishReason reason);

/// What a request has done, for the server's metrics.
struct RequestStats {
  int64_t promptTokens = 0;
  int64_t generatedTokens = 0;
  /// From submit() to the step that admitted it into the running set.
  double queueSeconds = 0;
  /// From submit() to the end of the step that emitted its first token;
  /// unset while none has been emitted.
  std::optional<double> timeToFirstToken;
  /// Between the ends of the steps that emitted consecutive tokens (0 for
  /// the second and later tokens one speculative step emits).
  std::vector<double> timesBetweenTokens;
  /// Speculation: the drafted tokens this request's steps verified (tree
  /// roots not counted), and those accepted.
  int64_t draftedTokens = 0;
  int64_t acceptedDrafts = 0;
};

/// What a step did for one request: a token emitted, or the request's end
/// (after its last token's event, in the same step).
struct Event {
  enum class Kind { Token, Finished };
  Kind kind = Kind::Token;
  RequestId request = 0;
  int32_t token = -1;                            // Kind::Token
  FinishReason reason = FinishReason::MaxTokens; // Kind::Finished
  RequestStats stats;                            // Kind::Finished
};

struct StepStats {
  int64_t tokens = 0; // decodeTokens + prefillTokens, never above the budget
  /// The decoding sequences' tokens: one each, plus their drafted nodes.
  int64_t decodeTokens = 0;
  /// Speculation: the drafted nodes among decodeTokens, and those accepted.
  int64_t draftedTokens = 0;
  int64_t acceptedDrafts = 0;
  int64_t prefillTokens = 0;
  /// Layered: the layer group run in the step of the prompt in flight (-1:
  /// none) and that prompt's tokens, which every group carries through its
  /// layers. They are a batch of their own, outside `tokens` and the budget.
  int64_t layerGroup = -1;
  int64_t layeredTokens = 0;
  int64_t sequences = 0;    // sequences with tokens in the step
  int64_t waiting = 0;      // requests queued after the step
  int64_t kvBlocksUsed = 0; // after the step, finished sequences removed
  int64_t kvBlocks = 0;
  double seconds = 0; // the step's execute() and layer group
};

struct StepResult {
  std::vector<Event> events;
  StepStats stats;
};

/// Runs one step of a batch over the cache: Executable::execute, or a fake
/// model in tests.
using StepFunction =
    std::function<Expected<std::span<const float>>(const backend::Batch &, kv::PagedKVCache &)>;

/// Runs one layer group of a batch over the cache: Executable::executeLayers,
/// or a fake model in tests.
using LayerStepFunction = std::function<Expected<std::span<const float>>(
    const backend::Batch &, kv::PagedKVCache &, size_t group,
    std::unique_ptr<backend::LayerCarry> &)>;

/// Runs one step of a batch over the cache and returns only each logits
/// row's argmax (sampling's: the lowest id on ties): Executable::
/// executeGreedy, which may pick them without every logit (the CPU's
/// screened float32 classifier) or without the logits' trip to the host
/// (the GPU). The scheduler takes it for steps whose every row is sampled
/// greedily.
using GreedyStepFunction =
    std::function<Expected<std::vector<int32_t>>(const backend::Batch &, kv::PagedKVCache &)>;

class Scheduler {
public:
  /// A scheduler over `executable` with a KV cache of its own
  /// (options.kvTokens). Fails on options out of range or a cache the
  /// device cannot hold.
  static Expected<Scheduler> create(std::shared_ptr<backend::Executable> executable,
                                    const SchedulerOptions &options = {});
  /// A scheduler over any step function with the model's vocab and context,
  /// and a cache of its own.
  static Expected<Scheduler> create(const plan::ModelConfig &config, StepFunction step,
                                    std::unique_ptr<kv::PagedKVCache> kv,
                                    const SchedulerOptions &options = {});
  /// The same with the layered twin of `step`, which runs `layerGroups`
  /// groups (fewer than 2: Layered prefill runs as Whole).
  /// `greedy`, when given, runs the steps whose every logits row is
  /// sampled greedily (and none feeds a drafter) in place of `step`: it
  /// must return the argmax of each row `step` would have returned.
  static Expected<Scheduler> create(const plan::ModelConfig &config, StepFunction step,
                                    LayerStepFunction layers, size_t layerGroups,
                                    std::unique_ptr<kv::PagedKVCache> kv,
                                    const SchedulerOptions &options = {},
                                    GreedyStepFunction greedy = {});

  /// Queues a request and returns its id. Fails, queuing nothing, on an
  /// empty prompt, an id outside the vocabulary, a prompt longer than the
  /// context, sampler options out of range, maxNewTokens < 1, a prompt
  /// longer than the budget under Whole prefill (or Layered without
  /// groups), or a request whose KV
  /// blocks exceed the whole cache.
  Expected<RequestId> submit(Request request);
  /// Ends a waiting or running request now: its KV blocks are free when
  /// cancel returns, and the next step() reports it Finished (Cancelled).
  /// A prompt in a layered prefill is dropped with its carry. Fails on an
  /// id that is not waiting or running.
  Status cancel(RequestId id);
  /// Admits what fits, runs one step and samples the sequences it
  /// finished; returns the tokens emitted and the requests ended. A step
  /// with nothing to run executes nothing (it may still report
  /// cancellations). When the step function fails nothing has advanced
  /// (requests admitted for the step stay admitted, their prompts not yet
  /// run), and the next step() tries again; except that a layer group that
  /// ran before the decodes' step failed stays run (the prompt goes on
  /// from the next group).
  Expected<StepResult> step();

  /// Whether a request is waiting or running.
  bool busy() const { return !waiting_.empty() || !running_.empty(); }
  int64_t waitingCount() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t runningCount() const { return static_cast<int64_t>(running_.size()); }
  const kv::PagedKVCache &kvCache() const { return *kv_; }
  const SchedulerOptions &options() const { return options_; }
  const plan::ModelConfig &config() const { return config_; }
  /// The drafter speculation uses (null without speculation).
  const speculative::TreeDrafter *drafter() const { return drafter_.get(); }

private:
  using Clock = std::chrono::steady_clock;
  struct Waiting {
    RequestId id;
    Request request;
    Clock::time_point submitted;
  };
  struct Running {
    Running(RequestId id, Request request, backend::SequenceId sequence, int64_t blocks)
        : id(id), request(std::move(request)), sampler(this->request.sampler), sequence(sequence),
          reservedBlocks(blocks) {}
    RequestId id;
    Request request;
    Sampler sampler;
    backend::SequenceId sequence;
    int64_t reservedBlocks;
    int64_t prefilled = 0;       // prompt tokens in the cache
    std::optional<int32_t> next; // the token the next step decodes
    /// Speculation: its prompt and tokens so far (what the drafter looks
    /// up; the last is `next`).
    std::vector<int32_t> text;
    speculative::TextIndex textIndex; // its token pairs, for the drafter
    bool finished = false;
    Clock::time_point submitted, lastToken;
    RequestStats stats;
  };
  /// The prompt in a layered prefill: its own batch (kept at one address,
  /// which the executable's carry refers to), its carry, the group it runs
  /// next, and the logits of its last group once that has run.
  struct LayeredPrefill {
    RequestId id;
    backend::Batch batch;
    std::unique_ptr<backend::LayerCarry> carry;
    size_t next = 0;
    std::vector<float> logits;
    bool done = false;
  };
  /// A prompt chunk of running_[index] in the step being planned.
  struct Chunk {
    size_t index;
    int64_t tokens;
  };
  /// A decoding sequence in the step being planned: running_[index], its
  /// tokens from batch index `first` on (its decode token first), and the
  /// tree they are when it speculates.
  struct Decode {
    size_t index;
    int32_t first;
    std::optional<speculative::DraftTree> tree;
  };

  Scheduler(const plan::ModelConfig &config, StepFunction step, LayerStepFunction layers,
            size_t layerGroups, std::unique_ptr<kv::PagedKVCache> kv,
            const SchedulerOptions &options, GreedyStepFunction greedy);
  /// KV blocks a request holds at most: its prompt and new tokens, within
  /// the context. Reserved at admission, so a running sequence never finds
  /// the cache full.
  int64_t blocksNeeded(const Request &request) const;
  /// Prefill work for the `budget` tokens left after the decodes: the
  /// running sequences' unfinished prompts first, then admissions.
  std::vector<Chunk> planPrefill(int64_t budget);
  /// Layered: admits the head of the queue as the prompt in flight when
  /// none is and it fits.
  void admitLayered();
  /// Moves the head of the queue into the running set.
  Running &admit();
  /// Runs the next group of the prompt in flight; records it in `stats`.
  Status runLayerGroup(StepStats &stats);
  /// Adds each decoding sequence's token to batch_, with a drafted tree
  /// below it when speculating, the trees sharing `spare` tokens of the
  /// budget.
  std::vector<Decode> planDecodes(int64_t spare);
  /// Chooses running_[index]'s next token from `logits` (its `index`-th
  /// token as plain decoding chooses it) and emits it; false when the
  /// request ended instead (events record both).
  bool sample(size_t index, std::span<const float> logits, Clock::time_point now,
              std::vector<Event> &events);
  /// Emits `token` as running_[index]'s next (sample's second half);
  /// false when the request ended instead.
  bool emit(size_t index, int32_t token, Clock::time_point now, std::vector<Event> &events);
  /// Whether this step's logits rows (the decodes', the prompts' that end)
  /// are all sampled greedily with no drafter to feed: greedy_ can run it.
  bool greedyRows(const std::vector<Decode> &decodes, const std::vector<size_t> &promptEnds) const;
  /// Walks a speculating sequence's verified tree down the tokens chosen
  /// at its nodes (`logits`: a row per node), emitting them, and commits
  /// the accepted path to the cache. A commit the cache refuses (which the
  /// reservations rule out) fails the step after tokens were chosen: the
  /// caller must end every request (a server fails them all).
  Status acceptTree(const Decode &decode, std::span<const float> logits, Clock::time_point now,
                    std::vector<Event> &events, StepStats &stats);
  void finish(Running &r, FinishReason reason, std::vector<Event> &events);

  plan::ModelConfig config_;
  StepFunction step_;
  GreedyStepFunction greedy_; // may be empty
  LayerStepFunction layers_;
  size_t layerGroups_;
  /// Layered with at least 2 groups; false under Layered without groups,
  /// which runs as Whole (wholePrompts_).
  bool layered_;
  bool wholePrompts_;
  std::unique_ptr<kv::PagedKVCache> kv_;
  SchedulerOptions options_;
  RequestId nextId_ = 1;
  std::deque<Waiting> waiting_;
  std::vector<Running> running_; // in admission order
  int64_t reservedBlocks_ = 0;
  std::vector<Event> cancelled_; // reported by the next step
  backend::Batch batch_;
  std::unique_ptr<LayeredPrefill> inFlight_; // a pointer: the batch must not move
  /// Speculation: the drafter every request's trees come from (null: off).
  std::shared_ptr<speculative::TreeDrafter> drafter_;
};

} // namespace lathe::serving
