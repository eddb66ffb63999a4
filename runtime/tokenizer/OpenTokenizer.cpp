#include "runtime/tokenizer/OpenTokenizer.h"

#include "runtime/artifact/Artifact.h"
#include "runtime/artifact/FileHeader.h"
#include "runtime/support/MappedFile.h"
#include "runtime/tokenizer/HFTokenizerJson.h"

#include <cctype>
#include <cstring>
#include <filesystem>

namespace lathe {

Expected<uint32_t> countLlama2cTokens(std::span<const uint8_t> bytes, const std::string &source) {
  auto le32 = [&](size_t at) {
    uint32_t v;
    std::memcpy(&v, bytes.data() + at, 4);
    return v;
  };
  if (bytes.size() < 4)
    return Error(source + ": too short for a llama2.c tokenizer.bin");
  size_t pos = 4;
  uint32_t count = 0;
  while (pos < bytes.size()) {
    if (bytes.size() - pos < 8)
      return Error(source + ": not a llama2.c tokenizer.bin (a record is cut off at byte " +
                   std::to_string(pos) + ")");
    uint32_t length = le32(pos + 4);
    if (length > bytes.size() - pos - 8)
      return Error(source + ": not a llama2.c tokenizer.bin (record " + std::to_string(count) +
                   " runs past the end)");
    pos += 8 + length;
    ++count;
  }
  return count;
}

namespace {

/// A tokenizer.json, or the folder holding it (loadHFTokenizer takes both).
Expected<TextTokenizer> openHFTokenizer(const std::string &path) {
  Expected<HFTokenizerSpec> spec = loadHFTokenizer(path);
  if (!spec)
    return spec.error();
  Expected<HFTokenizer> t = HFTokenizer::create(spec.take(), path);
  if (!t)
    return t.error();
  return TextTokenizer(t.take());
}

} // namespace

Expected<std::optional<TextTokenizer>> artifactTokenizer(const artifact::Artifact &artifact,
                                                         const std::string &source) {
  if (const HFTokenizerSpec *spec = artifact.hfTokenizer()) {
    Expected<HFTokenizer> t = HFTokenizer::create(*spec, source);
    if (!t)
      return t.error();
    return std::optional<TextTokenizer>(TextTokenizer(t.take()));
  }
  if (artifact.vocabulary().pieces.empty())
    return std::optional<TextTokenizer>();
  Expected<Tokenizer> t = Tokenizer::create(artifact.vocabulary());
  if (!t)
    return Error(source + ": " + t.error().message());
  return std::optional<TextTokenizer>(TextTokenizer(t.take()));
}

Expected<TextTokenizer> openTokenizer(const std::string &path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / "tokenizer.json", ec))
      return openHFTokenizer(path);
    if (fs::exists(fs::path(path) / "tokenizer.bin", ec))
      return openTokenizer((fs::path(path) / "tokenizer.bin").string());
    return Error(path + ": a folder without tokenizer.json or tokenizer.bin");
  }
  Expected<std::shared_ptr<MappedFile>> file = MappedFile::open(path);
  if (!file)
    return file.error();
  std::span<const uint8_t> bytes = (*file)->bytes();
  auto startsWith = [&](std::string_view magic) {
    return bytes.size() >= magic.size() && std::memcmp(bytes.data(), magic.data(), magic.size()) == 0;
  };
  if (startsWith("GGUF"))
    return Error(path + ": a GGUF file: its tokenizer is read by the compiler's readers "
                        "(frontend::openGgufTokenizer, used by lathe-tokenize), not the runtime");
  if (startsWith(std::string_view(artifact::kMagic, sizeof artifact::kMagic))) {
    // The tokenizer only: no parameter file, no speed model's weights.
    artifact::LoadOptions description;
    description.descriptionOnly = true;
    Expected<std::shared_ptr<const artifact::Artifact>> a =
        artifact::Artifact::load(path, description);
    if (!a)
      return a.error();
    Expected<std::optional<TextTokenizer>> t = artifactTokenizer(**a, path);
    if (!t)
      return t.error();
    if (!*t)
      return Error(path + ": compiled without a tokenizer");
    return std::move(**t);
  }
  size_t first = 0;
  while (first < bytes.size() && std::isspace(bytes[first]))
    ++first;
  if (first < bytes.size() && bytes[first] == '{')
    return openHFTokenizer(path);
  Expected<uint32_t> count = countLlama2cTokens(bytes, path);
  if (!count)
    return Error(count.error().message() + "; expected a tokenizer.json, a model folder, a "
                                           "tokenizer.bin or a .lathe artifact");
  Expected<Vocabulary> vocab = parseLlama2cTokenizer(bytes, *count, path);
  if (!vocab)
    return vocab.error();
  Expected<Tokenizer> t = Tokenizer::create(vocab.take());
  if (!t)
    return Error(path + ": " + t.error().message());
  return TextTokenizer(t.take());
}

} // namespace lathe
