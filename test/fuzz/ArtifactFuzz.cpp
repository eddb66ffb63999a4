// Fuzzes the artifact loader (runtime/artifact/Artifact.h) on a .lathe file,
// as lathe-run and lathe-tokenize load one, then the tokenizer it carries.
// Loading promises that nothing downstream needs to check again: every
// tensor's bytes lie inside the file and match its type and shape.
//
// A mutated artifact almost never matches its header's checksums, and the
// loader stops there. So the mutator recomputes both checksums after
// libFuzzer's own mutation (one mutant in eight keeps the stale ones), and
// the corpus holds artifacts that reach the flatbuffer verifier and the
// plan checks; each of them still loads the same way under lathe-run.
#include "runtime/artifact/Artifact.h"
#include "runtime/artifact/FileHeader.h"
#include "runtime/tokenizer/OpenTokenizer.h"
#include "test/fuzz/FuzzInputFiles.h"
#include "test/fuzz/TokenizerExercise.h"

#include <cstring>

namespace {

using lathe::artifact::FileHeader;

/// Rewrites the header's checksums to match the sections they cover,
/// where the header locates them inside the input.
void fixChecksums(uint8_t *data, size_t size) {
  FileHeader h;
  if (size < sizeof h)
    return;
  std::memcpy(&h, data, sizeof h);
  auto inside = [&](uint64_t offset, uint64_t bytes) {
    return offset <= size && bytes <= size - offset;
  };
  if (inside(h.descriptionOffset, h.descriptionSize))
    h.descriptionChecksum = lathe::artifact::checksum({data + h.descriptionOffset, h.descriptionSize});
  if (inside(h.dataOffset, h.dataSize))
    h.dataChecksum = lathe::artifact::checksum({data + h.dataOffset, h.dataSize});
  std::memcpy(data, &h, sizeof h);
}

} // namespace

extern "C" size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t maxSize);

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t maxSize,
                                          unsigned int seed) {
  size = LLVMFuzzerMutate(data, size, maxSize);
  if (seed % 8 != 0)
    fixChecksums(data, size);
  return size;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = lathe::fuzz::scratch().write("model.lathe", {data, size});
  auto artifact = lathe::artifact::Artifact::load(path);
  if (!artifact)
    return 0;
  const lathe::artifact::Artifact &a = **artifact;
  for (size_t i = 0; i < a.tensors().size(); ++i) {
    const lathe::plan::TensorInfo &info = a.tensors()[i];
    std::span<const uint8_t> bytes = a.tensorData(i);
    if (bytes.size() != info.storageBytes()) {
      std::fprintf(stderr, "tensor '%s': %zu bytes, its format needs %llu\n", info.name.c_str(),
                   bytes.size(), static_cast<unsigned long long>(info.storageBytes()));
      std::abort();
    }
    if (!bytes.empty()) {
      // A view outside the mapped file faults here.
      volatile uint8_t ends = bytes.front() ^ bytes.back();
      (void)ends;
    }
  }
  lathe::Expected<std::optional<lathe::TextTokenizer>> tokenizer =
      lathe::artifactTokenizer(a, path);
  if (tokenizer && *tokenizer)
    lathe::fuzz::exerciseTokenizer(**tokenizer);
  return 0;
}
