// The tree walk that renders a parsed chat template (ChatTemplateSyntax.h)
// as jinja2 would, within ChatTemplate's limits on steps and output size.
#pragma once

#include "runtime/serving/ChatTemplateValue.h"

#include <string>
#include <unordered_map>

namespace lathe::serving::chat_template {

/// Renders `program` with `globals` as its variables; errors read
/// "<name>: line L: <what>", or are raise_exception's text.
Expected<std::string> renderProgram(const Program &program, const std::string &name,
                                    std::unordered_map<std::string, Value> globals);

} // namespace lathe::serving::chat_template
