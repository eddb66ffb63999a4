// The few Unicode properties the Hugging Face tokenizers need, as tables
// generated from Python's unicodedata by make-unicode-tables.py (the
// version is kUnicodeVersion); the lookups below are binary searches.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lathe::unicode {

struct CodepointRange { char32_t first, last; };
struct CombiningClassRange { char32_t first, last; uint8_t cls; };
struct Decomposition { char32_t codepoint; uint16_t offset, length; };
struct Composition { char32_t first, second, composite; };

extern const char *const kUnicodeVersion;
extern const CodepointRange kLetterRanges[];
extern const size_t kLetterRangesSize;
extern const CodepointRange kNumberRanges[];
extern const size_t kNumberRangesSize;
extern const CodepointRange kDecimalDigitRanges[];
extern const size_t kDecimalDigitRangesSize;
extern const CombiningClassRange kCombiningClasses[];
extern const size_t kCombiningClassesSize;
extern const Decomposition kDecompositions[];
extern const size_t kDecompositionsSize;
extern const char32_t kDecompositionData[];
extern const Composition kCompositions[];
extern const size_t kCompositionsSize;

/// General category L* (the regex class \p{L}).
bool isLetter(char32_t cp);
/// General category N* (\p{N}).
bool isNumber(char32_t cp);
/// General category Nd (\d).
bool isDecimalDigit(char32_t cp);
/// The White_Space property (the regex class \s of Rust's regex crate,
/// which the HF tokenizers use): a fixed list from PropList.txt.
bool isWhiteSpace(char32_t cp);
/// Canonical combining class; 0 for starters.
uint8_t combiningClass(char32_t cp);

} // namespace lathe::unicode
