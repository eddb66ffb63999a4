// A request's stop strings over its streamed text: text is released as soon
// as it cannot be the start of a stop string, and generation ends at the
// first stop string to be completed (the one that ends first; of two that
// end together, the longer), which does not depend on the pieces the text
// comes in. The stop string itself is not returned, as in OpenAI's API.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lathe::server {

class StopStrings {
public:
  explicit StopStrings(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  /// Adds generated text; returns what may be sent now. After a stop string
  /// has appeared, `stopped()` is true and nothing more is released.
  std::string add(std::string_view text);
  /// The text still held back (a possible start of a stop string), to be
  /// sent when generation ends for another reason.
  std::string flush();
  bool stopped() const { return stopped_; }

private:
  std::vector<std::string> stops_;
  std::string pending_; // text not yet released
  bool stopped_ = false;
};

} // namespace lathe::server
