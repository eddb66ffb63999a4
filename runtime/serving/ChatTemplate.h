// Hugging Face chat templates: the Jinja2 subset that tokenizer_config.json's
// chat_template uses, rendered as transformers renders it (jinja2's sandbox
// with trim_blocks and lstrip_blocks, the loopcontrols extension, and the
// globals raise_exception and strftime_now, tojson as json.dumps). A
// template is parsed once and rendered per request; rendering has no state.
//
// Supported: {{ }}, {% %}, {# #} with jinja2's whitespace rules (-, +,
// trim_blocks, lstrip_blocks, one trailing newline dropped); if/elif/else,
// for (tuple targets, `if` filter, else, loop.index/index0/revindex/
// revindex0/first/last/length/previtem/nextitem, break/continue), set (also
// `set ns.attr`, `set a, b`, block set), generation (transparent);
// namespace(), range(), dict(); the operators, tests, filters and
// str/dict methods that ChatTemplateRenderer.cpp's applyFilter, applyTest and
// callMethod list. Undefined follows jinja2's default Undefined: it prints as "",
// iterates as empty, is false, and fails on attribute access, calls and
// arithmetic.
//
// Not supported (a parse error names the tag, filter or test): macro/call,
// raw, include/import/extends/block, filter blocks, recursive loops, other
// filters and tests, *args. Also unsupported: the `%` string operator,
// str.format, loop.cycle, tojson's sort_keys/separators; tuples are lists
// (they print as [..]); an undefined inside a list literal becomes none;
// filters are eager (jinja2's map/select return generators). Strings are
// UTF-8; indices, slices and lengths count code points; upper/lower/title
// change ASCII letters only.
#pragma once

#include "runtime/support/Expected.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace lathe::serving {

namespace chat_template {
struct Program;
} // namespace chat_template

class ChatTemplate {
public:
  /// Parses a Jinja chat template (tokenizer_config.json's chat_template).
  /// Errors: one line, "<name>: line L: <what>".
  static Expected<ChatTemplate> parse(std::string_view source, std::string name = "chat template");

  /// The template used when a model has none. Each message becomes
  /// "<Role>: <content>\n\n", the role with its first letter upper-cased
  /// ("system" -> "System: ", "user" -> "User: ", "assistant" ->
  /// "Assistant: "); then, when add_generation_prompt is set, "Assistant:".
  /// It is Jinja source (kPlainSource) run by the same renderer.
  static const ChatTemplate &plain();
  static constexpr std::string_view kPlainSource =
      "{% for message in messages %}"
      "{{ message.role | capitalize }}: {{ message.content }}\n\n"
      "{% endfor %}"
      "{% if add_generation_prompt %}Assistant:{% endif %}";

  /// Renders with the variables `messages` (a JSON array of objects with at
  /// least role and content) and `add_generation_prompt`, plus every key of
  /// `variables` (bos_token, eos_token, tools, ...). Fails with one line on
  /// a runtime error: "<name>: line L: <what>", except that the template's
  /// raise_exception("text") fails with exactly its text. Rendering stops
  /// with an error past kMaxSteps evaluation steps or kMaxOutputBytes of
  /// output (or of any one string), so a hostile template cannot hang.
  Expected<std::string> render(const nlohmann::json &messages, bool addGenerationPrompt,
                               const nlohmann::json &variables = nlohmann::json::object()) const;

  static constexpr uint64_t kMaxSteps = 4'000'000;
  static constexpr size_t kMaxOutputBytes = 16u << 20;

  const std::string &name() const { return name_; }

private:
  ChatTemplate(std::shared_ptr<const chat_template::Program> program, std::string name)
      : program_(std::move(program)), name_(std::move(name)) {}

  std::shared_ptr<const chat_template::Program> program_;
  std::string name_;
};

} // namespace lathe::serving
