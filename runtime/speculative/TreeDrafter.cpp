#include "runtime/speculative/TreeDrafter.h"

#include <algorithm>
#include <queue>
#include <vector>

namespace lathe::speculative {
namespace {

// Buckets: 10 for recycled successors by probability, then 20 for n-gram
// continuations by match length (1 to 4) and frequency (in fifths), then 10
// for successors of a pair of tokens by probability.
constexpr int32_t kRecycledBuckets = 10;
constexpr int32_t kPairBuckets = kRecycledBuckets + 20;
constexpr int32_t kBuckets = kPairBuckets + 10;

int32_t recycledBucket(float p) {
  return std::clamp(static_cast<int32_t>(p * kRecycledBuckets), 0, kRecycledBuckets - 1);
}
int32_t ngramBucket(int32_t match, float frequency) {
  return kRecycledBuckets + 5 * (std::clamp(match, 1, 4) - 1) +
         std::clamp(static_cast<int32_t>(frequency * 5), 0, 4);
}
/// The raw probability in the middle of a bucket's range (n-grams: their
/// confidence times the frequency), what its drafts were expected to do
/// before any was judged.
double bucketPrior(int32_t bucket, float ngramConfidence) {
  if (bucket < kRecycledBuckets)
    return (bucket + 0.5) / kRecycledBuckets;
  if (bucket >= kPairBuckets)
    return (bucket - kPairBuckets + 0.5) / kRecycledBuckets;
  return ngramConfidence * ((bucket - kRecycledBuckets) % 5 + 0.5) / 5;
}

struct Candidate {
  float score;
  int32_t bucket;
  int32_t parent, token;
  // The node of the continuation trie that proposed it, or -1.
  int32_t continuation;
  int64_t order; // earlier candidates first on equal scores
  bool operator<(const Candidate &o) const {
    return score != o.score ? score < o.score : order > o.order;
  }
};

} // namespace

TreeDrafter::TreeDrafter(int64_t vocab, const TreeShape &shape, const DraftOptions &options)
    : vocab_(vocab), shape_(shape), options_(options),
      recycling_(vocab, std::max(shape.widest(), 8)), history_(options.historyCapacity),
      cost_(options.nodeCost), drafted_(kBuckets, 0.0),
      accepted_(kBuckets, 0.0) {}

DraftTree TreeDrafter::draft(std::span<const int32_t> text, int64_t maxNodes, int64_t roots,
                             const TextIndex *own) const {
  DraftTree tree(shape_, text.back(), maxNodes);
  ContinuationTrie continuations;
  if (options_.ngrams)
    continuations = suffixContinuations(text, tree.maxDepth(), options_.ngram,
                                        history_.size() ? &history_ : nullptr, own);
  // A bucket's estimate: its acceptance so far, pulled towards `prior`
  // as every bucket's drafts have borne their priors out (calibration()).
  const double calibrated = calibration();
  auto estimate = [&](int32_t bucket, float prior) {
    return float(std::min(1.0, (accepted_[bucket] + 2.0 * calibrated * prior) / (drafted_[bucket] + 2.0)));
  };
  tree.setRootPrevious(text.size() >= 2 ? text[text.size() - 2] : -1);
  std::vector<float> scores{1.0f};
  std::priority_queue<Candidate> queue;
  int64_t order = 0;
  // The table's raw probability of `token` after `after`'s token, or -1.
  auto recycled = [&](int32_t after, int32_t token) {
    if (!options_.recycling)
      return -1.0f;
    const auto ids = recycling_.successors(tree.token(after));
    const auto it = std::find(ids.begin(), ids.end(), token);
    return it == ids.end() ? -1.0f
                           : recycling_.probabilities(tree.token(after))[it - ids.begin()];
  };
  // The continuations below trie node `from`, as children of tree node `node`.
  auto pushContinuations = [&](int32_t node, int32_t from) {
    for (int32_t c : continuations.children[from]) {
      const int32_t token = continuations.tokens[c];
      const float frequency = float(continuations.counts[c]) / float(continuations.counts[from]);
      int32_t bucket = ngramBucket(continuations.match, frequency);
      float p = estimate(bucket, options_.ngramConfidence * frequency);
      if (const float raw = recycled(node, token); raw >= 0) {
        const int32_t other = recycledBucket(raw);
        if (const float q = estimate(other, raw); q > p)
          p = q, bucket = other;
      }
      queue.push({scores[node] * p, bucket, node, token, c, order++});
    }
  };
  // The token before a node's: its parent's, or for the root the text's.
  auto previous = [&](int32_t node) {
    if (node > 0)
      return tree.token(tree.parent(node));
    return text.size() >= 2 ? text[text.size() - 2] : -1;
  };
  auto pushSuccessors = [&](int32_t node) {
    if (!options_.recycling)
      return;
    const int32_t token = tree.token(node), before = previous(node);
    const auto pairIds = recycling_.pairSuccessors(before, token);
    const auto pairPs = recycling_.pairProbabilities(before, token);
    for (size_t i = 0; i < pairIds.size(); ++i) {
      const int32_t bucket = kPairBuckets + recycledBucket(pairPs[i]);
      queue.push(
          {scores[node] * estimate(bucket, pairPs[i]), bucket, node, pairIds[i], -1, order++});
    }
    const auto ids = recycling_.successors(token);
    const auto ps = recycling_.probabilities(token);
    for (size_t i = 0; i < ids.size(); ++i) {
      const int32_t bucket = recycledBucket(ps[i]);
      queue.push({scores[node] * estimate(bucket, ps[i]), bucket, node, ids[i], -1, order++});
    }
  };
  pushContinuations(0, 0);
  pushSuccessors(0);
  const double c = cost_.nodeCost(roots);
  double taken = 0; // the scores of the nodes added so far
  while (!queue.empty()) {
    const Candidate best = queue.top();
    queue.pop();
    const double drafted = double(tree.size() - 1);
    if (best.score < options_.minScore || best.score <= c * (1 + taken) / (1 + c * drafted))
      break;
    const int32_t existing = tree.child(best.parent, best.token);
    const int32_t node = existing >= 0 ? existing : tree.add(best.parent, best.token);
    if (node < 0)
      continue;
    if (existing < 0) {
      taken += best.score;
      scores.push_back(best.score);
      tree.setNote(node, best.bucket);
      pushSuccessors(node);
    }
    // A continuation runs on below its token, where another source put it
    // too.
    if (best.continuation >= 0)
      pushContinuations(node, best.continuation);
  }
  return tree;
}

double TreeDrafter::calibration() const {
  double accepted = 0, expected = 0;
  for (int32_t b = 0; b < kBuckets; ++b) {
    accepted += accepted_[b];
    expected += drafted_[b] * bucketPrior(b, options_.ngramConfidence);
  }
  // Four expected acceptances' worth of belief in the raw probabilities
  // first: a few refusals in a row (a short request, bad luck) must not
  // silence every bucket.
  return std::clamp((accepted + 4.0) / (expected + 4.0), 0.1, 2.0);
}

void StepCostModel::observe(int64_t tokens, double seconds) {
  if (tokens < 1 || !(seconds > 0))
    return;
  // A step of more tokens than any before grows the backend's buffers (the
  // CPU's activations and logits rows, their pages first touched): the
  // first 9-token step of an int4 stories15M generation took 5.5-7.2 ms
  // where later ones took 0.9, and that one sample priced a node at 2.4
  // steps, so that nothing was drafted again.
  if (tokens > most_) {
    most_ = tokens;
    return;
  }
  const double n = double(tokens);
  w_ = kDecay * w_ + 1;
  n_ = kDecay * n_ + n;
  t_ = kDecay * t_ + seconds;
  nn_ = kDecay * nn_ + n * n;
  nt_ = kDecay * nt_ + n * seconds;
  // Weighted variance of the sizes: at least a quarter of a token squared
  // over the equivalent of 8 steps, or the slope is noise.
  const double spread = w_ * nn_ - n_ * n_;
  if (w_ < 8 || spread < 0.25 * w_ * w_)
    return;
  const double b = (w_ * nt_ - n_ * t_) / spread;
  const double a = (t_ - b * n_) / w_;
  if (!(a + b > 0))
    return;
  cost_ = std::clamp(b / (a + b), 0.005, 4.0);
  measured_ = true;
}

void TreeDrafter::observe(const DraftTree &tree, std::span<const float> logits,
                          std::span<const int32_t> accepted) {
  // A node tells how likely its bucket is accepted where its parent was.
  std::vector<uint8_t> onPath(tree.size(), 0);
  onPath[0] = 1;
  for (int32_t n : accepted)
    onPath[n] = 1;
  for (size_t n = 1; n < tree.size(); ++n) {
    const int32_t bucket = tree.note(int32_t(n));
    if (bucket >= 0 && bucket < kBuckets && onPath[tree.parent(int32_t(n))]) {
      drafted_[bucket] += 1;
      accepted_[bucket] += onPath[n];
    }
  }
  if (!options_.recycling)
    return;
  for (size_t n = 0; n < tree.size(); ++n)
    recycling_.update(tree.token(int32_t(n)), logits.subspan(n * size_t(vocab_), size_t(vocab_)),
                      n > 0 ? tree.token(tree.parent(int32_t(n))) : tree.rootPrevious());
}

void TreeDrafter::observePrompt(std::span<const int32_t> prompt, std::span<const float> logits) {
  if (!options_.recycling)
    return;
  for (size_t i = 0; i < prompt.size(); ++i)
    recycling_.update(prompt[i], logits.subspan(i * size_t(vocab_), size_t(vocab_)),
                      i > 0 ? prompt[i - 1] : -1);
}

} // namespace lathe::speculative
