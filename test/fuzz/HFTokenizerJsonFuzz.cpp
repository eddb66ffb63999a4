// Fuzzes the Hugging Face tokenizer loader (runtime/tokenizer/HFTokenizerJson.h
// and HFTokenizer::create) on a folder, as lathe-tokenize opens one, then runs
// what it accepted. An input is tokenizer.json, then optionally a NUL byte
// and tokenizer_config.json (FuzzInputFiles.h).
#include "runtime/tokenizer/OpenTokenizer.h"
#include "test/fuzz/FuzzInputFiles.h"
#include "test/fuzz/TokenizerExercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const lathe::fuzz::ScratchFolder &folder = lathe::fuzz::scratch();
  lathe::fuzz::JsonAndFile input = lathe::fuzz::splitAtFirstNul({data, size});
  folder.write("tokenizer.json", input.json);
  if (input.file)
    folder.write("tokenizer_config.json", *input.file);
  else
    folder.remove("tokenizer_config.json");
  lathe::Expected<lathe::TextTokenizer> tokenizer = lathe::openTokenizer(folder.path());
  if (tokenizer)
    lathe::fuzz::exerciseTokenizer(*tokenizer);
  return 0;
}
