// Answers POST /v1/completions and /v1/chat/completions: reads and checks
// the request, makes its prompt (the chat template for chat), submits it to
// the engine and answers with the whole text or streams it as server-sent
// events.
#pragma once

#include "server/CompletionRequest.h"
#include "server/HttpServer.h"

namespace httplib {
struct Request;
struct Response;
} // namespace httplib

namespace lathe::server {

void answerCompletion(const httplib::Request &req, httplib::Response &res, Endpoint endpoint,
                      ServedModel &model, const ServerOptions &options, Metrics &metrics,
                      uint64_t number);

/// Sets `res` to `error`'s status and JSON body.
void sendError(httplib::Response &res, const ApiError &error);

/// "completions" or "chat_completions", the endpoint label of the metrics.
const char *endpointLabel(Endpoint endpoint);

} // namespace lathe::server
