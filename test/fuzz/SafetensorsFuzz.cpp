// Fuzzes the safetensors reader (compiler/Frontend/Safetensors.h) on one
// .safetensors file: an Error, or tensors whose views have the bytes their
// dtype and shape need and lie inside the file's data area.
#include "compiler/Frontend/Safetensors.h"
#include "test/fuzz/FuzzInputFiles.h"

#include <cstdio>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace lathe::frontend;
  const std::string path = lathe::fuzz::scratch().write("model.safetensors", {data, size});
  lathe::Expected<SafetensorsFile> file = SafetensorsFile::open(path);
  if (!file)
    return 0;
  std::span<const uint8_t> bytes = file->storage()->bytes();
  for (const auto &[name, view] : file->tensors()) {
    uint64_t n = lathe::elementSize(view.type);
    for (int64_t d : view.shape)
      n *= static_cast<uint64_t>(d); // overflow was refused by the reader
    const bool inside = view.bytes.empty() ||
                        (view.bytes.data() >= bytes.data() + 8 &&
                         view.bytes.data() + view.bytes.size() <= bytes.data() + bytes.size());
    if (n != view.bytes.size() || !inside || !file->lookup(name)) {
      std::fprintf(stderr, "tensor '%s': %zu bytes for shape %s%s\n", name.c_str(),
                   view.bytes.size(), formatShape(view.shape).c_str(),
                   inside ? "" : ", outside the file");
      std::abort();
    }
  }
  return 0;
}
