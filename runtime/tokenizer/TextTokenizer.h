// A tokenizer of either kind a Lathe artifact can carry: llama2.c's
// (tokenizer.bin, Tokenizer.h) or a Hugging Face BPE (tokenizer.json,
// HFTokenizer.h), behind one interface for the tools and the engine.
#pragma once

#include "runtime/tokenizer/HFTokenizer.h"
#include "runtime/tokenizer/Tokenizer.h"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace lathe {

class TextTokenizer {
public:
  explicit TextTokenizer(Tokenizer t) : impl_(std::move(t)) {}
  explicit TextTokenizer(HFTokenizer t) : impl_(std::move(t)) {}

  /// The ids of `text`; with `addSpecialTokens`, BOS/EOS as configured
  /// (llama2.c: BOS and the dummy prefix; HF: the post-processor). An HF
  /// tokenizer fails where its pre-tokenizer regex's search is over its
  /// bounds (PretokenizerRegex::findAll); llama2.c's never fails.
  Expected<std::vector<int32_t>> encode(std::string_view text, bool addSpecialTokens) const;
  /// The text of `ids` (llama2.c: run.c's decode; HF: the decoder stages,
  /// special tokens kept).
  std::string decode(std::span<const int32_t> ids) const;

  /// The text of `prompt` followed by `generated`, as lathe-run prints a
  /// finished sequence (llama2.c: run.c's piece by piece decoding; HF:
  /// special tokens such as BOS left out, as they are not text).
  std::string decodeSequence(std::span<const int32_t> prompt,
                             std::span<const int32_t> generated) const;

  /// Generated tokens as text, as soon as it is complete: a byte-level
  /// token can end inside a character, and a SentencePiece token's leading
  /// space depends on what came before, so an HF tokenizer's text is the
  /// difference of decoding everything so far, held back while it ends in
  /// half a character. Special tokens are left out, as in decodeSequence.
  class Stream {
  public:
    Stream(const TextTokenizer &tokenizer, std::span<const int32_t> prompt);
    /// The text `token` adds (possibly empty until a character completes).
    std::string next(int32_t token);

  private:
    const TextTokenizer &tokenizer_;
    std::vector<int32_t> ids_;
    size_t printed_ = 0; // bytes of decode(ids_) already returned
  };

  /// The ids that end generation: EOS and BOS where configured.
  std::vector<int32_t> stopTokens() const;

  /// BOS and EOS ids, -1 where the tokenizer configures none.
  int32_t bos() const;
  int32_t eos() const;
  /// One past the largest id.
  size_t idCount() const;
  const char *kindName() const { return hf() ? "huggingface" : "llama2c"; }

  const Tokenizer *llama2c() const { return std::get_if<Tokenizer>(&impl_); }
  const HFTokenizer *hf() const { return std::get_if<HFTokenizer>(&impl_); }

private:
  std::variant<Tokenizer, HFTokenizer> impl_;
};

} // namespace lathe
