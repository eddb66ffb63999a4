// lathe-serve's HTTP front end (cpp-httplib): OpenAI's /v1/completions,
// /v1/chat/completions (server-sent events when streamed) and /v1/models,
// /health and Prometheus /metrics. It listens before the model has loaded:
// /health answers 503 and generation requests 503 until setModel.
// docs/serving.md lists the endpoints, limits and errors.
#pragma once

#include "runtime/support/Expected.h"
#include "server/Metrics.h"
#include "server/ServedModel.h"

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

namespace httplib {
class Server;
}

namespace lathe::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000; // 0: any free port (port() says which)
  /// Largest request body; larger gets 413.
  size_t maxBodyBytes = 1 << 20;
  /// Largest max_tokens a request may ask for; 0: the model's context.
  int64_t maxTokens = 0;
  /// Threads answering connections: each streaming or waiting request
  /// holds one while it lasts.
  int threads = 80;
};

class HttpServer {
public:
  HttpServer(ServerOptions options, Metrics &metrics);
  ~HttpServer();

  /// Binds the listening socket; fails with one line.
  Status bind();
  int port() const { return port_; }
  /// Serves until stop() (blocking).
  void listen();
  /// Makes the server stop listening, from any thread, before or during
  /// listen(), which then returns.
  void stop();
  /// The loaded model: generation requests are served from now on.
  void setModel(std::unique_ptr<ServedModel> model);
  /// The model, or null while loading.
  ServedModel *model() const { return model_.load(); }

private:
  void routes();

  ServerOptions options_;
  Metrics &metrics_;
  std::unique_ptr<httplib::Server> http_;
  std::unique_ptr<ServedModel> owned_;
  std::atomic<ServedModel *> model_{nullptr};
  std::atomic<uint64_t> nextId_{1};
  std::atomic<bool> listening_{false}, stopRequested_{false};
  int port_ = 0;
};

} // namespace lathe::server
