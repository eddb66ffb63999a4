// Token Recycling (Luo et al., 2024): the verification step returns logits
// for every drafted node, most of them for tokens that are then rejected.
// Their top-k next tokens are kept in an adjacency table, one row per token
// (the latest logits seen after that token win), and a tree is drafted by
// expanding each node with its token's row: child i of a node is the i-th
// most likely successor of its token, breadth first, until the shape is
// full. No draft model and no training: the table is the target model's
// own recent predictions.
//
// Beside the paper's table keyed by one token, a second, hashed table keys
// the same rows by the last two tokens (the node's parent's and its own):
// after "named" the next token varies, after "girl named" much less.
#pragma once

#include "runtime/speculative/DraftTree.h"

#include <cstdint>
#include <span>
#include <vector>

namespace lathe::speculative {

class TokenRecycling {
public:
  /// A table of `vocab` rows of the `k` best successors, all unknown.
  TokenRecycling(int64_t vocab, int32_t k);

  int32_t k() const { return k_; }
  /// Sets `token`'s row to the k ids of `logits` with the highest scores
  /// (the lowest id first on ties, so the first is the argmax), and the
  /// row of the pair (`previous`, `token`) too when `previous` >= 0.
  void update(int32_t token, std::span<const float> logits, int32_t previous = -1);
  /// The successors of the pair (`previous`, `token`) and their estimated
  /// probabilities; empty while unseen (or overwritten by another pair).
  std::span<const int32_t> pairSuccessors(int32_t previous, int32_t token) const;
  std::span<const float> pairProbabilities(int32_t previous, int32_t token) const;
  /// `token`'s successors, best first; empty while none has been seen.
  std::span<const int32_t> successors(int32_t token) const;
  /// Their probabilities as estimated from the k best logits alone
  /// (softmax over those k: an overestimate where the tail is heavy, but
  /// it orders and thresholds drafts without an exp over the vocabulary).
  std::span<const float> probabilities(int32_t token) const;
  /// Fills every node of `tree` that has room with its token's successors,
  /// breadth first (new nodes are expanded in turn); returns nodes added.
  int32_t expand(DraftTree &tree) const;

private:
  friend struct DrafterStateAccess; // DrafterState.cpp saves and loads the tables
  int64_t vocab_;
  int32_t k_;
  std::vector<int32_t> table_; // vocab x k, -1 = none
  std::vector<float> probabilities_; // vocab x k
  // The pair table: kPairSlots rows, each tagged with its pair.
  static constexpr size_t kPairSlots = size_t(1) << 16;
  size_t pairSlot(int32_t previous, int32_t token) const;
  size_t pairLength(size_t slot) const;
  std::vector<uint64_t> pairTags_;
  std::vector<int32_t> pairIds_;
  std::vector<float> pairProbabilities_;
  std::vector<float> bestScores_;
  std::vector<int32_t> bestIds_;
};

} // namespace lathe::speculative
