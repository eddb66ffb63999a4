#include "runtime/tokenizer/Utf8.h"

namespace lathe::utf8 {

// The length of the maximal prefix at `pos` that is a well-formed
// sequence or the start of one (Unicode's "maximal subpart"), and the
// codepoint when the sequence is complete.
static size_t scan(std::string_view s, size_t pos, char32_t &cp) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  unsigned char b0 = byte(pos);
  cp = kInvalid;
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  size_t need;
  char32_t value;
  unsigned char lo = 0x80, hi = 0xBF; // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1, value = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2, value = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F; // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3, value = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 1;
  }
  size_t i = 1;
  for (; i <= need; ++i) {
    if (pos + i >= s.size())
      return i;
    unsigned char b = byte(pos + i);
    unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
    if (b < l || b > h)
      return i;
    value = (value << 6) | (b & 0x3F);
  }
  cp = value;
  return i;
}

char32_t next(std::string_view s, size_t &pos) {
  char32_t cp;
  size_t n = scan(s, pos, cp);
  pos += cp == kInvalid ? 1 : n;
  return cp;
}

void append(std::string &out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t pos = 0; pos < bytes.size();) {
    char32_t cp;
    size_t n = scan(bytes, pos, cp);
    if (cp == kInvalid)
      append(out, 0xFFFD);
    else
      out.append(bytes.substr(pos, n));
    pos += n;
  }
  return out;
}

bool valid(std::string_view bytes) {
  for (size_t pos = 0; pos < bytes.size();)
    if (next(bytes, pos) == kInvalid)
      return false;
  return true;
}

} // namespace lathe::utf8
