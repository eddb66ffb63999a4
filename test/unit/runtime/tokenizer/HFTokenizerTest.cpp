// HFTokenizer on two hand-made tokenizers whose every id the tests work
// out: one SentencePiece-style (Prepend/Replace normalizers, byte
// fallback, BOS from a template) and one byte-level (GPT-2 alphabet and
// regex). The real files are tested in HFTokenizerConformanceTest.
#include "runtime/tokenizer/HFTokenizer.h"
#include "runtime/tokenizer/TextTokenizer.h"

#include "runtime/tokenizer/ByteLevelAlphabet.h"
#include "runtime/tokenizer/Utf8.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace lathe {
namespace {

using Ids = std::vector<int32_t>;
const std::string kMeta = "\u2581";

// <unk> <s> </s>, the 256 "<0xXX>" byte tokens, then a few pieces.
enum : int32_t { kUnk = 0, kBos = 1, kEos = 2, kByte0 = 3, kMeta_ = 259, kH, kI, kHI, kMetaHI };

HFTokenizerSpec sentencePieceSpec() {
  HFTokenizerSpec s;
  s.vocab = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    s.vocab.push_back(name);
  }
  s.vocab.insert(s.vocab.end(), {kMeta, "h", "i", "hi", kMeta + "hi"});
  s.merges = {{kH, kI}, {kMeta_, kHI}};
  s.byteFallback = true;
  s.fuseUnk = true;
  s.unk = kUnk;
  s.addedTokens = {{kUnk, "<unk>", true}, {kBos, "<s>", true}, {kEos, "</s>", true}};
  s.normalizers = {{"Prepend", {kMeta}, {}}, {"Replace", {" ", kMeta}, {}}};
  s.decoders = {{"Replace", {kMeta, " "}, {}}, {"ByteFallback", {}, {}}, {"Fuse", {}, {}},
                {"Strip", {" "}, {1, 0}}};
  s.prefixIds = {kBos};
  s.bos = kBos, s.eos = kEos;
  return s;
}

HFTokenizer make(HFTokenizerSpec spec) {
  Expected<HFTokenizer> t = HFTokenizer::create(std::move(spec), "test");
  EXPECT_TRUE(t) << t.error().message();
  return t.take();
}

TEST(HFTokenizer, SentencePieceMergesAfterThePrefix) {
  HFTokenizer t = make(sentencePieceSpec());
  EXPECT_EQ(*t.encode("hi hi", true), (Ids{kBos, kMetaHI, kMetaHI}));
  EXPECT_EQ(*t.encode("hi hi", false), (Ids{kMetaHI, kMetaHI}));
  EXPECT_EQ(*t.encode("", true), (Ids{kBos})); // Prepend skips empty text
  EXPECT_EQ(t.decode(Ids{kBos, kMetaHI, kMetaHI}, true), "hi hi");
  EXPECT_EQ(t.decode(Ids{kBos, kMetaHI, kMetaHI}), "<s> hi hi");
}

TEST(HFTokenizer, SentencePieceFallsBackToBytes) {
  HFTokenizer t = make(sentencePieceSpec());
  // é is not a piece: its UTF-8 bytes C3 A9 become byte tokens.
  EXPECT_EQ(*t.encode("hé", false), (Ids{kMeta_, kH, kByte0 + 0xC3, kByte0 + 0xA9}));
  EXPECT_EQ(t.decode(Ids{kMeta_, kH, kByte0 + 0xC3, kByte0 + 0xA9}), "hé");
  // A lone continuation byte is not UTF-8: one U+FFFD per byte, as HF.
  EXPECT_EQ(t.decode(Ids{kH, kByte0 + 0xC3, kI}), "h\uFFFDi");
}

TEST(HFTokenizer, AddedTokensSplitTheTextBeforeNormalizing) {
  HFTokenizer t = make(sentencePieceSpec());
  // Each piece around <s> gets its own prefix (HF's legacy Llama behaviour).
  EXPECT_EQ(*t.encode("hi<s>hi", false), (Ids{kMetaHI, kBos, kMetaHI}));
  EXPECT_EQ(*t.encode("<s></s>", false), (Ids{kBos, kEos}));
}

TEST(HFTokenizer, WithoutByteFallbackUnknownCharactersFuseIntoOneUnk) {
  HFTokenizerSpec spec = sentencePieceSpec();
  spec.byteFallback = false;
  HFTokenizer t = make(spec);
  EXPECT_EQ(*t.encode("héé", false), (Ids{kMeta_, kH, kUnk}));
  spec.fuseUnk = false;
  EXPECT_EQ(*make(spec).encode("héé", false), (Ids{kMeta_, kH, kUnk, kUnk}));
}

// The byte-level tokenizer: ids 0..255 are the bytes in GPT-2's alphabet.
enum : int32_t { kAB = 256, kSpaceAB, kSpecial };

HFTokenizerSpec byteLevelSpec() {
  HFTokenizerSpec s;
  std::array<char32_t, 256> alphabet = byteLevelAlphabet();
  for (char32_t c : alphabet) {
    std::string piece;
    utf8::append(piece, c);
    s.vocab.push_back(piece);
  }
  s.vocab.push_back("ab");
  s.vocab.push_back("\u0120ab"); // Ġ is the space byte
  s.merges = {{'a', 'b'}, {' ', kAB}};
  s.addedTokens = {{kSpecial, "<|x|>", true}};
  s.preTokenizers = {{"ByteLevel", {}, {0, 1}}};
  s.decoders = {{"ByteLevel", {}, {}}};
  return s;
}

TEST(HFTokenizer, ByteLevelSplitsMapsAndMerges) {
  HFTokenizer t = make(byteLevelSpec());
  EXPECT_EQ(*t.encode("ab ab", true), (Ids{kAB, kSpaceAB}));
  EXPECT_EQ(*t.encode("é", true), (Ids{0xC3, 0xA9}));
  EXPECT_EQ(t.decode(Ids{0xC3, 0xA9}), "é");
  EXPECT_EQ(t.decode(Ids{0xC3}), "\uFFFD"); // half a character
  EXPECT_EQ(*t.encode("ab<|x|>ab", true), (Ids{kAB, kSpecial, kAB}));
  EXPECT_EQ(t.decode(Ids{kAB, kSpecial}), "ab<|x|>");
  EXPECT_EQ(t.decode(Ids{kAB, kSpecial}, true), "ab");
  EXPECT_EQ(t.decode(Ids{kAB, 999999}), "ab"); // unknown ids are skipped
}

TEST(HFTokenizer, ByteLevelAddPrefixSpaceAndIgnoreMerges) {
  HFTokenizerSpec spec = byteLevelSpec();
  spec.preTokenizers = {{"ByteLevel", {}, {1, 1}}};
  EXPECT_EQ(*make(spec).encode("ab", true), (Ids{kSpaceAB}));
  // With ignore_merges a pre-token found whole in the vocabulary is taken
  // as it is, even where the merges would not reach it.
  spec = byteLevelSpec();
  spec.merges = {{'a', 'b'}};
  EXPECT_EQ(*make(spec).encode(" ab", true), (Ids{' ', kAB}));
  spec.ignoreMerges = true;
  EXPECT_EQ(*make(spec).encode(" ab", true), (Ids{kSpaceAB}));
}

TEST(HFTokenizer, AddedTokenStripsAndSingleWord) {
  HFTokenizerSpec spec = byteLevelSpec();
  spec.addedTokens[0].lstrip = true;
  spec.addedTokens[0].rstrip = true;
  EXPECT_EQ(*make(spec).encode("ab  <|x|> ab", true), (Ids{kAB, kSpecial, kAB}));
  spec = byteLevelSpec();
  spec.addedTokens[0].singleWord = true;
  // Inside a word it is not the added token.
  EXPECT_NE((*make(spec).encode("ab<|x|>ab", true))[1], kSpecial);
  EXPECT_EQ(*make(spec).encode("<|x|>", true), (Ids{kSpecial}));
}

TEST(HFTokenizer, MetaspacePreTokenizerAndDecoder) {
  HFTokenizerSpec spec = sentencePieceSpec();
  spec.normalizers.clear();
  spec.preTokenizers = {{"Metaspace", {kMeta, "first"}, {1}}};
  spec.decoders = {{"Metaspace", {kMeta, "first"}, {}}};
  HFTokenizer t = make(spec);
  EXPECT_EQ(*t.encode("hi hi", false), (Ids{kMetaHI, kMetaHI}));
  // "first": only the text at the start of the input gets the prefix.
  EXPECT_EQ(*t.encode("<s>hi", false), (Ids{kBos, kHI}));
  EXPECT_EQ(t.decode(Ids{kMetaHI, kMetaHI}), "hi hi");
}

TEST(TextTokenizer, StreamHoldsBackHalfACharacter) {
  TextTokenizer t(make(byteLevelSpec()));
  Ids prompt{kAB};
  TextTokenizer::Stream stream(t, prompt);
  EXPECT_EQ(stream.next(' '), " ");
  EXPECT_EQ(stream.next(0xC3), ""); // the first byte of é
  EXPECT_EQ(stream.next(0xA9), "é");
  EXPECT_EQ(stream.next(kSpecial), ""); // special tokens are not text
  EXPECT_EQ(stream.next(kAB), "ab");
  EXPECT_EQ(t.decodeSequence(prompt, Ids{' ', 0xC3, 0xA9, kSpecial, kAB}), "ab éab");
  EXPECT_EQ(t.stopTokens(), Ids{}); // no BOS/EOS configured: nothing stops it
}

TEST(TextTokenizer, SentencePieceStreamKeepsTheSpaceAfterThePrompt) {
  TextTokenizer t(make(sentencePieceSpec()));
  Ids prompt = *t.encode("hi", true);
  TextTokenizer::Stream stream(t, prompt);
  // The Strip decoder drops only the text's first space, not this one.
  EXPECT_EQ(stream.next(kMetaHI), " hi");
  EXPECT_EQ(t.stopTokens(), (Ids{kEos, kBos}));
}

TEST(HFTokenizer, CreateRefusesInconsistentSpecs) {
  auto error = [](HFTokenizerSpec spec) {
    Expected<HFTokenizer> t = HFTokenizer::create(std::move(spec), "t.json");
    return t ? std::string() : t.error().message();
  };
  HFTokenizerSpec spec = byteLevelSpec();
  spec.merges.push_back({'x', 'y'});
  EXPECT_EQ(error(spec), "t.json: merge 2 ('x' 'y') makes a token not in the vocabulary");
  spec = byteLevelSpec();
  spec.merges.push_back({0, 100000});
  EXPECT_EQ(error(spec), "t.json: merge 2 joins ids 0 and 100000, outside the vocabulary");
  spec = byteLevelSpec();
  spec.normalizers = {{"Lowercase", {}, {}}};
  EXPECT_EQ(error(spec), "t.json: unsupported normalizer 'Lowercase'");
  spec = byteLevelSpec();
  spec.preTokenizers = {{"Split", {R"(\w+)"}, {}}};
  EXPECT_NE(error(spec).find("t.json: pre-tokenizer regex: escape '\\w'"), std::string::npos);
  spec = byteLevelSpec();
  spec.prefixIds = {-5};
  EXPECT_EQ(error(spec), "t.json: special token id -5 outside the vocabulary");
  spec = byteLevelSpec();
  spec.decoders = {{"Strip", {" "}, {1}}};
  EXPECT_EQ(error(spec), "t.json: decoder 'Strip' has 1 strings and 1 numbers, expects 1 and 2");
}

// Where several added tokens start at the same byte the longest is taken
// (HF's LeftmostLongest), whatever their order in the file.
TEST(HFTokenizer, TheLongestAddedTokenWinsWhereSeveralStart) {
  HFTokenizerSpec spec = byteLevelSpec();
  spec.addedTokens.push_back({kSpecial + 1, "<|x|>ab", true});
  EXPECT_EQ(*make(spec).encode("<|x|>ab<|x|>", false), (Ids{kSpecial + 1, kSpecial}));
}

// BPE merges the pair of lowest rank first, the leftmost among equal
// ranks; a pair listed twice keeps its last rank, as HF's map of merges.
TEST(HFTokenizer, MergesTheLowestRankLeftmostFirst) {
  HFTokenizerSpec spec = byteLevelSpec();
  spec.addedTokens.clear();
  const int32_t kAA = static_cast<int32_t>(spec.vocab.size()), kBC = kAA + 1;
  spec.vocab.push_back("aa");
  spec.vocab.push_back("bc");
  spec.merges = {{'a', 'a'}};
  EXPECT_EQ(*make(spec).encode("aaa", false), (Ids{kAA, 'a'}));
  spec.merges = {{'a', 'b'}, {'b', 'c'}, {'a', 'b'}};
  EXPECT_EQ(*make(spec).encode("abc", false), (Ids{'a', kBC}));
}

// A single-word added token needs a non-word character (or the text's
// end) on each side: a word character on either side alone keeps it text.
TEST(HFTokenizer, SingleWordAddedTokenNeedsBothSidesFree) {
  HFTokenizerSpec spec = byteLevelSpec();
  spec.addedTokens[0].singleWord = true;
  HFTokenizer t = make(spec);
  for (const char *text : {"ab<|x|> ab", "ab <|x|>ab"}) {
    const Ids ids = *t.encode(text, false);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), kSpecial), 0) << text;
  }
  const Ids free = *t.encode("ab <|x|> ab", false);
  EXPECT_EQ(std::count(free.begin(), free.end(), kSpecial), 1);
}

// Prepend skips a text that the normalizers before it left empty (HF
// prepends only to non-empty text).
TEST(HFTokenizer, PrependSkipsTextTheNormalizersEmptied) {
  HFTokenizerSpec spec = sentencePieceSpec();
  spec.normalizers = {{"Replace", {" ", ""}, {}}, {"Prepend", {kMeta}, {}}};
  HFTokenizer t = make(spec);
  EXPECT_EQ(*t.encode("  ", false), Ids{});
  EXPECT_EQ(*t.encode(" hi", false), (Ids{kMetaHI}));
}

// add_prefix_space adds no second space to a text that starts with one.
TEST(HFTokenizer, AddPrefixSpaceLeavesALeadingSpaceAlone) {
  HFTokenizerSpec spec = byteLevelSpec();
  spec.preTokenizers = {{"ByteLevel", {}, {1, 1}}};
  EXPECT_EQ(*make(spec).encode(" ab", false), (Ids{kSpaceAB}));
}

// Byte tokens that are not UTF-8 decode to one U+FFFD per byte, as HF's
// ByteFallback, not one per run.
TEST(HFTokenizer, ByteFallbackGivesOneReplacementPerBadByte) {
  HFTokenizer t = make(sentencePieceSpec());
  EXPECT_EQ(t.decode(Ids{kH, kByte0 + 0xA9, kByte0 + 0xA9, kI}), "h\uFFFD\uFFFDi");
}

// With prepend_scheme "never" nothing was prepended, so the Metaspace
// decoder turns the first token's replacement character into a space too.
TEST(HFTokenizer, MetaspaceNeverKeepsTheFirstSpace) {
  HFTokenizerSpec spec = sentencePieceSpec();
  spec.normalizers.clear();
  spec.preTokenizers = {{"Metaspace", {kMeta, "never"}, {1}}};
  spec.decoders = {{"Metaspace", {kMeta, "never"}, {}}};
  HFTokenizer t = make(spec);
  EXPECT_EQ(*t.encode("hi hi", false), (Ids{kHI, kMetaHI}));
  EXPECT_EQ(t.decode(Ids{kMetaHI, kMetaHI}), " hi hi");
}

} // namespace
} // namespace lathe
