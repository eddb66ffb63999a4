#include "server/StopStrings.h"

#include <algorithm>
#include <utility>

namespace lathe::server {

std::string StopStrings::add(std::string_view text) {
  if (stopped_)
    return {};
  pending_ += text;
  // The stop string that ends first wins, as generation one character at
  // a time would meet it (of two ending together, the one that starts
  // first): text before it is released. Whatever pieces the text comes in,
  // the cut is the same. A string's first occurrence is its earliest end.
  size_t end = std::string::npos, start = std::string::npos;
  for (const std::string &s : stops_) {
    const size_t at = pending_.find(s);
    if (at != std::string::npos && (at + s.size() < end || (at + s.size() == end && at < start))) {
      end = at + s.size();
      start = at;
    }
  }
  if (start != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, start);
    pending_.clear();
    return out;
  }
  // Hold back the longest tail that begins some stop string.
  size_t hold = 0;
  for (const std::string &s : stops_)
    for (size_t n = std::min(s.size() - 1, pending_.size()); n > hold; --n)
      if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopStrings::flush() {
  if (stopped_)
    return {};
  return std::exchange(pending_, {});
}

} // namespace lathe::server
