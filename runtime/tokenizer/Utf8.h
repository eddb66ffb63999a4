// UTF-8 as the HF tokenizers see it: text is a sequence of codepoints, and
// bytes that are not well-formed UTF-8 still have to go somewhere (the
// byte-level alphabet, byte fallback, a U+FFFD when decoding).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace lathe::utf8 {

/// Marks a byte at `pos` that does not start a well-formed sequence.
inline constexpr char32_t kInvalid = 0xFFFFFFFF;

/// The codepoint starting at `pos`, advancing `pos` past it; a malformed
/// or truncated sequence yields kInvalid and advances one byte.
char32_t next(std::string_view s, size_t &pos);

void append(std::string &out, char32_t cp);

/// `bytes` as valid UTF-8, each maximal ill-formed subpart replaced by
/// U+FFFD (what Rust's String::from_utf8_lossy, used by HF's decoders, does).
std::string lossy(std::string_view bytes);

/// Whether `bytes` is well-formed UTF-8.
bool valid(std::string_view bytes);

} // namespace lathe::utf8
