// Runs a Hugging Face BPE tokenizer described by an HFTokenizerSpec the
// way HF's `tokenizers` library does: added tokens are split off the raw
// text first, each remaining piece is normalized, pre-tokenized and
// BPE-merged, and the post-processor's special tokens go around the ids.
// Decoding maps ids back to tokens and runs the decoder stages.
#pragma once

#include "runtime/support/Expected.h"
#include "runtime/tokenizer/HFTokenizerSpec.h"
#include "runtime/tokenizer/PretokenizerRegex.h"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lathe {

class HFTokenizer {
public:
  /// Checks the spec (ids in range, merges whose result is in the
  /// vocabulary, known stage types, regexes the matcher supports) and
  /// builds the lookup tables. `source` names it in messages.
  static Expected<HFTokenizer> create(HFTokenizerSpec spec, const std::string &source);

  /// The ids of `text`; with `addSpecialTokens`, the configured BOS/EOS
  /// (the post-processor's template) around them. Fails only where a
  /// pre-tokenizer regex's search is over its bounds (PretokenizerRegex).
  Expected<std::vector<int32_t>> encode(std::string_view text, bool addSpecialTokens) const;

  /// The text of `ids`; unknown ids are skipped, special added tokens too
  /// when `skipSpecialTokens`.
  std::string decode(std::span<const int32_t> ids, bool skipSpecialTokens = false) const;

  /// One past the largest id (of the vocabulary and the added tokens).
  size_t idCount() const { return idCount_; }
  const HFTokenizerSpec &spec() const { return spec_; }
  /// The token string of `id` (added tokens first), or nullptr.
  const std::string *token(int32_t id) const;

private:
  struct Merge { uint32_t rank; int32_t result; };
  struct Piece { std::string text; bool atStart; };

  HFTokenizer() = default;
  void splitAddedTokens(std::string_view text,
                        std::vector<std::pair<std::string_view, int32_t>> &out) const;
  std::string normalize(std::string_view text) const;
  Expected<std::vector<Piece>> preTokenize(std::string text, bool atStart) const;
  void bpe(std::string_view word, std::vector<int32_t> &ids) const;

  HFTokenizerSpec spec_;
  size_t idCount_ = 0;
  std::unordered_map<std::string, int32_t> vocabIndex_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<int32_t> addedById_;  // id -> index in spec_.addedTokens, or -1
  std::vector<std::vector<int32_t>> addedByFirstByte_; // longest first
  std::vector<PretokenizerRegex> regexes_; // one per Split / regex ByteLevel stage
  int32_t byteTokens_[256];                // "<0xXX>" ids, or -1
};

} // namespace lathe
