#include "runtime/tokenizer/Tokenizer.h"

#include "runtime/support/MappedFile.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <queue>

namespace lathe {

namespace {

// tokenizer.bin is written little-endian by llama2.c's exporter; assembling
// the bytes explicitly keeps the reader correct on any host.
uint32_t readLe32(std::span<const uint8_t> bytes, size_t offset) {
  return static_cast<uint32_t>(bytes[offset]) |
         static_cast<uint32_t>(bytes[offset + 1]) << 8 |
         static_cast<uint32_t>(bytes[offset + 2]) << 16 |
         static_cast<uint32_t>(bytes[offset + 3]) << 24;
}

std::string notLlama2c(uint32_t vocabSize) {
  return "not a llama2.c tokenizer for a " + std::to_string(vocabSize) +
         "-token vocabulary";
}

int hexDigit(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

// SentencePiece spells byte-fallback pieces "<0xXX>"; returns the byte or -1.
int parseBytePiece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>')
    return -1;
  int hi = hexDigit(piece[3]), lo = hexDigit(piece[4]);
  if (hi < 0 || lo < 0)
    return -1;
  return hi * 16 + lo;
}

// The three spellings of byte-fallback pieces found in tokenizer.bin files:
// SentencePiece's "<0xXX>" (llama2.c's current exporter), the raw byte, and
// the UTF-8 encoding of U+00XX (the early exporter, which wrote
// chr(byte).encode("utf-8"); the tokenizer.bin bundled with stories15M has
// raw bytes below 0x80 and this form above).
bool isBytePieceFor(std::string_view piece, uint8_t b) {
  if (parseBytePiece(piece) == b)
    return true;
  if (piece.size() == 1)
    return static_cast<uint8_t>(piece[0]) == b;
  return b >= 0x80 && piece.size() == 2 &&
         static_cast<uint8_t>(piece[0]) == (0xC0 | (b >> 6)) &&
         static_cast<uint8_t>(piece[1]) == (0x80 | (b & 0x3F));
}

// Length of the well-formed UTF-8 sequence starting at `text[i]`, or 1 when
// there is none, so that a stray or truncated byte becomes its own unit and
// falls back to its byte token. Overlong forms and surrogates count as
// malformed; they cannot match a vocabulary piece anyway.
size_t utf8UnitLength(std::string_view text, size_t i) {
  auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  uint8_t lead = byte(i);
  size_t length;
  uint8_t secondLo = 0x80, secondHi = 0xBF;
  if (lead < 0x80)
    return 1;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0)
      secondLo = 0xA0;
    else if (lead == 0xED)
      secondHi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0)
      secondLo = 0x90;
    else if (lead == 0xF4)
      secondHi = 0x8F;
  } else {
    return 1;
  }
  if (i + length > text.size())
    return 1;
  if (byte(i + 1) < secondLo || byte(i + 1) > secondHi)
    return 1;
  for (size_t k = 2; k < length; ++k)
    if ((byte(i + k) & 0xC0) != 0x80)
      return 1;
  return length;
}

} // namespace

Expected<Vocabulary> parseLlama2cTokenizer(std::span<const uint8_t> bytes,
                                           uint32_t vocabSize,
                                           const std::string &source) {
  if (vocabSize == 0)
    return Error(source + ": vocabulary size must be positive");
  if (bytes.size() < 4)
    return Error(source + ": file is " + std::to_string(bytes.size()) +
                 " bytes, too short for a header; " + notLlama2c(vocabSize));
  int32_t maxLength = static_cast<int32_t>(readLe32(bytes, 0));
  if (maxLength <= 0)
    return Error(source + ": max_token_length is " + std::to_string(maxLength) +
                 "; " + notLlama2c(vocabSize));

  Vocabulary vocab;
  vocab.maxTokenLength = static_cast<uint32_t>(maxLength);
  // Every entry takes at least 8 bytes, so a huge vocabSize cannot make us
  // reserve more than the file could describe.
  size_t plausible = std::min<size_t>(vocabSize, bytes.size() / 8);
  vocab.pieces.reserve(plausible);
  vocab.scores.reserve(plausible);

  size_t offset = 4;
  for (uint32_t id = 0; id < vocabSize; ++id) {
    size_t start = offset;
    auto where = [&] {
      return source + ": token " + std::to_string(id) + " at offset " +
             std::to_string(start);
    };
    if (bytes.size() - offset < 8)
      return Error(where() + ": file ends after " + std::to_string(id) +
                   " tokens (" + std::to_string(bytes.size()) + " bytes); " +
                   notLlama2c(vocabSize));
    float score = std::bit_cast<float>(readLe32(bytes, offset));
    int32_t length = static_cast<int32_t>(readLe32(bytes, offset + 4));
    offset += 8;
    if (!std::isfinite(score))
      return Error(where() + ": score is not finite");
    if (length < 0 || length > maxLength)
      return Error(where() + ": length " + std::to_string(length) +
                   " is outside [0, max_token_length = " +
                   std::to_string(maxLength) + "]; " + notLlama2c(vocabSize));
    if (bytes.size() - offset < static_cast<size_t>(length))
      return Error(where() + ": " + std::to_string(length) +
                   "-byte piece runs past the end of the file (" +
                   std::to_string(bytes.size()) + " bytes); " +
                   notLlama2c(vocabSize));
    vocab.pieces.emplace_back(reinterpret_cast<const char *>(&bytes[offset]),
                              static_cast<size_t>(length));
    vocab.scores.push_back(score);
    offset += static_cast<size_t>(length);
  }
  if (offset != bytes.size())
    return Error(source + ": " + std::to_string(bytes.size() - offset) +
                 " bytes remain after " + std::to_string(vocabSize) +
                 " tokens; " + notLlama2c(vocabSize));
  return vocab;
}

Expected<Vocabulary> loadLlama2cTokenizer(const std::string &path,
                                          uint32_t vocabSize) {
  auto file = MappedFile::open(path);
  if (!file)
    return file.error();
  return parseLlama2cTokenizer((*file)->bytes(), vocabSize, path);
}

Tokenizer::Tokenizer(Vocabulary vocab) : vocab_(std::move(vocab)) {}

Expected<Tokenizer> Tokenizer::create(Vocabulary vocab) {
  size_t n = vocab.pieces.size();
  if (n != vocab.scores.size())
    return Error("tokenizer: " + std::to_string(n) + " pieces but " +
                 std::to_string(vocab.scores.size()) + " scores");
  if (n < kMinVocabSize)
    return Error("tokenizer: vocabulary has " + std::to_string(n) +
                 " tokens; byte fallback needs at least " +
                 std::to_string(kMinVocabSize) + " (ids 3..258)");
  if (n > static_cast<size_t>(INT32_MAX))
    return Error("tokenizer: vocabulary has " + std::to_string(n) +
                 " tokens, more than int32 ids can name");
  for (size_t id = 0; id < n; ++id)
    if (!std::isfinite(vocab.scores[id]))
      return Error("tokenizer: token " + std::to_string(id) +
                   " has a non-finite score");
  // Byte fallback emits id b+3 for byte b, and decoding turns it back into
  // b, so those ids must really be the byte tokens.
  for (int b = 0; b < 256; ++b) {
    const std::string &piece = vocab.pieces[kFirstByteToken + b];
    if (!isBytePieceFor(piece, static_cast<uint8_t>(b)))
      return Error("tokenizer: token " + std::to_string(kFirstByteToken + b) +
                   " should be the byte-fallback piece for byte " +
                   std::to_string(b) + " but is \"" + piece + "\"");
  }

  Tokenizer tokenizer(std::move(vocab));
  const std::vector<std::string> &pieces = tokenizer.vocab_.pieces;
  tokenizer.index_.reserve(n);
  for (size_t id = 0; id < n; ++id) {
    tokenizer.longestPiece_ =
        std::max(tokenizer.longestPiece_, pieces[id].size());
    bool isByteToken =
        id >= static_cast<size_t>(kFirstByteToken) && id < kMinVocabSize;
    // emplace keeps the lowest id of a duplicated piece; run.c's
    // qsort+bsearch leaves that choice unspecified.
    if (!isByteToken)
      tokenizer.index_.emplace(pieces[id], static_cast<int32_t>(id));
  }
  int32_t space = tokenizer.lookup(" ");
  tokenizer.dummyPrefix_ = space >= 0 ? space : kFirstByteToken + ' ';
  return tokenizer;
}

int32_t Tokenizer::lookup(std::string_view piece) const {
  auto it = index_.find(piece);
  return it == index_.end() ? -1 : it->second;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text,
                                       bool addBos) const {
  std::vector<int32_t> symbols;
  symbols.reserve(text.size() + 1);
  // SentencePiece's add_dummy_prefix: words start with a space, so the first
  // word of a prompt gets the same pieces as a word mid-sentence.
  if (!text.empty())
    symbols.push_back(dummyPrefix_);
  for (size_t i = 0; i < text.size();) {
    size_t length = utf8UnitLength(text, i);
    int32_t id = lookup(text.substr(i, length));
    if (id >= 0) {
      symbols.push_back(id);
    } else {
      for (size_t k = 0; k < length; ++k)
        symbols.push_back(kFirstByteToken + static_cast<uint8_t>(text[i + k]));
    }
    i += length;
  }
  mergePairs(symbols);

  std::vector<int32_t> ids;
  ids.reserve(symbols.size() + 1);
  if (addBos)
    ids.push_back(kBos);
  ids.insert(ids.end(), symbols.begin(), symbols.end());
  return ids;
}

// run.c rescans all pairs after every merge, which is quadratic. This keeps
// the symbols in a linked list and the mergeable adjacent pairs in a heap
// ordered like run.c's scan (highest score, then leftmost); entries made
// stale by an earlier merge are skipped when popped. List order equals
// original position order, so "leftmost" is "smallest left index".
void Tokenizer::mergePairs(std::vector<int32_t> &symbols) const {
  const int32_t n = static_cast<int32_t>(symbols.size());
  if (n < 2)
    return;
  std::vector<int32_t> prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }

  struct Candidate {
    float score;
    int32_t left, right;
    int32_t leftId, rightId, mergedId;
  };
  auto lowerPriority = [](const Candidate &a, const Candidate &b) {
    if (a.score != b.score)
      return a.score < b.score;
    return a.left > b.left;
  };
  std::priority_queue<Candidate, std::vector<Candidate>,
                      decltype(lowerPriority)>
      heap(lowerPriority);

  std::string scratch;
  scratch.reserve(2 * longestPiece_);
  auto consider = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0)
      return;
    const std::string &a = vocab_.pieces[symbols[left]];
    const std::string &b = vocab_.pieces[symbols[right]];
    if (a.size() + b.size() > longestPiece_)
      return;
    scratch.assign(a);
    scratch.append(b);
    int32_t merged = lookup(scratch);
    // run.c starts its best score at -1e10, so pieces scored at or below it
    // are never merged into.
    if (merged < 0 || !(vocab_.scores[merged] > -1e10f))
      return;
    heap.push({vocab_.scores[merged], left, right, symbols[left],
               symbols[right], merged});
  };
  for (int32_t i = 0; i + 1 < n; ++i)
    consider(i, i + 1);

  constexpr int32_t kDead = -1;
  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    // A merge changes the left symbol's id and removes the right one, so an
    // entry is current exactly when both ends still hold the ids it saw and
    // are still neighbours. Ids cannot recur: a merge makes a longer piece.
    if (symbols[c.left] != c.leftId || symbols[c.right] != c.rightId ||
        next[c.left] != c.right)
      continue;
    symbols[c.left] = c.mergedId;
    symbols[c.right] = kDead;
    next[c.left] = next[c.right];
    if (next[c.right] >= 0)
      prev[next[c.right]] = c.left;
    consider(prev[c.left], c.left);
    consider(c.left, next[c.left]);
  }

  int32_t out = 0;
  for (int32_t i = 0; i < n; ++i)
    if (symbols[i] != kDead)
      symbols[out++] = symbols[i];
  symbols.resize(out);
}

std::string Tokenizer::decodePiece(int32_t prev, int32_t token) const {
  if (token < 0 || static_cast<size_t>(token) >= vocab_.pieces.size() ||
      token == kBos || token == kEos)
    return {};
  // Byte tokens print their byte whatever their spelling (create() checked
  // it). run.c prints the piece itself, which for bytes >= 0x80 in the
  // early-export spelling is a Latin-1 misreading, and breaks multi-byte
  // characters that fell back to bytes.
  if (token >= kFirstByteToken && static_cast<size_t>(token) < kMinVocabSize)
    return std::string(1, static_cast<char>(token - kFirstByteToken));
  std::string_view piece = vocab_.pieces[token];
  // SentencePiece's decoder drops the dummy prefix of the first word.
  if (prev == kBos && !piece.empty() && piece[0] == ' ')
    piece.remove_prefix(1);
  int byte = parseBytePiece(piece);
  if (byte >= 0)
    return std::string(1, static_cast<char>(byte));
  return std::string(piece);
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string text;
  int32_t prev = -1;
  for (int32_t id : ids) {
    text += decodePiece(prev, id);
    prev = id;
  }
  return text;
}

} // namespace lathe
