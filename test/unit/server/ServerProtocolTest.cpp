// The server's pure parts: reading OpenAI requests field by field, stop
// strings over streamed text, the answers' JSON and the Prometheus text.
#include "server/CompletionRequest.h"
#include "server/CompletionResponse.h"
#include "server/Metrics.h"
#include "server/StopStrings.h"

#include <gtest/gtest.h>

namespace lathe::server {
namespace {

using json = nlohmann::json;

/// The request parsed (by value: the variant is a temporary).
CompletionRequest ok(const std::variant<CompletionRequest, ApiError> &r) {
  if (const ApiError *e = std::get_if<ApiError>(&r)) {
    ADD_FAILURE() << e->message;
    return {};
  }
  return std::get<CompletionRequest>(r);
}

ApiError refused(const std::variant<CompletionRequest, ApiError> &r) {
  if (const ApiError *e = std::get_if<ApiError>(&r))
    return *e;
  ADD_FAILURE() << "accepted";
  return {};
}

TEST(CompletionRequestTest, ReadsEveryImplementedField) {
  json body = {{"model", "m"},         {"prompt", "hello"},  {"max_tokens", 7},
               {"temperature", 0.5},   {"top_p", 0.9},       {"seed", 42},
               {"stop", {"a", "bc"}}, {"stream", true},     {"stream_options", {{"include_usage", true}}},
               {"user", "u1"},         {"n", 1},             {"echo", false},
               {"presence_penalty", 0}, {"logit_bias", json::object()}};
  const CompletionRequest r = ok(parseCompletionRequest(body, Endpoint::Completions));
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(std::get<std::string>(r.prompt), "hello");
  EXPECT_EQ(r.maxTokens, 7);
  EXPECT_FLOAT_EQ(r.temperature, 0.5f);
  EXPECT_FLOAT_EQ(r.topP, 0.9f);
  EXPECT_EQ(r.seed, 42u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.includeUsage);
}

TEST(CompletionRequestTest, DefaultsAreOpenAIs) {
  const CompletionRequest &r =
      ok(parseCompletionRequest({{"model", "m"}, {"prompt", "x"}}, Endpoint::Completions));
  EXPECT_FALSE(r.maxTokens);
  EXPECT_FLOAT_EQ(r.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.topP, 1.0f);
  EXPECT_FALSE(r.seed);
  EXPECT_FALSE(r.stream);
  // null means the default, as OpenAI's clients send it.
  const CompletionRequest n = ok(parseCompletionRequest(
      {{"model", "m"}, {"prompt", "x"}, {"max_tokens", nullptr}, {"stop", nullptr}},
      Endpoint::Completions));
  EXPECT_FALSE(n.maxTokens);
  EXPECT_TRUE(n.stop.empty());
}

TEST(CompletionRequestTest, PromptsAsTextOrIds) {
  auto prompt = [](json p) {
    return ok(parseCompletionRequest({{"model", "m"}, {"prompt", p}}, Endpoint::Completions))
        .prompt;
  };
  EXPECT_EQ(std::get<std::vector<int32_t>>(prompt({1, 2, 3})), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(std::get<std::string>(prompt({"one"})), "one");
  EXPECT_EQ(std::get<std::vector<int32_t>>(prompt({{5, 6}})), (std::vector<int32_t>{5, 6}));
  for (json bad : {json(json::array()), json({"a", "b"}), json({1, -2}), json(3), json({1.5})})
    EXPECT_EQ(refused(parseCompletionRequest({{"model", "m"}, {"prompt", bad}},
                                             Endpoint::Completions))
                  .param,
              "prompt")
        << bad.dump();
}

TEST(CompletionRequestTest, ChatMessagesJoinTextParts) {
  json body = {{"model", "m"},
               {"messages",
                {{{"role", "system"}, {"content", "Be brief."}},
                 {{"role", "user"},
                  {"content", {{{"type", "text"}, {"text", "Hi "}}, {{"type", "text"}, {"text", "there"}}}}}}},
               {"max_completion_tokens", 9}};
  const CompletionRequest r = ok(parseCompletionRequest(body, Endpoint::ChatCompletions));
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1]["content"], "Hi there");
  EXPECT_EQ(r.maxTokens, 9);
  json image = body;
  image["messages"][1]["content"] = {{{"type", "image_url"}, {"image_url", "x"}}};
  EXPECT_EQ(refused(parseCompletionRequest(image, Endpoint::ChatCompletions)).param,
            "messages[1].content");
  // A part whose "type" is not a string is refused, not thrown on (a crash
  // the completion-request fuzzer found).
  json arrayType = body;
  arrayType["messages"][1]["content"] = {{{"type", json::array({1})}, {"text", "Hi"}}};
  EXPECT_EQ(refused(parseCompletionRequest(arrayType, Endpoint::ChatCompletions)).param,
            "messages[1].content");
  json noRole = body;
  noRole["messages"][0].erase("role");
  EXPECT_EQ(refused(parseCompletionRequest(noRole, Endpoint::ChatCompletions)).param,
            "messages[0].role");
  // A name is kept; a role without a meaning here, an unknown key or a
  // tool call is refused (they were passed to the template silently).
  json named = body;
  named["messages"][1]["name"] = "ann";
  EXPECT_EQ(ok(parseCompletionRequest(named, Endpoint::ChatCompletions)).messages[1]["name"],
            "ann");
  json tool = body;
  tool["messages"][1]["role"] = "tool";
  EXPECT_EQ(refused(parseCompletionRequest(tool, Endpoint::ChatCompletions)).param,
            "messages[1].role");
  json unknown = body;
  unknown["messages"][0]["foo"] = 1;
  EXPECT_EQ(refused(parseCompletionRequest(unknown, Endpoint::ChatCompletions)).message,
            "unknown field 'messages[0].foo'");
  json calls = body;
  calls["messages"][0]["tool_calls"] = {{{"id", "1"}}};
  EXPECT_EQ(refused(parseCompletionRequest(calls, Endpoint::ChatCompletions)).param,
            "messages[0].tool_calls");
  calls["messages"][0]["tool_calls"] = nullptr;
  EXPECT_EQ(ok(parseCompletionRequest(calls, Endpoint::ChatCompletions)).messages.size(), 2u);
}

// A message's value nested 100,000 deep (under an unknown key, or in a
// content part) is refused without copying it: nlohmann's copy recurses,
// and copying the message whole overflowed an HTTP thread's stack.
TEST(CompletionRequestTest, DeeplyNestedMessageValuesAreRefusedNotCopied) {
  const std::string nested = std::string(100000, '[') + std::string(100000, ']');
  for (const std::string &message :
       {R"({"role": "user", "content": "Hi", "extra": )" + nested + "}",
        R"({"role": "user", "content": [{"type": "text", "text": "Hi", "x": )" + nested + "}]}"}) {
    const json body = json::parse(R"({"model": "m", "messages": [)" + message + "]}");
    const ApiError e = refused(parseCompletionRequest(body, Endpoint::ChatCompletions));
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param.substr(0, 11), "messages[0]") << e.message;
  }
}

// top_p below float's range keeps the top token (it became 0, which the
// sampler refused with its command-line flag's message).
TEST(CompletionRequestTest, TinyTopPKeepsTheTopToken) {
  const CompletionRequest r = ok(parseCompletionRequest(
      json::parse(R"({"model": "m", "prompt": "x", "top_p": 1e-300})"), Endpoint::Completions));
  EXPECT_GT(r.topP, 0.0f);
  EXPECT_LE(r.topP, 1e-37f);
}

TEST(CompletionRequestTest, RefusesWhatItWouldOtherwiseIgnore) {
  const json base = {{"model", "m"}, {"prompt", "x"}};
  struct Case {
    const char *field;
    json value;
  };
  const std::vector<Case> cases = {
      {"frobnicate", 1},          {"n", 2},           {"echo", true},
      {"best_of", 3},             {"logprobs", 5},    {"presence_penalty", 0.5},
      {"frequency_penalty", -1},  {"logit_bias", {{"50", 10}}},
      {"suffix", "end"},          {"max_tokens", 0},  {"max_tokens", 2.5},
      {"temperature", 2.5},       {"temperature", -0.1}, {"top_p", 0},
      {"top_p", 1.5},             {"seed", "x"},      {"stream", "yes"},
      {"stop", {"", "a"}},        {"stop", {"1", "2", "3", "4", "5"}}, {"stop", {1}},
      {"stream_options", {{"include_usage", true}, {"other", 1}}},
      {"model", 3},               {"user", 5},
  };
  for (const Case &c : cases) {
    json body = base;
    body[c.field] = c.value;
    // Read back from text, as a server gets it: non-negative integers are
    // then unsigned.
    body = json::parse(body.dump());
    ApiError e = refused(parseCompletionRequest(body, Endpoint::Completions));
    EXPECT_EQ(e.status, 400) << c.field;
    EXPECT_EQ(e.param.substr(0, std::string(c.field).size()), c.field) << e.message;
    EXPECT_NE(e.message.find(c.field), std::string::npos) << e.message;
  }
  // Chat-only fields are unknown to completions, and the other way round.
  EXPECT_EQ(refused(parseCompletionRequest({{"model", "m"}, {"prompt", "x"}, {"tools", {1}}},
                                           Endpoint::Completions))
                .message,
            "unknown field 'tools'");
  EXPECT_EQ(refused(parseCompletionRequest(
                        {{"model", "m"}, {"messages", {{{"role", "user"}}}}, {"prompt", "x"}},
                        Endpoint::ChatCompletions))
                .param,
            "prompt");
  // Required fields, include_usage without stream, a body that is no object.
  EXPECT_EQ(refused(parseCompletionRequest({{"prompt", "x"}}, Endpoint::Completions)).param,
            "model");
  EXPECT_EQ(refused(parseCompletionRequest({{"model", "m"}}, Endpoint::ChatCompletions)).param,
            "messages");
  EXPECT_EQ(refused(parseCompletionRequest(
                        {{"model", "m"}, {"prompt", "x"}, {"stream_options", {{"include_usage", true}}}},
                        Endpoint::Completions))
                .param,
            "stream_options");
  EXPECT_EQ(refused(parseCompletionRequest(json::array(), Endpoint::Completions)).status, 400);
}

std::string feed(StopStrings &s, const std::vector<std::string> &pieces) {
  std::string out;
  for (const std::string &p : pieces)
    out += s.add(p);
  return out;
}

TEST(StopStringsTest, HoldsBackOnlyWhatCouldStartAStopString) {
  StopStrings s({"END"});
  EXPECT_EQ(s.add("abc"), "abc");
  EXPECT_EQ(s.add("xE"), "x"); // "E" may begin END
  EXPECT_EQ(s.add("N"), "");   // "EN" too
  EXPECT_EQ(s.add("d"), "ENd"); // not END after all
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(s.add("E"), "");
  EXPECT_EQ(s.flush(), "E"); // generation ended otherwise: the rest is text
}

TEST(StopStringsTest, CutsAtTheEarliestStopStringAcrossPieces) {
  StopStrings s({"dog", "o d"});
  EXPECT_EQ(feed(s, {"hell", "o", " do", "g bark"}), "hell");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.add("more"), "");
  EXPECT_EQ(s.flush(), "");
  StopStrings none({});
  EXPECT_EQ(feed(none, {"a", "b"}), "ab");
}

TEST(StopStringsTest, TheStopStringCompletedFirstWinsInPiecesOfAnySize) {
  // "i" is complete before "time" is, in one piece as in five: generation
  // a character at a time would stop there (a fuzzer found the two
  // differing when the earliest start won).
  for (const std::vector<std::string> &pieces :
       {std::vector<std::string>{"xtime"}, {"x", "t", "i", "m", "e"}, {"xt", "ime"}}) {
    StopStrings s({"time", "i"});
    EXPECT_EQ(feed(s, pieces), "xt");
    EXPECT_TRUE(s.stopped());
  }
  // Two ending together: the longer one (it starts first).
  StopStrings tie({"me", "time"});
  EXPECT_EQ(feed(tie, {"a time"}), "a ");
}

TEST(CompletionResponseTest, ChunksAndBodiesHaveOpenAIsShape) {
  ResponseHeader chat{Endpoint::ChatCompletions, "chatcmpl-1", 100, "m"};
  json first = chunkJson(chat, "", std::nullopt, true, true);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"], (json{{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(first["usage"].is_null());
  EXPECT_TRUE(first.contains("usage"));
  json last = chunkJson(chat, "", std::string("length"), false, false);
  EXPECT_EQ(last["choices"][0]["delta"], json::object());
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  EXPECT_FALSE(last.contains("usage"));
  json body = completionJson({Endpoint::Completions, "cmpl-2", 5, "m"}, "hi", "stop", 3, 2);
  EXPECT_EQ(body["choices"][0]["text"], "hi");
  EXPECT_EQ(body["usage"], (json{{"prompt_tokens", 3}, {"completion_tokens", 2}, {"total_tokens", 5}}));
  EXPECT_EQ(usageChunkJson(chat, 3, 4)["choices"], json::array());
  EXPECT_EQ(serverSentEvent(json{{"a", 1}}), "data: {\"a\":1}\n\n");
  // Invalid UTF-8 (half a character of a byte token) does not throw.
  EXPECT_NO_THROW(serverSentEvent(chunkJson(chat, "\xe2\x82", std::nullopt, false, false)));
}

TEST(MetricsTest, RendersCumulativeHistogramsAndLabelledCounters) {
  Metrics m;
  m.requestEnded("completions", "stop");
  m.requestEnded("completions", "stop");
  m.requestEnded("chat_completions", "error");
  m.timeToFirstToken(0.003);
  m.timeToFirstToken(0.2);
  m.timeToFirstToken(100);
  m.step(0.004, 5, 2, 1, 10, 40);
  std::string text = m.render();
  EXPECT_NE(text.find("lathe_requests_total{endpoint=\"completions\",outcome=\"stop\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("lathe_requests_total{endpoint=\"chat_completions\",outcome=\"error\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("lathe_time_to_first_token_seconds_bucket{le=\"0.0025\"} 0\n"),
            std::string::npos);
  EXPECT_NE(text.find("lathe_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("lathe_time_to_first_token_seconds_bucket{le=\"0.25\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("lathe_time_to_first_token_seconds_bucket{le=\"60\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("lathe_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3\n"),
            std::string::npos);
  EXPECT_NE(text.find("lathe_time_to_first_token_seconds_count 3\n"), std::string::npos);
  EXPECT_NE(text.find("lathe_kv_cache_usage_ratio 0.25\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE lathe_step_seconds histogram\n"), std::string::npos);
}

// The text held back is the longest tail that could start a stop string,
// so a self-overlapping one ("aab" after "xaa") is found.
TEST(StopStringsTest, HoldsTheLongestPossibleStart) {
  StopStrings s({"aab"});
  EXPECT_EQ(feed(s, {"xaa", "b"}), "x");
  EXPECT_TRUE(s.stopped());
}

// Of two stop strings completed by the same character, the longer wins
// whatever their order in the list.
TEST(StopStringsTest, TieGoesToTheLongerWhateverTheOrder) {
  StopStrings tie({"time", "me"});
  EXPECT_EQ(feed(tie, {"a time"}), "a ");
}

// A piece holding a stop string twice ends at the first.
TEST(StopStringsTest, EndsAtTheFirstOccurrenceInAPiece) {
  StopStrings s({"ab"});
  EXPECT_EQ(s.add("xabyab"), "x");
}

} // namespace
} // namespace lathe::server
