// Fuzzes the Hugging Face checkpoint reader (compiler/Frontend/HFCheckpoint.h)
// on a folder, as lathe-compile calls it. An input is config.json, then a
// NUL byte and model.safetensors (FuzzInputFiles.h); without the NUL the
// folder holds config.json alone. Every input is refused with an Error or
// read into views that all lie inside the mapped file.
#include "compiler/Frontend/HFCheckpoint.h"
#include "test/fuzz/CheckpointInvariants.h"
#include "test/fuzz/FuzzInputFiles.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const lathe::fuzz::ScratchFolder &folder = lathe::fuzz::scratch();
  lathe::fuzz::JsonAndFile input = lathe::fuzz::splitAtFirstNul({data, size});
  folder.write("config.json", input.json);
  if (input.file)
    folder.write("model.safetensors", *input.file);
  else
    folder.remove("model.safetensors");
  lathe::Expected<lathe::frontend::LlamaCheckpoint> ckpt =
      lathe::frontend::readHFCheckpoint(folder.path());
  if (ckpt)
    lathe::fuzz::checkCheckpoint(*ckpt);
  return 0;
}
