#include "runtime/sampling/Sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

namespace lathe {

namespace {

std::string formatNumber(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", value);
  return buffer;
}

} // namespace

// Greedy decoding must not depend on how a library breaks ties, so the
// lowest id wins.
int32_t argmax(std::span<const float> values) {
  const size_t n = values.size();
  if (n == 0)
    return -1;
  const float *v = values.data();
  // Pass 1: the maximum, in 16 independent lanes (x > m ? x : m skips NaN).
  constexpr size_t kLanes = 16;
  float lane[kLanes];
  std::fill(lane, lane + kLanes, -std::numeric_limits<float>::infinity());
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (size_t j = 0; j < kLanes; ++j)
      lane[j] = v[i + j] > lane[j] ? v[i + j] : lane[j];
  float best = -std::numeric_limits<float>::infinity();
  for (size_t j = 0; j < kLanes; ++j) best = lane[j] > best ? lane[j] : best;
  for (; i < n; ++i) best = v[i] > best ? v[i] : best;
  // Pass 2: its first position, 64 values per vectorized test.
  constexpr size_t kChunk = 64;
  size_t c = 0;
  for (; c + kChunk <= n; c += kChunk) {
    bool found = false;
    for (size_t j = 0; j < kChunk; ++j) found |= v[c + j] == best;
    if (found)
      break;
  }
  for (size_t k = c; k < n; ++k)
    if (v[k] == best)
      return static_cast<int32_t>(k);
  return 0; // every value is NaN
}

Status validateSamplerOptions(const SamplerOptions &options) {
  if (!std::isfinite(options.temperature) || options.temperature < 0.0f)
    return Error("--temperature must be a finite number >= 0, got " +
                 formatNumber(options.temperature));
  if (!(options.topP > 0.0f && options.topP <= 1.0f))
    return Error("--top-p must be in (0, 1], got " +
                 formatNumber(options.topP));
  if (options.topK < 0)
    return Error("--top-k must be >= 0, got " + std::to_string(options.topK));
  return Status::ok();
}

Sampler::Sampler(SamplerOptions options)
    : options_(options), state_(options.seed) {}

// splitmix64: every seed, 0 included, gives a full-period stream, and the
// arithmetic is fixed-width, so draws are identical on every platform.
uint64_t splitmix64Next(uint64_t &state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

bool Sampler::greedy() const {
  const float temperature = options_.temperature;
  return !(temperature > 0.0f) || !std::isfinite(temperature);
}

int32_t Sampler::sampleFrom(std::span<const float> logits) {
  // argmax already lets no NaN win, as sample() does by making them -inf.
  if (greedy())
    return argmax(logits);
  scratch_.assign(logits.begin(), logits.end());
  return sample(scratch_);
}

uint64_t Sampler::nextRandom() { return splitmix64Next(state_); }

// Uniform in [0, 1) from the top 53 bits: exactly representable doubles.
double Sampler::nextUniform() { return (nextRandom() >> 11) * 0x1.0p-53; }

int32_t Sampler::sample(std::span<float> logits) {
  if (logits.empty())
    return -1;
  const float negInf = -std::numeric_limits<float>::infinity();
  for (float &l : logits)
    if (std::isnan(l))
      l = negInf;
  // Invalid options (the caller skipped validation) degrade to greedy or to
  // "filter off" rather than to undefined behaviour.
  if (greedy())
    return argmax(logits);
  const float temperature = options_.temperature;
  const int32_t best = argmax(logits);
  const float maxLogit = logits[best];
  // +inf dominates everything; all -inf leaves nothing to weigh.
  if (!std::isfinite(maxLogit))
    return best;

  const size_t n = logits.size();
  weights_.resize(n);
  for (size_t i = 0; i < n; ++i)
    weights_[i] = std::exp((logits[i] - maxLogit) / temperature);

  // Candidates are ranked by logit, not weight: exp can round distinct
  // logits to the same weight, and top-k = 1 must still equal greedy.
  auto ranksBefore = [&](int32_t a, int32_t b) {
    if (logits[a] != logits[b])
      return logits[a] > logits[b];
    return a < b;
  };

  const bool useTopK =
      options_.topK > 0 && static_cast<size_t>(options_.topK) < n;
  const bool useTopP = options_.topP > 0.0f && options_.topP < 1.0f;
  if (!useTopK && !useTopP) {
    // Plain multinomial over the whole vocabulary in id order; no sort.
    double total = 0.0;
    for (float w : weights_)
      total += w;
    double r = nextUniform() * total;
    double cumulative = 0.0;
    for (size_t i = 0; i < n; ++i) {
      cumulative += weights_[i];
      if (r < cumulative)
        return static_cast<int32_t>(i);
    }
    return best;
  }

  candidates_.resize(n);
  for (size_t i = 0; i < n; ++i)
    candidates_[i] = static_cast<int32_t>(i);
  if (useTopK) {
    auto kth = candidates_.begin() + options_.topK;
    std::nth_element(candidates_.begin(), kth, candidates_.end(), ranksBefore);
    candidates_.erase(kth, candidates_.end());
  }

  if (useTopP) {
    double mass = 0.0;
    for (int32_t id : candidates_)
      mass += weights_[id];
    // llama2.c's prefilter: if anything survives, the at most m-1 tokens
    // below the cutoff hold less than (1 - p) of the mass, so the nucleus
    // lies among the survivors and only they need sorting.
    if (candidates_.size() > 1) {
      double cutoff = (1.0 - options_.topP) * mass /
                      static_cast<double>(candidates_.size() - 1);
      auto kept =
          std::remove_if(candidates_.begin(), candidates_.end(),
                         [&](int32_t id) { return weights_[id] < cutoff; });
      if (kept != candidates_.begin())
        candidates_.erase(kept, candidates_.end());
    }
    std::sort(candidates_.begin(), candidates_.end(), ranksBefore);
    double target = options_.topP * mass;
    double cumulative = 0.0;
    size_t keep = candidates_.size();
    for (size_t i = 0; i < candidates_.size(); ++i) {
      cumulative += weights_[candidates_[i]];
      if (cumulative >= target) {
        keep = i + 1;
        break;
      }
    }
    candidates_.resize(keep);
  } else {
    // nth_element leaves an unspecified order; fix it so a seed draws the
    // same token with every standard library.
    std::sort(candidates_.begin(), candidates_.end(), ranksBefore);
  }

  double total = 0.0;
  for (int32_t id : candidates_)
    total += weights_[id];
  double r = nextUniform() * total;
  double cumulative = 0.0;
  for (int32_t id : candidates_) {
    cumulative += weights_[id];
    if (r < cumulative)
      return id;
  }
  return candidates_.front();
}

} // namespace lathe
