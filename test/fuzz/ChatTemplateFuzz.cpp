// Fuzzes the chat-template interpreter (runtime/serving/ChatTemplate.h), the
// part of lathe-serve that runs a model's own Jinja code on every chat
// request: a template parses or fails with one line; a parsed one renders
// some messages or fails with one line, within its step and output limits
// (the fuzzer's timeout catches a hang). An input is the template, then
// optionally a NUL byte and a JSON array of messages (FuzzInputFiles.h).
#include "runtime/serving/ChatTemplate.h"
#include "test/fuzz/FuzzInputFiles.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

void checkOneLine(const std::string &message, const char *what) {
  if (message.empty() || message.find('\n') != std::string::npos) {
    std::fprintf(stderr, "%s error is not one line: '%s'\n", what, message.c_str());
    std::abort();
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using nlohmann::json;
  const lathe::fuzz::JsonAndFile input = lathe::fuzz::splitAtFirstNul({data, size});
  const std::string source(reinterpret_cast<const char *>(input.json.data()), input.json.size());
  auto parsed = lathe::serving::ChatTemplate::parse(source, "fuzz");
  if (!parsed) {
    checkOneLine(parsed.error().message(), "parse");
    return 0;
  }
  json messages = json::array({{{"role", "system"}, {"content", "Be brief."}},
                               {{"role", "user"}, {"content", "Hi"}},
                               {{"role", "assistant"}, {"content", "Hello."}},
                               {{"role", "user"}, {"content", "Tell me a story."}}});
  if (input.file) {
    json given = json::parse(input.file->begin(), input.file->end(), nullptr, false);
    if (!given.is_discarded())
      messages = std::move(given); // any JSON: the template sees what a request sends
  }
  const json variables = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  for (bool generationPrompt : {false, true}) {
    auto text = parsed->render(messages, generationPrompt, variables);
    if (!text)
      checkOneLine(text.error().message(), "render");
    else if (text->size() > lathe::serving::ChatTemplate::kMaxOutputBytes)
      std::abort(); // past the output limit
  }
  return 0;
}
