// A checkpoint with a real model's shapes and no real weights, for speed
// models (benchmarks only): the hyperparameters come from a Hugging Face
// config.json, every tensor is zero (one shared read-only zero mapping, so
// even a 1B-parameter model costs no memory), and the compiler then writes
// an artifact that stores no weights at all (lathe-compile
// --synthetic-weights): the runtime fills them with seeded random values
// when it loads it (artifact::Artifact, runtime/artifact/SyntheticWeights.h).
#pragma once

#include "compiler/Frontend/LlamaCheckpoint.h"

#include <string>

namespace lathe::frontend {

/// `path` is a config.json or a folder holding one. Tensors take the
/// config's torch_dtype when it is float32 or float16, else bf16.
Expected<LlamaCheckpoint> readSyntheticCheckpoint(const std::string &path);

} // namespace lathe::frontend
