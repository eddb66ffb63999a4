// Picks the next token from one position's logits: greedy argmax, or a
// seeded draw from the temperature-scaled softmax cut down by top-k and
// top-p. The draw uses its own PRNG so that a seed gives the same tokens on
// every platform and standard library.
#pragma once

#include "runtime/support/Expected.h"

#include <cstdint>
#include <span>
#include <vector>

namespace lathe {

struct SamplerOptions {
  float temperature = 0.0f; // 0 => greedy argmax
  float topP = 1.0f;        // nucleus mass in (0, 1]; 1 => off
  int32_t topK = 0;         // 0 => off
  uint64_t seed = 0;
};

/// Checks the options the way a user typed them: temperature finite and
/// >= 0, top-p in (0, 1], top-k >= 0. Messages name the command-line flag,
/// e.g. "--top-p must be in (0, 1], got 1.5".
Status validateSamplerOptions(const SamplerOptions &options);

/// The index of the largest value, the lowest one on ties; NaN never wins
/// unless every value is NaN (then 0). Empty input returns -1. Two passes
/// the compiler vectorizes (the maximum, then its first position): greedy
/// decoding scans 32000 logits per token.
int32_t argmax(std::span<const float> values);

/// splitmix64 (Vigna, prng.di.unimi.it/splitmix64.c): advances `state` and
/// returns the next output. The sampler's random numbers; part of the
/// contract that a seed reproduces a run everywhere.
uint64_t splitmix64Next(uint64_t &state);

class Sampler {
public:
  /// `options` should have passed validateSamplerOptions.
  explicit Sampler(SamplerOptions options);

  /// Returns a token id for `logits` (one position). `logits` is used as
  /// scratch and may be modified. Greedy (temperature 0) returns the argmax,
  /// lowest id on ties. Otherwise: softmax(logits / T), keep the top-k
  /// tokens, then the smallest set of most likely tokens whose probability
  /// (renormalised over the top-k) reaches top-p, and draw from that set.
  /// NaN logits count as -inf; if no token has a finite positive weight the
  /// argmax is returned. Empty `logits` returns -1.
  int32_t sample(std::span<float> logits);
  /// sample() of logits the caller keeps: greedy reads them in place (a
  /// batch of 16 sequences of a 128k vocabulary would otherwise copy 8 MB
  /// a step), anything else works on a copy in the sampler's scratch.
  int32_t sampleFrom(std::span<const float> logits);

  const SamplerOptions &options() const { return options_; }
  /// Temperature 0, or one that is not a finite positive number (options
  /// that skipped validation degrade to greedy): sampleFrom is argmax.
  bool greedy() const;

private:
  uint64_t nextRandom();
  double nextUniform();

  SamplerOptions options_;
  uint64_t state_;
  // Reused between calls so that sampling a 32000-token vocabulary does not
  // allocate per token.
  std::vector<float> weights_;
  std::vector<int32_t> candidates_;
  std::vector<float> scratch_; // sampleFrom's copy
};

} // namespace lathe
