// lathe-serve's HTTP server on stories15M (FP32, 3 layer groups), driven
// over loopback with an HTTP client: answers equal the model's solo greedy
// text, streamed and whole alike, under chunked and layered prefill; stop
// strings, seeds, the chat template; every limit and
// malformed request gets its 4xx JSON error and the server keeps serving;
// /health is 503 until the model is loaded; a client that disconnects
// frees its sequence and KV blocks.
#include "test/e2e/ModelFixture.h"

#include "runtime/tokenizer/OpenTokenizer.h"
#include "server/HttpServer.h"
#include "server/LoadModel.h"

#include <httplib.h>

#include <chrono>
#include <regex>
#include <thread>

namespace lathe::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

/// A server on a free loopback port, serving from its own thread.
class RunningServer {
public:
  explicit RunningServer(server::ServerOptions options)
      : server_((options.host = "127.0.0.1", options.port = 0, options), metrics_) {
    Status s = server_.bind();
    EXPECT_TRUE(s) << s.error().message();
    thread_ = std::thread([this] { server_.listen(); });
  }
  ~RunningServer() {
    server_.stop();
    thread_.join();
  }
  server::HttpServer &server() { return server_; }
  server::Metrics &metrics() { return metrics_; }
  httplib::Client client() {
    httplib::Client c("127.0.0.1", server_.port());
    c.set_read_timeout(60, 0);
    return c;
  }

private:
  server::Metrics metrics_;
  server::HttpServer server_;
  std::thread thread_;
};

class ServerTest : public ::testing::Test {
protected:
  static constexpr size_t kBodyLimit = 8192;

  void SetUp() override {
    if (!haveModel())
      GTEST_SKIP() << "LATHE_MODEL_DIR does not hold stories15M (run make model)";
    // With 3 layer groups: layered prefill runs them; whole and chunked
    // ignore them.
    static std::string path = [] {
      compiler::CompileOptions options;
      options.input = modelDir() + "/stories15M.bin";
      options.tokenizer = modelDir() + "/tokenizer.bin";
      options.prefillGroups = 3;
      auto a = compileAndLoad(options, "served");
      return a ? tempPath("served.lathe") : std::string();
    }();
    ASSERT_FALSE(path.empty());
    artifactPath = path;
    server::ServerOptions options;
    options.maxBodyBytes = kBodyLimit;
    options.maxTokens = 200;
    options.threads = 16;
    running = std::make_unique<RunningServer>(options);
  }

  /// Loads the model into the running server.
  void load(serving::PrefillPolicy policy = serving::PrefillPolicy::Chunked,
            std::optional<std::string> speculate = std::nullopt) {
    server::LoadOptions options;
    options.artifactPath = artifactPath;
    options.memory = FileMemory::Mapped;
    options.execution = [](const artifact::Artifact &) {
      SessionOptions o;
      o.threads = 2;
      return o;
    };
    options.scheduler.prefill = policy;
    options.scheduler.maxSequences = 4;
    options.maxWaiting = 4;
    options.name = "stories15M";
    options.speculate = speculate;
    auto model = server::loadServedModel(options, running->metrics());
    ASSERT_TRUE(model) << model.error().message();
    running->server().setModel(model.take());
  }

  const TextTokenizer &tokenizer() { return running->server().model()->tokenizer; }

  /// The text greedy decoding gives after `prompt` in a session of its
  /// own, stopping at end-of-text or after `n` tokens.
  std::string soloText(const std::string &prompt, int64_t n) {
    std::vector<int32_t> ids = *tokenizer().encode(prompt, true);
    auto a = artifact::Artifact::load(artifactPath);
    EXPECT_TRUE(a);
    std::vector<int32_t> out = greedyIds(*a, ids, n);
    TextTokenizer::Stream stream(tokenizer(), ids);
    std::string text;
    for (int32_t t : out) {
      if (t == tokenizer().eos())
        break;
      text += stream.next(t);
    }
    return text;
  }

  httplib::Result post(const std::string &path, const json &body) {
    httplib::Client c = running->client();
    return c.Post(path, body.dump(), "application/json");
  }

  /// The data of a streamed answer's events, [DONE] included.
  static std::vector<std::string> events(const std::string &body) {
    std::vector<std::string> out;
    size_t pos = 0;
    while ((pos = body.find("data: ", pos)) != std::string::npos) {
      size_t end = body.find("\n\n", pos);
      out.push_back(body.substr(pos + 6, end - pos - 6));
      pos = end;
    }
    return out;
  }

  /// Each prompt's greedy completion of `maxTokens`, all requested at once
  /// (every other one streamed when `stream`); a failed request's body or
  /// error instead.
  std::vector<std::string> concurrentTexts(const std::vector<std::string> &prompts,
                                           int maxTokens, bool stream) {
    std::vector<std::string> got(prompts.size());
    std::vector<std::thread> clients;
    for (size_t i = 0; i < prompts.size(); ++i)
      clients.emplace_back([&, i] {
        const bool streamed = stream && i % 2 == 0;
        auto r = post("/v1/completions", {{"model", "stories15M"},
                                          {"prompt", prompts[i]},
                                          {"max_tokens", maxTokens},
                                          {"temperature", 0},
                                          {"stream", streamed}});
        if (!r || r->status != 200) {
          got[i] = r ? r->body : "no answer: " + httplib::to_string(r.error());
          return;
        }
        if (!streamed)
          got[i] = json::parse(r->body)["choices"][0]["text"];
        else
          for (const std::string &d : events(r->body))
            if (d != "[DONE]")
              got[i] += json::parse(d)["choices"][0]["text"].get<std::string>();
      });
    for (std::thread &t : clients)
      t.join();
    return got;
  }

  /// The value of an unlabelled metric in /metrics.
  double metric(const std::string &name) {
    httplib::Client c = running->client();
    auto r = c.Get("/metrics");
    EXPECT_TRUE(r);
    std::smatch m;
    std::regex line("\n" + name + " ([0-9.e+-]+)\n");
    if (!r || !std::regex_search(r->body, m, line))
      return -1;
    return std::stod(m[1]);
  }

  std::string artifactPath;
  std::unique_ptr<RunningServer> running;
};

const std::string kPrompt = "Once upon a time, there was a little dog";

TEST_F(ServerTest, HealthIsUnavailableUntilTheModelIsLoaded) {
  httplib::Client c = running->client();
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  auto early = post("/v1/completions", {{"model", "stories15M"}, {"prompt", "x"}});
  ASSERT_TRUE(early);
  EXPECT_EQ(early->status, 503);
  EXPECT_EQ(json::parse(early->body)["error"]["code"], "loading");
  load();
  health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  json list = json::parse(models->body);
  ASSERT_EQ(list["data"].size(), 1u);
  EXPECT_EQ(list["data"][0]["id"], "stories15M");
}

TEST_F(ServerTest, WholeAndStreamedAnswersEqualTheSoloGreedyText) {
  load();
  const std::string expected = soloText(kPrompt, 60);
  ASSERT_FALSE(expected.empty());
  json request = {{"model", "stories15M"}, {"prompt", kPrompt}, {"max_tokens", 60},
                  {"temperature", 0}};
  auto whole = post("/v1/completions", request);
  ASSERT_TRUE(whole);
  ASSERT_EQ(whole->status, 200) << whole->body;
  json answer = json::parse(whole->body);
  EXPECT_EQ(answer["object"], "text_completion");
  EXPECT_EQ(answer["choices"][0]["text"], expected);
  const int64_t promptTokens = int64_t(tokenizer().encode(kPrompt, true)->size());
  EXPECT_EQ(answer["usage"]["prompt_tokens"], promptTokens);

  request["stream"] = true;
  request["stream_options"] = {{"include_usage", true}};
  auto streamed = post("/v1/completions", request);
  ASSERT_TRUE(streamed);
  ASSERT_EQ(streamed->status, 200);
  EXPECT_NE(streamed->get_header_value("Content-Type").find("text/event-stream"),
            std::string::npos);
  std::vector<std::string> data = events(streamed->body);
  ASSERT_GE(data.size(), 3u);
  EXPECT_EQ(data.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 2 < data.size(); ++i) {
    json chunk = json::parse(data[i]);
    EXPECT_TRUE(chunk["usage"].is_null()) << data[i];
    text += chunk["choices"][0]["text"].get<std::string>();
    if (i + 3 < data.size())
      EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  }
  EXPECT_EQ(text, expected);
  json last = json::parse(data[data.size() - 3]);
  EXPECT_EQ(last["choices"][0]["finish_reason"], answer["choices"][0]["finish_reason"]);
  json usage = json::parse(data[data.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"], answer["usage"]);
}

TEST_F(ServerTest, ConcurrentRequestsEachGetTheirOwnText) {
  load(serving::PrefillPolicy::Layered); // prompts one layer group a step
  const std::vector<std::string> prompts = {"The cat", "Lily went to the park",
                                            "One day, a big bear", kPrompt, "Tom had a red ball",
                                            "The sun was"};
  const std::vector<std::string> got = concurrentTexts(prompts, 40, true);
  for (size_t i = 0; i < prompts.size(); ++i)
    EXPECT_EQ(got[i], soloText(prompts[i], 40)) << prompts[i];
}

TEST_F(ServerTest, ASpeculatingServerGivesEachRequestItsGreedyTextAndCountsAcceptance) {
  load(serving::PrefillPolicy::Layered, ""); // the default tree
  // A repetitive prompt among them, whose text prompt lookup drafts (how
  // the requests interleave decides what Token Recycling drafts for the
  // others: with four stories, none of it was accepted in about one run in
  // four). 40 tokens: its story does not end by then.
  const std::vector<std::string> prompts = {
      "The cat", "Lily went to the park", kPrompt,
      "The dog was happy. The dog was happy. The dog was happy. The dog was"};
  const std::vector<std::string> got = concurrentTexts(prompts, 40, false);
  for (size_t i = 0; i < prompts.size(); ++i)
    EXPECT_EQ(got[i], soloText(prompts[i], 40)) << prompts[i];
  const double verified = metric("lathe_speculative_verifications_total");
  const double drafted = metric("lathe_speculative_draft_tokens_total");
  const double accepted = metric("lathe_speculative_accepted_tokens_total");
  EXPECT_GT(verified, 0);
  EXPECT_GT(drafted, 0);
  EXPECT_GT(accepted, 0);
  EXPECT_LE(accepted, drafted);
  // Fewer verifications than tokens generated: steps emitted several.
  EXPECT_LT(verified, metric("lathe_generated_tokens_total"));
}

TEST_F(ServerTest, StopStringsEndTheTextBeforeThem) {
  load();
  const std::string expected = soloText(kPrompt, 60);
  // A stop string from the middle of the answer: a word after its start.
  size_t at = expected.find(' ', expected.size() / 2);
  ASSERT_NE(at, std::string::npos);
  const std::string stop = expected.substr(at, 4);
  auto r = post("/v1/completions", {{"model", "stories15M"},
                                    {"prompt", kPrompt},
                                    {"max_tokens", 60},
                                    {"temperature", 0},
                                    {"stop", {"never appears", stop}}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json answer = json::parse(r->body);
  EXPECT_EQ(answer["choices"][0]["text"], expected.substr(0, expected.find(stop)));
  EXPECT_EQ(answer["choices"][0]["finish_reason"], "stop");
}

TEST_F(ServerTest, SeededSamplingRepeatsAndChatUsesThePlainTemplate) {
  load();
  json request = {{"model", "stories15M"},
                  {"messages", {{{"role", "user"}, {"content", "Tell me a story."}}}},
                  {"max_tokens", 30},
                  {"temperature", 0.9},
                  {"top_p", 0.95},
                  {"seed", 1234}};
  auto first = post("/v1/chat/completions", request);
  auto second = post("/v1/chat/completions", request);
  ASSERT_TRUE(first && second);
  ASSERT_EQ(first->status, 200) << first->body;
  json a = json::parse(first->body), b = json::parse(second->body);
  EXPECT_EQ(a["object"], "chat.completion");
  EXPECT_EQ(a["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(a["choices"][0]["message"], b["choices"][0]["message"]);
  // The plain template: "User: ...\n\nAssistant:", BOS from the tokenizer.
  EXPECT_EQ(a["usage"]["prompt_tokens"],
            tokenizer().encode("User: Tell me a story.\n\nAssistant:", true)->size());

  request["stream"] = true;
  auto streamed = post("/v1/chat/completions", request);
  ASSERT_TRUE(streamed);
  std::vector<std::string> data = events(streamed->body);
  ASSERT_GE(data.size(), 3u);
  json firstChunk = json::parse(data[0]);
  EXPECT_EQ(firstChunk["object"], "chat.completion.chunk");
  EXPECT_EQ(firstChunk["choices"][0]["delta"]["role"], "assistant");
  std::string text;
  for (const std::string &d : data)
    if (d != "[DONE]")
      text += json::parse(d)["choices"][0]["delta"].value("content", "");
  EXPECT_EQ(text, a["choices"][0]["message"]["content"].get<std::string>());
}

TEST_F(ServerTest, BadRequestsGetErrorsAndTheServerKeepsServing) {
  load();
  httplib::Client c = running->client();
  struct Case {
    std::string body;
    int status;
    std::string param;
  };
  const json good = {{"model", "stories15M"}, {"prompt", "Hi"}, {"max_tokens", 2}};
  auto with = [&](const char *key, json value) {
    json j = good;
    j[key] = std::move(value);
    return j.dump();
  };
  std::string longPrompt;
  for (int i = 0; i < 300; ++i)
    longPrompt += " dog";
  const std::vector<Case> cases = {
      {"{\"model\": \"stories15M\", \"prompt\": ", 400, ""},    // malformed JSON
      {"[1, 2]", 400, ""},                                      // not an object
      {with("frobnicate", 1), 400, "frobnicate"},               // unknown field
      {with("n", 2), 400, "n"},                                 // not supported
      {with("max_tokens", 0), 400, "max_tokens"},               // out of range
      {with("max_tokens", 201), 400, "max_tokens"},             // over the server's limit
      {with("temperature", "hot"), 400, "temperature"},         // wrong type
      {with("stop", {"a", "b", "c", "d", "e"}), 400, "stop"},   // too many stop strings
      {with("prompt", longPrompt), 400, "prompt"},              // longer than the context
      {with("prompt", {1, 40000}), 400, "prompt"},              // outside the vocabulary
      {with("model", "gpt-4"), 404, "model"},                   // another model
      {json{{"model", "stories15M"}}.dump(), 400, "prompt"},    // no prompt
  };
  for (const Case &k : cases) {
    auto r = c.Post("/v1/completions", k.body, "application/json");
    ASSERT_TRUE(r) << k.body.substr(0, 80);
    EXPECT_EQ(r->status, k.status) << k.body.substr(0, 80) << " -> " << r->body;
    json error = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(error.contains("error")) << r->body;
    EXPECT_FALSE(error["error"]["message"].get<std::string>().empty());
    if (!k.param.empty())
      EXPECT_EQ(error["error"]["param"], k.param) << r->body;
  }
  // A body over the limit: 413, with a JSON error too.
  auto big = c.Post("/v1/completions", with("prompt", std::string(kBodyLimit, 'a')),
                    "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_TRUE(json::parse(big->body, nullptr, false).contains("error")) << big->body;
  auto unknown = c.Get("/v1/engines");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  EXPECT_TRUE(json::parse(unknown->body, nullptr, false).contains("error"));
  // Another method on a completions endpoint: 405 naming the one it takes.
  auto get = c.Get("/v1/chat/completions");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405);
  EXPECT_EQ(get->get_header_value("Allow"), "POST");
  EXPECT_EQ(json::parse(get->body)["error"]["message"],
            "/v1/chat/completions takes POST, not GET");
  // Still serving.
  auto ok = c.Post("/v1/completions", good.dump(), "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(json::parse(ok->body)["usage"]["completion_tokens"], 2);
}

TEST_F(ServerTest, AClientThatDisconnectsFreesItsSequence) {
  load();
  // Ask for the whole context and hang up after the first event.
  httplib::Client c = running->client();
  int chunks = 0;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = json{{"model", "stories15M"},
                  {"prompt", kPrompt},
                  {"max_tokens", 200},
                  {"temperature", 0.9},
                  {"seed", 5},
                  {"stream", true}}
                 .dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char *, size_t, uint64_t, uint64_t) {
    return ++chunks < 2; // false: the client closes the connection
  };
  auto r = c.send(req);
  EXPECT_GE(chunks, 2);
  // The sequence is cancelled and its KV blocks freed, long before 200
  // tokens (each step takes a few milliseconds).
  auto start = std::chrono::steady_clock::now();
  while (metric("lathe_kv_cache_blocks_used") != 0 &&
         std::chrono::steady_clock::now() - start < 5s)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(metric("lathe_kv_cache_blocks_used"), 0);
  EXPECT_EQ(metric("lathe_requests_running"), 0);
  EXPECT_LT(metric("lathe_generated_tokens_total"), 100);
  httplib::Client m = running->client();
  auto metrics = m.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("lathe_requests_total{endpoint=\"completions\",outcome=\"cancelled\"} 1"),
            std::string::npos)
      << metrics->body;
}

} // namespace
} // namespace lathe::test
