// Writes a .lathe artifact: header, flatbuffer description, weight section.
// Used by lathe-compile (and by tests that build small artifacts by hand).
#pragma once

#include "runtime/plan/KernelPlan.h"
#include "runtime/support/Expected.h"
#include "runtime/tokenizer/HFTokenizerSpec.h"
#include "runtime/tokenizer/Tokenizer.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace lathe::artifact {

struct TensorData {
  plan::TensorInfo info;
  std::span<const uint8_t> bytes;   // storage layout of info.type, row-major
};

struct ArtifactContents {
  plan::ModelConfig config;
  /// A llama2.c tokenizer, or empty: then hfTokenizer, or none at all.
  Vocabulary vocabulary;
  std::optional<HFTokenizerSpec> hfTokenizer;
  std::vector<TensorData> tensors;
  std::vector<plan::KernelPlan> schedules;
  std::string producer;
  /// A speed model: the tensors' bytes are not written (their sizes are);
  /// the loader fills them (SyntheticWeights.h).
  bool syntheticWeights = false;
  /// The weights go in a parameter file (ParameterFile.h), not in the
  /// artifact: writeArtifact writes the tensor table only, and
  /// writeParameters the file, where the tensors' bytes are known.
  bool externalWeights = false;
  /// With externalWeights: each tensor is its checkpoint tensor converted
  /// or packed, nothing else (lathe-pack can make the parameter file).
  bool weightsFromCheckpoint = false;
};

/// Checks the config, the tensor sizes and every schedule against the
/// tensors; `source` names the artifact in messages.
Status validateContents(const ArtifactContents &contents, const std::string &source);

/// Called with (bytes written, bytes total) while the weights are written.
using ProgressFn = std::function<void(uint64_t, uint64_t)>;

/// Validates the contents (config, every schedule against the tensors) and
/// writes them to `path` through a temporary file, so a failed write never
/// leaves a half-written artifact behind.
Status writeArtifact(const ArtifactContents &contents, const std::string &path,
                     const ProgressFn &progress = {});

/// Writes the parameter file of contents.externalWeights: the tensors'
/// bytes at the offsets writeArtifact gave them.
Status writeParameters(const ArtifactContents &contents, const std::string &path,
                       const ProgressFn &progress = {});

} // namespace lathe::artifact
