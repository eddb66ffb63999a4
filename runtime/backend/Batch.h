// The one batch form every step runs: a flat list of tokens, each with its
// sequence, its position and the earlier tokens of the batch it may see.
// Several sequences decoding together, a prefill chunk and a speculative
// token tree are all this one form:
//   - a prefill chunk is a chain: token i follows token i - 1;
//   - several sequences are several chains, one per sequence;
//   - a token tree gives each node its parent: a node sees its ancestors.
// A token sees every token its sequence holds in the KV cache, plus its
// ancestors in the batch and itself. A backend stores the batch tokens' keys
// and values at the sequence's tail, in batch order, so a token's cache slot
// is the sequence's length before the step plus its rank among that
// sequence's tokens of the batch.
#pragma once

#include "runtime/support/Expected.h"

#include <cstdint>
#include <map>
#include <span>
#include <vector>

namespace lathe::kv {
class PagedKVCache;
}

namespace lathe::backend {

/// A sequence of the KV cache (kv::PagedKVCache::addSequence).
using SequenceId = int32_t;

struct Batch {
  std::vector<int32_t> tokens;
  std::vector<SequenceId> sequences;
  /// RoPE positions: the parent's position + 1, or the sequence's cached
  /// length for a token without a parent.
  std::vector<int32_t> positions;
  /// The earlier batch token (of the same sequence) this one follows, or -1
  /// when it follows only the sequence's cached tokens.
  std::vector<int32_t> parents;
  /// Whether the step returns this token's logits (rows in batch order).
  std::vector<uint8_t> wantsLogits;

  size_t size() const { return tokens.size(); }
  bool empty() const { return tokens.empty(); }
  void clear();

  /// Appends one token; returns its index in the batch.
  int32_t add(SequenceId sequence, int32_t token, int32_t position, int32_t parent,
              bool logits);

  /// Which tokens of a chain return logits.
  enum class Logits { None, Last, All };
  /// Appends `tokens` as a chain of `sequence`: the first follows batch
  /// token `after` (-1: the cached tokens, at position `firstPosition`).
  void addChain(SequenceId sequence, std::span<const int32_t> tokens, int32_t firstPosition,
                Logits logits, int32_t after = -1);

  /// Rows of logits the step returns.
  int64_t logitRows() const;
};

/// Checks `batch` against the model and the cache before a backend runs it:
/// equal lengths, token ids in the vocabulary, sequences the cache holds,
/// parents earlier in the batch and of the same sequence, positions that
/// follow them (parent + 1, or the sequence's length), and room in the
/// sequence for its new tokens (at most `context` slots).
Status validateBatch(const Batch &batch, int64_t vocab, int64_t context,
                     const kv::PagedKVCache &cache);

/// The cache rows one token attends to, in order: the first `prefix`
/// entries of its sequence's rows, then `extraCount` rows of `extra`.
/// Rows index the layer's key and value arrays (kv::PagedKVCache::row).
struct VisibleRows {
  const int32_t *rows = nullptr;
  int32_t prefix = 0;
  const int32_t *extra = nullptr;
  int32_t extraCount = 0;

  int64_t count() const { return int64_t{prefix} + extraCount; }
  int32_t operator[](int64_t p) const {
    return p < prefix ? rows[p] : extra[p - prefix];
  }
};

/// What the kernels of a step need to know about its tokens and the cache,
/// worked out once per step: the row each token's key and value go to, and
/// the rows each token sees.
struct StepLayout {
  std::vector<int32_t> storeRows;     // per token
  std::vector<VisibleRows> visible;   // per token
  std::vector<int32_t> logitTokens;   // batch indices that return logits
  int64_t mostVisible = 0;            // the longest visible list

  /// Grows every sequence of `batch` by its tokens in `cache` and lays out
  /// the step. On failure (no free blocks, no memory) every sequence keeps
  /// its length and data (a shared block copied on write may stay copied).
  Status prepare(const Batch &batch, kv::PagedKVCache &cache);

  /// The storage `visible` points into, for backends that copy it to a
  /// device: each sequence's rows (every VisibleRows::rows is the data of
  /// one of these lists) and the tree nodes' extra rows (every
  /// VisibleRows::extra points into this list).
  const std::vector<std::vector<int32_t>> &sequenceRows() const { return sequenceRows_; }
  const std::vector<int32_t> &extras() const { return extras_; }

private:
  void layOut(const Batch &batch, const kv::PagedKVCache &cache,
              const std::vector<SequenceId> &order, std::map<SequenceId, int64_t> &base);
  std::vector<std::vector<int32_t>> sequenceRows_;
  std::vector<int32_t> extras_;
};

} // namespace lathe::backend
