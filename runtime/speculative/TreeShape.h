// The shape of a speculative token tree: how many children a node may have
// at each depth. "4x2x2" lets the root (the last accepted token) have 4
// children, each of them 2, and each of those 2: 4 + 8 + 16 = 28 drafted
// nodes verified in one step. A drafter may leave any slot empty; the shape
// only bounds the tree, so the verification step never runs more tokens
// than the shape allows.
//
// Compiled into lathe_runtime (not lathe_speculative): the artifact records a
// shape (lathe-compile --spec-tree) and the compiler parses the flag with
// this parser, so there is one definition of what a shape is.
#pragma once

#include "runtime/support/Expected.h"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lathe::speculative {

struct TreeShape {
  /// branching[d]: the children a node at depth d may have (the root is at
  /// depth 0). Every entry is >= 1.
  std::vector<int32_t> branching;

  int32_t depth() const { return static_cast<int32_t>(branching.size()); }
  /// The most children any node may have.
  int32_t widest() const;
  /// Nodes of the full tree, the root included.
  int64_t nodeCount() const;
  /// "4x2x2".
  std::string str() const;

  /// One node of the full tree: its parent (-1 for the root) and depth.
  struct Node {
    int32_t parent;
    int32_t depth;
  };
  /// The full tree in breadth-first order, the root first: every parent
  /// comes before its children, the children of a node are consecutive.
  std::vector<Node> nodes() const;
};

/// The shape `--speculate` uses when none is given.
inline constexpr std::string_view kDefaultTreeShape = "4x2x2x1x1x1x1x1";
/// Bounds that keep a verification step a step, not a prefill.
inline constexpr int32_t kMaxTreeDepth = 32;
inline constexpr int64_t kMaxTreeNodes = 1024;

/// Parses "4x2x2" (branching per depth, 'x'-separated positive integers) or
/// "default". Errors are one line naming the text, e.g.
/// "tree shape '4x0': depth 2 has branching 0; expected positive integers
/// separated by 'x', e.g. 4x2x2".
Expected<TreeShape> parseTreeShape(std::string_view text);

/// The shape with `branching` per depth, checked by parseTreeShape's rules
/// (the artifact loader and the plan dialect's #plan.spec_tree read shapes
/// as lists); errors are parseTreeShape's, naming the shape as "4x0".
Expected<TreeShape> makeTreeShape(std::span<const int32_t> branching);

} // namespace lathe::speculative
