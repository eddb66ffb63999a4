// Prompt lookup (n-gram matching over the text so far, prompt and generated
// tokens alike): where the text's last n tokens occurred before, the tokens
// that followed are a draft. Longer matches are tried first and the most
// recent occurrences before older ones. Two forms: chains, as prompt-lookup
// decoding drafts them (ngramContinuations, draftNgrams), and a trie of
// every continuation of the longest match with how often each followed,
// as SuffixDecoding scores its suffix tree (suffixContinuations, what
// TreeDrafter uses), which also reads earlier texts (SuffixIndex.h).
#pragma once

#include "runtime/speculative/DraftTree.h"
#include "runtime/speculative/SuffixIndex.h"
#include "runtime/speculative/TokenPair.h"

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace lathe::speculative {

struct NgramOptions {
  /// The longest and shortest suffix of the text to look up.
  int32_t maxMatch = 4;
  int32_t minMatch = 2;
  /// Continuations taken at most (each a chain of up to the tree's depth).
  int32_t maxChains = 4;
  /// Occurrences counted at most by suffixContinuations (the most recent).
  int32_t maxOccurrences = 64;
};

/// Continuations of `text`: for n from maxMatch down to minMatch, the
/// tokens after each earlier occurrence of text's last n tokens, most
/// recent first, each at most `length` tokens, at most maxChains in all.
/// `matches`, when given, receives each continuation's match length.
std::vector<std::vector<int32_t>> ngramContinuations(std::span<const int32_t> text,
                                                     int32_t length,
                                                     const NgramOptions &options = {},
                                                     std::vector<int32_t> *matches = nullptr);

/// What followed the earlier occurrences of the text's longest suffix that
/// occurred before (at most maxMatch tokens, at least minMatch), merged
/// into a trie with counts, as SuffixDecoding reads its suffix tree: a
/// node's count over its parent's is how often that continuation followed,
/// a frequency estimate of its acceptance.
struct ContinuationTrie {
  /// Node 0 is the matched suffix (count: the occurrences counted); every
  /// other node a token after it, below the token it followed.
  std::vector<int32_t> tokens{-1}, parents{-1}, counts{0};
  std::vector<std::vector<int32_t>> children{{}};
  /// The suffix length matched; 0 when nothing matched.
  int32_t match = 0;
};
/// Where each token pair occurs in one growing text (a sequence's prompt
/// and tokens so far), so that the text's own earlier occurrences of a
/// suffix are found without scanning the text: a draft over a context of
/// 100k tokens would otherwise read it up to three times a step. The
/// owner keeps one a sequence and calls update() before each lookup.
class TextIndex {
public:
  /// Indexes the tokens of `text` past those indexed so far. `text` must
  /// extend the text indexed before; one that does not (shorter, or
  /// another first or last-indexed token) is indexed afresh.
  void update(std::span<const int32_t> text);
  /// Tokens indexed.
  int64_t size() const { return size_; }
  /// The last position p with text[p - 2] = a and text[p - 1] = b, or -1;
  /// previous(p) is the one before it, and so on back to -1.
  int32_t lastAfter(int32_t a, int32_t b) const;
  int32_t previous(int32_t p) const { return previous_[size_t(p)]; }

private:
  int64_t size_ = 0;
  int32_t first_ = -1, last_ = -1;
  // Pair -> its last position (a hash map entry per distinct pair); each
  // position -> the pair's one before (4 bytes a token).
  std::unordered_map<uint64_t, int32_t> lastByPair_;
  std::vector<int32_t> previous_;
};

/// With `history`, the occurrences in its earlier texts (suffixes of at
/// least two tokens) count too, after the text's own. With `own` (indexed
/// up to `text`'s end), the text's own occurrences of suffixes of two or
/// more tokens are found through it, in the same order, with the same
/// result as the scan without it.
ContinuationTrie suffixContinuations(std::span<const int32_t> text, int32_t length,
                                     const NgramOptions &options = {},
                                     const SuffixIndex *history = nullptr,
                                     const TextIndex *own = nullptr);

/// Adds the continuations of `text` (whose last token is the tree's root)
/// below the root of `tree`; returns the chains added.
int32_t draftNgrams(std::span<const int32_t> text, DraftTree &tree,
                    const NgramOptions &options = {});

} // namespace lathe::speculative
