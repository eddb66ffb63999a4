// GPT-2's byte-level alphabet: each of the 256 bytes is spelled as one
// printable codepoint (printable Latin-1 bytes as themselves, the others as
// U+0100 onwards), so byte-level BPE never sees a space or a control byte.
#pragma once

#include <array>
#include <cstdint>

namespace lathe {

/// byte -> codepoint, as bytes_to_unicode() in GPT-2's encoder.py.
inline std::array<char32_t, 256> byteLevelAlphabet() {
  std::array<char32_t, 256> table{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    table[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return table;
}

} // namespace lathe
