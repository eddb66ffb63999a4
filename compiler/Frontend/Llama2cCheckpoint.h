// Reader for karpathy/llama2.c checkpoints in the legacy float32 export
// (`export.py --version 0`, the format of stories15M.bin): a header of seven
// int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len), then every weight as float32, little-endian. A negative
// vocab_size means the classifier is not shared with the embedding and
// follows as a last tensor.
#pragma once

#include "compiler/Frontend/LlamaCheckpoint.h"

#include <string>

namespace lathe::frontend {

/// Maps `path` and returns views into it. The file size must match the size
/// the header implies exactly; any mismatch, nonsense header or overflowing
/// size is an Error naming the file. RoPE tables stored in the file are
/// skipped (the importer recomputes them), so `config.rope` is Interleaved,
/// normEps 1e-5 and ropeTheta 10000, as in llama2.c's run.c.
Expected<LlamaCheckpoint> readLlama2cCheckpoint(const std::string &path);

} // namespace lathe::frontend
