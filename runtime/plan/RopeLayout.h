// How the dimensions of a head pair up under rotary embedding: the one
// definition that the checkpoint readers, the runtime's plan and kernels and
// the generated code use (the tfm dialect's #tfm.rope_layout attribute
// converts to it: dialects/Transformer/TransformerDialect.h).
#pragma once

#include <cstdint>

namespace lathe::plan {

enum class RopeLayout : uint8_t {
  /// Meta / llama2.c: rotated pairs are dimensions (2i, 2i + 1) of a head.
  Interleaved = 0,
  /// Hugging Face: rotated pairs are dimensions (i, i + head_dim / 2).
  RotateHalf = 1,
};

} // namespace lathe::plan
