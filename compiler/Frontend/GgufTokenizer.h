// The tokenizer in a GGUF's metadata, as one of the two kinds Lathe already
// runs (docs/gguf.md):
//   tokenizer.ggml.model = "llama" (SentencePiece): tokens, scores,
//     token_type, bos/eos ids -> a llama2.c Vocabulary (Tokenizer.h): "▁"
//     becomes a space and BOS/EOS are spelled "\n<s>\n" / "\n</s>\n", as
//     llama2.c's exporter writes tokenizer.bin, so that text never merges
//     into them. That tokenizer has fixed ids (BOS 1, EOS 2, bytes 3..258),
//     adds BOS and a dummy space and never EOS; a GGUF asking otherwise is
//     refused.
//   tokenizer.ggml.model = "gpt2" (byte-level BPE): tokens, merges,
//     token_type (control -> special added token, user-defined -> added
//     token), bos/eos ids, add_bos/add_eos, and tokenizer.ggml.pre naming
//     the pre-tokenizer -> an HFTokenizerSpec with the stages Hugging Face's
//     tokenizer.json has for that family: "llama-bpe"/"llama3" (Llama 3's
//     Split regex, merges ignored for whole-vocabulary words, BOS added),
//     "qwen2" (NFC, Qwen2's regex), "gpt2"/"default" (GPT-2's ByteLevel
//     regex). Other pre-tokenizers and models are refused.
#pragma once

#include "compiler/Frontend/Gguf.h"
#include "runtime/tokenizer/HFTokenizerSpec.h"
#include "runtime/tokenizer/TextTokenizer.h"
#include "runtime/tokenizer/Tokenizer.h"

#include <optional>
#include <string>
#include <variant>

namespace lathe::frontend {

using GgufTokenizer = std::variant<Vocabulary, HFTokenizerSpec>;

/// The file's tokenizer; nullopt when it has no tokenizer.ggml.model.
Expected<std::optional<GgufTokenizer>> readGgufTokenizer(const GgufFile &file);

/// Opens `path` (only its metadata is read) and returns its tokenizer,
/// ready to run; an error when it has none.
Expected<TextTokenizer> openGgufTokenizer(const std::string &path);

} // namespace lathe::frontend
