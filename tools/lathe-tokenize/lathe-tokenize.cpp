// lathe-tokenize: the token ids of a text, or the text of ids, with the
// tokenizer found at PATH (tokenizer.json, a Hugging Face folder, a llama2.c
// tokenizer.bin, a GGUF or a .lathe artifact). Bad input: one line, exit 1.
#include "compiler/Frontend/GgufTokenizer.h"
#include "runtime/tokenizer/OpenTokenizer.h"
#include "tools/CommandLine.h"

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdio>
#include <string>
#include <vector>

namespace {

int fail(const std::string &message) {
  std::fprintf(stderr, "lathe-tokenize: %s\n", message.c_str());
  return 1;
}

/// "1 2 3" or "1,2,3" -> ids.
lathe::Expected<std::vector<int32_t>> parseIds(const std::string &text) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (true) {
    pos = text.find_first_not_of(" ,\t\n", pos);
    if (pos == std::string::npos)
      break;
    size_t end = text.find_first_of(" ,\t\n", pos);
    std::string item = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    int32_t value = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (ec != std::errc() || ptr != item.data() + item.size() || value < 0)
      return lathe::Error("--decode: '" + item + "' is not a token id (expected e.g. \"1 2 3\")");
    ids.push_back(value);
    if (end == std::string::npos)
      break;
    pos = end;
  }
  return ids;
}

} // namespace

int main(int argc, char **argv) {
  CLI::App app{"Tokenize TEXT (or decode ids) with the tokenizer at PATH: a tokenizer.json, "
               "a Hugging Face model folder, a llama2.c tokenizer.bin, a GGUF or a .lathe "
               "artifact"};
  std::string path, text, decode;
  bool noSpecial = false;
  app.add_option("PATH", path, "tokenizer.json, model folder, tokenizer.bin, .gguf or .lathe")
      ->required();
  app.add_option("TEXT", text, "the text to tokenize");
  app.add_option("--decode", decode, "token ids to turn into text, e.g. \"1 15043 3186\"");
  app.add_flag("--no-special", noSpecial, "leave out BOS/EOS (the special tokens the "
                                          "tokenizer adds around a text)");
  if (std::optional<int> status = lathe::tools::parseCommandLine(app, argc, argv, "lathe-tokenize"))
    return *status;
  bool decoding = app.count("--decode") > 0;
  if (decoding == (app.count("TEXT") > 0))
    return fail("give either TEXT or --decode IDS (see --help)");

  // GGUF metadata is read by the (MLIR-free) frontend readers, the rest by
  // the runtime.
  lathe::Expected<lathe::TextTokenizer> tokenizer = lathe::frontend::isGgufFile(path)
                                                        ? lathe::frontend::openGgufTokenizer(path)
                                                        : lathe::openTokenizer(path);
  if (!tokenizer)
    return fail(tokenizer.error().message());
  if (decoding) {
    lathe::Expected<std::vector<int32_t>> ids = parseIds(decode);
    if (!ids)
      return fail(ids.error().message());
    for (int32_t id : *ids)
      if (static_cast<size_t>(id) >= tokenizer->idCount())
        return fail("--decode: id " + std::to_string(id) + " is outside the vocabulary (" +
                    std::to_string(tokenizer->idCount()) + " ids)");
    std::string out = tokenizer->decode(*ids);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fputc('\n', stdout);
    return 0;
  }
  auto encoded = tokenizer->encode(text, !noSpecial);
  if (!encoded)
    return fail(encoded.error().message());
  const std::vector<int32_t> &ids = *encoded;
  for (size_t i = 0; i < ids.size(); ++i)
    std::printf("%s%d", i ? " " : "", ids[i]);
  std::printf("\n");
  return 0;
}
