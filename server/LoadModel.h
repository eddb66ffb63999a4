// Loads what lathe-serve serves from an artifact: its executable, a
// scheduler over it, the tokenizer it carries and the chat template.
#pragma once

#include "runtime/artifact/Artifact.h"
#include "runtime/backend/Executable.h"
#include "runtime/speculative/DraftFiles.h"
#include "runtime/support/MappedFile.h"
#include "server/ServedModel.h"

#include <functional>
#include <optional>
#include <string>

namespace lathe::server {

struct LoadOptions {
  std::string artifactPath;
  FileMemory memory = FileMemory::HugePages;
  /// The parameter file of an artifact compiled with --external-weights;
  /// empty: the artifact's default (artifact::LoadOptions).
  std::string parameters;
  /// How to run the loaded artifact (lathe-serve's --target, --threads, ...).
  std::function<backend::ExecutionOptions(const artifact::Artifact &)> execution;
  serving::SchedulerOptions scheduler;
  int64_t maxWaiting = 64;
  /// The name clients call the model by; "": the artifact's model name, or
  /// the file name without .lathe.
  std::string name;
  /// A Jinja chat template file to use instead of the artifact's.
  std::string chatTemplatePath;
  /// Speculative decoding (lathe-serve --speculate[=SHAPE]): the tree
  /// shape's text, "" for the artifact's compiled shape or the default;
  /// unset: off. Resolved against the executable at load.
  std::optional<std::string> speculate;
  /// With speculate: files the drafter starts from and that saveDrafter
  /// brings up to date (lathe-serve --draft-history, --draft-state; "":
  /// none). A missing file is none.
  speculative::DraftFiles draftFiles;
};

/// Fails with one line: an unreadable artifact, no tokenizer in it, a chat
/// template that does not parse, scheduler options out of range, a draft
/// history or state file that does not read.
Expected<std::unique_ptr<ServedModel>> loadServedModel(const LoadOptions &options,
                                                       Metrics &metrics);

/// Once serving has ended: stops `model`'s engine (no request runs after
/// this), then writes the drafter's state to the state file and appends
/// to the history file the texts its requests finished since the load
/// (cancelled ones too) that the drafter's index still holds: it keeps the
/// last 1M tokens, the texts read at the start included, so a server that
/// wrote more than that since keeps only the newest. Returns the texts
/// appended.
Expected<int64_t> saveDrafter(ServedModel &model, const LoadOptions &options);

} // namespace lathe::server
