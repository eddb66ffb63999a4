#include "runtime/tokenizer/Nfc.h"
#include "runtime/tokenizer/UnicodeTables.h"
#include "runtime/tokenizer/Utf8.h"

#include <gtest/gtest.h>

namespace lathe {
namespace {

TEST(Nfc, ComposesDecomposedLetters) {
  EXPECT_EQ(unicode::toNfc("cafe\u0301"), "caf\u00E9");
  EXPECT_EQ(unicode::toNfc("A\u030A"), "\u00C5");
  // Singletons map to their canonical form: ANGSTROM SIGN -> Å, OHM SIGN -> Ω.
  EXPECT_EQ(unicode::toNfc("\u212B\u2126"), "\u00C5\u03A9");
}

TEST(Nfc, OrdersMarksAndComposesPastBlockedOnes) {
  // dot below (class 220) sorts before dot above (230); s + dot below
  // composes, then dot above joins: U+1E69.
  EXPECT_EQ(unicode::toNfc("s\u0307\u0323"), "\u1E69");
  // q has no composite with either mark: only the order changes.
  EXPECT_EQ(unicode::toNfc("q\u0307\u0323"), "q\u0323\u0307");
}

TEST(Nfc, LeavesExclusionsAndCompatibilityFormsAlone) {
  // U+0958 is excluded from composition: NFC keeps it decomposed.
  EXPECT_EQ(unicode::toNfc("\u0958"), "\u0915\u093C");
  // ﬁ is a compatibility ligature: NFC (unlike NFKC) keeps it.
  EXPECT_EQ(unicode::toNfc("\uFB01"), "\uFB01");
}

TEST(Nfc, ComposesHangulArithmetically) {
  EXPECT_EQ(unicode::toNfc("\u1100\u1161"), "\uAC00");
  EXPECT_EQ(unicode::toNfc("\u1100\u1161\u11A8"), "\uAC01");
  EXPECT_EQ(unicode::toNfc("\uD55C\uAD6D\uC5B4"), "\uD55C\uAD6D\uC5B4");
}

TEST(Nfc, PassesStrayBytesThrough) {
  EXPECT_EQ(unicode::toNfc("e\xFF\u0301"), "e\xFF\u0301");
  EXPECT_EQ(unicode::toNfc("plain ascii"), "plain ascii");
}

TEST(UnicodeTables, Categories) {
  EXPECT_TRUE(unicode::isLetter(U'a'));
  EXPECT_TRUE(unicode::isLetter(U'\u4F60')); // 你
  EXPECT_TRUE(unicode::isLetter(U'\u05E9')); // ש
  EXPECT_FALSE(unicode::isLetter(U'1'));
  EXPECT_FALSE(unicode::isLetter(U'\u0301')); // a mark, not a letter
  EXPECT_TRUE(unicode::isNumber(U'\u00B2'));  // ² is No
  EXPECT_TRUE(unicode::isNumber(U'\u0663'));  // Arabic-Indic 3
  EXPECT_FALSE(unicode::isDecimalDigit(U'\u00B2'));
  EXPECT_TRUE(unicode::isWhiteSpace(U'\u3000'));
  EXPECT_FALSE(unicode::isWhiteSpace(U'\u200B')); // zero width space is not White_Space
  EXPECT_EQ(unicode::combiningClass(U'\u0301'), 230);
  EXPECT_STREQ(unicode::kUnicodeVersion, "14.0.0");
}

TEST(Utf8, LossyReplacesEachMaximalIllFormedSubpart) {
  EXPECT_EQ(utf8::lossy("a\xE2\x82" "b"), "a\uFFFD" "b"); // a cut-off € is one U+FFFD
  EXPECT_EQ(utf8::lossy("\xFF\xFE"), "\uFFFD\uFFFD");
  EXPECT_EQ(utf8::lossy("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD"); // a surrogate: 3
  EXPECT_EQ(utf8::lossy("ok \u00E9"), "ok \u00E9");
  EXPECT_FALSE(utf8::valid("\xC0\x80"));
  EXPECT_TRUE(utf8::valid("\U0001F600"));
}

// next() steps over a bad or cut-off sequence one byte at a time (its
// contract), and a sequence cut off by the end of the text is one U+FFFD;
// an overlong three-byte form is not UTF-8.
TEST(Utf8, BadSequencesAdvanceOneByteAndOverlongFormsAreInvalid) {
  size_t pos = 0;
  EXPECT_EQ(utf8::next("\xE2\x82" "b", pos), utf8::kInvalid);
  EXPECT_EQ(pos, 1u);
  EXPECT_EQ(utf8::lossy("a\xE2\x82"), "a\uFFFD");
  EXPECT_FALSE(utf8::valid("\xE0\x80\x80"));
  EXPECT_EQ(utf8::lossy("\xE0\x80\x80"), "\uFFFD\uFFFD\uFFFD");
}

} // namespace
} // namespace lathe
