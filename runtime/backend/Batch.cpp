#include "runtime/backend/Batch.h"

#include "runtime/kv/PagedKVCache.h"

#include <fmt/format.h>
#include <map>
#include <new>

namespace lathe::backend {

void Batch::clear() {
  tokens.clear();
  sequences.clear();
  positions.clear();
  parents.clear();
  wantsLogits.clear();
}

int32_t Batch::add(SequenceId sequence, int32_t token, int32_t position, int32_t parent,
                   bool logits) {
  tokens.push_back(token);
  sequences.push_back(sequence);
  positions.push_back(position);
  parents.push_back(parent);
  wantsLogits.push_back(logits ? 1 : 0);
  return static_cast<int32_t>(tokens.size() - 1);
}

void Batch::addChain(SequenceId sequence, std::span<const int32_t> chain, int32_t firstPosition,
                     Logits logits, int32_t after) {
  int32_t parent = after;
  for (size_t i = 0; i < chain.size(); ++i) {
    const bool wants = logits == Logits::All || (logits == Logits::Last && i + 1 == chain.size());
    parent = add(sequence, chain[i], firstPosition + static_cast<int32_t>(i), parent, wants);
  }
}

int64_t Batch::logitRows() const {
  int64_t n = 0;
  for (uint8_t w : wantsLogits)
    n += w ? 1 : 0;
  return n;
}

Status validateBatch(const Batch &b, int64_t vocab, int64_t context,
                     const kv::PagedKVCache &cache) {
  const size_t n = b.tokens.size();
  if (n == 0)
    return Error("the batch holds no tokens");
  if (b.sequences.size() != n || b.positions.size() != n || b.parents.size() != n ||
      b.wantsLogits.size() != n)
    return Error("the batch's token, sequence, position, parent and logits lists differ in "
                 "length");
  std::map<SequenceId, int64_t> added;
  for (size_t i = 0; i < n; ++i) {
    const SequenceId seq = b.sequences[i];
    if (b.tokens[i] < 0 || b.tokens[i] >= vocab)
      return Error(fmt::format("token id {} is outside the vocabulary (0..{})", b.tokens[i],
                               vocab - 1));
    if (!cache.contains(seq))
      return Error(fmt::format("batch token {}: the KV cache holds no sequence {}", i, seq));
    const int32_t parent = b.parents[i];
    int64_t expected = cache.length(seq);
    if (parent != -1) {
      if (parent < 0 || static_cast<size_t>(parent) >= i || b.sequences[parent] != seq)
        return Error(fmt::format("batch token {}: parent {} is not an earlier token of "
                                 "sequence {}",
                                 i, parent, seq));
      expected = int64_t{b.positions[parent]} + 1;
    }
    if (b.positions[i] != expected)
      return Error(fmt::format("batch token {}: position {}, expected {}", i, b.positions[i],
                               expected));
    // Positions follow the cached length and the parents, so the length
    // check below keeps every one inside the context.
    ++added[seq];
  }
  for (auto [seq, count] : added)
    if (cache.length(seq) + count > context)
      return Error(fmt::format("the sequence would reach {} tokens, longer than the model's "
                               "context of {} tokens",
                               cache.length(seq) + count, context));
  return Status::ok();
}

Status StepLayout::prepare(const Batch &batch, kv::PagedKVCache &cache) {
  // Each sequence's length before the step, and the order of first use.
  std::map<SequenceId, int64_t> base, count;
  std::vector<SequenceId> order;
  try {
    for (SequenceId seq : batch.sequences)
      if (count[seq]++ == 0) {
        base[seq] = cache.length(seq);
        order.push_back(seq);
      }
  } catch (const std::bad_alloc &) {
    return Error("cannot allocate memory to lay out the step");
  }
  auto shrinkBack = [&](size_t grown) {
    for (size_t j = 0; j < grown; ++j)
      cache.truncate(order[j], base[order[j]]);
  };
  for (size_t i = 0; i < order.size(); ++i)
    if (Status s = cache.grow(order[i], count[order[i]]); !s) {
      shrinkBack(i);
      return s;
    }
  try {
    layOut(batch, cache, order, base);
  } catch (const std::bad_alloc &) {
    shrinkBack(order.size());
    return Error("cannot allocate memory to lay out the step");
  }
  return Status::ok();
}

void StepLayout::layOut(const Batch &batch, const kv::PagedKVCache &cache,
                        const std::vector<SequenceId> &order,
                        std::map<SequenceId, int64_t> &base) {
  const size_t n = batch.size();
  // Rows of every slot of each sequence, prefix lists shared by its tokens.
  sequenceRows_.assign(order.size(), {});
  std::map<SequenceId, size_t> slotOf;
  for (size_t i = 0; i < order.size(); ++i) {
    slotOf[order[i]] = i;
    const int64_t length = cache.length(order[i]);
    sequenceRows_[i].resize(length);
    for (int64_t s = 0; s < length; ++s)
      sequenceRows_[i][s] = cache.row(order[i], s);
  }

  // A token sees its parent's rows and its own; while that stays a prefix
  // of the sequence's slots it is a count, otherwise the rest is a list.
  // A tree node off the prefix copies its ancestors' list: memory grows
  // with the sum of the branches' depths, small for speculation trees.
  struct Span { int32_t prefix; size_t first, count; };
  std::vector<Span> spans(n);
  std::map<SequenceId, int64_t> rank;
  storeRows.resize(n);
  extras_.clear();
  logitTokens.clear();
  mostVisible = 0;
  for (size_t i = 0; i < n; ++i) {
    const SequenceId seq = batch.sequences[i];
    const std::vector<int32_t> &rows = sequenceRows_[slotOf[seq]];
    const int64_t slot = base[seq] + rank[seq]++;
    storeRows[i] = rows[slot];
    const int32_t parent = batch.parents[i];
    Span sp = parent < 0 ? Span{static_cast<int32_t>(base[seq]), extras_.size(), 0}
                         : spans[parent];
    if (sp.count == 0 && sp.prefix == slot) {
      sp.prefix += 1;
      sp.first = extras_.size();
    } else {
      const size_t first = extras_.size();
      for (size_t e = 0; e < sp.count; ++e) {
        const int32_t row = extras_[sp.first + e];
        extras_.push_back(row);
      }
      extras_.push_back(rows[slot]);
      sp.first = first;
      sp.count += 1;
    }
    spans[i] = sp;
    mostVisible = std::max<int64_t>(mostVisible, int64_t{sp.prefix} + int64_t(sp.count));
    if (batch.wantsLogits[i])
      logitTokens.push_back(static_cast<int32_t>(i));
  }
  visible.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::vector<int32_t> &rows = sequenceRows_[slotOf[batch.sequences[i]]];
    visible[i] = VisibleRows{rows.data(), spans[i].prefix, extras_.data() + spans[i].first,
                             static_cast<int32_t>(spans[i].count)};
  }
}

} // namespace lathe::backend
