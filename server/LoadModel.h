// Loads what lathe-serve serves from an artifact: its executable, a
// scheduler over it, the tokenizer it carries and the chat template.
#pragma once

#include "runtime/artifact/Artifact.h"
#include "runtime/backend/Executable.h"
#include "runtime/support/MappedFile.h"
#include "server/ServedModel.h"

#include <functional>
#include <optional>
#include <string>

namespace lathe::server {

struct LoadOptions {
  std::string artifactPath;
  FileMemory memory = FileMemory::HugePages;
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
};

/// Fails with one line: an unreadable artifact, no tokenizer in it, a chat
/// template that does not parse, scheduler options out of range.
Expected<std::unique_ptr<ServedModel>> loadServedModel(const LoadOptions &options,
                                                       Metrics &metrics);

} // namespace lathe::server
