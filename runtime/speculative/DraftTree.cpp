#include "runtime/speculative/DraftTree.h"

#include <algorithm>

namespace lathe::speculative {

DraftTree::DraftTree(const TreeShape &shape, int32_t root, int64_t maxNodes)
    : branching_(shape.branching),
      maxDepth_(static_cast<int32_t>(std::clamp<int64_t>(maxNodes - 1, 0, shape.depth()))),
      maxNodes_(std::max<int64_t>(maxNodes, 1)),
      tokens_{root}, parents_{-1}, depths_{0}, children_(1), notes_{-1} {}

bool DraftTree::hasRoom(int32_t node) const {
  const int32_t d = depths_[node];
  return d < maxDepth_ && static_cast<int64_t>(tokens_.size()) < maxNodes_ &&
         static_cast<int32_t>(children_[node].size()) < branching_[d];
}

int32_t DraftTree::child(int32_t node, int32_t token) const {
  for (int32_t c : children_[node])
    if (tokens_[c] == token)
      return c;
  return -1;
}

int32_t DraftTree::add(int32_t node, int32_t token) {
  if (int32_t existing = child(node, token); existing >= 0)
    return existing;
  if (!hasRoom(node))
    return -1;
  const int32_t id = static_cast<int32_t>(tokens_.size());
  tokens_.push_back(token);
  parents_.push_back(node);
  depths_.push_back(depths_[node] + 1);
  children_.emplace_back();
  children_[node].push_back(id);
  notes_.push_back(-1);
  return id;
}

int32_t DraftTree::addChain(int32_t node, std::span<const int32_t> tokens) {
  int32_t added = 0;
  for (int32_t t : tokens) {
    node = add(node, t);
    if (node < 0)
      break;
    ++added;
  }
  return added;
}

} // namespace lathe::speculative
