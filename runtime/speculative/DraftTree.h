// A token tree to verify: node 0 is the root (the last accepted token, not
// yet in the KV cache), every other node a drafted token that follows its
// parent. Drafters add nodes within a TreeShape: a node at depth d takes at
// most shape.branching[d] children, and a token that is already a child of
// a node is not added twice, so branches that share a prefix share nodes.
// Parents always come before their children, as a batch step wants.
#pragma once

#include "runtime/speculative/TreeShape.h"

#include <cstdint>
#include <span>
#include <vector>

namespace lathe::speculative {

class DraftTree {
public:
  /// A tree holding only `root`, bounded by `shape` and by `maxNodes`
  /// nodes, the root included: a step stores every node's key and value
  /// at the sequence's tail, so the room left in the context bounds them.
  DraftTree(const TreeShape &shape, int32_t root, int64_t maxNodes);

  size_t size() const { return tokens_.size(); }
  int32_t token(int32_t node) const { return tokens_[node]; }
  int32_t parent(int32_t node) const { return parents_[node]; }
  int32_t depth(int32_t node) const { return depths_[node]; }
  const std::vector<int32_t> &tokens() const { return tokens_; }
  const std::vector<int32_t> &parents() const { return parents_; }
  const std::vector<int32_t> &children(int32_t node) const { return children_[node]; }
  /// The deepest level a node may be added at.
  int32_t maxDepth() const { return maxDepth_; }
  /// Whether `node` may take another child (within the shape and the
  /// node budget).
  bool hasRoom(int32_t node) const;

  /// The child of `node` holding `token`, or -1.
  int32_t child(int32_t node, int32_t token) const;
  /// Adds `token` as a child of `node` and returns it; returns the existing
  /// child when `node` already has one with that token, and -1 when the
  /// shape leaves no room.
  int32_t add(int32_t node, int32_t token);
  /// Adds `tokens` as a chain below `node`, as deep as the shape allows;
  /// returns how many of them are in the tree.
  int32_t addChain(int32_t node, std::span<const int32_t> tokens);

  /// What the drafter that built the tree notes on a node for when the
  /// step's verdict comes back (TreeDrafter: the bucket that scored it),
  /// -1 until set; and the token before the root in the text (-1: none).
  /// Kept in the tree, not the drafter, so that one drafter serves several
  /// sequences' trees in a step.
  int32_t note(int32_t node) const { return notes_[node]; }
  void setNote(int32_t node, int32_t note) { notes_[node] = note; }
  int32_t rootPrevious() const { return rootPrevious_; }
  void setRootPrevious(int32_t token) { rootPrevious_ = token; }

private:
  std::vector<int32_t> branching_;
  int32_t maxDepth_;
  int64_t maxNodes_;
  std::vector<int32_t> tokens_, parents_, depths_;
  std::vector<std::vector<int32_t>> children_;
  std::vector<int32_t> notes_;
  int32_t rootPrevious_ = -1;
};

} // namespace lathe::speculative
