#include "runtime/speculative/TokenRecycling.h"

#include <algorithm>
#include <cmath>

#include "runtime/sampling/Sampler.h"
#include "runtime/speculative/TokenPair.h"

namespace lathe::speculative {

TokenRecycling::TokenRecycling(int64_t vocab, int32_t k)
    : vocab_(vocab), k_(std::max(k, 1)), table_(size_t(vocab) * size_t(k_), -1),
      probabilities_(size_t(vocab) * size_t(k_), 0.0f), pairTags_(kPairSlots, ~uint64_t(0)),
      pairIds_(kPairSlots * size_t(k_), -1), pairProbabilities_(kPairSlots * size_t(k_), 0.0f) {}


size_t TokenRecycling::pairSlot(int32_t previous, int32_t token) const {
  uint64_t state = tokenPairKey(previous, token);
  return size_t(splitmix64Next(state) & (kPairSlots - 1));
}

size_t TokenRecycling::pairLength(size_t slot) const {
  const int32_t *row = pairIds_.data() + slot * size_t(k_);
  size_t n = 0;
  while (n < size_t(k_) && row[n] >= 0)
    ++n;
  return n;
}

std::span<const int32_t> TokenRecycling::pairSuccessors(int32_t previous, int32_t token) const {
  if (previous < 0 || token < 0)
    return {};
  const size_t slot = pairSlot(previous, token);
  if (pairTags_[slot] != tokenPairKey(previous, token))
    return {};
  return {pairIds_.data() + slot * size_t(k_), pairLength(slot)};
}

std::span<const float> TokenRecycling::pairProbabilities(int32_t previous, int32_t token) const {
  const size_t n = pairSuccessors(previous, token).size();
  if (n == 0)
    return {};
  return {pairProbabilities_.data() + pairSlot(previous, token) * size_t(k_), n};
}

void TokenRecycling::update(int32_t token, std::span<const float> logits, int32_t previous) {
  if (token < 0 || token >= vocab_)
    return;
  // A sorted list of the best k so far: most scores fail the first compare.
  bestScores_.clear();
  bestIds_.clear();
  const size_t k = size_t(k_);
  // Once k scores are in, whole chunks below the k-th are skipped on their
  // maximum, which the compiler vectorizes: a step updates every node's row
  // from 32000 logits, and most chunks hold nothing better.
  constexpr size_t kChunk = 64;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (i % kChunk == 0 && bestScores_.size() == k && i + kChunk <= logits.size()) {
      float most = logits[i];
      for (size_t j = 1; j < kChunk; ++j)
        most = std::max(most, logits[i + j]);
      // NaN compares false either way: such a chunk is scanned one by one.
      if (most <= bestScores_.back()) {
        i += kChunk - 1;
        continue;
      }
    }
    const float v = logits[i];
    if (std::isnan(v))
      continue;
    if (bestScores_.size() == k && !(v > bestScores_.back()))
      continue;
    // After the equal ones: the lower id stays first.
    size_t at = std::upper_bound(bestScores_.begin(), bestScores_.end(), v,
                                 [](float a, float b) { return a > b; }) -
                bestScores_.begin();
    if (bestScores_.size() == k) {
      bestScores_.pop_back();
      bestIds_.pop_back();
    }
    bestScores_.insert(bestScores_.begin() + at, v);
    bestIds_.insert(bestIds_.begin() + at, static_cast<int32_t>(i));
  }
  int32_t *row = table_.data() + size_t(token) * k;
  std::fill(row, row + k, -1);
  std::copy(bestIds_.begin(), bestIds_.end(), row);
  float *p = probabilities_.data() + size_t(token) * k;
  double total = 0;
  for (float v : bestScores_)
    total += std::exp(double(v) - double(bestScores_.front()));
  for (size_t i = 0; i < k; ++i)
    p[i] = i < bestScores_.size() && std::isfinite(total)
               ? float(std::exp(double(bestScores_[i]) - double(bestScores_.front())) / total)
               : 0.0f;
  if (previous < 0)
    return;
  const size_t slot = pairSlot(previous, token);
  pairTags_[slot] = tokenPairKey(previous, token);
  std::copy(row, row + k, pairIds_.data() + slot * k);
  std::copy(p, p + k, pairProbabilities_.data() + slot * k);
}

std::span<const float> TokenRecycling::probabilities(int32_t token) const {
  const size_t n = successors(token).size();
  return {probabilities_.data() + size_t(std::max(token, 0)) * size_t(k_), n};
}

std::span<const int32_t> TokenRecycling::successors(int32_t token) const {
  if (token < 0 || token >= vocab_)
    return {};
  const int32_t *row = table_.data() + size_t(token) * size_t(k_);
  size_t n = 0;
  while (n < size_t(k_) && row[n] >= 0)
    ++n;
  return {row, n};
}

int32_t TokenRecycling::expand(DraftTree &tree) const {
  int32_t added = 0;
  for (int32_t node = 0; node < static_cast<int32_t>(tree.size()); ++node)
    for (int32_t next : successors(tree.token(node))) {
      if (!tree.hasRoom(node))
        break;
      const size_t before = tree.size();
      tree.add(node, next);
      added += static_cast<int32_t>(tree.size() - before);
    }
  return added;
}

} // namespace lathe::speculative
