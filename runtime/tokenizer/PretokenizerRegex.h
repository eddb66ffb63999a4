// The regular expressions of Hugging Face pre-tokenizers (the Split
// patterns of GPT-2, Llama 3, Qwen2/3 and their kin): std::regex has no
// \p{L}, and ICU is too heavy for the runtime, so this is a small
// backtracking matcher for the subset those patterns use, with the
// leftmost-first semantics of Oniguruma, which HF's tokenizers run them on.
//
// Supported: literals, escapes \r \n \t \f \v \\ \. etc., \xHH, \x{H..};
// classes [...] and [^...] with ranges; \p{L} \p{N} \P{..} (also \pL),
// \s \S \d \D; '.'; groups (...), (?:...), (?i:...) (case-insensitive);
// lookahead (?=...) and (?!...); alternation; ? * + {n} {n,} {n,m}, each
// optionally lazy. Anything else is refused with one message naming it.
#pragma once

#include "runtime/support/Expected.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lathe {

class PretokenizerRegex {
public:
  static Expected<PretokenizerRegex> compile(std::string_view pattern);

  /// The byte ranges [begin, end) of the successive non-overlapping,
  /// non-empty matches in `text`, left to right. Bytes of `text` that are
  /// not well-formed UTF-8 are codepoints of their own that no class holds.
  /// A search from one position that takes more than kMaxSteps steps or
  /// recurses kMaxDepth deep is an error (the matcher backtracks, so a
  /// pattern like (a*)*b is exponential in the text).
  Expected<std::vector<std::pair<size_t, size_t>>> findAll(std::string_view text) const;

  /// Bounds: groups nested in a pattern (the parser recurses once a
  /// group); match steps of one search (Oniguruma's default retry limit);
  /// the matcher's recursion (10,000 levels took 1-2 MiB of stack in a
  /// test; threads here have 8 MiB).
  static constexpr uint32_t kMaxGroupDepth = 64;
  static constexpr uint64_t kMaxSteps = 10'000'000;
  static constexpr uint32_t kMaxDepth = 10'000;

  const std::string &pattern() const { return pattern_; }

  // The parsed pattern: a tree of nodes in one vector.
  enum class Kind : uint8_t { Set, Any, Seq, Alt, Repeat, Look };
  struct ClassItem {
    enum Type : uint8_t { Range, Letter, Number, Digit, Space } type;
    bool negated = false;      // \P{..}, \S, \D
    char32_t first = 0, last = 0;
  };
  struct Node {
    Kind kind;
    bool negated = false;      // [^...] or a negative lookahead
    bool lazy = false;
    uint32_t min = 0, max = 0; // Repeat
    std::vector<ClassItem> items;    // Set
    std::vector<uint32_t> children;  // Seq, Alt, Repeat (one), Look (one)
  };

private:
  std::string pattern_;
  std::vector<Node> nodes_;
  uint32_t root_ = 0;
  friend class RegexParser;
  friend class RegexMatcher;
};

} // namespace lathe
