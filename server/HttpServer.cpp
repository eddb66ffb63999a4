#include "server/HttpServer.h"

#include "server/CompletionHandler.h"

#include <httplib.h>

#include <chrono>
#include <ctime>
#include <thread>
#include <fmt/format.h>

namespace lathe::server {

using json = nlohmann::json;

HttpServer::HttpServer(ServerOptions options, Metrics &metrics)
    : options_(std::move(options)), metrics_(metrics), http_(std::make_unique<httplib::Server>()) {
  const int threads = options_.threads;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  http_->set_payload_max_length(options_.maxBodyBytes);
  // httplib's default sets SO_REUSEPORT, with which a second server on the
  // same port binds too and the kernel splits connections between them;
  // SO_REUSEADDR alone still allows a restart while old connections linger.
  http_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  routes();
}

HttpServer::~HttpServer() = default;

Status HttpServer::bind() {
  if (options_.port == 0) {
    int port = http_->bind_to_any_port(options_.host);
    if (port < 0)
      return Error(fmt::format("cannot listen on {} (any port)", options_.host));
    port_ = port;
  } else {
    if (!http_->bind_to_port(options_.host, options_.port))
      return Error(fmt::format("cannot listen on {}:{} (in use, or not an address of this "
                               "machine)",
                               options_.host, options_.port));
    port_ = options_.port;
  }
  return Status::ok();
}

void HttpServer::listen() {
  listening_ = true;
  if (!stopRequested_)
    http_->listen_after_bind();
  listening_ = false;
}

void HttpServer::stop() {
  stopRequested_ = true;
  // The library ignores a stop before its loop runs: a model that fails to
  // load at once stops the server before listen() has started it. listen()
  // sees the flag, or this waits for its loop to run and then stops it.
  while (listening_ && !http_->is_running())
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  http_->stop();
}

void HttpServer::setModel(std::unique_ptr<ServedModel> model) {
  owned_ = std::move(model);
  model_.store(owned_.get());
}

void HttpServer::routes() {
  auto json200 = [](httplib::Response &res, const json &j) {
    res.set_content(j.dump(), "application/json");
  };
  http_->Get("/health", [this, json200](const httplib::Request &, httplib::Response &res) {
    if (!model()) {
      res.status = 503;
      return json200(res, {{"status", "loading"}});
    }
    json200(res, {{"status", "ok"}});
  });
  http_->Get("/metrics", [this](const httplib::Request &, httplib::Response &res) {
    res.set_content(metrics_.render(), "text/plain; version=0.0.4");
  });
  http_->Get("/v1/models", [this, json200](const httplib::Request &, httplib::Response &res) {
    json data = json::array();
    if (ServedModel *m = model())
      data.push_back({{"id", m->name},
                      {"object", "model"},
                      {"created", static_cast<int64_t>(std::time(nullptr))},
                      {"owned_by", "lathe"},
                      {"max_model_len", m->config.context}});
    json200(res, {{"object", "list"}, {"data", data}});
  });
  auto completion = [this](Endpoint endpoint) {
    return [this, endpoint](const httplib::Request &req, httplib::Response &res) {
      ServedModel *m = model();
      if (!m) {
        metrics_.requestEnded(endpointLabel(endpoint), "error");
        return sendError(res, ApiError{503, "the model is still loading; GET /health says when "
                                            "it is ready",
                                       "server_error", "", "loading"});
      }
      answerCompletion(req, res, endpoint, *m, options_, metrics_, nextId_++);
    };
  };
  http_->Post("/v1/completions", completion(Endpoint::Completions));
  http_->Post("/v1/chat/completions", completion(Endpoint::ChatCompletions));
  // Another method on an endpoint that exists: 405 with the method it takes,
  // not 404 as if the path were unknown.
  for (const char *path : {"/v1/completions", "/v1/chat/completions"}) {
    auto wrongMethod = [path](const httplib::Request &req, httplib::Response &res) {
      res.set_header("Allow", "POST");
      sendError(res, ApiError{405, fmt::format("{} takes POST, not {}", path, req.method),
                              "invalid_request_error"});
    };
    http_->Get(path, wrongMethod);
    http_->Put(path, wrongMethod);
    http_->Patch(path, wrongMethod);
    http_->Delete(path, wrongMethod);
  }

  // Errors the library answers itself (404, 413 for a body over the limit,
  // 400 for a malformed request line) get OpenAI's JSON body too.
  http_->set_error_handler([this](const httplib::Request &req, httplib::Response &res) {
    if (!res.body.empty())
      return;
    std::string message =
        res.status == 404   ? fmt::format("no such endpoint: {} {}", req.method, req.path)
        : res.status == 413 ? fmt::format("the request body is larger than this server's limit "
                                          "of {} bytes",
                                          options_.maxBodyBytes)
        : res.status == 400 ? std::string("malformed HTTP request (its request line, a "
                                          "header, Content-Length or the chunked body)")
                            : fmt::format("HTTP status {}", res.status);
    sendError(res, ApiError{res.status, message,
                            res.status == 404 ? "not_found_error" : "invalid_request_error"});
  });
  http_->set_exception_handler(
      [](const httplib::Request &, httplib::Response &res, std::exception_ptr e) {
        std::string what = "internal error";
        try {
          std::rethrow_exception(e);
        } catch (const std::exception &x) {
          what = x.what();
        } catch (...) {
        }
        sendError(res, ApiError{500, what, "server_error"});
      });
}

} // namespace lathe::server
