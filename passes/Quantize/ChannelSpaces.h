// Channel spaces: which channel dimensions of a function must change
// together when channels are permuted (lathe-reorder-channels) or rescaled
// (lathe-equalize-channels). Every activation's channel dimension and every
// weight dimension is a node; ops that require two dimensions to agree (an
// add's operands, a linear's input and its weight's columns, ...) join their
// nodes with union-find. A set of nodes is one channel space and gets one
// permutation or one scale per channel; sets that touch something that
// cannot change (vocabulary, RoPE pairs, results, a nonlinearity) are fixed.
#pragma once

#include "dialects/Transformer/TransformerDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/EquivalenceClasses.h"
#include "llvm/ADT/STLFunctionalExtras.h"

#include <map>
#include <vector>

namespace lathe {

/// A channel dimension: of an activation value (dim 1) or of a weight.
struct ChannelNode {
  mlir::Value value; // activation or weight result
  unsigned dim;      // 1 for activations; 0 or 1 for weights
};

/// What the channels of a space undergo, which decides what an op ties
/// together.
enum class ChannelChange {
  /// One permutation: an RMSNorm's input and output share it, and so do
  /// SwiGLU's gate, up and result.
  Order,
  /// One scale per channel, multiplied into the producers (weight rows,
  /// RMSNorm gains) and divided out of the consumers (weight columns): an
  /// RMSNorm's input and SwiGLU's gate cannot be scaled (the norm and
  /// silu are not linear in them), its output and up can.
  Scale,
};

class ChannelSpaces {
public:
  int node(mlir::Value v, unsigned dim);
  int act(mlir::Value v) { return node(v, 1); }
  void join(int a, int b) { sets_.unionSets(a, b); }
  void fix(int a) { fixed_.push_back(a); }
  /// Attention values/outputs: may only move within heads of `headDim`.
  void headLocal(int a, int64_t headDim) { headLocal_.push_back({a, headDim}); }
  /// A node of its own that is fixed (a weight dimension nothing may change).
  int fixedNode();

  int leader(int a) const { return sets_.getLeaderValue(a); }
  const std::vector<ChannelNode> &nodes() const { return nodes_; }
  bool isFixed(int set) const;
  /// The head width a set must stay within, 0 when it may move freely.
  int64_t headDimOf(int set) const;

private:
  std::map<std::pair<const void *, unsigned>, int> ids_;
  std::vector<ChannelNode> nodes_;
  llvm::EquivalenceClasses<int> sets_;
  std::vector<int> fixed_;
  std::vector<std::pair<int, int64_t>> headLocal_;
};

/// Joins the nodes of `fn` that must share one permutation or one scale.
void buildChannelSpaces(mlir::func::FuncOp fn, ChannelChange change, ChannelSpaces &spaces);

/// Folds a change of some spaces into the weights: every tfm.weight of `fn`
/// with a dimension in a space for which `changed` holds is replaced by an
/// f32 weight holding `rewrite`'s result, which gets the [rows, cols]
/// values (cols = 1 for a vector) and the spaces of the rows and columns
/// (-1 where unchanged). A packed weight fails, naming `pass`, which must
/// run before lathe-quantize.
mlir::LogicalResult
rewriteWeights(mlir::func::FuncOp fn, ChannelSpaces &spaces,
               llvm::function_ref<bool(int set)> changed, llvm::StringRef pass,
               llvm::function_ref<void(std::vector<float> &values, int64_t rows,
                                       int64_t cols, int rowSet, int colSet)>
                   rewrite);

/// Lets the calibration statistics (tfm.calib_rms, tfm.calib_absmax) of
/// every tfm.linear whose input lies in a changed space follow the change.
void rewriteCalibration(mlir::func::FuncOp fn, ChannelSpaces &spaces,
                        llvm::function_ref<bool(int set)> changed,
                        llvm::function_ref<void(std::vector<float> &values, int set)> rewrite);

} // namespace lathe
