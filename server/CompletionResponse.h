// The JSON of OpenAI's answers: a whole completion, the chunks of a streamed
// one (server-sent events), and the usage counts.
#pragma once

#include "server/CompletionRequest.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace lathe::server {

/// What every chunk of one answer repeats.
struct ResponseHeader {
  Endpoint endpoint = Endpoint::Completions;
  std::string id; // "cmpl-<n>" or "chatcmpl-<n>"
  int64_t created = 0; // Unix seconds
  std::string model;
};

nlohmann::json usageJson(int64_t promptTokens, int64_t completionTokens);

/// The non-streamed answer: "text_completion" or "chat.completion".
nlohmann::json completionJson(const ResponseHeader &h, const std::string &text,
                              const std::string &finishReason, int64_t promptTokens,
                              int64_t completionTokens);

/// One streamed chunk with `text` (chat: the delta's content; `role` adds
/// the assistant role, as the first chunk does) and the finish reason on the
/// last. With include_usage every chunk carries "usage": null.
nlohmann::json chunkJson(const ResponseHeader &h, const std::string &text,
                         const std::optional<std::string> &finishReason, bool role,
                         bool includeUsage);

/// The last chunk under include_usage: no choices, the usage counts.
nlohmann::json usageChunkJson(const ResponseHeader &h, int64_t promptTokens,
                              int64_t completionTokens);

/// "data: <json>\n\n".
std::string serverSentEvent(const nlohmann::json &data);
/// The end of a stream: "data: [DONE]\n\n".
inline constexpr const char *kStreamDone = "data: [DONE]\n\n";

} // namespace lathe::server
