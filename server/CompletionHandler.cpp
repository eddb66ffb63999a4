#include "server/CompletionHandler.h"

#include "server/CompletionResponse.h"
#include "server/CompletionText.h"
#include "server/PeerSocket.h"

#include <httplib.h>

#include <chrono>
#include <ctime>
#include <fmt/format.h>
#include <random>

namespace lathe::server {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

/// How long an HTTP thread waits for its request's next event before
/// looking again (the engine wakes it at once when one arrives).
constexpr auto kPoll = 100ms;

/// `text`'s ids, or a bad request naming `param` where the tokenizer refuses
/// it (a pre-tokenizer regex over its search bounds on this text).
std::variant<std::vector<int32_t>, ApiError> encodePrompt(const ServedModel &m,
                                                          std::string_view text,
                                                          bool addSpecialTokens,
                                                          const char *param) {
  Expected<std::vector<int32_t>> ids = m.tokenizer.encode(text, addSpecialTokens);
  if (!ids)
    return badRequest(ids.error().message(), param);
  return ids.take();
}

/// The prompt's ids, or the error: a completions prompt as text or ids, a
/// chat's messages through the chat template.
std::variant<std::vector<int32_t>, ApiError> promptIds(const CompletionRequest &r,
                                                       const ServedModel &m) {
  if (r.endpoint == Endpoint::Completions) {
    if (const auto *ids = std::get_if<std::vector<int32_t>>(&r.prompt)) {
      for (int32_t id : *ids)
        if (id >= m.config.vocab)
          return badRequest(fmt::format("'prompt' token id {} is outside the vocabulary of {}",
                                        id, m.config.vocab),
                            "prompt");
      return *ids;
    }
    const std::string &text = std::get<std::string>(r.prompt);
    return encodePrompt(m, text, /*addSpecialTokens=*/true, "prompt");
  }
  Expected<std::string> text = m.chatTemplate->render(r.messages, /*addGenerationPrompt=*/true,
                                                     m.templateVariables);
  if (!text)
    return badRequest(text.error().message(), "messages");
  // A model's own template writes its special tokens (BOS included) into
  // the text, as transformers' apply_chat_template does; the plain one
  // leaves them to the tokenizer.
  return encodePrompt(m, *text, /*addSpecialTokens=*/!m.ownTemplate, "messages");
}

uint64_t freshSeed() {
  static std::mutex mutex;
  static std::random_device device;
  std::lock_guard lock(mutex);
  return (uint64_t(device()) << 32) ^ device();
}

/// What one request carries from its handler into its stream's callbacks.
struct Answer {
  ResponseHeader header;
  Engine *engine = nullptr;
  Metrics *metrics = nullptr;
  std::shared_ptr<RequestChannel> channel;
  CompletionText text;
  int64_t promptTokens = 0;
  bool includeUsage = false;
  bool sentRole = false;
  bool done = false;

  Answer(ResponseHeader h, Engine &e, Metrics &m, std::shared_ptr<RequestChannel> c,
         CompletionText t, int64_t prompt, bool usage)
      : header(std::move(h)), engine(&e), metrics(&m), channel(std::move(c)), text(std::move(t)),
        promptTokens(prompt), includeUsage(usage) {}

  /// The next update; a matched stop string ends the request in the engine.
  CompletionText::Update next() {
    CompletionText::Update u = text.consume(channel->take(kPoll));
    if (u.stopStringMatched)
      engine->cancel(channel->id());
    return u;
  }
  void ended(const std::string &outcome) {
    metrics->requestEnded(endpointLabel(header.endpoint), outcome);
  }
};

void answerWhole(Answer &a, httplib::Response &res) {
  std::string text;
  std::optional<std::string> reason;
  while (!reason) {
    CompletionText::Update u = a.next();
    text += u.text;
    reason = u.finishReason;
  }
  if (*reason == "cancelled") {
    std::string error = a.channel->error();
    a.ended(error.empty() ? "cancelled" : "error");
    sendError(res, ApiError{500, error.empty() ? "the request was cancelled" : error,
                            "server_error"});
    return;
  }
  a.ended(*reason);
  res.set_content(completionJson(a.header, text, *reason, a.promptTokens, a.text.completionTokens())
                      .dump(-1, ' ', false, json::error_handler_t::replace),
                  "application/json");
}

void answerStreamed(std::shared_ptr<Answer> answer, httplib::Response &res) {
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [answer](size_t, httplib::DataSink &sink) {
        Answer &a = *answer;
        if (a.done) {
          sink.done();
          return true;
        }
        CompletionText::Update u = a.next();
        std::string out;
        if (a.header.endpoint == Endpoint::ChatCompletions && !a.sentRole) {
          out += serverSentEvent(chunkJson(a.header, "", std::nullopt, true, a.includeUsage));
          a.sentRole = true;
        }
        if (!u.text.empty())
          out += serverSentEvent(chunkJson(a.header, u.text, std::nullopt, false, a.includeUsage));
        if (u.finishReason) {
          if (*u.finishReason == "cancelled") {
            std::string error = a.channel->error();
            if (error.empty()) { // the client has gone: nobody to tell
              a.ended("cancelled");
              return false;
            }
            out += serverSentEvent(ApiError{500, error, "server_error"}.body());
          } else {
            out += serverSentEvent(
                chunkJson(a.header, "", u.finishReason, false, a.includeUsage));
            if (a.includeUsage)
              out += serverSentEvent(
                  usageChunkJson(a.header, a.promptTokens, a.text.completionTokens()));
          }
          out += kStreamDone;
          a.ended(*u.finishReason == "cancelled" ? "error" : *u.finishReason);
          a.done = true;
        }
        if (!out.empty() && !sink.write(out.data(), out.size()))
          return false; // the releaser cancels the request
        if (a.done)
          sink.done();
        return true;
      },
      [answer](bool) {
        if (!answer->text.finished()) { // the connection broke first
          answer->engine->cancel(answer->channel->id());
          answer->ended("cancelled");
        }
      });
}

} // namespace

const char *endpointLabel(Endpoint endpoint) {
  return endpoint == Endpoint::Completions ? "completions" : "chat_completions";
}

void sendError(httplib::Response &res, const ApiError &error) {
  res.status = error.status;
  res.set_content(error.body().dump(-1, ' ', false, json::error_handler_t::replace),
                  "application/json");
}

void answerCompletion(const httplib::Request &req, httplib::Response &res, Endpoint endpoint,
                      ServedModel &model, const ServerOptions &options, Metrics &metrics,
                      uint64_t number) {
  auto refuse = [&](const ApiError &error) {
    metrics.requestEnded(endpointLabel(endpoint), "error");
    sendError(res, error);
  };
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded())
    return refuse(badRequest("the request body is not valid JSON"));
  auto parsed = parseCompletionRequest(body, endpoint);
  if (const ApiError *e = std::get_if<ApiError>(&parsed))
    return refuse(*e);
  CompletionRequest &r = std::get<CompletionRequest>(parsed);
  if (r.model != model.name)
    return refuse(ApiError{404,
                           fmt::format("the model '{}' does not exist; this server serves '{}'",
                                       r.model, model.name),
                           "invalid_request_error", "model", "model_not_found"});
  auto ids = promptIds(r, model);
  if (const ApiError *e = std::get_if<ApiError>(&ids))
    return refuse(*e);
  std::vector<int32_t> &prompt = std::get<std::vector<int32_t>>(ids);
  const int64_t context = model.config.context;
  const int64_t promptTokens = static_cast<int64_t>(prompt.size());
  if (prompt.empty())
    return refuse(badRequest("the prompt is empty", "prompt"));
  if (promptTokens >= context)
    return refuse(badRequest(fmt::format("the prompt is {} tokens; this model's context is {} "
                                         "tokens, and at least one must be left to generate",
                                         promptTokens, context),
                             r.endpoint == Endpoint::Completions ? "prompt" : "messages",
                             "context_length_exceeded"));
  const int64_t limit = options.maxTokens > 0 ? options.maxTokens : context;
  const char *maxField = "max_tokens";
  if (r.maxTokens && *r.maxTokens > limit)
    return refuse(badRequest(fmt::format("max_tokens is {}; this server allows at most {}",
                                         *r.maxTokens, limit),
                             maxField));
  if (r.maxTokens && promptTokens + *r.maxTokens > context)
    return refuse(badRequest(fmt::format("the prompt ({} tokens) and max_tokens ({}) exceed "
                                         "this model's context of {} tokens",
                                         promptTokens, *r.maxTokens, context),
                             maxField, "context_length_exceeded"));
  serving::Request request;
  request.prompt = prompt;
  request.sampler.temperature = r.temperature;
  request.sampler.topP = r.topP;
  request.sampler.seed = r.seed ? *r.seed : freshSeed();
  // Unasked, as many as fit the context with the prompt (the rule an asked
  // max_tokens meets above; the scheduler could emit one more, the token
  // chosen at the last position, which is never stored).
  request.maxNewTokens = r.maxTokens ? *r.maxTokens
                         : std::min<int64_t>(endpoint == Endpoint::Completions ? 16 : limit,
                                             std::min(limit, context - promptTokens));
  request.stopTokens = model.tokenizer.stopTokens();
  const int socket =
      findConnectionSocket(req.remote_addr, req.remote_port, req.local_addr, req.local_port);
  auto admitted = model.engine->submit(std::move(request), socket);
  if (const ApiError *e = std::get_if<ApiError>(&admitted))
    return refuse(*e);
  ResponseHeader header{endpoint,
                        fmt::format("{}-{}", endpoint == Endpoint::Completions ? "cmpl" : "chatcmpl",
                                    number),
                        static_cast<int64_t>(std::time(nullptr)), model.name};
  auto answer = std::make_shared<Answer>(
      std::move(header), *model.engine, metrics,
      std::get<std::shared_ptr<RequestChannel>>(admitted),
      CompletionText(model.tokenizer, prompt, std::move(r.stop)), promptTokens, r.includeUsage);
  if (r.stream)
    answerStreamed(std::move(answer), res);
  else
    answerWhole(*answer, res);
}

} // namespace lathe::server
