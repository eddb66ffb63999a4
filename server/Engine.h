// The thread that owns the scheduler. HTTP threads hand it requests and
// cancellations; it runs the batched steps back to back while any request
// waits or runs, and delivers each request's tokens to its channel. Between
// steps it polls the sockets of the requests' clients, so a client that has
// gone frees its sequence before the next step.
#pragma once

#include "runtime/serving/Scheduler.h"
#include "server/ApiError.h"
#include "server/Metrics.h"

#include <condition_variable>
#include <chrono>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <variant>
#include <vector>

namespace lathe::server {

/// One request's events, from the engine thread to the HTTP thread that
/// answers it.
class RequestChannel {
public:
  explicit RequestChannel(serving::RequestId id) : id_(id) {}
  serving::RequestId id() const { return id_; }
  /// The events queued since the last call; waits up to `timeout` for one.
  std::vector<serving::Event> take(std::chrono::milliseconds timeout);
  /// Set when the engine failed the request (a step failed): the message.
  std::string error() const;

private:
  friend class Engine;
  void push(serving::Event event, std::string error = "");

  serving::RequestId id_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<serving::Event> events_;
  std::string error_;
};

class Engine {
public:
  /// Starts the engine thread over `scheduler`; at most `maxWaiting`
  /// requests queue behind a full running batch (more get 429).
  Engine(serving::Scheduler scheduler, int64_t maxWaiting, Metrics &metrics);
  /// Ends every request (Cancelled) and joins the thread.
  ~Engine();
  Engine(const Engine &) = delete;
  Engine &operator=(const Engine &) = delete;

  /// Queues a request, waiting (at most a step) for the engine thread to
  /// take it; a refusal is the error to answer with. `peerSocket` (-1: none)
  /// is the client's connection, watched for a hang-up.
  std::variant<std::shared_ptr<RequestChannel>, ApiError> submit(serving::Request request,
                                                                 int peerSocket);
  /// Ends a request that is waiting or running (a stop string matched, its
  /// client went away); nothing if it has ended already.
  void cancel(serving::RequestId id);

  const plan::ModelConfig &config() const { return config_; }
  int64_t maxSequences() const { return maxSequences_; }
  /// The tree shape the running sequences speculate over (unset: none).
  const std::optional<speculative::TreeShape> &speculation() const { return speculation_; }

private:
  using Admission = std::variant<std::shared_ptr<RequestChannel>, ApiError>;
  struct Submission {
    serving::Request request;
    int peerSocket;
    std::promise<Admission> admitted;
  };
  struct Open {
    std::shared_ptr<RequestChannel> channel;
    int peerSocket;
  };

  void run();
  void admit(Submission &submission);
  void dropHungUpClients();
  void runStep();
  /// Fails every open request with `message` (a step failed).
  void failAll(const std::string &message);

  serving::Scheduler scheduler_;
  const plan::ModelConfig config_;
  const int64_t maxSequences_;
  const int64_t maxWaiting_;
  const std::optional<speculative::TreeShape> speculation_;
  Metrics &metrics_;

  std::mutex mutex_; // guards the three below
  std::condition_variable wake_;
  std::deque<Submission> inbox_;
  std::vector<serving::RequestId> cancels_;
  bool stopping_ = false;

  std::map<serving::RequestId, Open> open_; // engine thread only
  /// A request was cancelled since the last step: the next step() reports
  /// it (and refreshes the gauges) even when nothing else runs.
  bool cancelled_ = false; // engine thread only
  std::thread thread_;
};

} // namespace lathe::server
