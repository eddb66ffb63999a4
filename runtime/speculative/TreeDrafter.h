// Fills the tree of the next verification step from both train-free
// sources, by expected acceptance: every candidate node is scored with the
// estimated probability that the target accepts the path down to it (its
// parent's score times its own probability), and the best candidates are
// added first, within the shape, until the best left scores below
// `minScore`. A node's probability is learnt as the generation runs: each
// candidate falls in a bucket (Token Recycling: by the probability the
// target gave that successor, last time it was seen after that token, or
// after that pair of tokens; n-gram continuations, SuffixDecoding-style:
// by match length and how often that continuation followed), and the
// bucket's estimate is the share of its drafts the target accepted where
// their parent was accepted, starting from the raw probability (n-grams:
// `ngramConfidence` times the frequency). N-gram continuations come from the
// text so far and from the earlier texts the drafter was given
// (remember(): a drafter kept across generations drafts from all of them). On a CPU a verification step costs about a plain
// step plus a fraction of one per node (about a fifth for stories15M on 2
// threads), so a node is worth running only when it is likely accepted.
#pragma once

#include "runtime/speculative/DraftTree.h"
#include "runtime/speculative/NgramDrafter.h"
#include "runtime/speculative/SuffixIndex.h"
#include "runtime/speculative/TokenRecycling.h"

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
  /// Candidates scoring below this are not drafted (0: fill the shape).
  float minScore = 0.2f;
};

class TreeDrafter {
public:
  TreeDrafter(int64_t vocab, const TreeShape &shape, const DraftOptions &options);

  /// The tree for the step after `text` (its last token is the root), at
  /// most `maxNodes` nodes. Several trees (of several sequences) may be
  /// drafted before their steps' verdicts come back.
  DraftTree draft(std::span<const int32_t> text, int64_t maxNodes) const;
  /// Takes in the verification step's logits (one row of `vocab` per node
  /// of `tree`, in node order) and the accepted path (nodes below the root,
  /// in order) of a tree this drafter drafted.
  void observe(const DraftTree &tree, std::span<const float> logits,
               std::span<const int32_t> accepted);
  /// Seeds Token Recycling from the prompt: `logits` holds a row per token.
  void observePrompt(std::span<const int32_t> prompt, std::span<const float> logits);
  /// Keeps a finished text (prompt and generated tokens) for n-gram drafts
  /// of later generations: a drafter kept across generations then drafts
  /// from everything it has seen, as SuffixDecoding's global tree does.
  void remember(std::span<const int32_t> text) { history_.add(text); }
  const SuffixIndex &history() const { return history_; }

  const TokenRecycling &recycling() const { return recycling_; }
  int64_t vocab() const { return vocab_; }

private:
  int64_t vocab_;
  TreeShape shape_;
  DraftOptions options_;
  TokenRecycling recycling_;
  SuffixIndex history_;
  // Learnt acceptance per bucket (a tree notes each node's bucket).
  std::vector<double> drafted_, accepted_;
};

} // namespace lathe::speculative
