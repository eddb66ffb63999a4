// Reader for Hugging Face LlamaForCausalLM checkpoints: a folder holding
// config.json and one or more *.safetensors shards (model.safetensors or
// model-0000k-of-0000n.safetensors).
#pragma once

#include "compiler/Frontend/LlamaCheckpoint.h"

#include <string>

namespace lathe::frontend {

/// Reads `folder`/config.json and the weights it describes. When
/// model.safetensors.index.json exists only the shards its weight_map names
/// are opened; otherwise every *.safetensors file in the folder is. Tensors
/// may be F32, F16 or BF16. Unsupported configs (rope_scaling, biases,
/// activations other than silu) and missing or misshapen tensors are Errors
/// naming the file and tensor. `config.rope` is RotateHalf, because HF
/// stores the q/k projection rows permuted for rotate-half RoPE.
Expected<LlamaCheckpoint> readHFCheckpoint(const std::string &folder);

/// Reads only a config.json, with the same checks.
Expected<LlamaConfig> readHFConfig(const std::string &path);

} // namespace lathe::frontend
