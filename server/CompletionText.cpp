#include "server/CompletionText.h"

namespace lathe::server {

CompletionText::CompletionText(const TextTokenizer &tokenizer, std::span<const int32_t> prompt,
                               std::vector<std::string> stop)
    : stream_(tokenizer, prompt), stop_(std::move(stop)) {}

CompletionText::Update CompletionText::consume(const std::vector<serving::Event> &events) {
  Update u;
  for (const serving::Event &e : events) {
    if (finished_)
      break;
    if (e.kind == serving::Event::Kind::Token) {
      ++tokens_;
      u.text += stop_.add(stream_.next(e.token));
      if (stop_.stopped()) {
        finished_ = true;
        u.finishReason = "stop";
        u.stopStringMatched = true;
      }
      continue;
    }
    finished_ = true;
    u.text += stop_.flush();
    switch (e.reason) {
    case serving::FinishReason::StopToken: u.finishReason = "stop"; break;
    case serving::FinishReason::MaxTokens:
    case serving::FinishReason::ContextEnd: u.finishReason = "length"; break;
    case serving::FinishReason::Cancelled: u.finishReason = "cancelled"; break;
    }
  }
  return u;
}

} // namespace lathe::server
