// Reads a Hugging Face tokenizer.json (and the tokenizer_config.json beside
// it, for BOS/EOS) into an HFTokenizerSpec. What Lathe cannot run (another
// model type, a normalizer it does not know, a regex construct its matcher
// lacks) is refused with one message, never guessed at.
#pragma once

#include "runtime/support/Expected.h"
#include "runtime/tokenizer/HFTokenizerSpec.h"

#include <string>
#include <string_view>

namespace lathe {

/// Parses the text of tokenizer.json and of tokenizer_config.json (empty
/// when there is none). `source` names the files in messages.
Expected<HFTokenizerSpec> parseHFTokenizer(std::string_view tokenizerJson,
                                           std::string_view configJson,
                                           const std::string &source);

/// Reads `path`, a tokenizer.json or a folder holding one, and the
/// tokenizer_config.json beside it when present.
Expected<HFTokenizerSpec> loadHFTokenizer(const std::string &path);

} // namespace lathe
