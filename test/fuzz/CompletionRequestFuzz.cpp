// Fuzzes lathe-serve's reading of request bodies (server/CompletionRequest.h)
// and its stop strings: a body is refused with a 4xx and a message, or
// accepted with every field in range; a stop-string matcher fed the body's
// text in pieces releases a prefix of it, cut before the stop string that
// is completed first.
#include "server/CompletionRequest.h"
#include "server/StopStrings.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

[[noreturn]] void fail(const char *what) {
  std::fprintf(stderr, "%s\n", what);
  std::abort();
}

void checkAccepted(const lathe::server::CompletionRequest &r) {
  if (r.stop.size() > lathe::server::kMaxStopStrings)
    fail("more stop strings than allowed");
  for (const std::string &s : r.stop)
    if (s.empty())
      fail("an empty stop string was accepted");
  if (!(r.temperature >= 0 && r.temperature <= 2) || !(r.topP > 0 && r.topP <= 1))
    fail("a sampling option out of range was accepted");
  if (r.maxTokens && *r.maxTokens < 1)
    fail("max_tokens below 1 was accepted");
  if (r.includeUsage && !r.stream)
    fail("include_usage without stream was accepted");
}

/// Feeds `text` to a matcher in pieces of `step` bytes; what it releases
/// must be `text` up to the stop string completed first, read one byte at
/// a time (or all of it).
void checkStopStrings(const std::vector<std::string> &stops, std::string_view text, size_t step) {
  lathe::server::StopStrings matcher(stops);
  std::string out;
  for (size_t at = 0; at < text.size(); at += step)
    out += matcher.add(text.substr(at, step));
  out += matcher.flush();
  size_t cut = text.size();
  for (size_t end = 1; end <= text.size() && cut == text.size(); ++end)
    for (const std::string &s : stops) // the longest of those ending here
      if (s.size() <= end && text.substr(end - s.size(), s.size()) == s)
        cut = std::min(cut, end - s.size());
  if (out != text.substr(0, cut))
    fail("the stop strings released something else than the text before the first one");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace lathe::server;
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  const nlohmann::json body = nlohmann::json::parse(text, nullptr, false);
  if (body.is_discarded())
    return 0;
  for (Endpoint endpoint : {Endpoint::Completions, Endpoint::ChatCompletions}) {
    auto parsed = parseCompletionRequest(body, endpoint);
    if (const ApiError *e = std::get_if<ApiError>(&parsed)) {
      if (e->status < 400 || e->status > 499 || e->message.empty())
        fail("a refusal without a 4xx status and a message");
      continue;
    }
    const CompletionRequest &r = std::get<CompletionRequest>(parsed);
    checkAccepted(r);
    if (!r.stop.empty())
      for (size_t step : {size_t(1), size_t(3), size_t(64)})
        checkStopStrings(r.stop, text, step);
  }
  return 0;
}
