#include "server/CompletionResponse.h"

namespace lathe::server {

using json = nlohmann::json;

namespace {

json header(const ResponseHeader &h, const char *object) {
  return {{"id", h.id}, {"object", object}, {"created", h.created}, {"model", h.model}};
}

json reason(const std::optional<std::string> &r) { return r ? json(*r) : json(); }

} // namespace

json usageJson(int64_t promptTokens, int64_t completionTokens) {
  return {{"prompt_tokens", promptTokens},
          {"completion_tokens", completionTokens},
          {"total_tokens", promptTokens + completionTokens}};
}

json completionJson(const ResponseHeader &h, const std::string &text,
                    const std::string &finishReason, int64_t promptTokens,
                    int64_t completionTokens) {
  const bool chat = h.endpoint == Endpoint::ChatCompletions;
  json j = header(h, chat ? "chat.completion" : "text_completion");
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finishReason}};
  if (chat)
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  else
    choice["text"] = text;
  j["choices"] = json::array({choice});
  j["usage"] = usageJson(promptTokens, completionTokens);
  return j;
}

json chunkJson(const ResponseHeader &h, const std::string &text,
               const std::optional<std::string> &finishReason, bool role, bool includeUsage) {
  const bool chat = h.endpoint == Endpoint::ChatCompletions;
  json j = header(h, chat ? "chat.completion.chunk" : "text_completion");
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", reason(finishReason)}};
  if (chat) {
    json delta = json::object();
    if (role)
      delta["role"] = "assistant";
    if (!text.empty() || role)
      delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  j["choices"] = json::array({choice});
  if (includeUsage)
    j["usage"] = nullptr;
  return j;
}

json usageChunkJson(const ResponseHeader &h, int64_t promptTokens, int64_t completionTokens) {
  const bool chat = h.endpoint == Endpoint::ChatCompletions;
  json j = header(h, chat ? "chat.completion.chunk" : "text_completion");
  j["choices"] = json::array();
  j["usage"] = usageJson(promptTokens, completionTokens);
  return j;
}

std::string serverSentEvent(const json &data) {
  return "data: " + data.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

} // namespace lathe::server
