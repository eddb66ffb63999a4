// Runs a tokenizer that a loader accepted the way lathe-run and
// lathe-tokenize do: encode texts (ASCII, multi-byte UTF-8, bytes that are
// not UTF-8, whitespace runs, special-token spellings), decode the ids,
// decode every id of a small vocabulary and a few that are out of range,
// and stream a sequence piece by piece. A loader that accepts a vocabulary
// the tokenizer then cannot run fails here (ASan, UBSan, or the id check).
#pragma once

#include "runtime/tokenizer/TextTokenizer.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace lathe::fuzz {

inline void exerciseTokenizer(const TextTokenizer &tokenizer) {
  static constexpr std::string_view kTexts[] = {
      "Once upon a time, there was a little dog.",
      "  two  spaces\n\nnew lines\ttab\r\n",
      "h\xC3\xA9llo w\xC3\xB6rld \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x99\x82 1234567 3.14",
      "\xFF\xFE\x80 half \xE4\xBD a character \xC3",
      "<s></s><unk><0x41><|endoftext|><|im_start|>user",
      "int main() { return 'x' + 0x1F; } // don't",
      "",
  };
  const size_t idCount = tokenizer.idCount();
  for (std::string_view text : kTexts)
    for (bool special : {false, true}) {
      Expected<std::vector<int32_t>> encoded = tokenizer.encode(text, special);
      if (!encoded)
        continue; // a pre-tokenizer regex over its search bounds: one clean error
      const std::vector<int32_t> ids = encoded.take();
      for (int32_t id : ids)
        if (id < 0 || static_cast<size_t>(id) >= idCount) {
          std::fprintf(stderr, "encode gave id %d, outside [0, %zu)\n", id, idCount);
          std::abort();
        }
      (void)tokenizer.decode(ids);
      (void)tokenizer.decodeSequence(std::span(ids).first(ids.size() / 2),
                                     std::span(ids).subspan(ids.size() / 2));
      TextTokenizer::Stream stream(tokenizer, {});
      for (int32_t id : ids)
        (void)stream.next(id);
    }
  std::vector<int32_t> every;
  for (size_t id = 0; id < std::min<size_t>(idCount, 1024); ++id)
    every.push_back(static_cast<int32_t>(id));
  for (int32_t id : {-1, static_cast<int32_t>(idCount), 1 << 30})
    every.push_back(id);
  (void)tokenizer.decode(every);
  (void)tokenizer.stopTokens();
}

} // namespace lathe::fuzz
