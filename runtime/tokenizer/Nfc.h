// Unicode Normalization Form C, the normalizer of Qwen's tokenizer.json:
// canonical decomposition, canonical ordering, canonical composition, over
// the tables of UnicodeTables.h.
#pragma once

#include <string>
#include <string_view>

namespace lathe::unicode {

/// `text` in NFC. Bytes that are not well-formed UTF-8 pass through
/// unchanged and block composition across them.
std::string toNfc(std::string_view text);

} // namespace lathe::unicode
