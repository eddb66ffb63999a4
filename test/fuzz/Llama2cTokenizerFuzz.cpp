// Fuzzes the llama2.c tokenizer.bin loader as lathe-tokenize opens a file
// (runtime/tokenizer/OpenTokenizer.h: the records are counted, parsed and
// checked by Tokenizer::create), then runs what it accepted.
#include "runtime/tokenizer/OpenTokenizer.h"
#include "test/fuzz/FuzzInputFiles.h"
#include "test/fuzz/TokenizerExercise.h"

#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // openTokenizer tells the kind by content: leave tokenizer.json and
  // artifacts to their own targets.
  std::string_view text(reinterpret_cast<const char *>(data), size);
  size_t first = text.find_first_not_of(" \t\n\v\f\r");
  if ((first != std::string_view::npos && text[first] == '{') || text.starts_with("LATHEART"))
    return -1; // not added to the corpus
  const std::string path = lathe::fuzz::scratch().write("tokenizer.bin", {data, size});
  lathe::Expected<lathe::TextTokenizer> tokenizer = lathe::openTokenizer(path);
  if (tokenizer)
    lathe::fuzz::exerciseTokenizer(*tokenizer);
  return 0;
}
