// ChatTemplate's public face: parse (ChatTemplateParser.cpp), render
// (ChatTemplateRenderer.cpp), and the plain template.
#include "runtime/serving/ChatTemplate.h"

#include "runtime/serving/ChatTemplateRenderer.h"

namespace lathe::serving {
namespace {
/// Messages quote template text (names, keys), which may hold line breaks.
Error oneLine(const Error &error) {
  std::string message;
  for (char c : error.message())
    message += c == '\n' ? std::string("\\n") : c == '\r' ? std::string("\\r") : std::string(1, c);
  return Error(std::move(message));
}
} // namespace

Expected<ChatTemplate> ChatTemplate::parse(std::string_view source, std::string name) {
  auto program = chat_template::parseProgram(source, name);
  if (!program)
    return oneLine(program.error());
  return ChatTemplate(program.take(), std::move(name));
}

const ChatTemplate &ChatTemplate::plain() {
  // Parsed once; kPlainSource is covered by the tests, so this cannot fail.
  static const ChatTemplate plainTemplate = *ChatTemplate::parse(kPlainSource, "plain chat template");
  return plainTemplate;
}

Expected<std::string> ChatTemplate::render(const nlohmann::json &messages, bool addGenerationPrompt,
                                           const nlohmann::json &variables) const {
  using chat_template::Value;
  std::unordered_map<std::string, Value> globals;
  if (variables.is_object())
    for (auto it = variables.begin(); it != variables.end(); ++it)
      globals[it.key()] = Value::of(chat_template::toOrdered(it.value()));
  globals["messages"] = Value::of(chat_template::toOrdered(messages));
  globals["add_generation_prompt"] = Value::of(addGenerationPrompt);
  auto out = chat_template::renderProgram(*program_, name_, std::move(globals));
  if (!out)
    return oneLine(out.error());
  return out;
}

} // namespace lathe::serving
