#include "runtime/sampling/Sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

namespace lathe {
namespace {

std::vector<int32_t> drawMany(Sampler &sampler,
                              const std::vector<float> &logits, int count) {
  std::vector<int32_t> ids;
  for (int i = 0; i < count; ++i) {
    std::vector<float> scratch = logits; // sample() may overwrite its input
    ids.push_back(sampler.sample(scratch));
  }
  return ids;
}

std::vector<float> randomLogits(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(n);
  for (float &l : logits)
    l = normal(rng);
  return logits;
}

std::vector<double> frequencies(const std::vector<int32_t> &ids, size_t n) {
  std::vector<double> f(n, 0.0);
  for (int32_t id : ids)
    f.at(id) += 1.0 / ids.size();
  return f;
}

std::vector<double> softmax(const std::vector<float> &logits, double t = 1.0) {
  double m = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p;
  for (float l : logits)
    p.push_back(std::exp((l - m) / t));
  double z = std::accumulate(p.begin(), p.end(), 0.0);
  for (double &x : p)
    x /= z;
  return p;
}

TEST(Sampler, GreedyIsArgmaxWithLowestIdOnTies) {
  Sampler greedy(SamplerOptions{});
  std::vector<float> logits = {1.0f, 5.0f, 3.0f, 5.0f};
  EXPECT_EQ(greedy.sample(logits), 1);
  logits = {-2.0f, -1.0f, -1.5f};
  EXPECT_EQ(greedy.sample(logits), 1);
  logits = {7.0f};
  EXPECT_EQ(greedy.sample(logits), 0);
}

// The vectorized argmax against a plain scan, on lengths around its 16- and
// 64-value steps, with ties, NaN and infinities placed at random.
TEST(Sampler, ArgmaxMatchesAPlainScan) {
  auto plain = [](const std::vector<float> &v) {
    int32_t best = -1;
    for (size_t i = 0; i < v.size(); ++i)
      if (!std::isnan(v[i]) && (best < 0 || v[i] > v[best]))
        best = static_cast<int32_t>(i);
    return best < 0 ? (v.empty() ? -1 : 0) : best;
  };
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> small(-3, 3);
  for (size_t n : {0, 1, 2, 15, 16, 17, 63, 64, 65, 100, 129, 1000, 32000}) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> v(n);
      for (float &x : v) x = static_cast<float>(small(rng)); // many ties
      if (n > 0 && trial % 4 == 1)
        v[rng() % n] = std::nanf("");
      if (n > 0 && trial % 4 == 2)
        v[rng() % n] = std::numeric_limits<float>::infinity();
      if (trial % 4 == 3)
        std::fill(v.begin(), v.end(), -std::numeric_limits<float>::infinity());
      ASSERT_EQ(argmax(v), plain(v)) << "n=" << n << " trial " << trial;
    }
  }
  EXPECT_EQ(argmax(std::vector<float>(40, std::nanf(""))), 0);
}

TEST(Sampler, NonFiniteLogitsDoNotCrash) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (float temperature : {0.0f, 1.0f}) {
    Sampler s(SamplerOptions{temperature, 0.9f, 5, 1});
    std::vector<float> logits = {nan, 2.0f, nan};
    EXPECT_EQ(s.sample(logits), 1);
    logits = {-inf, -inf, -inf};
    EXPECT_EQ(s.sample(logits), 0);
    logits = {0.0f, inf, 1.0f, inf};
    EXPECT_EQ(s.sample(logits), 1);
    std::vector<float> empty;
    EXPECT_EQ(s.sample(empty), -1);
  }
}

// sampleFrom (the caller's logits, read in place when greedy) draws what
// sample (a copy it may overwrite) draws, NaN and ties included, and leaves
// its input as it was.
TEST(Sampler, SampleFromDrawsWhatSampleDraws) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (SamplerOptions options : {SamplerOptions{}, SamplerOptions{0.9f, 0.95f, 10, 7}}) {
    Sampler a(options), b(options);
    for (uint32_t trial = 0; trial < 200; ++trial) {
      std::vector<float> logits = randomLogits(257, trial);
      if (trial % 3 == 1)
        logits[trial % 257] = nan;
      if (trial % 3 == 2)
        logits[5] = logits[200] = 40.0f; // a tie for the maximum
      const std::vector<float> kept = logits;
      std::vector<float> scratch = logits;
      ASSERT_EQ(a.sampleFrom(logits), b.sample(scratch)) << "trial " << trial;
      for (size_t i = 0; i < logits.size(); ++i)
        ASSERT_TRUE(logits[i] == kept[i] || (std::isnan(logits[i]) && std::isnan(kept[i])));
    }
  }
}

TEST(Sampler, SameSeedSameDraws) {
  std::vector<float> logits = randomLogits(100, 1);
  for (SamplerOptions options :
       {SamplerOptions{0.8f, 1.0f, 0, 42}, SamplerOptions{0.8f, 0.9f, 0, 42},
        SamplerOptions{0.8f, 1.0f, 20, 42},
        SamplerOptions{1.3f, 0.95f, 40, 42}}) {
    Sampler a(options), b(options);
    EXPECT_EQ(drawMany(a, logits, 500), drawMany(b, logits, 500));
  }
}

TEST(Sampler, DifferentSeedsDiffer) {
  std::vector<float> logits = randomLogits(100, 2);
  Sampler a(SamplerOptions{1.0f, 1.0f, 0, 1});
  Sampler b(SamplerOptions{1.0f, 1.0f, 0, 2});
  std::vector<int32_t> da = drawMany(a, logits, 1000);
  std::vector<int32_t> db = drawMany(b, logits, 1000);
  int differing = 0;
  for (size_t i = 0; i < da.size(); ++i)
    differing += da[i] != db[i];
  EXPECT_GT(differing, 100);
}

// The generator is splitmix64 itself: its published outputs (Vigna's
// reference splitmix64.c) for seeds 0 and 1234567, not values taken from
// this code.
TEST(SamplerTest, Splitmix64MatchesThePublishedOutputs) {
  uint64_t state = 0;
  EXPECT_EQ(splitmix64Next(state), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(splitmix64Next(state), 0x6E789E6AA1B965F4ull);
  EXPECT_EQ(splitmix64Next(state), 0x06C45D188009454Full);
  state = 1234567;
  EXPECT_EQ(splitmix64Next(state), 0x599ED017FB08FC85ull);
  EXPECT_EQ(splitmix64Next(state), 0x2C73F08458540FA5ull);
  EXPECT_EQ(splitmix64Next(state), 0x883EBCE5A3F27C77ull);
}

// The PRNG is part of the contract: a seed must reproduce a run on every
// platform, so these draws are pinned. Update only on purpose.
TEST(Sampler, SeedStreamIsPinned) {
  std::vector<float> logits = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  Sampler s(SamplerOptions{1.0f, 1.0f, 0, 0});
  EXPECT_EQ(
      drawMany(s, logits, 16),
      (std::vector<int32_t>{7, 3, 0, 7, 0, 2, 1, 6, 1, 7, 3, 6, 4, 4, 5, 4}));
}

TEST(Sampler, TopKOneIsGreedyAtAnyTemperature) {
  for (uint32_t trial = 0; trial < 20; ++trial) {
    std::vector<float> logits = randomLogits(1000, 100 + trial);
    // A near tie that exp() rounds to equal weights at high temperature:
    // the lower id has the smaller logit, so ranking by weight would differ.
    logits[3] = 50.0f - 1e-5f;
    logits[700] = 50.0f;
    std::vector<float> copy = logits;
    int32_t expected = Sampler(SamplerOptions{}).sample(copy);
    ASSERT_EQ(expected, 700);
    for (float temperature : {0.1f, 1.0f, 2.0f, 100.0f, 1e6f}) {
      Sampler s(SamplerOptions{temperature, 1.0f, 1, trial});
      for (int32_t id : drawMany(s, logits, 20))
        ASSERT_EQ(id, expected) << "T=" << temperature;
    }
  }
}

TEST(Sampler, TinyTopPIsArgmax) {
  std::vector<float> logits = randomLogits(32000, 5);
  std::vector<float> copy = logits;
  int32_t expected = Sampler(SamplerOptions{}).sample(copy);
  Sampler s(SamplerOptions{1.5f, 1e-6f, 0, 9});
  for (int32_t id : drawMany(s, logits, 50))
    ASSERT_EQ(id, expected);
}

// Tolerance: each frequency over 20000 draws has standard deviation at most
// sqrt(0.25 / 20000) ~ 0.0035, so 0.02 is more than 5 sigma.
constexpr int kDraws = 20000;
constexpr double kTolerance = 0.02;

TEST(Sampler, FrequenciesMatchSoftmax) {
  std::vector<float> logits = {1.0f, 2.0f, 0.5f, -1.0f};
  for (float temperature : {1.0f, 0.5f}) {
    Sampler s(SamplerOptions{temperature, 1.0f, 0, 7});
    std::vector<double> f = frequencies(drawMany(s, logits, kDraws), 4);
    std::vector<double> p = softmax(logits, temperature);
    for (size_t i = 0; i < 4; ++i)
      EXPECT_NEAR(f[i], p[i], kTolerance)
          << "token " << i << " T=" << temperature;
  }
}

TEST(Sampler, TopKRenormalisesOverTheKept) {
  std::vector<float> logits = {1.0f, 2.0f, 0.5f, -1.0f};
  Sampler s(SamplerOptions{1.0f, 1.0f, 2, 11});
  std::vector<double> f = frequencies(drawMany(s, logits, kDraws), 4);
  std::vector<double> p = softmax({1.0f, 2.0f});
  EXPECT_NEAR(f[0], p[0], kTolerance);
  EXPECT_NEAR(f[1], p[1], kTolerance);
  EXPECT_EQ(f[2], 0.0);
  EXPECT_EQ(f[3], 0.0);
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  // Probabilities 0.5, 0.3, 0.15, 0.05 (shuffled ids): top-p 0.7 needs the
  // two most likely tokens (0.5 < 0.7 <= 0.8), renormalised to 5/8 and 3/8.
  std::vector<float> logits = {std::log(0.15f), std::log(0.5f), std::log(0.05f),
                               std::log(0.3f)};
  Sampler s(SamplerOptions{1.0f, 0.7f, 0, 13});
  std::vector<double> f = frequencies(drawMany(s, logits, kDraws), 4);
  EXPECT_NEAR(f[1], 5.0 / 8.0, kTolerance);
  EXPECT_NEAR(f[3], 3.0 / 8.0, kTolerance);
  EXPECT_EQ(f[0], 0.0);
  EXPECT_EQ(f[2], 0.0);
}

TEST(Sampler, TopPAppliesAfterTopK) {
  // Top-2 of {0.5, 0.3, 0.15, 0.05} renormalises to {0.625, 0.375}; top-p
  // 0.6 then keeps only the first.
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f),
                               std::log(0.05f)};
  Sampler s(SamplerOptions{1.0f, 0.6f, 2, 17});
  for (int32_t id : drawMany(s, logits, 200))
    ASSERT_EQ(id, 0);
}

TEST(Sampler, LargeVocabularyDrawsStayInsideTheNucleus) {
  // The prefilter must never drop a nucleus token; compare with a full sort.
  std::vector<float> logits = randomLogits(32000, 21);
  const float topP = 0.9f, temperature = 0.8f;
  std::vector<double> p = softmax(logits, temperature);
  std::vector<int32_t> order(p.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return p[a] != p[b] ? p[a] > p[b] : a < b;
  });
  std::vector<bool> inNucleus(p.size(), false);
  double cumulative = 0.0;
  for (int32_t id : order) {
    inNucleus[id] = true;
    cumulative += p[id];
    if (cumulative >= topP)
      break;
  }
  Sampler s(SamplerOptions{temperature, topP, 0, 23});
  std::vector<int32_t> ids = drawMany(s, logits, 2000);
  for (int32_t id : ids)
    ASSERT_TRUE(inNucleus[id]) << id;
  // And the nucleus is actually sampled broadly, not collapsed to a few.
  std::sort(ids.begin(), ids.end());
  EXPECT_GT(std::unique(ids.begin(), ids.end()) - ids.begin(), 20);
}

TEST(SamplerOptions, Validation) {
  EXPECT_TRUE(validateSamplerOptions(SamplerOptions{}));
  EXPECT_TRUE(validateSamplerOptions(SamplerOptions{0.9f, 0.95f, 40, 5}));
  EXPECT_TRUE(validateSamplerOptions(SamplerOptions{1.0f, 1.0f, 0, 0}));

  auto message = [](SamplerOptions o) {
    Status s = validateSamplerOptions(o);
    return s ? std::string("<ok>") : s.error().message();
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(message({0.0f, 1.5f, 0, 0}), "--top-p must be in (0, 1], got 1.5");
  EXPECT_EQ(message({0.0f, 0.0f, 0, 0}), "--top-p must be in (0, 1], got 0");
  EXPECT_EQ(message({0.0f, -0.1f, 0, 0}),
            "--top-p must be in (0, 1], got -0.1");
  EXPECT_EQ(message({0.0f, nan, 0, 0}), "--top-p must be in (0, 1], got nan");
  EXPECT_EQ(message({-1.0f, 1.0f, 0, 0}),
            "--temperature must be a finite number >= 0, got -1");
  EXPECT_EQ(message({nan, 1.0f, 0, 0}),
            "--temperature must be a finite number >= 0, got nan");
  EXPECT_EQ(message({inf, 1.0f, 0, 0}),
            "--temperature must be a finite number >= 0, got inf");
  EXPECT_EQ(message({1.0f, 1.0f, -3, 0}), "--top-k must be >= 0, got -3");
}

// Top-p keeps the fewest tokens whose mass reaches p: with four equal
// tokens and p = 0.5, the first two exactly, never a third.
TEST(Sampler, TopPStopsWhereTheMassReachesP) {
  std::vector<float> logits = {0.0f, 0.0f, 0.0f, 0.0f};
  Sampler s(SamplerOptions{1.0f, 0.5f, 0, 3});
  for (int32_t id : drawMany(s, logits, 2000))
    ASSERT_LT(id, 2);
}

// Top-k of 1 on a tie keeps the lowest id, as greedy decoding does.
TEST(Sampler, TopKOneOnATieKeepsTheLowestId) {
  std::vector<float> logits = {1.0f, 3.0f, 3.0f, 0.0f};
  Sampler s(SamplerOptions{1.0f, 1.0f, 1, 3});
  for (int32_t id : drawMany(s, logits, 50))
    ASSERT_EQ(id, 1);
}

// A temperature that is not finite falls back to greedy, as documented.
TEST(Sampler, InfiniteTemperatureIsGreedy) {
  std::vector<float> logits = {0.0f, 10.0f, 0.0f};
  Sampler s(SamplerOptions{std::numeric_limits<float>::infinity(), 1.0f, 0, 3});
  EXPECT_TRUE(s.greedy());
  for (int32_t id : drawMany(s, logits, 50))
    ASSERT_EQ(id, 1);
}

// The prefilter that drops unlikely tokens before sorting keeps every
// token of the nucleus: p = 0.9 over {0.4, 0.2, 0.2, 0.2} draws each of the
// last three a fifth of the time.
TEST(Sampler, PrefilterKeepsTheWholeNucleus) {
  std::vector<float> logits = {std::log(0.4f), std::log(0.2f), std::log(0.2f), std::log(0.2f)};
  Sampler s(SamplerOptions{1.0f, 0.9f, 0, 3});
  std::vector<double> f = frequencies(drawMany(s, logits, kDraws), 4);
  for (int i = 1; i < 4; ++i)
    EXPECT_NEAR(f[i], 0.2, kTolerance);
}

// The nucleus is not cut short: p = 0.55 over {0.5, 0.3, 0.15, 0.05} keeps
// the first two, renormalized, so the second comes 3/8 of the time.
TEST(Sampler, NucleusIsNotSmallerThanP) {
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  Sampler s(SamplerOptions{1.0f, 0.55f, 0, 3});
  std::vector<double> f = frequencies(drawMany(s, logits, kDraws), 4);
  EXPECT_NEAR(f[1], 3.0 / 8.0, kTolerance);
}

// A p below the top token's own probability keeps that token alone.
TEST(Sampler, SmallTopPKeepsTheTopToken) {
  std::vector<float> logits = {0.0f, 0.01f};
  Sampler s(SamplerOptions{1.0f, 0.1f, 0, 3});
  for (int32_t id : drawMany(s, logits, 50))
    ASSERT_EQ(id, 1);
}

// A seed reproduces its draws: the stream for unequal logits is pinned
// (the equal-logit pin cannot see the candidates' order change), and top-k
// equal to the vocabulary is the same as none.
TEST(Sampler, SeedStreamForUnequalLogitsIsPinned) {
  std::vector<float> logits = {0.0f, 1.0f, 2.0f, 0.5f, -1.0f, 1.5f};
  Sampler plain(SamplerOptions{1.0f, 1.0f, 0, 5});
  Sampler wholeTopK(SamplerOptions{1.0f, 1.0f, 6, 5});
  const std::vector<int32_t> drawn = drawMany(plain, logits, 16);
  EXPECT_EQ(drawn, (std::vector<int32_t>{2, 5, 2, 1, 1, 2, 5, 2, 2, 2, 2, 1, 5, 2, 5, 5}));
  EXPECT_EQ(drawMany(wholeTopK, logits, 16), drawn);
}

} // namespace
} // namespace lathe
