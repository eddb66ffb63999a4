// The files a drafter is kept in between runs, as lathe-run and lathe-serve
// open and keep them: earlier texts (--draft-history: one text a line,
// token ids) and the drafter's learnt state (--draft-state, DrafterState.h).
#pragma once

#include "runtime/speculative/TreeDrafter.h"
#include "runtime/support/Expected.h"

#include <memory>
#include <span>
#include <string>
#include <vector>

namespace lathe::speculative {

struct DraftFiles {
  std::string history, state; // "": none
  bool any() const { return !history.empty() || !state.empty(); }
};

/// A drafter for `shape` that starts from the files: the texts of
/// files.history remembered, files.state's tables and counts loaded (a
/// missing file is none). Errors are one line, starting with the flag
/// that named the file (`--draft-history: ...`).
Expected<std::shared_ptr<TreeDrafter>> openDrafter(int64_t vocab, const TreeShape &shape,
                                                   const DraftOptions &options,
                                                   const DraftFiles &files);

/// Keeps what a run added: writes `drafter`'s state to files.state (in
/// one piece, first), then appends `texts` to files.history, one a line.
Status keepDrafter(const TreeDrafter &drafter, const DraftFiles &files,
                   std::span<const std::vector<int32_t>> texts);

} // namespace lathe::speculative
