#include "runtime/speculative/DraftFiles.h"

#include "runtime/speculative/DrafterState.h"
#include "runtime/speculative/SuffixIndex.h"

namespace lathe::speculative {

Expected<std::shared_ptr<TreeDrafter>> openDrafter(int64_t vocab, const TreeShape &shape,
                                                   const DraftOptions &options,
                                                   const DraftFiles &files) {
  auto drafter = std::make_shared<TreeDrafter>(vocab, shape, options);
  if (!files.history.empty()) {
    auto texts = readTextsFile(files.history, vocab);
    if (!texts)
      return Error("--draft-history: " + texts.error().message());
    for (const std::vector<int32_t> &text : *texts)
      drafter->remember(text);
  }
  if (!files.state.empty())
    if (auto read = readDrafterState(files.state, *drafter); !read)
      return Error("--draft-state: " + read.error().message());
  return drafter;
}

Status keepDrafter(const TreeDrafter &drafter, const DraftFiles &files,
                   std::span<const std::vector<int32_t>> texts) {
  if (!files.state.empty())
    if (Status s = writeDrafterState(drafter, files.state); !s)
      return Error("--draft-state: " + s.error().message());
  if (!files.history.empty())
    for (const std::vector<int32_t> &text : texts)
      if (Status s = appendTextToFile(files.history, text); !s)
        return Error("--draft-history: " + s.error().message());
  return Status::ok();
}

} // namespace lathe::speculative
