// A running request's tokens as the text its client receives: decoded as
// characters complete (TextTokenizer::Stream), cut at the first stop string,
// with OpenAI's finish reason at the end.
#pragma once

#include "runtime/serving/Scheduler.h"
#include "runtime/tokenizer/TextTokenizer.h"
#include "server/StopStrings.h"

#include <optional>
#include <span>
#include <string>
#include <vector>

namespace lathe::server {

class CompletionText {
public:
  CompletionText(const TextTokenizer &tokenizer, std::span<const int32_t> prompt,
                 std::vector<std::string> stop);

  struct Update {
    std::string text; // to send now (may be empty)
    /// Set once the request has ended: "stop" (a stop token or string),
    /// "length" (max_tokens or the context), "cancelled".
    std::optional<std::string> finishReason;
    /// A stop string matched: the engine should end the request.
    bool stopStringMatched = false;
  };
  /// Consumes a step's events of this request.
  Update consume(const std::vector<serving::Event> &events);
  /// Tokens generated so far (those after a matched stop string not counted).
  int64_t completionTokens() const { return tokens_; }
  bool finished() const { return finished_; }

private:
  TextTokenizer::Stream stream_;
  StopStrings stop_;
  int64_t tokens_ = 0;
  bool finished_ = false;
};

} // namespace lathe::server
