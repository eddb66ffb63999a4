// What the code generators share to build a model's generated source with an
// outside compiler (the system C++ compiler for the CPU, nvcc for CUDA): a
// temporary folder holding the source and the headers it includes, and a
// run of the compiler whose failure becomes one line.
#pragma once

#include "runtime/support/Expected.h"

#include "llvm/ADT/SmallString.h"

#include <span>
#include <string>
#include <vector>

namespace lathe::codegen {

/// A header the generated code includes: its path relative to the folder
/// the source is built in, and its text (embedded at build time from the
/// one definition in the source tree).
struct HeaderText {
  const char *path;
  const char *text;
};

/// A temporary folder, removed with what it holds when this goes away.
class BuildFolder {
public:
  /// Creates the folder (named after `prefix`).
  static Expected<BuildFolder> create(const std::string &prefix);
  BuildFolder(BuildFolder &&other) noexcept : path_(std::move(other.path_)) {
    other.path_.clear();
  }
  BuildFolder(const BuildFolder &) = delete;
  ~BuildFolder();

  std::string path() const { return path_.str().str(); }
  /// The path of `name` inside the folder.
  std::string file(const std::string &name) const;
  /// Writes `text` to `name` (folders included) inside the folder.
  Status write(const std::string &name, const std::string &text) const;
  /// Writes every header at its path inside the folder.
  Status writeHeaders(std::span<const HeaderText> headers) const;

private:
  BuildFolder() = default;
  llvm::SmallString<128> path_;
};

/// Runs `program` with `args` (args[0] is the program's name), its output
/// going to `log`. On failure: "`what` with PROGRAM failed: FIRST ERROR
/// LINE" (the first line of the log that says "error", else its first
/// line).
Status runBuildTool(const std::string &program, const std::vector<std::string> &args,
                    const std::string &log, const std::string &what);

/// The contents of a file the tool wrote.
Expected<std::vector<uint8_t>> readBuildOutput(const std::string &path);

} // namespace lathe::codegen
