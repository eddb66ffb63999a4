// lathe-serve: an OpenAI-compatible HTTP server over a compiled artifact,
// with continuous batching (runtime/serving/Scheduler.h). It listens at
// once, answers /health with 503 while the model loads, and serves until
// SIGINT or SIGTERM. Bad flags or an artifact it cannot load: one line on
// stderr and exit 1. docs/serving.md describes the endpoints.
#include "server/HttpServer.h"
#include "server/LoadModel.h"
#include "tools/CommandLine.h"
#include "tools/SessionFlags.h"
#include "tools/SpeculateFlag.h"

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <pthread.h>
#include <string>
#include <thread>

namespace {

/// The largest count a flag takes: CLI11 then names the range in plain
/// integers rather than doubles.
constexpr int64_t kMostTokens = int64_t{1} << 40;

int fail(const std::string &message) {
  std::fprintf(stderr, "lathe-serve: %s\n", message.c_str());
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  using namespace lathe;
  CLI::App app{"lathe-serve: serve a compiled model over OpenAI's HTTP API"};
  server::LoadOptions load;
  server::ServerOptions http;
  std::string prefill = "chunked";
  app.add_option("artifact", load.artifactPath, "compiled .lathe file")->required();
  app.add_option("--host", http.host, "address to listen on")->capture_default_str();
  app.add_option("--port", http.port, "port to listen on (0: any free port, printed)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app.add_option("--model-name", load.name,
                 "the model's name in the API (default: the artifact's model name)");
  app.add_option("--chat-template", load.chatTemplatePath,
                 "a Jinja chat template file to use instead of the artifact's "
                 "(tokenizer_config.json's chat_template)");
  app.add_option("--prefill", prefill,
                 "how prompts join the running batch: whole, chunked (Sarathi-Serve) or "
                 "layered (one layer group per step: an artifact compiled with "
                 "lathe-compile --prefill-groups=N, N >= 2)")
      ->check(CLI::IsMember({"whole", "chunked", "layered"}))
      ->capture_default_str();
  app.add_option("--token-budget", load.scheduler.tokenBudget,
                 "most tokens in one step, decodes and prefill together")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, kMostTokens));
  app.add_option("--max-sequences", load.scheduler.maxSequences,
                 "most sequences generating at once")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, kMostTokens));
  app.add_option("--max-waiting", load.maxWaiting,
                 "most requests queued behind them; more get 429")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, kMostTokens));
  app.add_option("--kv-tokens", load.scheduler.kvTokens,
                 "KV cache slots (0: a full context per sequence)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, kMostTokens));
  app.add_option("--max-body-bytes", http.maxBodyBytes,
                 "largest request body; larger gets 413")
      ->capture_default_str();
  app.add_option("--max-tokens", http.maxTokens,
                 "largest max_tokens a request may ask for (0: the model's context)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, kMostTokens));
  tools::SpeculateFlag speculateFlag;
  auto *speculateOpt = speculateFlag.addTo(app);
  app.add_option("--draft-history", load.draftFiles.history,
                 "with --speculate: draft n-grams from the earlier texts in FILE too (one "
                 "per line, token ids separated by spaces; a missing file is none), and "
                 "append every request's prompt and output to it when the server stops")
      ->needs(speculateOpt);
  app.add_option("--draft-state", load.draftFiles.state,
                 "with --speculate: start the drafter from the state in FILE (Token "
                 "Recycling's tables and the acceptance of each kind of draft; a missing "
                 "file is none), and write it back when the server stops")
      ->needs(speculateOpt);
  tools::SessionFlags sessionFlags;
  sessionFlags.addTo(app);
  if (auto status = tools::parseCommandLine(app, argc, argv, "lathe-serve"))
    return *status;
  auto speculate = speculateFlag.choice();
  if (!speculate)
    return fail(speculate.error().message());
  load.speculate = *speculate;
  load.scheduler.prefill = *serving::parsePrefillPolicy(prefill); // checked by CLI11
  load.memory = sessionFlags.memory();
  load.parameters = sessionFlags.parameters;
  load.execution = [&](const artifact::Artifact &a) { return sessionFlags.resolve(a); };
  // Every HTTP thread may hold a streaming request; a few more answer
  // /health and /metrics meanwhile.
  // Bounded so that a large --max-sequences is one line, not a failed
  // thread start that aborts.
  constexpr int64_t kMostHttpThreads = 4096, kSpareHttpThreads = 8;
  const int64_t httpThreads = load.scheduler.maxSequences + load.maxWaiting + kSpareHttpThreads;
  if (httpThreads > kMostHttpThreads)
    return fail("--max-sequences " + std::to_string(load.scheduler.maxSequences) +
                " and --max-waiting " + std::to_string(load.maxWaiting) + ": at most " +
                std::to_string(kMostHttpThreads - kSpareHttpThreads) +
                " together (an HTTP thread holds each)");
  http.threads = static_cast<int>(httpThreads);

  // SIGINT and SIGTERM go to one thread that stops the server; the others
  // (started after this) never see them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  server::Metrics metrics;
  server::HttpServer server(http, metrics);
  if (Status s = server.bind(); !s)
    return fail(s.error().message());
  std::fprintf(stderr, "lathe-serve: listening on http://%s:%d (loading %s)\n", http.host.c_str(),
               server.port(), load.artifactPath.c_str());

  std::thread([&server, signals] {
    int received = 0;
    sigwait(&signals, &received);
    std::fprintf(stderr, "lathe-serve: stopping (%s)\n", received == SIGINT ? "SIGINT" : "SIGTERM");
    server.stop();
  }).detach();

  std::atomic<bool> failed{false};
  std::thread loader([&] {
    auto model = server::loadServedModel(load, metrics);
    if (!model) {
      fail(model.error().message());
      failed = true;
      server.stop();
      return;
    }
    const auto &shape = (*model)->engine->speculation();
    const std::string speculation =
        shape ? "speculating over " + shape->str() + " trees" : "no speculation";
    std::fprintf(stderr,
                 "lathe-serve: ready: model '%s', %s prefill, %lld sequences at once, "
                 "%s, chat template %s\n",
                 (*model)->name.c_str(), prefill.c_str(),
                 static_cast<long long>(load.scheduler.maxSequences),
                 speculation.c_str(),
                 (*model)->ownTemplate ? "the model's" : "plain (the model has none)");
    server.setModel(model.take());
  });
  server.listen();
  loader.join();
  if (failed)
    return 1;
  // Every request has ended: what the drafter learnt is kept for the next
  // start (the engine stops first, so nothing drafts meanwhile).
  if (server::ServedModel *model = server.model(); model && load.draftFiles.any()) {
    auto kept = server::saveDrafter(*model, load);
    if (!kept)
      return fail(kept.error().message());
    if (!load.draftFiles.state.empty())
      std::fprintf(stderr, "lathe-serve: wrote the drafter's state to %s\n",
                   load.draftFiles.state.c_str());
    if (!load.draftFiles.history.empty())
      std::fprintf(stderr, "lathe-serve: appended %lld texts to %s\n",
                   static_cast<long long>(*kept), load.draftFiles.history.c_str());
  }
  return 0;
}
