// The body of an OpenAI /v1/completions or /v1/chat/completions request,
// checked field by field. Fields OpenAI defines but Lathe does not implement
// are accepted only at their neutral value (n = 1, echo = false, penalties
// 0, ...); any other field is an error naming it, so that a client never
// gets an answer that silently ignored what it asked for.
#pragma once

#include "server/ApiError.h"

#include <nlohmann/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace lathe::server {

enum class Endpoint { Completions, ChatCompletions };

struct CompletionRequest {
  Endpoint endpoint = Endpoint::Completions;
  std::string model;
  /// Completions: the prompt as text, or as token ids.
  std::variant<std::string, std::vector<int32_t>> prompt;
  /// Chat: the messages, each an object with a string "role" and a string
  /// "content" (text parts of a content array are joined).
  nlohmann::json messages = nlohmann::json::array();
  /// max_tokens (or chat's max_completion_tokens); unset: OpenAI's default,
  /// 16 for completions, the rest of the context for chat.
  std::optional<int64_t> maxTokens;
  float temperature = 1.0f; // OpenAI's default
  float topP = 1.0f;
  std::optional<uint64_t> seed; // unset: a fresh random seed
  std::vector<std::string> stop; // at most 4, none empty
  bool stream = false;
  bool includeUsage = false; // stream_options.include_usage
};

/// The most stop strings a request may give (OpenAI's limit).
constexpr size_t kMaxStopStrings = 4;

/// Reads `body` as a request to `endpoint`, or the 400 error saying which
/// field is wrong and why.
std::variant<CompletionRequest, ApiError> parseCompletionRequest(const nlohmann::json &body,
                                                                 Endpoint endpoint);

} // namespace lathe::server
