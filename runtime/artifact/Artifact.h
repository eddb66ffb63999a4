// A loaded .lathe artifact. Loading maps the file, checks the header and both
// checksums, runs the flatbuffer verifier, bounds-checks every tensor and
// validates every kernel plan, so that nothing downstream needs to check
// again. Any failure comes back as one message naming the file.
#pragma once

#include "runtime/artifact/ArtifactWriter.h"
#include "runtime/plan/KernelPlan.h"
#include "runtime/support/Expected.h"
#include "runtime/support/MappedFile.h"
#include "runtime/tokenizer/Tokenizer.h"

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lathe::artifact {
namespace fb {
struct Parameters;
}

/// How Artifact::load reads an artifact.
struct LoadOptions {
  FileMemory memory = FileMemory::Mapped;
  /// The parameter file of an artifact compiled with --external-weights;
  /// empty: defaultParameterPath(path), beside the artifact. An artifact
  /// that holds its weights refuses one.
  std::string parameters;
  /// The description only (config, tokenizer, tensor table, schedules): no
  /// parameter file is opened and no speed model's weights are made, so
  /// tensorData is empty. For tools that read the tensor table or the
  /// tokenizer (lathe-pack, tokenizers).
  bool descriptionOnly = false;
};

/// Where the weights of an artifact compiled with --external-weights are:
/// the parameter file's data section (ParameterFile.h).
struct ExternalWeights {
  uint64_t id = 0;           // parameterId of the tensor table
  uint64_t dataSize = 0;     // bytes of the data section
  bool fromCheckpoint = false; // lathe-pack can make it (Artifact.fbs)
  std::vector<uint64_t> offsets; // each tensor's, in the data section
  std::string path;          // the parameter file loaded; empty: descriptionOnly
};

class Artifact {
public:
  /// Loads and validates the artifact at `path`. By default the file is
  /// mapped (nothing copied, pages the kernel may drop and share);
  /// FileMemory::HugePages reads it into huge-page memory instead, the
  /// fastest for decoding (see MappedFile.h), which lathe-run and
  /// lathe-bench ask for unless given --mmap.
  static Expected<std::shared_ptr<const Artifact>>
  load(const std::string &path, FileMemory memory = FileMemory::Mapped);
  /// The same with a parameter file, or the description only (LoadOptions).
  static Expected<std::shared_ptr<const Artifact>> load(const std::string &path,
                                                        const LoadOptions &options);

  /// An artifact in memory, as the writer would store it: the compiler runs
  /// calibration through it. The tensors' bytes must outlive the result.
  static Expected<std::shared_ptr<const Artifact>>
  fromContents(const ArtifactContents &contents, const std::string &name);

  /// The file it was loaded from (or the name given to fromContents).
  const std::string &path() const { return name_; }
  const plan::ModelConfig &config() const { return config_; }
  /// The llama2.c tokenizer's vocabulary; empty when compiled without a
  /// tokenizer or with a Hugging Face one.
  const Vocabulary &vocabulary() const { return vocabulary_; }
  /// The Hugging Face tokenizer (checked by HFTokenizer::create at load),
  /// or nullptr.
  const HFTokenizerSpec *hfTokenizer() const { return hf_ ? &*hf_ : nullptr; }
  const std::vector<plan::TensorInfo> &tensors() const { return tensors_; }
  /// The bytes of tensor `index` inside the mapped weight section.
  std::span<const uint8_t> tensorData(size_t index) const { return data_[index]; }
  /// The kernel plan for `target`, or nullptr when the artifact has none.
  const plan::KernelPlan *schedule(std::string_view target) const;
  const std::vector<plan::KernelPlan> &schedules() const { return schedules_; }
  const std::string &producer() const { return producer_; }
  /// A speed model: its weights were made by the loader, not stored.
  bool syntheticWeights() const { return synthetic_ != nullptr; }
  /// Whether the tensors' bytes are there to run (not LoadOptions::descriptionOnly).
  bool weightsLoaded() const { return weightsLoaded_; }
  /// Where the weights are when a parameter file holds them; else nullptr.
  const ExternalWeights *externalWeights() const {
    return external_ ? &*external_ : nullptr;
  }

  /// Data a runtime component derives from the artifact once for every
  /// session that runs it (the CPU backend's repacked weights): the first
  /// call with `key` runs `make` and keeps its result, later calls (from
  /// any thread) return that result. A null result is not kept, so a
  /// failed `make` runs again next time.
  std::shared_ptr<const void>
  derived(const std::string &key,
          const std::function<std::shared_ptr<const void>()> &make) const;

private:
  Artifact() = default;
  Status parse(const LoadOptions &options);
  /// Checks the tensor table against its parameter id and, unless
  /// options.descriptionOnly, maps the parameter file the tensors lie in.
  Status openParameters(const fb::Parameters &params, std::vector<uint64_t> offsets,
                        const LoadOptions &options);
  /// A speed model's tensors, made here (SyntheticWeights.h).
  Status fillSyntheticWeights();

  std::shared_ptr<MappedFile> file_;
  std::string name_;
  plan::ModelConfig config_;
  Vocabulary vocabulary_;
  std::optional<HFTokenizerSpec> hf_;
  std::vector<plan::TensorInfo> tensors_;
  std::vector<std::span<const uint8_t>> data_;
  std::vector<plan::KernelPlan> schedules_;
  std::string producer_;
  std::shared_ptr<uint8_t> synthetic_; // the filled weights of a speed model
  std::optional<ExternalWeights> external_;
  bool weightsLoaded_ = true;
  std::shared_ptr<MappedFile> parameters_; // the parameter file the tensors lie in
  mutable std::mutex derivedMutex_;
  mutable std::map<std::string, std::shared_ptr<const void>> derived_;
};

} // namespace lathe::artifact
