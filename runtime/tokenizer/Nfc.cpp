#include "runtime/tokenizer/Nfc.h"

#include "runtime/tokenizer/UnicodeTables.h"
#include "runtime/tokenizer/Utf8.h"

#include <algorithm>
#include <vector>

namespace lathe::unicode {
namespace {

// Hangul syllables decompose and compose by arithmetic (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28;
constexpr char32_t kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

void decompose(char32_t cp, std::vector<char32_t> &out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    char32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount)
      out.push_back(kTBase + s % kTCount);
    return;
  }
  const Decomposition *end = kDecompositions + kDecompositionsSize;
  const Decomposition *it = std::lower_bound(
      kDecompositions, end, cp,
      [](const Decomposition &d, char32_t c) { return d.codepoint < c; });
  if (it == end || it->codepoint != cp) {
    out.push_back(cp);
    return;
  }
  out.insert(out.end(), kDecompositionData + it->offset,
             kDecompositionData + it->offset + it->length);
}

// The primary composite of (a, b), or 0.
char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 &&
      b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  const Composition *end = kCompositions + kCompositionsSize;
  const Composition *it = std::lower_bound(
      kCompositions, end, std::pair{a, b}, [](const Composition &c, std::pair<char32_t, char32_t> k) {
        return c.first != k.first ? c.first < k.first : c.second < k.second;
      });
  return it != end && it->first == a && it->second == b ? it->composite : 0;
}

// Normalizes one run of well-formed codepoints in place.
void normalizeRun(std::vector<char32_t> &cps) {
  std::vector<char32_t> d;
  for (char32_t cp : cps)
    decompose(cp, d);
  // Canonical ordering: a stable sort of each run of non-starters.
  for (size_t i = 0; i < d.size();) {
    if (combiningClass(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && combiningClass(d[j]) != 0)
      ++j;
    // Insertion sort: stable, and runs of combining marks are short.
    for (size_t a = i + 1; a < j; ++a)
      for (size_t b = a; b > i && combiningClass(d[b - 1]) > combiningClass(d[b]); --b)
        std::swap(d[b - 1], d[b]);
    i = j;
  }
  // Canonical composition: each character joins the last starter unless a
  // character between them blocks it (same or higher class, or a starter).
  cps.clear();
  size_t starter = SIZE_MAX;
  int lastClass = -1;
  for (char32_t cp : d) {
    int cls = combiningClass(cp);
    if (starter != SIZE_MAX && (lastClass < cls || (lastClass == 0 && cps.size() - 1 == starter))) {
      if (char32_t c = compose(cps[starter], cp)) {
        cps[starter] = c;
        continue;
      }
    }
    if (cls == 0)
      starter = cps.size();
    lastClass = cls;
    cps.push_back(cp);
  }
}

} // namespace

std::string toNfc(std::string_view text) {
  // ASCII is its own NFC, and most text is mostly ASCII.
  if (std::all_of(text.begin(), text.end(), [](char c) { return (c & 0x80) == 0; }))
    return std::string(text);
  std::string out;
  std::vector<char32_t> run;
  auto flush = [&] {
    normalizeRun(run);
    for (char32_t cp : run)
      utf8::append(out, cp);
    run.clear();
  };
  for (size_t pos = 0; pos < text.size();) {
    size_t start = pos;
    char32_t cp = utf8::next(text, pos);
    if (cp == utf8::kInvalid) {
      flush();
      out.append(text.substr(start, pos - start));
    } else {
      run.push_back(cp);
    }
  }
  flush();
  return out;
}

} // namespace lathe::unicode
