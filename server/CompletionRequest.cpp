#include "server/CompletionRequest.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <functional>
#include <limits>
#include <map>
#include <string_view>

namespace lathe::server {
namespace {

using json = nlohmann::json;
using Result = std::variant<CompletionRequest, ApiError>;

/// One field's reader: fills the request, or returns the error.
using FieldReader = std::function<std::optional<ApiError>(const json &, CompletionRequest &)>;

std::string typeName(const json &v) {
  switch (v.type()) {
  case json::value_t::null: return "null";
  case json::value_t::boolean: return "a boolean";
  case json::value_t::string: return "a string";
  case json::value_t::array: return "an array";
  case json::value_t::object: return "an object";
  case json::value_t::number_float: return "a number";
  default: return "an integer";
  }
}

ApiError wrongType(const std::string &field, const json &v, const std::string &expected) {
  return badRequest(fmt::format("'{}' must be {}, not {}", field, expected, typeName(v)), field);
}

std::optional<double> number(const json &v) {
  if (!v.is_number())
    return std::nullopt;
  return v.get<double>();
}

/// A field Lathe does not implement, accepted at the value that changes
/// nothing (`neutral` says which, for the message).
FieldReader neutralOnly(std::string field, std::function<bool(const json &)> isNeutral,
                        std::string neutral) {
  return [=](const json &v, CompletionRequest &) -> std::optional<ApiError> {
    if (v.is_null() || isNeutral(v))
      return std::nullopt;
    return badRequest(fmt::format("'{}' is not supported by this server except as {}", field,
                                  neutral),
                      field);
  };
}

bool isNumber(const json &v, double value) { return v.is_number() && v.get<double>() == value; }

/// Whether object v's "type" is the string "text" (json::value would throw
/// on a "type" of another kind: a crash the completion-request fuzzer found).
bool typeIsText(const json &v) {
  const auto type = v.find("type");
  return type != v.end() && type->is_string() && *type == "text";
}

std::optional<ApiError> readMaxTokens(const std::string &field, const json &v,
                                      CompletionRequest &r) {
  if (v.is_null())
    return std::nullopt;
  if (!v.is_number_integer())
    return wrongType(field, v, "an integer");
  // JSON's 0 and other non-negative integers are unsigned in nlohmann::json.
  const bool outOfRange = v.is_number_unsigned()
                              ? v.get<uint64_t>() < 1 || v.get<uint64_t>() > uint64_t(INT64_MAX)
                              : v.get<int64_t>() < 1;
  if (outOfRange)
    return badRequest(fmt::format("'{}' must be at least 1, got {}", field, v.dump()), field);
  r.maxTokens = v.get<int64_t>();
  return std::nullopt;
}

std::optional<ApiError> readStop(const json &v, CompletionRequest &r) {
  std::vector<std::string> stop;
  if (v.is_string()) {
    stop.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const json &s : v) {
      if (!s.is_string())
        return badRequest("'stop' must be a string or an array of strings", "stop");
      stop.push_back(s.get<std::string>());
    }
  } else if (!v.is_null()) {
    return wrongType("stop", v, "a string or an array of strings");
  }
  if (stop.size() > kMaxStopStrings)
    return badRequest(fmt::format("'stop' has {} strings; at most {} are allowed", stop.size(),
                                  kMaxStopStrings),
                      "stop");
  for (const std::string &s : stop)
    if (s.empty())
      return badRequest("'stop' strings must not be empty", "stop");
  r.stop = std::move(stop);
  return std::nullopt;
}

std::optional<ApiError> readPrompt(const json &v, CompletionRequest &r) {
  auto ids = [&](const json &list) -> std::optional<ApiError> {
    std::vector<int32_t> out;
    for (const json &id : list) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
        return badRequest("'prompt' token ids must be non-negative integers", "prompt");
      out.push_back(id.get<int32_t>());
    }
    r.prompt = std::move(out);
    return std::nullopt;
  };
  if (v.is_string()) {
    r.prompt = v.get<std::string>();
    return std::nullopt;
  }
  if (v.is_array() && !v.empty()) {
    if (v[0].is_number())
      return ids(v);
    if (v.size() == 1 && v[0].is_string()) {
      r.prompt = v[0].get<std::string>();
      return std::nullopt;
    }
    if (v.size() == 1 && v[0].is_array() && !v[0].empty())
      return ids(v[0]);
    if (v.size() > 1)
      return badRequest("'prompt' holds several prompts; this server takes one per request",
                        "prompt");
  }
  return badRequest("'prompt' must be a string, a non-empty array of token ids, or an array "
                    "of one of those",
                    "prompt");
}

/// A chat message's keys: role, content and name; tool_calls and the like
/// only at their neutral value, as the request's own fields. The message
/// handed to the template is built from the checked keys, never copied
/// whole: nlohmann's copy recurses, and a value nested 100,000 deep under
/// any key crashed the HTTP thread.
std::optional<ApiError> readMessages(const json &v, CompletionRequest &r) {
  if (!v.is_array() || v.empty())
    return badRequest("'messages' must be a non-empty array", "messages");
  json messages = json::array();
  for (size_t i = 0; i < v.size(); ++i) {
    const json &m = v[i];
    const std::string at = fmt::format("messages[{}]", i);
    if (!m.is_object())
      return badRequest(fmt::format("'{}' must be an object", at), at);
    const auto role = m.find("role");
    if (role == m.end() || !role->is_string())
      return badRequest(fmt::format("'{}.role' must be a string", at), at + ".role");
    // Without tools there are no tool (or function) messages to answer.
    static constexpr std::string_view kRoles[] = {"system", "developer", "user", "assistant"};
    if (std::find(std::begin(kRoles), std::end(kRoles), role->get<std::string>()) ==
        std::end(kRoles))
      return badRequest(fmt::format("'{}.role' must be system, developer, user or assistant, "
                                    "not {}",
                                    at, role->dump()),
                        at + ".role");
    json message = json::object();
    message["role"] = *role;
    for (auto it = m.begin(); it != m.end(); ++it) {
      const std::string &key = it.key();
      const json &value = it.value();
      if (key == "role" || key == "content")
        continue;
      if (key == "name") {
        if (!value.is_string())
          return wrongType(at + ".name", value, "a string");
        message["name"] = value;
      } else if (key == "tool_calls" || key == "function_call" || key == "refusal") {
        if (!value.is_null() && !(value.is_array() && value.empty()))
          return badRequest(fmt::format("'{}.{}' is not supported by this server except as "
                                        "null",
                                        at, key),
                            at + "." + key);
      } else {
        return badRequest(fmt::format("unknown field '{}.{}'", at, key), at + "." + key);
      }
    }
    const auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      message["content"] = "";
    } else if (content->is_string()) {
      message["content"] = *content;
    } else if (content->is_array()) {
      // [{"type": "text", "text": ...}, ...]: the text parts, joined.
      std::string text;
      for (const json &part : *content) {
        const auto partText = part.is_object() ? part.find("text") : part.end();
        if (!part.is_object() || !typeIsText(part) || partText == part.end() ||
            !partText->is_string() || part.size() != 2)
          return badRequest(fmt::format("'{}.content' parts must be text parts "
                                        "({{\"type\": \"text\", \"text\": ...}})",
                                        at),
                            at + ".content");
        text += partText->get<std::string>();
      }
      message["content"] = text;
    } else {
      return badRequest(fmt::format("'{}.content' must be a string or an array of text parts",
                                    at),
                        at + ".content");
    }
    messages.push_back(std::move(message));
  }
  r.messages = std::move(messages);
  return std::nullopt;
}

/// The fields of `endpoint` and how each is read.
std::map<std::string, FieldReader> fieldReaders(Endpoint endpoint) {
  std::map<std::string, FieldReader> f;
  f["model"] = [](const json &v, CompletionRequest &r) -> std::optional<ApiError> {
    if (!v.is_string())
      return wrongType("model", v, "a string");
    r.model = v.get<std::string>();
    return std::nullopt;
  };
  f["max_tokens"] = [](const json &v, CompletionRequest &r) {
    return readMaxTokens("max_tokens", v, r);
  };
  f["temperature"] = [](const json &v, CompletionRequest &r) -> std::optional<ApiError> {
    if (v.is_null())
      return std::nullopt;
    std::optional<double> t = number(v);
    if (!t)
      return wrongType("temperature", v, "a number");
    if (!(*t >= 0 && *t <= 2))
      return badRequest(fmt::format("'temperature' must be in [0, 2], got {}", v.dump()),
                        "temperature");
    r.temperature = static_cast<float>(*t);
    return std::nullopt;
  };
  f["top_p"] = [](const json &v, CompletionRequest &r) -> std::optional<ApiError> {
    if (v.is_null())
      return std::nullopt;
    std::optional<double> p = number(v);
    if (!p)
      return wrongType("top_p", v, "a number");
    if (!(*p > 0 && *p <= 1))
      return badRequest(fmt::format("'top_p' must be in (0, 1], got {}", v.dump()), "top_p");
    // A nucleus below float's range keeps the top token alone, as FLT_MIN
    // does (1e-300 rounded to 0, which the sampler refuses).
    r.topP = std::max(static_cast<float>(*p), std::numeric_limits<float>::min());
    return std::nullopt;
  };
  f["seed"] = [](const json &v, CompletionRequest &r) -> std::optional<ApiError> {
    if (v.is_null())
      return std::nullopt;
    if (!v.is_number_integer())
      return wrongType("seed", v, "an integer");
    r.seed = v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
    return std::nullopt;
  };
  f["stop"] = readStop;
  f["stream"] = [](const json &v, CompletionRequest &r) -> std::optional<ApiError> {
    if (v.is_null())
      return std::nullopt;
    if (!v.is_boolean())
      return wrongType("stream", v, "a boolean");
    r.stream = v.get<bool>();
    return std::nullopt;
  };
  f["stream_options"] = [](const json &v, CompletionRequest &r) -> std::optional<ApiError> {
    if (v.is_null())
      return std::nullopt;
    if (!v.is_object())
      return wrongType("stream_options", v, "an object");
    for (const auto &[key, value] : v.items()) {
      if (key != "include_usage")
        return badRequest(fmt::format("unknown field 'stream_options.{}'", key),
                          "stream_options." + key);
      if (!value.is_boolean())
        return wrongType("stream_options.include_usage", value, "a boolean");
      r.includeUsage = value.get<bool>();
    }
    return std::nullopt;
  };
  f["user"] = [](const json &v, CompletionRequest &) -> std::optional<ApiError> {
    if (!v.is_null() && !v.is_string())
      return wrongType("user", v, "a string");
    return std::nullopt; // an end-user id for the provider's abuse monitoring
  };
  f["n"] = neutralOnly("n", [](const json &v) { return isNumber(v, 1); }, "1");
  f["presence_penalty"] =
      neutralOnly("presence_penalty", [](const json &v) { return isNumber(v, 0); }, "0");
  f["frequency_penalty"] =
      neutralOnly("frequency_penalty", [](const json &v) { return isNumber(v, 0); }, "0");
  f["logit_bias"] = neutralOnly(
      "logit_bias", [](const json &v) { return v.is_object() && v.empty(); }, "{}");

  if (endpoint == Endpoint::Completions) {
    f["prompt"] = readPrompt;
    f["echo"] = neutralOnly("echo", [](const json &v) { return v == false; }, "false");
    f["best_of"] = neutralOnly("best_of", [](const json &v) { return isNumber(v, 1); }, "1");
    f["suffix"] = neutralOnly(
        "suffix", [](const json &v) { return v.is_string() && v.get<std::string>().empty(); },
        "\"\"");
    f["logprobs"] = neutralOnly("logprobs", [](const json &v) { return isNumber(v, 0); }, "0");
  } else {
    f["messages"] = readMessages;
    f["max_completion_tokens"] = [](const json &v, CompletionRequest &r) {
      return readMaxTokens("max_completion_tokens", v, r);
    };
    f["logprobs"] = neutralOnly("logprobs", [](const json &v) { return v == false; }, "false");
    f["top_logprobs"] =
        neutralOnly("top_logprobs", [](const json &v) { return isNumber(v, 0); }, "0");
    f["response_format"] = neutralOnly(
        "response_format",
        [](const json &v) { return v.is_object() && v.size() == 1 && typeIsText(v); },
        "{\"type\": \"text\"}");
    f["tools"] = neutralOnly("tools", [](const json &v) { return v.is_array() && v.empty(); }, "[]");
    f["tool_choice"] =
        neutralOnly("tool_choice", [](const json &v) { return v == "none"; }, "\"none\"");
    f["parallel_tool_calls"] = [](const json &v, CompletionRequest &) -> std::optional<ApiError> {
      if (!v.is_null() && !v.is_boolean())
        return wrongType("parallel_tool_calls", v, "a boolean");
      return std::nullopt; // means nothing without tools
    };
    f["store"] = neutralOnly("store", [](const json &v) { return v == false; }, "false");
  }
  return f;
}

} // namespace

std::variant<CompletionRequest, ApiError> parseCompletionRequest(const json &body,
                                                                 Endpoint endpoint) {
  if (!body.is_object())
    return badRequest("the request body must be a JSON object");
  static const std::map<std::string, FieldReader> completions =
      fieldReaders(Endpoint::Completions);
  static const std::map<std::string, FieldReader> chat = fieldReaders(Endpoint::ChatCompletions);
  const std::map<std::string, FieldReader> &readers =
      endpoint == Endpoint::Completions ? completions : chat;
  CompletionRequest r;
  r.endpoint = endpoint;
  for (const auto &[key, value] : body.items()) {
    auto reader = readers.find(key);
    if (reader == readers.end())
      return badRequest(fmt::format("unknown field '{}'", key), key);
    if (std::optional<ApiError> e = reader->second(value, r))
      return *e;
  }
  const char *required = endpoint == Endpoint::Completions ? "prompt" : "messages";
  if (!body.contains("model"))
    return badRequest("'model' is required", "model");
  if (!body.contains(required))
    return badRequest(fmt::format("'{}' is required", required), required);
  if (r.includeUsage && !r.stream)
    return badRequest("'stream_options' is only allowed with 'stream': true", "stream_options");
  return r;
}

} // namespace lathe::server
