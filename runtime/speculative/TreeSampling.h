// Multi-step speculative sampling at one node of a token tree (SpecInfer,
// EAGLE), for drafts that are deterministic: each child proposes its token
// with probability 1 (q is one-hot). The children are tried in order; child
// c is accepted with probability min(1, p_res(c) / q(c)) = p_res(c), and on
// rejection p_res <- normalize(max(p_res - q, 0)), which zeroes c's token;
// when every child is rejected the token is drawn from p_res. The token
// that comes out has exactly the target distribution p, whatever the
// children and their order, duplicates included (a duplicate's token has
// p_res = 0 by then and is always rejected).
//
// With one-hot drafts this equals drawing the token from p first and
// accepting the child that holds it: generateSpeculative does that, with
// the draw plain decoding makes for the same position, so that seeded
// speculative and plain runs agree (SpeculativeGeneration.h).
#pragma once

#include <cstdint>
#include <functional>
#include <span>

namespace lathe::speculative {

struct NodeChoice {
  /// The index in `children` of the accepted child, or -1 when the token
  /// was drawn from the residual (the step's bonus token).
  int32_t child = -1;
  int32_t token = -1;
};

/// `p`: the target's probabilities over the vocabulary at this node (sum
/// 1); `children`: the drafted tokens below it, in the order tried;
/// `uniform`: returns independent draws in [0, 1).
NodeChoice sampleAmongChildren(std::span<const double> p, std::span<const int32_t> children,
                               const std::function<double()> &uniform);

/// The same law with one draw `u`: the token at `u` of p's inverse CDF (in
/// id order), and the first child holding it.
NodeChoice sampleCoupled(std::span<const double> p, std::span<const int32_t> children, double u);

} // namespace lathe::speculative
