#include "runtime/speculative/TreeSampling.h"

#include <vector>

namespace lathe::speculative {
namespace {

/// The token at `u` of the inverse CDF of weights `w` (total `total`), the
/// last token with weight on rounding.
int32_t inverseCdf(std::span<const double> w, double total, double u) {
  const double r = u * total;
  double cumulative = 0;
  int32_t last = -1;
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] <= 0)
      continue;
    cumulative += w[i];
    last = static_cast<int32_t>(i);
    if (r < cumulative)
      return last;
  }
  return last;
}

} // namespace

NodeChoice sampleAmongChildren(std::span<const double> p, std::span<const int32_t> children,
                               const std::function<double()> &uniform) {
  std::vector<double> residual(p.begin(), p.end());
  double total = 0;
  for (double v : residual)
    total += v;
  for (size_t c = 0; c < children.size(); ++c) {
    const int32_t token = children[c];
    if (token < 0 || size_t(token) >= residual.size() || total <= 0)
      continue;
    // q(token) = 1: accept with p_res(token) / 1, p_res normalized.
    if (uniform() < residual[token] / total)
      return {static_cast<int32_t>(c), token};
    // max(p_res - q, 0) zeroes the token; normalizing is dividing by total.
    total -= residual[token];
    residual[token] = 0;
  }
  if (total <= 0)
    return {-1, inverseCdf(p, 1.0, uniform())};
  return {-1, inverseCdf(residual, total, uniform())};
}

NodeChoice sampleCoupled(std::span<const double> p, std::span<const int32_t> children, double u) {
  double total = 0;
  for (double v : p)
    total += v;
  const int32_t token = inverseCdf(p, total, u);
  for (size_t c = 0; c < children.size(); ++c)
    if (children[c] == token)
      return {static_cast<int32_t>(c), token};
  return {-1, token};
}

} // namespace lathe::speculative
