#include "runtime/tokenizer/PretokenizerRegex.h"

#include <gtest/gtest.h>

namespace lathe {
namespace {

// The patterns as their tokenizer.json files spell them.
constexpr const char *kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char *kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char *kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::vector<std::string> split(const char *pattern, std::string_view text) {
  Expected<PretokenizerRegex> re = PretokenizerRegex::compile(pattern);
  EXPECT_TRUE(re) << re.error().message();
  std::vector<std::string> pieces;
  size_t last = 0;
  Expected<std::vector<std::pair<size_t, size_t>>> matches = re->findAll(text);
  if (!matches)
    return {"error: " + matches.error().message()};
  for (auto [b, e] : *matches) {
    if (b > last) // text no alternative matched, kept as HF's Isolated split keeps it
      pieces.push_back("<" + std::string(text.substr(last, b - last)) + ">");
    pieces.emplace_back(text.substr(b, e - b));
    last = e;
  }
  if (last < text.size())
    pieces.push_back("<" + std::string(text.substr(last)) + ">");
  return pieces;
}

using Pieces = std::vector<std::string>;

TEST(PretokenizerRegex, Gpt2SplitsWordsNumbersPunctuationAndSpaces) {
  // "\s+(?!\S)" backtracks so that the last space goes with the next word.
  EXPECT_EQ(split(kGpt2, "Hello world's  test 123!!"),
            (Pieces{"Hello", " world", "'s", " ", " test", " 123", "!!"}));
  EXPECT_EQ(split(kGpt2, "a \n\n b"), (Pieces{"a", " \n\n", " b"}));
  EXPECT_EQ(split(kGpt2, "end   "), (Pieces{"end", "   "}));
}

TEST(PretokenizerRegex, Llama3GroupsDigitsByThreeAndFoldsContractions) {
  EXPECT_EQ(split(kLlama3, "12345678"), (Pieces{"123", "456", "78"}));
  EXPECT_EQ(split(kLlama3, "I'M HE'LL"), (Pieces{"I", "'M", " HE", "'LL"}));
  // A letter run takes one leading non-letter, non-digit, non-newline char.
  EXPECT_EQ(split(kLlama3, "(hello) x\n\ny"), (Pieces{"(hello", ")", " x", "\n\n", "y"}));
}

TEST(PretokenizerRegex, Qwen2TakesDigitsOneByOneAndUnicodeLetters) {
  EXPECT_EQ(split(kQwen2, "x=42"), (Pieces{"x", "=", "4", "2"}));
  EXPECT_EQ(split(kQwen2, "你好，世界"), (Pieces{"你好", "，世界"}));
  EXPECT_EQ(split(kQwen2, "café Über"), (Pieces{"café", " Über"}));
  EXPECT_EQ(split(kQwen2, "a\t\tb"), (Pieces{"a", "\t", "\tb"}));
}

TEST(PretokenizerRegex, CaseInsensitiveSMatchesTheLongS) {
  // Unicode folds U+017F LATIN SMALL LETTER LONG S onto s, as Oniguruma does.
  EXPECT_EQ(split("(?i:'s)", "'\u017F'S's"), (Pieces{"'\u017F", "'S", "'s"}));
}

TEST(PretokenizerRegex, StrayBytesAreInNoClassButInNegatedOnes) {
  EXPECT_EQ(split(R"(\p{L}+|[^\p{L}]+)", "ab\xFF\xFE" "cd"), (Pieces{"ab", "\xFF\xFE", "cd"}));
  EXPECT_EQ(split(R"(\p{L}+)", "a\xC3"), (Pieces{"a", "<\xC3>"}));
}

TEST(PretokenizerRegex, CountedRepetitionAndLazyQuantifiers) {
  EXPECT_EQ(split("a{2}", "aaaaa"), (Pieces{"aa", "aa", "<a>"}));
  EXPECT_EQ(split("a{2,}", "aaaaa"), (Pieces{"aaaaa"}));
  EXPECT_EQ(split("a+?", "aaa"), (Pieces{"a", "a", "a"}));
  EXPECT_EQ(split("(?:ab)+", "ababx"), (Pieces{"abab", "<x>"}));
  EXPECT_EQ(split(R"([a-c\d]+)", "abc12z"), (Pieces{"abc12", "<z>"}));
  EXPECT_EQ(split(R"(\x41|\x{1F600})", "A😀"), (Pieces{"A", "😀"}));
}

TEST(PretokenizerRegex, UnsupportedConstructsGiveOneMessage) {
  auto error = [](const char *pattern) {
    Expected<PretokenizerRegex> re = PretokenizerRegex::compile(pattern);
    EXPECT_FALSE(re) << pattern;
    return re ? std::string() : re.error().message();
  };
  EXPECT_NE(error("(?<=a)b").find("group kind '(?<' at offset 0"), std::string::npos);
  EXPECT_NE(error(R"(\w+)").find("escape '\\w' at offset 0"), std::string::npos);
  EXPECT_NE(error("^a").find("anchor"), std::string::npos);
  EXPECT_NE(error("[ab").find("unclosed class"), std::string::npos);
  EXPECT_NE(error("(ab").find("unclosed group"), std::string::npos);
  EXPECT_NE(error("ab)").find("unbalanced ')'"), std::string::npos);
  EXPECT_NE(error(R"(\p{Lu})").find("Unicode class \\p{Lu}"), std::string::npos);
  EXPECT_NE(error("a++").find("possessive"), std::string::npos);
  EXPECT_NE(error("*a").find("nothing to repeat"), std::string::npos);
  EXPECT_NE(error(R"(\1)").find("escape '\\1'"), std::string::npos);
  // The message names the pattern, so a user can find it in tokenizer.json.
  EXPECT_NE(error("(?<=a)b").find("'(?<=a)b'"), std::string::npos);
}

// The parser recurses once a group: ten thousand nested groups overflowed
// its stack. Sixty-four levels parse; one more is refused, and the message
// quotes only the pattern's start.
TEST(PretokenizerRegex, GroupsNestedTooDeepAreRefused) {
  auto nested = [](uint32_t depth) {
    return std::string(depth, '(') + "a" + std::string(depth, ')');
  };
  const uint32_t limit = PretokenizerRegex::kMaxGroupDepth;
  EXPECT_EQ(split(nested(limit).c_str(), "ba"), (Pieces{"<b>", "a"}));
  for (uint32_t depth : {limit + 1, 10000u}) {
    Expected<PretokenizerRegex> re = PretokenizerRegex::compile(nested(depth));
    ASSERT_FALSE(re) << depth;
    EXPECT_NE(re.error().message().find("groups nested more than 64 deep at offset 64"),
              std::string::npos)
        << re.error().message();
    EXPECT_LT(re.error().message().size(), 400u);
  }
}

// A backtracking search is exponential in nested quantifiers: (a*)*b over a
// run of a's with no b tries every way to cut the run. The search stops at
// the step bound with an error naming where it was, instead of running for
// hours; the same pattern over text it matches quickly is fine.
TEST(PretokenizerRegex, ExponentialBacktrackingStopsAtTheStepBound) {
  EXPECT_EQ(split("(a*)*b", "aaab"), (Pieces{"aaab"}));
  const std::string run(40, 'a');
  const Pieces got = split("(a*)*b", "xy" + run);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].find("error: pre-tokenizer regex '(a*)*b': matching at byte 2 of the text "
                        "took more than the step limit"),
            std::string::npos)
      << got[0];
}

// Each repetition of a group nests the matcher's recursion: a repeated
// group over a long run of text stops at the depth bound with an error
// (it overflowed the stack before), and shorter runs match in full.
TEST(PretokenizerRegex, DeepRecursionStopsAtTheDepthBound) {
  std::string shortRun;
  for (int i = 0; i < 500; ++i)
    shortRun += "ab";
  EXPECT_EQ(split("(?:ab)+", shortRun), (Pieces{shortRun}));
  std::string longRun;
  for (int i = 0; i < 1'000'000; ++i)
    longRun += "ab";
  const Pieces got = split("(?:ab)+", "x" + longRun);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].find("error: pre-tokenizer regex '(?:ab)+': matching at byte 1 of the text "
                        "nested deeper than the recursion limit"),
            std::string::npos)
      << got[0];
}

} // namespace
} // namespace lathe
