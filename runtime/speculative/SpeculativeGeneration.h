// Speculative decoding without a draft model: each step drafts a token tree
// (n-gram continuations of the text so far and Token Recycling, combined by
// expected acceptance: TreeDrafter.h), runs it as one batch step whose root
// is the last accepted token, and accepts the longest path the target model
// itself would have chosen, plus the one token the model chooses after it
// (the bonus). The accepted path's KV is committed, the rest of the tree
// dropped.
//
// Every emitted token is chosen from the target's logits exactly as plain
// decoding chooses it: greedy takes the argmax; sampling draws the k-th new
// token with the random number plain decoding's Sampler draws for its k-th
// token (one splitmix64 output per token, keyed by the seed and the token's
// index), and accepts the child holding the drawn token. With deterministic
// drafts this is SpecInfer's multi-step speculative sampling (try the
// children in order, accept child c with probability p_res(c), zero it and
// renormalize on rejection, sample the residual when all fail), with the
// draws coupled to plain decoding: the output has the target distribution,
// and equals plain decoding's whenever the logits are equal.
#pragma once

#include "runtime/engine/Generation.h"
#include "runtime/engine/Session.h"
#include "runtime/speculative/TreeDrafter.h"
#include "runtime/speculative/TreeShape.h"

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace lathe::speculative {

struct SpeculativeOptions {
  TreeShape shape = *parseTreeShape(kDefaultTreeShape);
  DraftOptions drafting;
  /// Prefill returns every prompt token's logits, which seed Token
  /// Recycling's table (the last row is the one plain decoding uses).
  bool seedFromPrompt = true;
  /// A drafter to keep between generations (its Token Recycling table and
  /// learnt acceptance carry over, as Token Recycling keeps its table
  /// across queries); built for the model's vocabulary and `shape`. Unset:
  /// each generation starts from an empty table.
  std::shared_ptr<TreeDrafter> drafter;
};

struct SpeculativeStats {
  GenerationStats generation;
  /// Verification steps (the prefill is not one).
  int64_t steps = 0;
  /// Drafted nodes run (roots not counted), and those accepted.
  int64_t draftedTokens = 0;
  int64_t acceptedDrafts = 0;
  /// What a drafted node cost at the end, as a fraction of a root-only
  /// step (TreeDrafter's StepCostModel), and whether it was measured.
  double nodeCost = 0;
  bool nodeCostMeasured = false;
  /// Mean tokens a step produced: its accepted drafts plus the bonus token.
  double meanAccepted() const {
    return steps ? double(acceptedDrafts + steps) / double(steps) : 0.0;
  }
};

/// The token tree `executable`'s plan was compiled to verify (lathe-compile
/// --spec-tree), or nullptr when none was.
const TreeShape *compiledTreeShape(const backend::Executable &executable);

/// Whether `executable` may verify trees of `shape`: a plan compiled for a
/// tree runs at most that tree's node count of tokens per verification
/// step; one without takes any shape. The error is one line.
Status checkTreeShape(const backend::Executable &executable, const TreeShape &shape);

/// The shape `lathe-run --speculate[=SHAPE]` runs: `requested` ("4x2x2",
/// "default": kDefaultTreeShape) if given, else the compiled shape, else
/// kDefaultTreeShape; checked by checkTreeShape.
Expected<TreeShape> resolveTreeShape(const backend::Executable &executable,
                                     std::string_view requested);

/// The `index`-th new token (from 0) chosen from `logits` as plain
/// decoding (generate) chooses it with `options`.
int32_t chooseToken(const SamplerOptions &options, int64_t index, std::span<const float> logits);

/// Generates as generate() does (the same options, stops and sink), with
/// speculative steps. The session must be at position 0, and the shape
/// must pass checkTreeShape.
Expected<SpeculativeStats> generateSpeculative(Session &session, std::span<const int32_t> prompt,
                                               const GenerationOptions &options,
                                               const SpeculativeOptions &speculative,
                                               const TokenSink &sink);

} // namespace lathe::speculative
