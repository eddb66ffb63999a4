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
  /// (These spans, and the pair table's, hold until the next update.)
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
  /// Rows of k successors (ids, -1 past the last) and their probabilities,
  /// after a header of `head` bytes (a pair row's tag), that read as absent
  /// until written. The rows written are kept densely, in the order they
  /// were first written, behind an index a row: filling the 6.5 MB of a
  /// 32000-token vocabulary's tables (rows of 8) up front took 10-17 ms,
  /// as long as 40 of an int4 build's steps, at every start of a
  /// generation; left sparse and untouched, nearly every pair row written
  /// was a page fault of its own.
  class Rows {
  public:
    Rows(size_t rows, size_t k, size_t head);
    bool written(size_t row) const { return index_[row] != 0; }
    /// The row's bytes, marked written (its fields as the row had them).
    std::byte *write(size_t row);
    const int32_t *ids(size_t row) const { return reinterpret_cast<const int32_t *>(at(row) + head_); }
    const float *probabilities(size_t row) const {
      return reinterpret_cast<const float *>(at(row) + head_ + 4 * k_);
    }
    uint64_t tag(size_t row) const { return *reinterpret_cast<const uint64_t *>(at(row)); }

  private:
    const std::byte *at(size_t row) const { return bytes_.data() + (index_[row] - 1) * stride_; }
    size_t k_, head_, stride_;
    std::vector<uint32_t> index_; // 1 + the row's place in bytes_, 0 while unwritten
    std::vector<std::byte> bytes_;
  };
  /// Writes a row of the token table, or of the pair table with its
  /// pair's tag (ids past the given ones -1, their probabilities 0).
  void setRow(int32_t token, std::span<const int32_t> ids, std::span<const float> probabilities);
  void setPairRow(size_t slot, uint64_t tag, std::span<const int32_t> ids,
                  std::span<const float> probabilities);
  int64_t vocab_;
  int32_t k_;
  Rows rows_; // a row a token
  // The pair table: kPairSlots rows, each tagged with its pair.
  static constexpr size_t kPairSlots = size_t(1) << 16;
  size_t pairSlot(int32_t previous, int32_t token) const;
  size_t pairLength(size_t slot) const;
  Rows pairs_;
  std::vector<float> bestScores_;
  std::vector<int32_t> bestIds_;
};

} // namespace lathe::speculative
