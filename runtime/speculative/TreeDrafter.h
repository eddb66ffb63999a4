// Fills the tree of the next verification step from both train-free
// sources, by expected acceptance: every candidate node is scored with the
// estimated probability that the target accepts the path down to it (its
// parent's score times its own probability), and the best candidates are
// added first, within the shape, while each is worth its cost: with c the
// cost of a node as a fraction of a root-only step (measured, StepCostModel)
// and S the scores of the n nodes taken so far, a step yields 1 + S tokens
// for 1 + c n, and a node of score s raises that rate when s > c (1 + S) /
// (1 + c n) (the greedy rule for a ratio: take the best while its marginal
// rate beats the average). A node's probability is learnt as the
// generation runs: each candidate falls in a bucket (Token Recycling: by
// the probability the target gave that successor, last time it was seen
// after that token, or after that pair of tokens; n-gram continuations,
// SuffixDecoding-style: by match length and how often that continuation
// followed), and the bucket's estimate is the share of its drafts the
// target accepted where their parent was accepted, starting from the raw
// probability (n-grams: `ngramConfidence` times the frequency) times how
// well every bucket's drafts have borne their raw probabilities out
// (calibration(): a bucket seldom drafted learns from the others that the
// raw probabilities run high, as the top-k softmax's do). N-gram
// continuations come from the text so far and from the earlier texts the
// drafter was given (remember(): a drafter kept across generations drafts
// from all of them).
#pragma once

#include "runtime/speculative/DraftTree.h"
#include "runtime/speculative/NgramDrafter.h"
#include "runtime/speculative/SuffixIndex.h"
#include "runtime/speculative/TokenRecycling.h"

#include <algorithm>
#include <cstdint>
#include <span>

namespace lathe::speculative {

struct DraftOptions {
  bool ngrams = true;
  NgramOptions ngram;
  /// The probability first given to a continuation that followed every
  /// occurrence of the matched suffix (less for rarer ones).
  float ngramConfidence = 0.6f;
  bool recycling = true;
  /// Tokens of earlier texts kept for n-gram drafting (remember()).
  int64_t historyCapacity = SuffixIndex::kDefaultCapacity;
  /// Candidates scoring below this are never drafted (0: no floor).
  float minScore = 0.02f;
  /// What one more node costs, as a fraction of a step that runs the root
  /// alone, until observeStep() has measured it (about a fifth for
  /// stories15M FP32 on 2 CPU threads).
  float nodeCost = 0.2f;
};

/// The time a verification step takes against the tokens it runs, fitted
/// as a + b * tokens by least squares over the recent steps (each older
/// step's weight decays by `kDecay`): a node costs b / (a + b) of a step
/// that runs the root alone. Steps must vary in size for the fit to mean
/// anything; until they have, the last good fit stands, else the prior.
/// A step of more tokens than any before is left out (the backend grows
/// its buffers in it).
class StepCostModel {
public:
  static constexpr double kDecay = 0.97;
  explicit StepCostModel(double prior) : cost_(prior) {}
  void observe(int64_t tokens, double seconds);
  /// b / (a + b), clamped to [0.005, 4].
  double nodeCost() const { return cost_; }
  /// What a node costs as a fraction of one sequence's share of a step
  /// that runs `roots` sequences' roots together: b / (a / roots + b).
  /// The step's fixed cost a is shared, so nodes cost relatively more the
  /// more sequences a step carries (from nodeCost() c: c R / (1 + c (R - 1))).
  double nodeCost(int64_t roots) const {
    const double r = double(std::max<int64_t>(roots, 1));
    return cost_ * r / (1 + cost_ * (r - 1));
  }
  bool measured() const { return measured_; }

private:
  double w_ = 0, n_ = 0, t_ = 0, nn_ = 0, nt_ = 0;
  int64_t most_ = 0; // the most tokens a step has run
  double cost_;
  bool measured_ = false;
};

class TreeDrafter {
public:
  TreeDrafter(int64_t vocab, const TreeShape &shape, const DraftOptions &options);

  /// The tree for the step after `text` (its last token is the root), at
  /// most `maxNodes` nodes, in a step that runs `roots` sequences' trees
  /// (each node weighed against StepCostModel::nodeCost(roots)). `own`,
  /// the text's index kept by the caller (updated to `text`), spares a
  /// scan of the text; the tree is the same without it. Several trees (of
  /// several sequences) may be drafted before their steps' verdicts come
  /// back.
  DraftTree draft(std::span<const int32_t> text, int64_t maxNodes, int64_t roots = 1,
                  const TextIndex *own = nullptr) const;
  /// Takes in the verification step's logits (one row of `vocab` per node
  /// of `tree`, in node order) and the accepted path (nodes below the root,
  /// in order) of a tree this drafter drafted.
  void observe(const DraftTree &tree, std::span<const float> logits,
               std::span<const int32_t> accepted);
  /// Takes in how long a verification step of `tokens` tokens (the tree's
  /// size) took: the drafter then drafts a node only while it is worth its
  /// measured cost (draft()). A step of several sequences' trees (the
  /// serving scheduler's) counts all its tokens, roots included.
  void observeStep(int64_t tokens, double seconds) { cost_.observe(tokens, seconds); }
  const StepCostModel &cost() const { return cost_; }
  /// Accepted drafts over what their buckets' raw probabilities expected,
  /// over every bucket (1 before any draft was judged; within [0.1, 2]).
  double calibration() const;
  /// Seeds Token Recycling from the prompt: `logits` holds a row per token.
  void observePrompt(std::span<const int32_t> prompt, std::span<const float> logits);
  /// Keeps a finished text (prompt and generated tokens) for n-gram drafts
  /// of later generations: a drafter kept across generations then drafts
  /// from everything it has seen, as SuffixDecoding's global tree does.
  void remember(std::span<const int32_t> text) { history_.add(text); }
  const SuffixIndex &history() const { return history_; }

  const TokenRecycling &recycling() const { return recycling_; }
  int64_t vocab() const { return vocab_; }
  const TreeShape &shape() const { return shape_; }

private:
  friend struct DrafterStateAccess; // DrafterState.cpp saves and loads what it learnt
  int64_t vocab_;
  TreeShape shape_;
  DraftOptions options_;
  TokenRecycling recycling_;
  SuffixIndex history_;
  StepCostModel cost_;
  // Learnt acceptance per bucket (a tree notes each node's bucket).
  std::vector<double> drafted_, accepted_;
};

} // namespace lathe::speculative
