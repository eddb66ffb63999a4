// Packs an artifact's parameter file from a checkpoint (lathe-pack): for an
// artifact compiled with --external-weights, each of its tensors made from
// the checkpoint tensor of the same name (namedTensors), converted to the
// tensor's element type or packed into its format by the very quantizeRow
// the compiler's passes use, at the offsets the artifact's table gives.
// MLIR-free, so it runs on the machine that runs the model: a GPU host has
// the checkpoint and the CUDA driver, not the compiler's toolchain.
#pragma once

#include "compiler/Frontend/LlamaCheckpoint.h"
#include "runtime/artifact/Artifact.h"
#include "runtime/support/Expected.h"

#include <functional>
#include <string>

namespace lathe::frontend {

/// Called with (tensors done, tensors in all) while packing.
using PackProgressFn = std::function<void(size_t, size_t)>;

/// Checks that `checkpoint` (read from `source`, named in errors) is the
/// model `artifact` (loaded with LoadOptions::descriptionOnly) was compiled
/// for, then writes the parameter file `out`. Fails with one line when the
/// artifact holds its own weights or weights the compiler changed, when the
/// checkpoint's shapes differ, or when a tensor is missing or packed.
Status packParameters(const artifact::Artifact &artifact, const LlamaCheckpoint &checkpoint,
                      const std::string &source, const std::string &out,
                      const PackProgressFn &progress = {});

} // namespace lathe::frontend
