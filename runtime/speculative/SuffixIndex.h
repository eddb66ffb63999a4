// Earlier texts for n-gram drafting across generations: SuffixDecoding
// keeps a global suffix tree over previous outputs beside each request's
// own, because a workload's outputs repeat one another (a model's stories
// open alike, an agent's tool calls recur). This index holds finished texts
// (prompt and generated tokens) and finds where a suffix of the current
// text occurred in them, most recent first, with what followed it up to the
// end of that text. suffixContinuations (NgramDrafter.h) merges those
// continuations with the current text's own.
//
// Lookups go through the suffix's last two tokens (a hash map from each
// token pair to the positions after it), so a suffix shorter than two
// tokens is never looked up here. The index keeps at most `capacity`
// tokens: adding past that drops the oldest texts.
#pragma once

#include "runtime/speculative/TokenPair.h"
#include "runtime/support/Expected.h"

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace lathe::speculative {

class SuffixIndex {
public:
  static constexpr int64_t kDefaultCapacity = int64_t{1} << 20;
  /// Positions looked at per lookup, most recent first (bounds the cost of
  /// a frequent pair in a long history).
  static constexpr int32_t kMaxScan = 4096;

  explicit SuffixIndex(int64_t capacity = kDefaultCapacity);

  /// Adds a finished text. Texts longer than the capacity keep their last
  /// `capacity` tokens; ids must be >= 0.
  void add(std::span<const int32_t> text);
  /// Tokens held, and texts.
  int64_t size() const { return held_; }
  size_t texts() const { return starts_.size(); }
  int64_t capacity() const { return capacity_; }
  /// The texts held, oldest first.
  std::vector<std::span<const int32_t>> contents() const;
  /// The text added last (empty when none is held).
  std::span<const int32_t> newest() const;
  /// Texts added since construction, dropped ones included: the texts
  /// added since a moment are the newest min(added() - then, texts()).
  int64_t added() const { return added_; }

  /// Calls visit(continuation) for each occurrence of `suffix` (at least
  /// two tokens) in the texts held, most recent first: continuation is
  /// what followed it, at most `length` tokens and never past the end of
  /// its text (possibly empty). Stops when visit returns false.
  void occurrences(std::span<const int32_t> suffix, int64_t length,
                   const std::function<bool(std::span<const int32_t>)> &visit) const;

private:
  void index(int64_t from);

  int64_t capacity_;
  int64_t held_ = 0;
  int64_t added_ = 0;
  // Texts back to back, each followed by -1.
  std::vector<int32_t> tokens_;
  std::vector<int64_t> starts_;
  // Pair (a, b) -> positions p with tokens_[p - 2] = a, tokens_[p - 1] = b,
  // ascending.
  std::unordered_map<uint64_t, std::vector<int32_t>> byPair_;
};

/// Texts from a file of one text per line, token ids separated by spaces
/// (what `lathe-run --print-ids` and `--prompts ... --print-ids` print); a
/// missing file is no texts. Errors are one line naming the file and line.
Expected<std::vector<std::vector<int32_t>>> readTextsFile(const std::string &path, int64_t vocab);

/// Appends `text` to such a file as one line.
Status appendTextToFile(const std::string &path, std::span<const int32_t> text);

} // namespace lathe::speculative
