// A GGUF file of the llama architecture as a LlamaCheckpoint (docs/gguf.md).
//
// Hyperparameters come from the llama.* metadata; tensors from the names
// llama.cpp gives them (token_embd, blk.N.attn_q, ..., output_norm,
// output). F32, F16 and BF16 tensors are viewed in the mapped file; Q8_0
// and Q4_0 matrices are rewritten as Lathe's int8:group=32 and
// int4:group=32 rows with the same codes and scales (GgmlBlocks.h); Q4_1,
// Q5_0, Q5_1 and the K-quants Q2_K..Q6_K are decoded to f32 with ggml's
// formulas and reported in `notes`. Any other type, architecture or
// unexpected tensor is an Error naming the file.
//
// GGUF keeps Meta's q/k row order (llama.cpp's converter undoes the
// permutation Hugging Face applies), so `config.rope` is Interleaved.
#pragma once

#include "compiler/Frontend/LlamaCheckpoint.h"

#include <string>

namespace lathe::frontend {

Expected<LlamaCheckpoint> readGgufCheckpoint(const std::string &path);

} // namespace lathe::frontend
