// The SentencePiece-style BPE tokenizer of llama2.c, read from its
// `tokenizer.bin`. Encoding reproduces run.c's `encode` token for token, so
// that prompts reach the model exactly as they reach the reference; decoding
// reproduces run.c's `decode`.
#pragma once

#include "runtime/support/Expected.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lathe {

/// The pieces of a vocabulary, indexed by token id.
struct Vocabulary {
  std::vector<std::string> pieces; // token id -> bytes
  std::vector<float> scores;       // merge priority: higher merges first
  uint32_t maxTokenLength = 0;
};

/// Parses llama2.c's tokenizer.bin: int32 max_token_length, then for each of
/// `vocabSize` tokens a float32 score, an int32 length and that many bytes
/// (all little-endian). Any inconsistency (short file, bad lengths, trailing
/// bytes, non-finite scores) is an Error whose message starts with `source`.
Expected<Vocabulary> parseLlama2cTokenizer(std::span<const uint8_t> bytes,
                                           uint32_t vocabSize,
                                           const std::string &source);

/// Maps `path` and parses it with parseLlama2cTokenizer.
Expected<Vocabulary> loadLlama2cTokenizer(const std::string &path,
                                          uint32_t vocabSize);

class Tokenizer {
public:
  static constexpr int32_t kBos = 1, kEos = 2;
  /// Ids 3..258 stand for the raw bytes 0x00..0xFF when no piece matches.
  static constexpr int32_t kFirstByteToken = 3;
  static constexpr size_t kMinVocabSize = kFirstByteToken + 256;

  /// Fails if the vocabulary is inconsistent: pieces and scores of different
  /// sizes, fewer than 259 tokens, a non-finite score, or a byte-fallback id
  /// whose piece is not its byte spelled "<0xXX>", raw, or as the UTF-8 of
  /// U+00XX (all three occur in llama2.c tokenizer.bin files).
  static Expected<Tokenizer> create(Vocabulary vocab);

  /// run.c `encode`: optional BOS; for non-empty text the dummy-prefix piece
  /// " "; one token per UTF-8 codepoint (byte fallback when the codepoint is
  /// not a piece); then greedy merging of the adjacent pair whose
  /// concatenation has the highest score, leftmost on ties. Never adds EOS.
  /// Accepts any bytes: a byte that does not start a well-formed codepoint
  /// is a unit of its own and falls back to its byte token.
  std::vector<int32_t> encode(std::string_view text, bool addBos) const;

  /// run.c `decode(prev, token)`: the bytes to print for `token` when it
  /// follows `prev`. After BOS a leading space is dropped (it is the dummy
  /// prefix); byte-fallback ids 3..258 and "<0xXX>" pieces become the raw
  /// byte. BOS, EOS and ids outside the vocabulary print nothing.
  std::string decodePiece(int32_t prev, int32_t token) const;

  /// Concatenates decodePiece over `ids`, each piece decoded after the id
  /// before it; the first id has no predecessor. So decode(encode(s, true))
  /// == s for text made of pieces and bytes.
  std::string decode(std::span<const int32_t> ids) const;

  size_t vocabSize() const { return vocab_.pieces.size(); }
  const Vocabulary &vocabulary() const { return vocab_; }

  /// The id whose piece is exactly `piece`, or -1. Byte-fallback ids are
  /// not found here: a piece that duplicates one (the real tokenizer.bin
  /// stores " " both as byte 0x20 and as SentencePiece's "▁") resolves to
  /// the ordinary piece, as SentencePiece would.
  int32_t lookup(std::string_view piece) const;

private:
  // Lets unordered_map::find take a string_view without building a string.
  struct PieceHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const {
      return std::hash<std::string_view>{}(s);
    }
  };

  explicit Tokenizer(Vocabulary vocab);
  void mergePairs(std::vector<int32_t> &symbols) const;

  Vocabulary vocab_;
  std::unordered_map<std::string, int32_t, PieceHash, std::equal_to<>> index_;
  size_t longestPiece_ = 0;
  int32_t dummyPrefix_ = 0;
};

} // namespace lathe
