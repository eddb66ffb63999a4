#include "server/Engine.h"

#include "server/PeerSocket.h"

#include <cstdio>
#include <fmt/format.h>

namespace lathe::server {

std::vector<serving::Event> RequestChannel::take(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  ready_.wait_for(lock, timeout, [&] { return !events_.empty(); });
  return std::exchange(events_, {});
}

std::string RequestChannel::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

void RequestChannel::push(serving::Event event, std::string error) {
  {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
    if (!error.empty())
      error_ = std::move(error);
  }
  ready_.notify_all();
}

Engine::Engine(serving::Scheduler scheduler, int64_t maxWaiting, Metrics &metrics)
    : scheduler_(std::move(scheduler)), config_(scheduler_.config()),
      maxSequences_(scheduler_.options().maxSequences), maxWaiting_(maxWaiting),
      speculation_(scheduler_.options().speculate), metrics_(metrics) {
  thread_ = std::thread([this] { run(); });
}

Engine::~Engine() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

std::variant<std::shared_ptr<RequestChannel>, ApiError> Engine::submit(serving::Request request,
                                                                       int peerSocket) {
  std::future<Admission> admitted;
  {
    std::lock_guard lock(mutex_);
    if (stopping_)
      return ApiError{503, "the server is shutting down", "server_error"};
    inbox_.push_back(Submission{std::move(request), peerSocket, {}});
    admitted = inbox_.back().admitted.get_future();
  }
  wake_.notify_all();
  return admitted.get();
}

void Engine::cancel(serving::RequestId id) {
  {
    std::lock_guard lock(mutex_);
    cancels_.push_back(id);
  }
  wake_.notify_all();
}

void Engine::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] {
      return stopping_ || !inbox_.empty() || !cancels_.empty() || scheduler_.busy();
    });
    if (stopping_)
      break;
    std::deque<Submission> inbox = std::exchange(inbox_, {});
    std::vector<serving::RequestId> cancels = std::exchange(cancels_, {});
    lock.unlock();
    for (Submission &s : inbox)
      admit(s);
    for (serving::RequestId id : cancels)
      if (open_.count(id))
        cancelled_ = scheduler_.cancel(id) || cancelled_; // reported by the next step
    dropHungUpClients();
    if (scheduler_.busy() || std::exchange(cancelled_, false))
      runStep();
    lock.lock();
  }
  // Shutting down: nobody will step again.
  for (Submission &s : inbox_)
    s.admitted.set_value(ApiError{503, "the server is shutting down", "server_error"});
  lock.unlock();
  for (auto &[id, open] : open_) {
    serving::Event end{serving::Event::Kind::Finished, id};
    end.reason = serving::FinishReason::Cancelled;
    open.channel->push(end, "the server is shutting down");
  }
}

void Engine::admit(Submission &s) {
  // Requests submitted since the last step are waiting even while sequence
  // slots are free: the limit is on all requests in the engine.
  if (scheduler_.runningCount() + scheduler_.waitingCount() >= maxSequences_ + maxWaiting_) {
    s.admitted.set_value(ApiError{
        429,
        fmt::format("the server is busy: {} sequences are running and {} requests waiting; "
                    "try again later",
                    scheduler_.runningCount(), scheduler_.waitingCount()),
        "rate_limit_error", "", "server_busy"});
    return;
  }
  const int64_t promptTokens = static_cast<int64_t>(s.request.prompt.size());
  Expected<serving::RequestId> id = scheduler_.submit(std::move(s.request));
  if (!id) {
    s.admitted.set_value(badRequest(id.error().message(), "prompt"));
    return;
  }
  auto channel = std::make_shared<RequestChannel>(*id);
  open_[*id] = Open{channel, s.peerSocket};
  metrics_.promptTokens(promptTokens);
  s.admitted.set_value(channel);
}

void Engine::dropHungUpClients() {
  for (auto &[id, open] : open_)
    if (open.peerSocket >= 0 && peerHungUp(open.peerSocket)) {
      cancelled_ = scheduler_.cancel(id) || cancelled_; // its blocks are free now
      open.peerSocket = -1;         // the descriptor may be reused once closed
    }
}

void Engine::runStep() {
  Expected<serving::StepResult> result = scheduler_.step();
  if (!result) {
    failAll(result.error().message());
    return;
  }
  const serving::StepStats &stats = result->stats;
  metrics_.step(stats.seconds, stats.tokens + stats.layeredTokens, scheduler_.runningCount(),
                stats.waiting, stats.kvBlocksUsed, stats.kvBlocks);
  if (speculation_)
    metrics_.speculation(stats.decodeTokens - stats.draftedTokens, stats.draftedTokens,
                         stats.acceptedDrafts);
  for (serving::Event &event : result->events) {
    auto open = open_.find(event.request);
    if (open == open_.end())
      continue; // ended by failAll
    if (event.kind == serving::Event::Kind::Finished) {
      const serving::RequestStats &r = event.stats;
      metrics_.generatedTokens(r.generatedTokens);
      if (r.timeToFirstToken)
        metrics_.timeToFirstToken(*r.timeToFirstToken);
      for (double t : r.timesBetweenTokens)
        metrics_.timeBetweenTokens(t);
      std::shared_ptr<RequestChannel> channel = open->second.channel;
      open_.erase(open);
      channel->push(std::move(event));
    } else {
      open->second.channel->push(std::move(event));
    }
  }
}

void Engine::failAll(const std::string &message) {
  std::fprintf(stderr, "lathe-serve: a step failed: %s\n", message.c_str());
  for (auto &[id, open] : open_) {
    (void)scheduler_.cancel(id);
    serving::Event end{serving::Event::Kind::Finished, id};
    end.reason = serving::FinishReason::Cancelled;
    open.channel->push(end, "the model failed: " + message);
  }
  open_.clear();
}

} // namespace lathe::server
