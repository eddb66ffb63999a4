// The sampling verifier keeps the target distribution: on vocabularies of
// 16, the tokens it emits are compared with the target by total variation
// and chi-square. The draws are seeded (splitmix64), so the test is
// deterministic; the bounds are loose enough for any seed:
//  - 250,000 draws over 16 tokens: the expected total variation is below
//    0.4 * sqrt(16 / 250000) = 0.0032; the bound is 0.01. Chi-square with
//    15 degrees of freedom exceeds 45 with probability 7e-5.
//  - 1,000,000 draws of a token pair (256 outcomes): expected total
//    variation below 0.4 * sqrt(256 / 1e6) = 0.0064; the bound is 0.015.
//    Chi-square with 255 degrees of freedom exceeds 360 with probability
//    about 1e-5.
#include "runtime/speculative/TreeSampling.h"

#include "runtime/sampling/Sampler.h"

#include <algorithm>
#include <cmath>
#include <gtest/gtest.h>
#include <vector>

namespace lathe::speculative {
namespace {

constexpr int kVocab = 16;

std::vector<double> distribution(uint64_t seed, int zeros) {
  std::vector<double> p(kVocab);
  uint64_t s = seed;
  for (double &v : p)
    v = 0.05 + double(splitmix64Next(s) >> 11) * 0x1.0p-53;
  for (int z = 0; z < zeros; ++z)
    p[splitmix64Next(s) % kVocab] = 0;
  double total = 0;
  for (double v : p)
    total += v;
  for (double &v : p)
    v /= total;
  return p;
}

struct Fit {
  double tv = 0, chi2 = 0;
};

Fit fit(const std::vector<int64_t> &counts, const std::vector<double> &p) {
  int64_t n = 0;
  for (int64_t c : counts)
    n += c;
  Fit f;
  for (size_t i = 0; i < p.size(); ++i) {
    const double observed = double(counts[i]) / double(n);
    f.tv += 0.5 * std::fabs(observed - p[i]);
    if (p[i] > 0)
      f.chi2 += std::pow(double(counts[i]) - double(n) * p[i], 2) / (double(n) * p[i]);
    else
      EXPECT_EQ(counts[i], 0) << "token " << i << " has probability 0";
  }
  return f;
}

class Uniforms {
public:
  explicit Uniforms(uint64_t seed) : state_(seed) {}
  double operator()() { return double(splitmix64Next(state_) >> 11) * 0x1.0p-53; }

private:
  uint64_t state_;
};

TEST(TreeSampling, EveryOrderOfSiblingsKeepsTheTarget) {
  // Siblings 3, 7, 3 (a duplicate) and 11, in all 12 distinct orders; token
  // 11 has probability 0 in one of the targets.
  const std::vector<double> targets[] = {distribution(1, 0), distribution(2, 3)};
  for (const std::vector<double> &p : targets) {
    std::vector<int32_t> children{3, 3, 7, 11};
    int orders = 0;
    do {
      ++orders;
      Uniforms uniform(1000 + orders);
      std::vector<int64_t> counts(kVocab, 0);
      for (int i = 0; i < 250000; ++i) {
        const NodeChoice choice = sampleAmongChildren(p, children, std::ref(uniform));
        ASSERT_GE(choice.token, 0);
        if (choice.child >= 0)
          ASSERT_EQ(children[choice.child], choice.token);
        // A duplicate is never the one accepted: its token was zeroed.
        if (choice.child >= 0)
          ASSERT_EQ(std::find(children.begin(), children.end(), choice.token) - children.begin(),
                    choice.child);
        ++counts[choice.token];
      }
      const Fit f = fit(counts, p);
      EXPECT_LT(f.tv, 0.01) << "order " << orders;
      EXPECT_LT(f.chi2, 45) << "order " << orders;
    } while (std::next_permutation(children.begin(), children.end()));
    EXPECT_EQ(orders, 12);
  }
}

TEST(TreeSampling, APathThroughTheTreeKeepsTheJointTarget) {
  // Depth 2: the root's children 5, 9, 5; below 5 the children 2, 14, below
  // 9 the child 9. The second token's target depends on the first. A token
  // that is not a child is the step's bonus: the next step draws the token
  // after it from its target, as plain decoding does.
  const std::vector<double> first = distribution(7, 2);
  std::vector<std::vector<double>> second;
  for (int t = 0; t < kVocab; ++t)
    second.push_back(distribution(100 + t, t % 3));
  const std::vector<int32_t> rootChildren{5, 9, 5};
  auto below = [](int32_t token) -> std::vector<int32_t> {
    if (token == 5)
      return {2, 14};
    if (token == 9)
      return {9};
    return {};
  };
  Uniforms uniform(77);
  std::vector<int64_t> counts(kVocab * kVocab, 0);
  const int draws = 1000000;
  for (int i = 0; i < draws; ++i) {
    const NodeChoice a = sampleAmongChildren(first, rootChildren, std::ref(uniform));
    const std::vector<int32_t> children =
        a.child >= 0 ? below(a.token) : std::vector<int32_t>{};
    const NodeChoice b = sampleAmongChildren(second[a.token], children, std::ref(uniform));
    ++counts[a.token * kVocab + b.token];
  }
  std::vector<double> joint(kVocab * kVocab);
  for (int a = 0; a < kVocab; ++a)
    for (int b = 0; b < kVocab; ++b)
      joint[a * kVocab + b] = first[a] * second[a][b];
  const Fit f = fit(counts, joint);
  EXPECT_LT(f.tv, 0.015);
  EXPECT_LT(f.chi2, 360);
}

TEST(TreeSampling, TheCoupledDrawHasTheSameLaw) {
  const std::vector<double> p = distribution(3, 1);
  const std::vector<int32_t> children{4, 1, 4, 8};
  Uniforms uniform(5);
  std::vector<int64_t> counts(kVocab, 0);
  for (int i = 0; i < 250000; ++i) {
    const NodeChoice choice = sampleCoupled(p, children, uniform());
    if (choice.child >= 0)
      ASSERT_EQ(children[choice.child], choice.token);
    else
      ASSERT_EQ(std::find(children.begin(), children.end(), choice.token), children.end());
    ++counts[choice.token];
  }
  const Fit f = fit(counts, p);
  EXPECT_LT(f.tv, 0.01);
  EXPECT_LT(f.chi2, 45);
}

TEST(TreeSampling, TheBoundsCatchAVerifierThatForgetsTheResidual) {
  // Drawing the bonus from p instead of the residual double-counts the
  // rejected children's tokens: the test's bounds must see that.
  const std::vector<double> p = distribution(1, 0);
  const std::vector<int32_t> children{3, 7, 11};
  Uniforms uniform(9);
  std::vector<int64_t> counts(kVocab, 0);
  for (int i = 0; i < 250000; ++i) {
    NodeChoice choice = sampleAmongChildren(p, children, std::ref(uniform));
    if (choice.child < 0)
      choice = sampleAmongChildren(p, {}, std::ref(uniform));
    ++counts[choice.token];
  }
  const Fit f = fit(counts, p);
  EXPECT_GT(f.tv, 0.01);
  EXPECT_GT(f.chi2, 45);
}

} // namespace
} // namespace lathe::speculative
