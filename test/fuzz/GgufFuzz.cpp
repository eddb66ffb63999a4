// Fuzzes the GGUF reader on a file as lathe-compile and lathe-tokenize open
// one: the checkpoint (compiler/Frontend/GgufCheckpoint.h: the header, the
// metadata, the tensor table, Q8_0/Q4_0 rows kept packed, other block types
// decoded) and the tokenizer in its metadata (GgufTokenizer.h). Every input
// is refused with an Error, or read into views that lie inside the mapped
// file (or in memory the reader decoded into) and a tokenizer that runs.
#include "compiler/Frontend/GgufCheckpoint.h"
#include "compiler/Frontend/GgufTokenizer.h"
#include "test/fuzz/CheckpointInvariants.h"
#include "test/fuzz/FuzzInputFiles.h"
#include "test/fuzz/TokenizerExercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = lathe::fuzz::scratch().write("model.gguf", {data, size});
  lathe::Expected<lathe::frontend::LlamaCheckpoint> ckpt =
      lathe::frontend::readGgufCheckpoint(path);
  if (ckpt)
    lathe::fuzz::checkCheckpoint(*ckpt);
  lathe::Expected<lathe::TextTokenizer> tokenizer = lathe::frontend::openGgufTokenizer(path);
  if (tokenizer)
    lathe::fuzz::exerciseTokenizer(*tokenizer);
  return 0;
}
