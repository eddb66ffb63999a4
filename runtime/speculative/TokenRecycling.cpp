#include "runtime/speculative/TokenRecycling.h"

#include <algorithm>
#include <cmath>

#include "runtime/sampling/Sampler.h"
#include "runtime/speculative/TokenPair.h"

namespace lathe::speculative {

TokenRecycling::Rows::Rows(size_t rows, size_t k, size_t head)
    : k_(k), head_(head), stride_(head + 8 * k), index_(rows, 0) {}

std::byte *TokenRecycling::Rows::write(size_t row) {
  if (index_[row] == 0) {
    bytes_.resize(bytes_.size() + stride_);
    index_[row] = uint32_t(bytes_.size() / stride_);
  }
  return bytes_.data() + (index_[row] - 1) * stride_;
}

/// A row's fields from `to` on: `head` bytes (not written here), then the
/// ids padded with -1 to k, then the probabilities padded with 0.
static void fillRow(std::byte *to, size_t head, size_t k, std::span<const int32_t> ids,
                    std::span<const float> probabilities) {
  int32_t *i = reinterpret_cast<int32_t *>(to + head);
  float *p = reinterpret_cast<float *>(to + head + 4 * k);
  for (size_t j = 0; j < k; ++j) {
    i[j] = j < ids.size() ? ids[j] : -1;
    p[j] = j < probabilities.size() ? probabilities[j] : 0.0f;
  }
}

TokenRecycling::TokenRecycling(int64_t vocab, int32_t k)
    : vocab_(vocab), k_(std::max(k, 1)), rows_(size_t(vocab), size_t(k_), 0),
      pairs_(kPairSlots, size_t(k_), sizeof(uint64_t)) {}

void TokenRecycling::setRow(int32_t token, std::span<const int32_t> ids,
                            std::span<const float> probabilities) {
  fillRow(rows_.write(size_t(token)), 0, size_t(k_), ids, probabilities);
}

void TokenRecycling::setPairRow(size_t slot, uint64_t tag, std::span<const int32_t> ids,
                                std::span<const float> probabilities) {
  std::byte *row = pairs_.write(slot);
  *reinterpret_cast<uint64_t *>(row) = tag;
  fillRow(row, sizeof(uint64_t), size_t(k_), ids, probabilities);
}

size_t TokenRecycling::pairSlot(int32_t previous, int32_t token) const {
  uint64_t state = tokenPairKey(previous, token);
  return size_t(splitmix64Next(state) & (kPairSlots - 1));
}

size_t TokenRecycling::pairLength(size_t slot) const {
  const int32_t *row = pairs_.ids(slot);
  size_t n = 0;
  while (n < size_t(k_) && row[n] >= 0)
    ++n;
  return n;
}

std::span<const int32_t> TokenRecycling::pairSuccessors(int32_t previous, int32_t token) const {
  if (previous < 0 || token < 0)
    return {};
  const size_t slot = pairSlot(previous, token);
  if (!pairs_.written(slot) || pairs_.tag(slot) != tokenPairKey(previous, token))
    return {};
  return {pairs_.ids(slot), pairLength(slot)};
}

std::span<const float> TokenRecycling::pairProbabilities(int32_t previous, int32_t token) const {
  const size_t n = pairSuccessors(previous, token).size();
  if (n == 0)
    return {};
  return {pairs_.probabilities(pairSlot(previous, token)), n};
}

namespace {

constexpr size_t kChunk = 64;

/// The first chunk of kChunk values from `from` on (a multiple of kChunk)
/// holding a value above `floor`, or the last, partial chunk, or `n`: a
/// compare and an or a value, which the compiler vectorizes (NaN is above
/// nothing). A running maximum a chunk instead, one dependent compare
/// after another, took 55 us a row of 32000 logits, where an int4 step of
/// stories15M takes about 270; this scan, 1.8 us (2026-12-05, this VM).
size_t nextChunkAbove(const float *values, size_t n, size_t from, float floor) {
  for (; from + kChunk <= n; from += kChunk) {
    int above = 0;
    for (size_t j = 0; j < kChunk; ++j)
      above |= values[from + j] > floor;
    if (above)
      return from;
  }
  return from;
}

/// The k best of `logits` into `scores` (descending) and `ids`, the lower
/// id first among equal scores, NaN never taken: one pass over the row,
/// which once k scores are in skips the chunks none of whose values beats
/// the k-th (most hold nothing better).
void bestK(std::span<const float> logits, size_t k, std::vector<float> &scores,
           std::vector<int32_t> &ids) {
  scores.clear();
  ids.clear();
  const size_t n = logits.size();
  bool full = k == 0;
  for (size_t chunk = 0; chunk < n; chunk += kChunk) {
    if (full) {
      chunk = nextChunkAbove(logits.data(), n, chunk, scores.back());
      if (chunk >= n)
        break;
    }
    for (size_t i = chunk; i < std::min(n, chunk + kChunk); ++i) {
      const float v = logits[i];
      if (full ? !(v > scores.back()) : std::isnan(v))
        continue;
      // After the equal ones: the lower id stays first.
      const size_t at = std::upper_bound(scores.begin(), scores.end(), v,
                                         [](float a, float b) { return a > b; }) -
                        scores.begin();
      if (full) {
        scores.pop_back();
        ids.pop_back();
      }
      scores.insert(scores.begin() + at, v);
      ids.insert(ids.begin() + at, static_cast<int32_t>(i));
      full = scores.size() == k;
    }
  }
}

} // namespace

void TokenRecycling::update(int32_t token, std::span<const float> logits, int32_t previous) {
  if (token < 0 || token >= vocab_)
    return;
  bestK(logits, size_t(k_), bestScores_, bestIds_);
  std::vector<float> &p = bestScores_; // the scores, made probabilities in place
  double total = 0;
  for (float v : p)
    total += std::exp(double(v) - double(p.front()));
  const float first = p.empty() ? 0.0f : p.front();
  for (float &v : p)
    v = std::isfinite(total) ? float(std::exp(double(v) - double(first)) / total) : 0.0f;
  setRow(token, bestIds_, p);
  if (previous < 0)
    return;
  setPairRow(pairSlot(previous, token), tokenPairKey(previous, token), bestIds_, p);
}

std::span<const float> TokenRecycling::probabilities(int32_t token) const {
  const size_t n = successors(token).size();
  if (n == 0)
    return {};
  return {rows_.probabilities(size_t(token)), n};
}

std::span<const int32_t> TokenRecycling::successors(int32_t token) const {
  if (token < 0 || token >= vocab_ || !rows_.written(size_t(token)))
    return {};
  const int32_t *row = rows_.ids(size_t(token));
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
