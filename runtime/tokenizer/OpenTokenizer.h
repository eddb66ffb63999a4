// Opens a tokenizer from whatever a user points at: a tokenizer.json, a
// Hugging Face model folder, a llama2.c tokenizer.bin or a .lathe artifact
// (lathe-tokenize's PATH). The kind is told by content, not by name.
#pragma once

#include "runtime/support/Expected.h"
#include "runtime/tokenizer/TextTokenizer.h"

#include <optional>
#include <string>

namespace lathe {

Expected<TextTokenizer> openTokenizer(const std::string &path);

namespace artifact {
class Artifact;
}
/// The tokenizer an artifact carries (either kind), nullopt when it was
/// compiled without one; `source` names the artifact in messages.
Expected<std::optional<TextTokenizer>> artifactTokenizer(const artifact::Artifact &artifact,
                                                         const std::string &source);

/// The number of entries of a llama2.c tokenizer.bin (it does not store
/// it: run.c takes it from the model), or an error when the bytes are not
/// a sequence of (score, length, piece) records after the header.
Expected<uint32_t> countLlama2cTokens(std::span<const uint8_t> bytes, const std::string &source);

} // namespace lathe
