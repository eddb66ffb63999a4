#include "runtime/speculative/NgramDrafter.h"

#include <algorithm>

namespace lathe::speculative {

std::vector<std::vector<int32_t>> ngramContinuations(std::span<const int32_t> text,
                                                     int32_t length,
                                                     const NgramOptions &options,
                                                     std::vector<int32_t> *matches) {
  std::vector<std::vector<int32_t>> chains;
  if (matches)
    matches->clear();
  const int64_t size = static_cast<int64_t>(text.size());
  if (length <= 0 || options.maxChains <= 0)
    return chains;
  // Occurrences already used by a longer match give the same continuation.
  std::vector<int64_t> used;
  const int64_t longest = std::min<int64_t>(options.maxMatch, size - 1);
  for (int64_t n = longest; n >= std::max(options.minMatch, 1); --n) {
    const std::span<const int32_t> suffix = text.subspan(size - n);
    // `end` is one past an earlier occurrence; the text's own suffix ends
    // at `size` and is skipped.
    for (int64_t end = size - 1; end >= n; --end) {
      if (!std::equal(suffix.begin(), suffix.end(), text.begin() + (end - n)))
        continue;
      if (std::find(used.begin(), used.end(), end) != used.end())
        continue;
      used.push_back(end);
      const int64_t stop = std::min(size, end + length);
      chains.emplace_back(text.begin() + end, text.begin() + stop);
      if (matches)
        matches->push_back(static_cast<int32_t>(n));
      if (static_cast<int32_t>(chains.size()) >= options.maxChains)
        return chains;
    }
  }
  return chains;
}

namespace {

/// Counts one occurrence's continuation into the trie.
void insertContinuation(ContinuationTrie &trie, std::span<const int32_t> continuation) {
  ++trie.counts[0];
  int32_t node = 0;
  for (int32_t token : continuation) {
    int32_t next = -1;
    for (int32_t c : trie.children[size_t(node)])
      if (trie.tokens[size_t(c)] == token)
        next = c;
    if (next < 0) {
      next = static_cast<int32_t>(trie.tokens.size());
      trie.tokens.push_back(token);
      trie.parents.push_back(node);
      trie.counts.push_back(0);
      trie.children.emplace_back();
      trie.children[size_t(node)].push_back(next);
    }
    ++trie.counts[size_t(next)];
    node = next;
  }
}

} // namespace

void TextIndex::update(std::span<const int32_t> text) {
  const int64_t size = static_cast<int64_t>(text.size());
  if (size < size_ || (size_ > 0 && (text[0] != first_ || text[size_t(size_ - 1)] != last_))) {
    lastByPair_.clear();
    size_ = 0;
  }
  previous_.resize(size_t(size + 1), -1);
  for (int64_t p = std::max<int64_t>(size_ + 1, 2); p <= size; ++p) {
    int32_t &last = lastByPair_.try_emplace(tokenPairKey(text[size_t(p - 2)], text[size_t(p - 1)]), -1)
                        .first->second;
    previous_[size_t(p)] = last;
    last = static_cast<int32_t>(p);
  }
  size_ = size;
  first_ = size ? text[0] : -1;
  last_ = size ? text.back() : -1;
}

int32_t TextIndex::lastAfter(int32_t a, int32_t b) const {
  const auto it = lastByPair_.find(tokenPairKey(a, b));
  return it == lastByPair_.end() ? -1 : it->second;
}

ContinuationTrie suffixContinuations(std::span<const int32_t> text, int32_t length,
                                     const NgramOptions &options, const SuffixIndex *history,
                                     const TextIndex *own) {
  ContinuationTrie trie;
  const int64_t size = static_cast<int64_t>(text.size());
  if (length <= 0 || size == 0)
    return trie;
  if (own && own->size() != size)
    own = nullptr; // not indexed up to this text: scan
  // The text's own occurrences (not its own suffix) may match up to
  // size - 1 tokens; earlier texts the whole text.
  const int64_t longest = std::min<int64_t>(options.maxMatch, history ? size : size - 1);
  for (int64_t n = longest; n >= std::max(options.minMatch, 1) && trie.match == 0; --n) {
    const std::span<const int32_t> suffix = text.subspan(size_t(size - n));
    // `end` is one past an earlier occurrence, most recent first.
    auto visit = [&](int64_t end) {
      if (end < n || !std::equal(suffix.begin(), suffix.end(), text.begin() + (end - n)))
        return;
      insertContinuation(trie, text.subspan(size_t(end), size_t(std::min(size, end + length) - end)));
    };
    if (own && n >= 2) {
      // The positions after the suffix's last pair, the suffix's own
      // (size) left out.
      for (int32_t end = own->lastAfter(text[size_t(size - 2)], text.back());
           end >= 0 && trie.counts[0] < options.maxOccurrences; end = own->previous(end))
        if (end < size)
          visit(end);
    } else {
      for (int64_t end = size - 1; end >= n && trie.counts[0] < options.maxOccurrences; --end)
        visit(end);
    }
    if (history && trie.counts[0] < options.maxOccurrences)
      history->occurrences(suffix, length, [&](std::span<const int32_t> continuation) {
        insertContinuation(trie, continuation);
        return trie.counts[0] < options.maxOccurrences;
      });
    if (trie.counts[0] > 0)
      trie.match = static_cast<int32_t>(n);
  }
  return trie;
}

int32_t draftNgrams(std::span<const int32_t> text, DraftTree &tree,
                    const NgramOptions &options) {
  int32_t added = 0;
  for (const std::vector<int32_t> &chain : ngramContinuations(text, tree.maxDepth(), options))
    if (tree.addChain(0, chain) > 0)
      ++added;
  return added;
}

} // namespace lathe::speculative
