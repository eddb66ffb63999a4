// What a checkpoint reader promises the importer when it succeeds (see
// compiler/Frontend/LlamaCheckpoint.h): every view has the bytes its type
// and shape need and lies inside one of the files the checkpoint keeps
// mapped (or in memory the reader allocated). A fuzz target calls this on
// every checkpoint a reader accepts; a broken promise aborts, which
// libFuzzer reports as a crash.
#pragma once

#include "compiler/Frontend/LlamaCheckpoint.h"
#include "runtime/formats/RowCodec.h"

#include <cstdio>
#include <cstdlib>

namespace lathe::fuzz {

inline void checkView(const frontend::LlamaCheckpoint &ckpt, const frontend::TensorView &view,
                      const char *what) {
  // Packed rows (a GGUF's Q8_0/Q4_0 blocks) have their format's row size.
  const bool packed = view.packed.has_value();
  if (packed && (view.shape.size() != 2 || view.shape[1] < 0)) {
    std::fprintf(stderr, "%s: packed with shape %s\n", what,
                 frontend::formatShape(view.shape).c_str());
    std::abort();
  }
  uint64_t bytes = packed ? formats::packedRowBytes(*view.packed, view.shape[1])
                          : elementSize(view.type);
  for (size_t i = 0; i < view.shape.size() - (packed ? 1 : 0); ++i)
    if (view.shape[i] < 0 ||
        __builtin_mul_overflow(bytes, static_cast<uint64_t>(view.shape[i]), &bytes)) {
      std::fprintf(stderr, "%s: shape %s is not a size\n", what,
                   frontend::formatShape(view.shape).c_str());
      std::abort();
    }
  if (bytes != view.bytes.size()) {
    std::fprintf(stderr, "%s: %zu bytes for shape %s\n", what, view.bytes.size(),
                 frontend::formatShape(view.shape).c_str());
    std::abort();
  }
  if (view.bytes.empty())
    return;
  // Touch the first and the last byte: ASan reports a view past the end
  // of heap memory, and a view into unmapped memory faults.
  volatile uint8_t ends = view.bytes.front() ^ view.bytes.back();
  (void)ends;
  for (const auto &file : ckpt.storage) {
    std::span<const uint8_t> f = file->bytes();
    if (view.bytes.data() >= f.data() && view.bytes.data() + view.bytes.size() <= f.data() + f.size())
      return;
  }
  // Views into memory the reader made (decoded tensors) have no bounds to
  // compare with here; the touch above is their check.
  if (!ckpt.memory.empty())
    return;
  std::fprintf(stderr, "%s: its %zu bytes lie outside every mapped file\n", what,
               view.bytes.size());
  std::abort();
}

/// Checks every view of `ckpt`.
inline void checkCheckpoint(const frontend::LlamaCheckpoint &ckpt) {
  checkView(ckpt, ckpt.embedding, "embedding");
  checkView(ckpt, ckpt.finalNorm, "final norm");
  if (ckpt.classifier)
    checkView(ckpt, *ckpt.classifier, "classifier");
  if (ckpt.layers.size() != static_cast<size_t>(ckpt.config.layers)) {
    std::fprintf(stderr, "%zu layers for a config of %lld\n", ckpt.layers.size(),
                 static_cast<long long>(ckpt.config.layers));
    std::abort();
  }
  for (const frontend::LlamaLayerWeights &l : ckpt.layers) {
    for (const frontend::TensorView *v :
         {&l.attnNorm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffnNorm, &l.w1, &l.w2, &l.w3})
      checkView(ckpt, *v, "layer weight");
    for (const std::optional<frontend::TensorView> *v :
         {&l.bq, &l.bk, &l.bv, &l.bo, &l.qNorm, &l.kNorm})
      if (*v)
        checkView(ckpt, **v, "layer bias or norm");
  }
}

} // namespace lathe::fuzz
