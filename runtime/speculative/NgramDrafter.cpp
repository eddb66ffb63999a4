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

ContinuationTrie suffixContinuations(std::span<const int32_t> text, int32_t length,
                                     const NgramOptions &options) {
  ContinuationTrie trie;
  const int64_t size = static_cast<int64_t>(text.size());
  if (length <= 0)
    return trie;
  const int64_t longest = std::min<int64_t>(options.maxMatch, size - 1);
  for (int64_t n = longest; n >= std::max(options.minMatch, 1) && trie.match == 0; --n) {
    const std::span<const int32_t> suffix = text.subspan(size - n);
    for (int64_t end = size - 1; end >= n && trie.counts[0] < options.maxOccurrences; --end) {
      if (!std::equal(suffix.begin(), suffix.end(), text.begin() + (end - n)))
        continue;
      trie.match = static_cast<int32_t>(n);
      ++trie.counts[0];
      int32_t node = 0;
      for (int64_t i = end; i < std::min(size, end + length); ++i) {
        int32_t next = -1;
        for (int32_t c : trie.children[node])
          if (trie.tokens[c] == text[i])
            next = c;
        if (next < 0) {
          next = static_cast<int32_t>(trie.tokens.size());
          trie.tokens.push_back(text[i]);
          trie.parents.push_back(node);
          trie.counts.push_back(0);
          trie.children.emplace_back();
          trie.children[node].push_back(next);
        }
        ++trie.counts[next];
        node = next;
      }
    }
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
