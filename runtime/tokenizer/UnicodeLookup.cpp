// Lookups over the generated tables of UnicodeTables.cpp.
#include "runtime/tokenizer/UnicodeTables.h"

#include <algorithm>

namespace lathe::unicode {
namespace {

bool inRanges(const CodepointRange *ranges, size_t size, char32_t cp) {
  const CodepointRange *end = ranges + size;
  const CodepointRange *it = std::upper_bound(
      ranges, end, cp, [](char32_t c, const CodepointRange &r) { return c < r.first; });
  return it != ranges && cp <= (it - 1)->last;
}

} // namespace

bool isLetter(char32_t cp) { return inRanges(kLetterRanges, kLetterRangesSize, cp); }
bool isNumber(char32_t cp) { return inRanges(kNumberRanges, kNumberRangesSize, cp); }
bool isDecimalDigit(char32_t cp) {
  return inRanges(kDecimalDigitRanges, kDecimalDigitRangesSize, cp);
}

bool isWhiteSpace(char32_t cp) {
  return (cp >= 0x9 && cp <= 0xD) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

uint8_t combiningClass(char32_t cp) {
  const CombiningClassRange *begin = kCombiningClasses,
                            *end = kCombiningClasses + kCombiningClassesSize;
  const CombiningClassRange *it = std::upper_bound(
      begin, end, cp, [](char32_t c, const CombiningClassRange &r) { return c < r.first; });
  if (it == begin || cp > (it - 1)->last)
    return 0;
  return (it - 1)->cls;
}

} // namespace lathe::unicode
