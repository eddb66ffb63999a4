// A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) as one
// plain struct: what HFTokenizerJson.h reads from the files, what the
// artifact stores and loads, and what HFTokenizer runs. Only BPE models are
// described: SentencePiece-style with byte fallback (Llama 2, Mistral) and
// byte-level (GPT-2, Llama 3, Qwen2/3) differ only in their stages.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lathe {

/// One stage of a normalizer, pre-tokenizer or decoder pipeline, named as
/// tokenizer.json names its type. Parameters by type:
///   normalizers:    Prepend {prepend}; Replace {pattern, content}; NFC {}
///   pre-tokenizers: Split {regex} (behavior Isolated);
///                   ByteLevel ints {add_prefix_space, use_regex};
///                   Metaspace {replacement, prepend_scheme} ints {split}
///   decoders:       ByteLevel {}; ByteFallback {}; Fuse {};
///                   Replace {pattern, content}; Strip {content} ints {start, stop};
///                   Metaspace {replacement, prepend_scheme}
struct TokenizerStage {
  std::string type;
  std::vector<std::string> strings;
  std::vector<int64_t> ints;
  bool operator==(const TokenizerStage &) const = default;
};

/// A token matched in the raw text before normalization and BPE.
struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;    // dropped by decode(..., skipSpecialTokens)
  bool lstrip = false;     // swallows the whitespace on its left
  bool rstrip = false;     // and on its right
  bool singleWord = false; // matches only between non-word characters
  bool operator==(const AddedToken &) const = default;
};

struct HFTokenizerSpec {
  /// The BPE model's vocabulary, id -> token; ids the model lacks are "".
  std::vector<std::string> vocab;
  /// Merges by rank (first merges first): pairs of vocabulary ids.
  std::vector<std::pair<int32_t, int32_t>> merges;
  bool byteFallback = false; // "<0xXX>" tokens for characters not in vocab
  bool fuseUnk = false;      // consecutive unknown characters give one unk
  bool ignoreMerges = false; // a pre-token that is in the vocabulary is one token
  int32_t unk = -1;
  std::vector<AddedToken> addedTokens;
  std::vector<TokenizerStage> normalizers, preTokenizers, decoders;
  /// What encoding with special tokens puts around the ids (the
  /// post-processor's single template, or tokenizer_config's add_bos_token).
  std::vector<int32_t> prefixIds, suffixIds;
  int32_t bos = -1, eos = -1; // -1: none configured
  /// tokenizer_config.json's chat_template (Jinja source; the "default"
  /// one where it lists several), "" when it has none. lathe-serve renders
  /// chat requests with it (runtime/serving/ChatTemplate.h).
  std::string chatTemplate;
  bool operator==(const HFTokenizerSpec &) const = default;
};

} // namespace lathe
