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

ContinuationTrie suffixContinuations(std::span<const int32_t> text, int32_t length,
                                     const NgramOptions &options, const SuffixIndex *history) {
  ContinuationTrie trie;
  const int64_t size = static_cast<int64_t>(text.size());
  if (length <= 0 || size == 0)
    return trie;
  // The text's own occurrences (not its own suffix) may match up to
  // size - 1 tokens; earlier texts the whole text.
  const int64_t longest = std::min<int64_t>(options.maxMatch, history ? size : size - 1);
  for (int64_t n = longest; n >= std::max(options.minMatch, 1) && trie.match == 0; --n) {
    const std::span<const int32_t> suffix = text.subspan(size_t(size - n));
    for (int64_t end = size - 1; end >= n && trie.counts[0] < options.maxOccurrences; --end) {
      if (!std::equal(suffix.begin(), suffix.end(), text.begin() + (end - n)))
        continue;
      insertContinuation(trie, text.subspan(size_t(end), size_t(std::min(size, end + length) - end)));
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
