// What the C testbench and the XRT host program of a generated HLS project
// share: reading the prompt ids and choosing the greedy token. Neither is
// synthesized, so this may use the standard library.
#ifndef LATHE_HOST_COMMON_H
#define LATHE_HOST_COMMON_H

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace lathe_host {

/// "1,2,3": ids below `vocab` separated by commas; false on anything else.
inline bool parseIds(const std::string &text, int64_t vocab, std::vector<int32_t> &ids) {
  ids.clear();
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? comma : comma - start);
    char *end = nullptr;
    const long id = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end || id < 0 || id >= vocab)
      return false;
    ids.push_back(static_cast<int32_t>(id));
    if (comma == std::string::npos)
      return true;
    start = comma + 1;
  }
}

/// N, the tokens to generate: a count >= 0 and nothing else; false otherwise.
inline bool parseCount(const char *text, long &n) {
  char *end = nullptr;
  n = std::strtol(text, &end, 10);
  return end != text && *end == 0 && n >= 0;
}

/// Whether a prompt of `prompt` tokens and `n` generated tokens fit the
/// context: the steps run at positions 0 .. prompt - 1 for the prompt, then
/// one more for each generated token but the last.
inline bool fitsContext(size_t prompt, long n, int64_t context) {
  return prompt + size_t(n > 0 ? n : 1) - 1 <= size_t(context);
}

/// The first index of the largest logit, NaN skipped (lathe::argmax).
inline int32_t argmax(const std::vector<float> &v) {
  int32_t best = -1;
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] == v[i] && (best < 0 || v[i] > v[size_t(best)]))
      best = static_cast<int32_t>(i);
  return best < 0 ? 0 : best;
}

} // namespace lathe_host

#endif
