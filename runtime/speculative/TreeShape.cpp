#include "runtime/speculative/TreeShape.h"

#include <algorithm>
#include <charconv>
#include <fmt/format.h>
#include <optional>

namespace lathe::speculative {

int32_t TreeShape::widest() const {
  return branching.empty() ? 0 : *std::max_element(branching.begin(), branching.end());
}

int64_t TreeShape::nodeCount() const {
  int64_t total = 1, level = 1;
  for (int32_t b : branching) {
    level *= b;
    total += level;
  }
  return total;
}

std::string TreeShape::str() const {
  std::string s;
  for (size_t d = 0; d < branching.size(); ++d)
    s += (d ? "x" : "") + std::to_string(branching[d]);
  return s;
}

std::vector<TreeShape::Node> TreeShape::nodes() const {
  std::vector<Node> out{{-1, 0}};
  size_t levelBegin = 0;
  for (int32_t d = 0; d < depth(); ++d) {
    const size_t levelEnd = out.size();
    for (size_t parent = levelBegin; parent < levelEnd; ++parent)
      for (int32_t c = 0; c < branching[d]; ++c)
        out.push_back({static_cast<int32_t>(parent), d + 1});
    levelBegin = levelEnd;
  }
  return out;
}

namespace {

Error shapeError(std::string_view text, const std::string &why) {
  return Error(fmt::format("tree shape '{}': {}; expected positive integers separated by "
                           "'x', e.g. 4x2x2, or 'default'",
                           text, why));
}

/// Appends one level's branching to `shape`, or says why it cannot be: the
/// rules parseTreeShape and makeTreeShape share.
std::optional<std::string> addLevel(TreeShape &shape, int64_t value) {
  const int depth = shape.depth() + 1;
  if (value < 1)
    return fmt::format("depth {} has branching {}", depth, value);
  if (value > kMaxTreeNodes)
    return fmt::format("depth {} has branching {}, more than {}", depth, value, kMaxTreeNodes);
  shape.branching.push_back(static_cast<int32_t>(value));
  if (shape.depth() > kMaxTreeDepth)
    return fmt::format("deeper than {}", kMaxTreeDepth);
  if (shape.nodeCount() > kMaxTreeNodes)
    return fmt::format("more than {} nodes", kMaxTreeNodes);
  return std::nullopt;
}

} // namespace

Expected<TreeShape> parseTreeShape(std::string_view text) {
  if (text == "default")
    return parseTreeShape(kDefaultTreeShape);
  if (text.empty())
    return shapeError(text, "empty");
  TreeShape shape;
  size_t pos = 0;
  while (true) {
    const size_t end = std::min(text.find('x', pos), text.size());
    const std::string_view item = text.substr(pos, end - pos);
    const int depth = shape.depth() + 1;
    int64_t value = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty())
      return shapeError(text, fmt::format("depth {} is empty", depth));
    if (ec == std::errc::result_out_of_range)
      return shapeError(text, fmt::format("depth {} has branching '{}', too large", depth, item));
    if (ec != std::errc() || ptr != item.data() + item.size())
      return shapeError(text,
                        fmt::format("depth {} has branching '{}', not a number", depth, item));
    if (std::optional<std::string> why = addLevel(shape, value))
      return shapeError(text, *why);
    if (end == text.size())
      break;
    pos = end + 1;
  }
  return shape;
}

Expected<TreeShape> makeTreeShape(std::span<const int32_t> branching) {
  TreeShape shape;
  if (branching.empty())
    return shapeError("", "empty");
  for (int32_t b : branching)
    if (std::optional<std::string> why = addLevel(shape, b)) {
      // A corrupt list may be long: name the levels the rules read.
      std::string text;
      for (size_t d = 0; d < branching.size(); ++d) {
        if (d > size_t(kMaxTreeDepth)) {
          text += "x...";
          break;
        }
        text += (d ? "x" : "") + std::to_string(branching[d]);
      }
      return shapeError(text, *why);
    }
  return shape;
}

} // namespace lathe::speculative
