#include "runtime/tokenizer/Tokenizer.h"

#include "runtime/support/MappedFile.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <random>

namespace lathe {
namespace {

using Ids = std::vector<int32_t>;

//===----------------------------------------------------------------------===//
// A hand-made vocabulary: the 3 control tokens, the 256 byte tokens, then a
// few pieces whose scores fix the merge order the tests below work out.
//===----------------------------------------------------------------------===//

enum : int32_t {
  kSpace = 259, // " ", the dummy prefix
  kA,           // "a"
  kB,           // "b"
  kC,           // "c"
  kAB,          // "ab"   -1
  kBC,          // "bc"   -2
  kSpaceA,      // " a"   -3
  kABC,         // "abc"  -0.5
  kAA,          // "aa"   -4
  kH,           // "h"
  kI,           // "i"
  kHI,          // "hi"   -5
  kSpaceHI,     // " hi"  -6
  kX,           // "x"
  kY,           // "y"
  kZ,           // "z"
  kXY,          // "xy"   -8
  kYZ,          // "yz"   -8 (ties with "xy")
  kUUmlaut,     // "ü", a two-byte codepoint that is a piece
  kLowScore,    // "zz" at -1e10, which run.c never merges into
};

int32_t byteToken(uint8_t b) { return Tokenizer::kFirstByteToken + b; }

Vocabulary smallVocabulary() {
  Vocabulary v;
  auto add = [&](std::string piece, float score) {
    v.pieces.push_back(std::move(piece));
    v.scores.push_back(score);
  };
  add("<unk>", 0);
  add("\n<s>\n", 0);
  add("\n</s>\n", 0);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    add(name, 0);
  }
  add(" ", -100);
  add("a", -100);
  add("b", -100);
  add("c", -100);
  add("ab", -1);
  add("bc", -2);
  add(" a", -3);
  add("abc", -0.5f);
  add("aa", -4);
  add("h", -100);
  add("i", -100);
  add("hi", -5);
  add(" hi", -6);
  add("x", -100);
  add("y", -100);
  add("z", -100);
  add("xy", -8);
  add("yz", -8);
  add("\xC3\xBC", -100);
  add("zz", -1e10f);
  for (const std::string &p : v.pieces)
    v.maxTokenLength = std::max<uint32_t>(v.maxTokenLength, p.size());
  return v;
}

Tokenizer smallTokenizer() {
  auto t = Tokenizer::create(smallVocabulary());
  EXPECT_TRUE(t) << t.error().message();
  return t.take();
}

// run.c's encode transcribed literally (quadratic rescans), over the same
// piece lookup. The heap-based merge must agree with it on every input.
Ids naiveEncode(const Tokenizer &t, std::string_view text) {
  const Vocabulary &v = t.vocabulary();
  Ids tokens;
  if (!text.empty()) {
    int32_t space = t.lookup(" ");
    tokens.push_back(space >= 0 ? space : byteToken(' '));
  }
  // One unit per well-formed codepoint, else per byte. (run.c instead
  // appends up to three continuation bytes whatever the lead byte says;
  // the two agree on well-formed UTF-8.) The random texts below contain no
  // overlong forms or surrogates, so lead-byte lengths suffice here.
  for (size_t i = 0; i < text.size();) {
    uint8_t lead = static_cast<uint8_t>(text[i]);
    size_t want = lead >= 0xF0 && lead <= 0xF4   ? 4
                  : lead >= 0xE0 && lead <= 0xEF ? 3
                  : lead >= 0xC2 && lead <= 0xDF ? 2
                                                 : 1;
    size_t len = 1;
    if (i + want <= text.size()) {
      len = want;
      for (size_t k = 1; k < want; ++k)
        if ((static_cast<uint8_t>(text[i + k]) & 0xC0) != 0x80)
          len = 1;
    }
    int32_t id = t.lookup(text.substr(i, len));
    if (id >= 0) {
      tokens.push_back(id);
    } else {
      for (size_t k = 0; k < len; ++k)
        tokens.push_back(byteToken(static_cast<uint8_t>(text[i + k])));
    }
    i += len;
  }
  while (true) {
    float bestScore = -1e10f;
    int32_t bestId = -1;
    size_t bestIdx = 0;
    for (size_t i = 0; i + 1 < tokens.size(); ++i) {
      int32_t id = t.lookup(v.pieces[tokens[i]] + v.pieces[tokens[i + 1]]);
      if (id != -1 && v.scores[id] > bestScore) {
        bestScore = v.scores[id];
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestId == -1)
      break;
    tokens[bestIdx] = bestId;
    tokens.erase(tokens.begin() + bestIdx + 1);
  }
  return tokens;
}

TEST(TokenizerEncode, EmptyText) {
  Tokenizer t = smallTokenizer();
  EXPECT_EQ(t.encode("", false), Ids{});
  // No dummy prefix without text, as in run.c.
  EXPECT_EQ(t.encode("", true), Ids{Tokenizer::kBos});
}

TEST(TokenizerEncode, DummyPrefixMergesIntoFirstWord) {
  Tokenizer t = smallTokenizer();
  // [" ", "a"] -> " a"
  EXPECT_EQ(t.encode("a", false), Ids{kSpaceA});
  EXPECT_EQ(t.encode("a", true), (Ids{Tokenizer::kBos, kSpaceA}));
  // "h" alone never merges with " ", so the dummy prefix stays separate.
  EXPECT_EQ(t.encode("h", false), (Ids{kSpace, kH}));
}

TEST(TokenizerEncode, HighestScoreMergesFirst) {
  Tokenizer t = smallTokenizer();
  // [" ",a,b,c]: "ab"(-1) beats "bc"(-2) and " a"(-3); then "abc"(-0.5).
  // Had " a" gone first, "abc" could never form.
  EXPECT_EQ(t.encode("abc", false), (Ids{kSpace, kABC}));
  // [" ",h,i]: "hi"(-5), then " hi"(-6).
  EXPECT_EQ(t.encode("hi", false), Ids{kSpaceHI});
  // [" ",b,c,a]: "bc"(-2) is the only merge; " b" and "ca" are not pieces.
  EXPECT_EQ(t.encode("bca", false), (Ids{kSpace, kBC, kA}));
}

TEST(TokenizerEncode, TiesGoToTheLeftmostPair) {
  Tokenizer t = smallTokenizer();
  // [" ",b,a,a,a]: two "aa"(-4) candidates; the left one merges, leaving
  // [" ",b,aa,a]. Rightmost-first would give [" ",b,a,aa].
  EXPECT_EQ(t.encode("baaa", false), (Ids{kSpace, kB, kAA, kA}));
  // Different pieces with equal scores: "xy"(-8) is left of "yz"(-8).
  EXPECT_EQ(t.encode("xyz", false), (Ids{kSpace, kXY, kZ}));
  // A higher score to the right still wins over a tie on the left.
  EXPECT_EQ(t.encode("xyzab", false), (Ids{kSpace, kXY, kZ, kAB}));
}

TEST(TokenizerEncode, PiecesAtMinusTenBillionNeverMerge) {
  Tokenizer t = smallTokenizer();
  // run.c's best score starts at -1e10 and needs a strictly greater score.
  EXPECT_EQ(t.encode("zz", false), (Ids{kSpace, kZ, kZ}));
}

TEST(TokenizerEncode, ByteFallbackForMissingCodepoints) {
  Tokenizer t = smallTokenizer();
  // "é" (C3 A9) is not a piece: its two bytes become byte tokens.
  EXPECT_EQ(t.encode("\xC3\xA9", false),
            (Ids{kSpace, byteToken(0xC3), byteToken(0xA9)}));
  // "ü" (C3 BC) is a piece and stays one token.
  EXPECT_EQ(t.encode("\xC3\xBC", false), (Ids{kSpace, kUUmlaut}));
  // U+1F600 (F0 9F 98 80) falls back to four byte tokens.
  EXPECT_EQ(t.encode("a\xF0\x9F\x98\x80", false),
            (Ids{kSpaceA, byteToken(0xF0), byteToken(0x9F), byteToken(0x98),
                 byteToken(0x80)}));
  // Newline is not a piece in this vocabulary.
  EXPECT_EQ(t.encode("a\nb", false), (Ids{kSpaceA, byteToken('\n'), kB}));
}

TEST(TokenizerEncode, MalformedUtf8BecomesByteTokens) {
  Tokenizer t = smallTokenizer();
  // A stray continuation byte between letters.
  EXPECT_EQ(t.encode("a\x80"
                     "b",
                     false),
            (Ids{kSpaceA, byteToken(0x80), kB}));
  // A truncated three-byte sequence at the end of the text.
  EXPECT_EQ(t.encode("a\xE2\x82", false),
            (Ids{kSpaceA, byteToken(0xE2), byteToken(0x82)}));
  // A lead byte followed by a non-continuation: each byte on its own, and
  // the "b" after it is still found as a piece.
  EXPECT_EQ(t.encode("\xC3"
                     "b",
                     false),
            (Ids{kSpace, byteToken(0xC3), kB}));
  // "ü" followed by an extra continuation byte: the codepoint is still
  // found and only the extra byte falls back.
  EXPECT_EQ(t.encode("\xC3\xBC\xBC", false),
            (Ids{kSpace, kUUmlaut, byteToken(0xBC)}));
  // Overlong NUL and a lone surrogate are malformed.
  EXPECT_EQ(t.encode("\xC0\x80", false),
            (Ids{kSpace, byteToken(0xC0), byteToken(0x80)}));
  EXPECT_EQ(t.encode("\xED\xA0\x80", false),
            (Ids{kSpace, byteToken(0xED), byteToken(0xA0), byteToken(0x80)}));
  // Embedded NUL is an ordinary byte, not the end of the text.
  EXPECT_EQ(t.encode(std::string_view("a\0b", 3), false),
            (Ids{kSpaceA, byteToken(0), kB}));
}

TEST(TokenizerEncode, LongInputIsLinearish) {
  Tokenizer t = smallTokenizer();
  std::string text;
  for (int i = 0; i < 100000; ++i)
    text += "abc";
  Ids ids = t.encode(text, true);
  ASSERT_EQ(ids.size(), 100002u);
  EXPECT_EQ(ids[0], Tokenizer::kBos);
  EXPECT_EQ(ids[1], kSpace);
  for (size_t i = 2; i < ids.size(); ++i)
    ASSERT_EQ(ids[i], kABC) << "at " << i;
}

TEST(TokenizerEncode, MatchesQuadraticRunCMerge) {
  Tokenizer t = smallTokenizer();
  const std::vector<std::string> alphabet = {
      "a", "b", "c",        " ",        "h",    "i", "x",
      "y", "z", "\xC3\xBC", "\xC3\xA9", "\x80", "\n"};
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string text;
    size_t length = rng() % 40;
    for (size_t i = 0; i < length; ++i)
      text += alphabet[rng() % alphabet.size()];
    ASSERT_EQ(t.encode(text, false), naiveEncode(t, text)) << "text: " << text;
  }
}

TEST(TokenizerDecode, Pieces) {
  Tokenizer t = smallTokenizer();
  // After BOS the dummy prefix space is dropped; elsewhere it is kept.
  EXPECT_EQ(t.decodePiece(Tokenizer::kBos, kSpaceA), "a");
  EXPECT_EQ(t.decodePiece(kA, kSpaceA), " a");
  EXPECT_EQ(t.decodePiece(Tokenizer::kBos, kSpace), "");
  // Byte tokens print their byte.
  EXPECT_EQ(t.decodePiece(kA, byteToken('\n')), "\n");
  EXPECT_EQ(t.decodePiece(kA, byteToken(0)), std::string(1, '\0'));
  EXPECT_EQ(t.decodePiece(kA, byteToken(0xFF)), "\xFF");
  // Control tokens and bad ids print nothing.
  EXPECT_EQ(t.decodePiece(kA, Tokenizer::kBos), "");
  EXPECT_EQ(t.decodePiece(kA, Tokenizer::kEos), "");
  EXPECT_EQ(t.decodePiece(kA, -5), "");
  EXPECT_EQ(t.decodePiece(kA, 1 << 30), "");
}

TEST(TokenizerDecode, RoundTrip) {
  Tokenizer t = smallTokenizer();
  for (std::string text : {"abc", "hi a\nb", "  baaa xyz\n",
                           "\xC3\xA9\xF0\x9F\x98\x80", "a\x80\xC3"}) {
    Ids ids = t.encode(text, true);
    EXPECT_EQ(t.decode(ids), text);
  }
  // Without BOS the first word keeps its dummy-prefix space.
  EXPECT_EQ(t.decode(t.encode("hi", false)), " hi");
}

TEST(TokenizerCreate, RejectsInconsistentVocabularies) {
  {
    Vocabulary v = smallVocabulary();
    v.scores.pop_back();
    auto t = Tokenizer::create(std::move(v));
    ASSERT_FALSE(t);
    EXPECT_NE(t.error().message().find("scores"), std::string::npos);
  }
  {
    auto t = Tokenizer::create(Vocabulary{});
    ASSERT_FALSE(t);
    EXPECT_NE(t.error().message().find("259"), std::string::npos);
  }
  {
    Vocabulary v = smallVocabulary();
    v.pieces.resize(258);
    v.scores.resize(258);
    auto t = Tokenizer::create(std::move(v));
    ASSERT_FALSE(t);
    EXPECT_NE(t.error().message().find("258 tokens"), std::string::npos)
        << t.error().message();
  }
  {
    Vocabulary v = smallVocabulary();
    v.scores[kAB] = std::numeric_limits<float>::quiet_NaN();
    auto t = Tokenizer::create(std::move(v));
    ASSERT_FALSE(t);
    EXPECT_NE(t.error().message().find("non-finite"), std::string::npos);
  }
  {
    Vocabulary v = smallVocabulary();
    v.pieces[byteToken(0x41)] = "A?";
    auto t = Tokenizer::create(std::move(v));
    ASSERT_FALSE(t);
    EXPECT_NE(t.error().message().find("byte 65"), std::string::npos)
        << t.error().message();
  }
}

TEST(TokenizerCreate, AcceptsRawByteTokensAndPrefersOrdinaryPieces) {
  // The tokenizer.bin that ships with llama2.c stores byte tokens as the
  // raw byte, so " " exists both as byte token 35 and as an ordinary piece.
  Vocabulary v = smallVocabulary();
  for (int b = 0; b < 256; ++b)
    v.pieces[byteToken(b)] = std::string(1, static_cast<char>(b));
  auto t = Tokenizer::create(std::move(v));
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(t->lookup(" "), kSpace);
  EXPECT_EQ(t->encode("h", false), (Ids{kSpace, kH}));
  EXPECT_EQ(t->encode("q", false), (Ids{kSpace, byteToken('q')}));
  EXPECT_EQ(t->decode(t->encode("q\n", true)), "q\n");
}

//===----------------------------------------------------------------------===//
// Parsing tokenizer.bin.
//===----------------------------------------------------------------------===//

struct Entry {
  float score;
  int32_t length;
  std::string bytes;
};

std::vector<uint8_t> serialize(int32_t maxLength,
                               const std::vector<Entry> &entries) {
  std::vector<uint8_t> out;
  auto put32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i)
      out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  put32(static_cast<uint32_t>(maxLength));
  for (const Entry &e : entries) {
    uint32_t bits;
    std::memcpy(&bits, &e.score, 4);
    put32(bits);
    put32(static_cast<uint32_t>(e.length));
    out.insert(out.end(), e.bytes.begin(), e.bytes.end());
  }
  return out;
}

std::vector<Entry> threeEntries() {
  return {{0.0f, 5, "<unk>"}, {-1.5f, 2, "ab"}, {-2.0f, 0, ""}};
}

std::string parseError(std::span<const uint8_t> bytes, uint32_t vocabSize) {
  auto v = parseLlama2cTokenizer(bytes, vocabSize, "tok.bin");
  if (v)
    return "<parsed>";
  return v.error().message();
}

bool contains(const std::string &haystack, const std::string &needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(TokenizerParse, ParsesWellFormedFile) {
  std::vector<uint8_t> bytes = serialize(5, threeEntries());
  auto v = parseLlama2cTokenizer(bytes, 3, "tok.bin");
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(v->maxTokenLength, 5u);
  EXPECT_EQ(v->pieces, (std::vector<std::string>{"<unk>", "ab", ""}));
  EXPECT_EQ(v->scores, (std::vector<float>{0.0f, -1.5f, -2.0f}));
}

TEST(TokenizerParse, RejectsTruncatedFiles) {
  std::vector<uint8_t> bytes = serialize(5, threeEntries());
  EXPECT_TRUE(contains(parseError(std::span(bytes).first(0), 3), "too short"));
  EXPECT_TRUE(contains(parseError(std::span(bytes).first(3), 3), "too short"));
  // Cut inside the second entry's header.
  std::string msg = parseError(std::span(bytes).first(4 + 8 + 5 + 6), 3);
  EXPECT_TRUE(contains(msg, "tok.bin: token 1")) << msg;
  EXPECT_TRUE(contains(msg, "file ends after 1 tokens")) << msg;
  EXPECT_TRUE(
      contains(msg, "not a llama2.c tokenizer for a 3-token vocabulary"))
      << msg;
  // Cut inside the second entry's bytes.
  msg = parseError(std::span(bytes).first(4 + 8 + 5 + 8 + 1), 3);
  EXPECT_TRUE(contains(msg, "runs past the end of the file")) << msg;
}

TEST(TokenizerParse, RejectsBadLengths) {
  std::vector<Entry> entries = threeEntries();
  entries[1].length = 1000; // > max_token_length
  std::string msg = parseError(serialize(5, entries), 3);
  EXPECT_TRUE(contains(msg, "token 1 at offset 17: length 1000")) << msg;

  entries = threeEntries();
  entries[1].length = -1;
  msg = parseError(serialize(5, entries), 3);
  EXPECT_TRUE(contains(msg, "length -1")) << msg;

  // Within max_token_length but past the end of the file.
  entries = threeEntries();
  entries[2].length = 4;
  msg = parseError(serialize(5, entries), 3);
  EXPECT_TRUE(contains(msg, "runs past the end")) << msg;

  EXPECT_TRUE(contains(parseError(serialize(0, threeEntries()), 3),
                       "max_token_length is 0"));
  EXPECT_TRUE(contains(parseError(serialize(-7, threeEntries()), 3),
                       "max_token_length is -7"));
}

TEST(TokenizerParse, RejectsWrongVocabularySize) {
  std::vector<uint8_t> bytes = serialize(5, threeEntries());
  std::string msg = parseError(bytes, 2);
  EXPECT_TRUE(contains(msg, "8 bytes remain after 2 tokens")) << msg;
  EXPECT_TRUE(
      contains(msg, "not a llama2.c tokenizer for a 2-token vocabulary"))
      << msg;
  msg = parseError(bytes, 4);
  EXPECT_TRUE(contains(msg, "file ends after 3 tokens")) << msg;
  EXPECT_TRUE(contains(parseError(bytes, 0), "must be positive"));
  // A huge size must fail cleanly, not try to reserve it.
  EXPECT_TRUE(contains(parseError(bytes, 0xFFFFFFFFu), "file ends after 3"));
}

TEST(TokenizerParse, RejectsTrailingBytes) {
  std::vector<uint8_t> bytes = serialize(5, threeEntries());
  bytes.push_back(0);
  std::string msg = parseError(bytes, 3);
  EXPECT_TRUE(contains(msg, "1 bytes remain after 3 tokens")) << msg;
}

TEST(TokenizerParse, RejectsNonFiniteScores) {
  std::vector<Entry> entries = threeEntries();
  entries[2].score = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(contains(parseError(serialize(5, entries), 3),
                       "token 2 at offset 27: score is not finite"));
  entries[2].score = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(contains(parseError(serialize(5, entries), 3), "not finite"));
}

TEST(TokenizerParse, LoadReportsMissingFile) {
  auto v = loadLlama2cTokenizer("/nonexistent/tokenizer.bin", 32000);
  ASSERT_FALSE(v);
  EXPECT_TRUE(contains(v.error().message(), "/nonexistent/tokenizer.bin"));
}

//===----------------------------------------------------------------------===//
// The real llama2.c tokenizer.bin, found through $LATHE_TOKENIZER.
//===----------------------------------------------------------------------===//

class RealTokenizer : public ::testing::Test {
protected:
  void SetUp() override {
    const char *path = std::getenv("LATHE_TOKENIZER");
    if (!path || !*path)
      GTEST_SKIP() << "LATHE_TOKENIZER is not set";
    auto file = MappedFile::open(path);
    if (!file)
      GTEST_SKIP() << file.error().message();
    file_ = *file;
    auto vocab = parseLlama2cTokenizer(file_->bytes(), 32000, path);
    ASSERT_TRUE(vocab) << vocab.error().message();
    auto t = Tokenizer::create(vocab.take());
    ASSERT_TRUE(t) << t.error().message();
    tokenizer_.emplace(t.take());
  }

  std::shared_ptr<MappedFile> file_;
  std::optional<Tokenizer> tokenizer_;
};

TEST_F(RealTokenizer, ReferencePrompts) {
  // Expected ids from shared/reference/stories15M_reference.json, produced
  // by llama2.c's run.c.
  const std::vector<std::pair<std::string, Ids>> cases = {
      {"Once upon a time", {1, 9038, 2501, 263, 931}},
      {"The little dog", {1, 450, 2217, 11203}},
      {"Lily and her mom went to the park. They saw",
       {1, 365, 2354, 322, 902, 16823, 3512, 304, 278, 14089, 29889, 2688,
        4446}},
      {"One day, a boy named Sam found a",
       {1, 3118, 2462, 29892, 263, 8023, 4257, 3685, 1476, 263}},
      {"The sun was hot and", {1, 450, 6575, 471, 7375, 322}},
  };
  for (const auto &[text, expected] : cases) {
    EXPECT_EQ(tokenizer_->encode(text, true), expected) << text;
    EXPECT_EQ(tokenizer_->decode(expected), text);
  }
}

TEST_F(RealTokenizer, RoundTrip) {
  for (std::string text :
       {"Hello world", "Once upon a time.\nThe end.\n", "  two leading spaces",
        "\nstarts with a newline", "tabs\tand 123 numbers!?",
        "caf\xC3\xA9 \xF0\x9F\x98\x80", "a\x80\xFF broken utf-8"}) {
    EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text, true)), text) << text;
  }
}

TEST_F(RealTokenizer, MatchesQuadraticRunCMerge) {
  const std::string alphabet =
      "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ.,!?'\n\t0123456789  eeaaoo";
  std::mt19937 rng(99);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    size_t length = rng() % 120;
    for (size_t i = 0; i < length; ++i)
      text += alphabet[rng() % alphabet.size()];
    ASSERT_EQ(tokenizer_->encode(text, false), naiveEncode(*tokenizer_, text))
        << "text: " << text;
  }
}

TEST_F(RealTokenizer, WrongVocabularySizeIsReported) {
  auto tooMany = parseLlama2cTokenizer(file_->bytes(), 32001, "tokenizer.bin");
  ASSERT_FALSE(tooMany);
  EXPECT_TRUE(contains(tooMany.error().message(),
                       "not a llama2.c tokenizer for a 32001-token vocabulary"))
      << tooMany.error().message();
  auto tooFew = parseLlama2cTokenizer(file_->bytes(), 31999, "tokenizer.bin");
  ASSERT_FALSE(tooFew);
  EXPECT_TRUE(contains(tooFew.error().message(), "remain after 31999 tokens"))
      << tooFew.error().message();
}

} // namespace
} // namespace lathe
