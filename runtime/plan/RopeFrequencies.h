// The rotary frequencies of a head: plain RoPE, theta^(-2i / head_dim) for
// pair i, optionally with Llama 3's frequency scaling. The one definition
// that the reference kernels and the CPU and CUDA code generators build their
// tables from, and that the tfm and plan verifiers check the scaling with.
#pragma once

#include "runtime/kernels/ElementwiseKernels.h"

#include <cmath>
#include <cstdint>
#include <cstddef>
#include <numbers>
#include <vector>

namespace lathe::plan {

/// Llama 3's scaling (`rope_scaling` of type "llama3" in a Hugging Face
/// config); factor 0 means plain RoPE.
struct RopeScaling {
  float factor = 0.0f, lowFreqFactor = 0.0f, highFreqFactor = 0.0f;
  int64_t originalContext = 0;

  bool enabled() const { return factor != 0.0f; }
  bool operator==(const RopeScaling &) const = default;
};

/// Why `s` is not a scaling the frequencies can be computed with, or
/// nullptr when it is (or when it is off).
inline const char *ropeScalingProblem(const RopeScaling &s) {
  if (!s.enabled())
    return nullptr;
  if (!(s.factor >= 1.0f) || !std::isfinite(s.factor))
    return "expects a scaling factor of at least 1";
  if (!(s.lowFreqFactor > 0.0f) || !(s.highFreqFactor > s.lowFreqFactor) ||
      !std::isfinite(s.highFreqFactor))
    return "expects 0 < low_freq_factor < high_freq_factor";
  if (s.originalContext <= 0)
    return "expects a positive original context";
  return nullptr;
}

/// The frequency of each of the headDim / 2 pairs, in double. Llama 3 keeps
/// the pairs whose wavelength 2 pi / f is below originalContext /
/// highFreqFactor, slows those above originalContext / lowFreqFactor by
/// `factor`, and blends the two in between (as transformers'
/// _compute_llama3_parameters does).
inline std::vector<double> ropeFrequencies(double theta, int64_t headDim,
                                           const RopeScaling &s = {}) {
  std::vector<double> freq(headDim / 2);
  for (int64_t i = 0; i < headDim / 2; ++i) {
    double f = lathe_rope_frequency(theta, i, headDim);
    if (s.enabled()) {
      const double context = double(s.originalContext), low = s.lowFreqFactor,
                   high = s.highFreqFactor, factor = s.factor;
      const double wavelength = 2.0 * std::numbers::pi / f;
      if (wavelength > context / low) {
        f /= factor;
      } else if (!(wavelength < context / high)) {
        double smooth = (context / wavelength - low) / (high - low);
        f = (1.0 - smooth) * f / factor + smooth * f;
      }
    }
    freq[i] = f;
  }
  return freq;
}

/// The groups of heads a rope's pair order, or its table of frequencies
/// (orderedFrequencies), has `entries` entries for: one table of headDim / 2
/// frequencies a group; an empty order is one group (every head).
inline int64_t ropeTableGroups(size_t entries, int64_t headDim) {
  return entries == 0 ? 1 : int64_t(entries) / (headDim / 2);
}

/// Why `order` is not a pair order for rope over `heads` heads of `headDim`,
/// or nullptr when it is. An order (tfm.rope's `pair_order`, written by
/// lathe-reorder-key-channels) holds, for each of G groups of heads, a
/// permutation of the headDim / 2 pairs: entry g * headDim / 2 + j is the
/// pair whose frequency turns position j of the heads of group g. Head h of
/// a row of `heads` heads is in group h * G / heads, so G must divide the
/// head count (the queries' heads group like their KV heads). Empty: no
/// reordering.
inline const char *pairOrderProblem(const std::vector<uint32_t> &order, int64_t headDim,
                                    int64_t heads) {
  if (order.empty())
    return nullptr;
  const int64_t half = headDim / 2;
  if (half <= 0 || order.size() % size_t(half) != 0)
    return "expects pair_order to hold whole heads of head_dim / 2 pairs";
  const int64_t groups = ropeTableGroups(order.size(), headDim);
  if (heads % groups != 0)
    return "expects the pair_order's groups to divide the heads";
  for (int64_t g = 0; g < groups; ++g) {
    std::vector<bool> seen(size_t(half), false);
    for (int64_t j = 0; j < half; ++j) {
      const uint32_t p = order[size_t(g * half + j)];
      if (p >= uint64_t(half) || seen[p])
        return "expects each group of pair_order to be a permutation of the pairs";
      seen[p] = true;
    }
  }
  return nullptr;
}

/// The frequency of position j of each group's heads: freq[order[g * half +
/// j]] (a plain table of the headDim / 2 frequencies for an empty order).
/// The kernels take head h of a row of H heads from group h * G / H, G =
/// table size / (headDim / 2).
inline std::vector<double> orderedFrequencies(const std::vector<double> &freq,
                                              const std::vector<uint32_t> &order) {
  if (order.empty())
    return freq;
  std::vector<double> table(order.size());
  for (size_t i = 0; i < order.size(); ++i)
    table[i] = freq[order[i]];
  return table;
}

} // namespace lathe::plan
