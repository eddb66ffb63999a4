// Fuzzes the llama2.c checkpoint reader (compiler/Frontend/Llama2cCheckpoint.h)
// on a .bin file, as lathe-compile calls it: every input is either refused
// with an Error or read into views that all lie inside the file.
#include "compiler/Frontend/Llama2cCheckpoint.h"
#include "test/fuzz/CheckpointInvariants.h"
#include "test/fuzz/FuzzInputFiles.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = lathe::fuzz::scratch().write("model.bin", {data, size});
  lathe::Expected<lathe::frontend::LlamaCheckpoint> ckpt =
      lathe::frontend::readLlama2cCheckpoint(path);
  if (ckpt)
    lathe::fuzz::checkCheckpoint(*ckpt);
  return 0;
}
