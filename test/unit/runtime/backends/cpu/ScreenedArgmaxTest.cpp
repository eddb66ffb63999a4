#include "runtime/backends/cpu/ScreenedArgmax.h"

#include "runtime/backends/cpu/ThreadPool.h"
#include "runtime/backends/cpu/kernels/Matmul.h"
#include "runtime/formats/FormatSpec.h"
#include "runtime/sampling/Sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace lathe::cpu {
namespace {

namespace simd = kernels::simd;

/// Once per kernel of the int8 copy: the panels (skipped without AVX-512
/// VNNI) and the rows (every machine).
class ScreenedArgmaxTest : public ::testing::TestWithParam<ScreenedArgmax::Kernel> {
protected:
  void SetUp() override {
    if (GetParam() == ScreenedArgmax::Kernel::Best &&
        !simd::panelsSupported(*formats::parseFormatSpec("int8:group=32")))
      GTEST_SKIP() << "no AVX-512 VNNI here: no panel kernel (the rows' test covers this machine)";
  }
  std::unique_ptr<ScreenedArgmax> make(const std::vector<float> &w, int64_t N, int64_t K) {
    auto s = ScreenedArgmax::make(w.data(), N, K, pool, GetParam());
    if (s)
      EXPECT_EQ(s->usesPanels(), GetParam() == ScreenedArgmax::Kernel::Best);
    return s;
  }
  threading::ThreadPool pool{2};
};

/// Every logit of T rows of x in float32, as the classifier computes them.
std::vector<float> allLogits(const std::vector<float> &w, const float *x, int64_t T, int64_t N, int64_t K) {
  std::vector<float> y(size_t(T * N));
  simd::matmulF32(x, T, w.data(), N, K, y.data(), 0, N);
  return y;
}

TEST(ScreenedArgmaxBasisTest, ARowAloneIsTheSameFloatAsAmongAllRowsAndTokens) {
  // What the screening rests on: a candidate computed alone (a 1-row
  // matrix, one token) is the float the full classifier gives it, for
  // steps of up to CpuExecutable::kScreenedRows tokens.
  const int64_t N = 301, K = 288, T = 16;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(size_t(N * K)), x(size_t(T * K));
  for (float &v : w) v = normal(rng);
  for (float &v : x) v = normal(rng);
  const std::vector<float> y = allLogits(w, x.data(), T, N, K);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t v = 0; v < N; ++v) {
      float alone;
      simd::matmulF32(x.data() + t * K, 1, w.data() + v * K, 1, K, &alone, 0, 1);
      ASSERT_EQ(std::memcmp(&alone, &y[size_t(t * N + v)], 4), 0) << "token " << t << " row " << v;
    }
}

TEST_P(ScreenedArgmaxTest, PicksExactlyTheArgmaxOfEveryLogit) {
  // Random classifiers of a few shapes, tokens of several spreads, and
  // rows that tie or nearly tie with the best: equal rows (the lower id
  // wins), a row one float above another in a single weight.
  std::mt19937 rng(7);
  for (const auto [N, K] : {std::pair<int64_t, int64_t>{3000, 288}, {517, 64}, {2048, 100}}) {
    std::normal_distribution<float> normal(0.0f, 0.05f);
    std::vector<float> w(size_t(N * K));
    for (float &v : w) v = normal(rng);
    // Rows 10 and 20 equal row 30; row 40 is row 30 with one weight a
    // float larger.
    for (int64_t k = 0; k < K; ++k) {
      w[size_t(10 * K + k)] = w[size_t(20 * K + k)] = w[size_t(30 * K + k)];
      w[size_t(40 * K + k)] = w[size_t(30 * K + k)];
    }
    w[size_t(40 * K)] = std::nextafter(w[size_t(40 * K)], 1.0f);
    auto screen = make(w, N, K);
    ASSERT_NE(screen, nullptr);
    for (int trial = 0; trial < 40; ++trial) {
      // Steps of 1-4 tokens and of 16, the most a greedy step screens.
      const int64_t T = trial % 5 == 4 ? 16 : 1 + trial % 4;
      const float spread = trial % 3 == 0 ? 0.01f : trial % 3 == 1 ? 1.0f : 30.0f;
      std::normal_distribution<float> xs(0.0f, spread);
      std::vector<float> x(size_t(T * K));
      for (float &v : x) v = xs(rng);
      // Every other trial, token 0 points at row 30 (and its twins).
      if (trial % 2 == 0)
        for (int64_t k = 0; k < K; ++k)
          x[size_t(k)] = w[size_t(30 * K + k)] * 100.0f;
      std::vector<int32_t> ids;
      ASSERT_TRUE(screen->argmax(x.data(), T, pool, ids)) << "trial " << trial;
      ASSERT_EQ(ids.size(), size_t(T));
      const std::vector<float> y = allLogits(w, x.data(), T, N, K);
      for (int64_t t = 0; t < T; ++t)
        EXPECT_EQ(ids[size_t(t)], argmax(std::span(y).subspan(size_t(t * N), size_t(N))))
            << "N " << N << " trial " << trial << " token " << t;
      EXPECT_LT(screen->lastCandidates(), 64 * T) << "a bound this loose would not pay";
    }
  }
}

TEST_P(ScreenedArgmaxTest, ComputesEveryLogitOfARowItCannotVouchFor) {
  const int64_t N = 100, K = 64;
  std::vector<float> w(size_t(N * K), 0.01f);
  for (int64_t v = 0; v < N; ++v)
    w[size_t(v * K)] = 0.001f * float(v);
  // The ids of every logit's argmax (`best`, the last token's, where
  // given), appended to `ids`; `fullRows` rows computed whole, among them
  // token `whole`'s (-1: none named), whose estimates are then its logits.
  auto expectEveryLogitsArgmax = [&](ScreenedArgmax &screen, const std::vector<float> &weights,
                                     const std::vector<float> &x, int64_t T, int64_t fullRows,
                                     int64_t whole, int32_t best, const char *what) {
    std::vector<int32_t> ids{7};
    ASSERT_TRUE(screen.argmax(x.data(), T, pool, ids)) << what;
    const int64_t rows = int64_t(weights.size()) / K;
    const std::vector<float> y = allLogits(weights, x.data(), T, rows, K);
    std::vector<int32_t> want{7};
    for (int64_t t = 0; t < T; ++t)
      want.push_back(argmax(std::span(y).subspan(size_t(t * rows), size_t(rows))));
    EXPECT_EQ(ids, want) << what;
    if (best >= 0)
      EXPECT_EQ(want.back(), best) << what;
    EXPECT_EQ(screen.lastFullRows(), fullRows) << what;
    if (whole >= 0)
      EXPECT_EQ(std::memcmp(screen.estimates().data() + whole * rows, y.data() + whole * rows,
                            size_t(rows) * 4),
                0)
          << what;
  };
  auto screen = make(w, N, K);
  ASSERT_NE(screen, nullptr);
  // A NaN or an infinity in the input: no bound; the row alone is
  // computed, the other tokens' are screened. An infinity at column 0
  // makes row 0's logit NaN (times its weight 0) and every other +inf, so
  // id 1 wins (NaN never does); -inf there, id 1 again (-inf against NaN).
  std::vector<float> x(size_t(3 * K), 1.0f);
  x[size_t(K + 3)] = std::nanf("");
  expectEveryLogitsArgmax(*screen, w, x, 3, 1, 1, -1, "a NaN input");
  // Several such tokens among 16: computed together in one pass, each
  // row's logits the floats it gets alone.
  std::vector<float> sixteen(size_t(16 * K), 1.0f);
  for (int64_t t : {2, 9, 15})
    sixteen[size_t(t * K + t)] = std::nanf("");
  expectEveryLogitsArgmax(*screen, w, sixteen, 16, 3, 9, -1, "three NaN inputs of 16 tokens");
  x[size_t(K + 3)] = 1.0f;
  x[size_t(2 * K)] = INFINITY;
  expectEveryLogitsArgmax(*screen, w, x, 3, 1, 2, 1, "an infinite input");
  x.resize(size_t(K));
  x[0] = -INFINITY;
  expectEveryLogitsArgmax(*screen, w, x, 1, 1, 0, 1, "a token alone");
  // Rows too close to tell apart by the int8 copy: 100 ties within the
  // candidates' bound (id 0 wins), 3000 beyond it (computed whole).
  std::fill(x.begin(), x.end(), 1.0f);
  std::vector<float> flat(size_t(N * K), 0.5f);
  auto flatScreen = make(flat, N, K);
  ASSERT_NE(flatScreen, nullptr);
  expectEveryLogitsArgmax(*flatScreen, flat, x, 1, 0, -1, 0, "100 ties");
  // Five tokens' 500 candidates, computed on both threads and gathered in
  // whatever order they finish: each token's lowest id still wins.
  std::vector<float> five(size_t(5 * K), 1.0f);
  expectEveryLogitsArgmax(*flatScreen, flat, five, 5, 0, -1, 0, "100 ties, 5 tokens");
  EXPECT_EQ(flatScreen->lastCandidates(), 500);
  std::vector<float> wide(size_t(3000 * K), 0.5f);
  wide[size_t(2613 * K + 5)] = 0.5f + 0x1p-10f; // the best, within the int8 copy's error
  auto wideScreen = make(wide, 3000, K);
  ASSERT_NE(wideScreen, nullptr);
  expectEveryLogitsArgmax(*wideScreen, wide, x, 1, 1, 0, 2613, "3000 near-ties");
  // A classifier row holding an infinity has no int8 copy: its bound is
  // infinite, so it is always a candidate, computed in float32 (here its
  // logit is +inf and it wins, as in every logit's argmax); a row holding
  // NaN gives a NaN logit, and the token's row is computed whole (NaN
  // never wins).
  std::vector<float> bad = w;
  bad[size_t(5 * K + 1)] = INFINITY;
  auto infinite = make(bad, N, K);
  ASSERT_NE(infinite, nullptr);
  expectEveryLogitsArgmax(*infinite, bad, x, 1, 0, -1, 5, "an infinite weight");
  bad[size_t(5 * K + 1)] = std::nanf("");
  auto nan = make(bad, N, K);
  ASSERT_NE(nan, nullptr);
  expectEveryLogitsArgmax(*nan, bad, x, 1, 1, 0, -1, "a NaN weight");
}

INSTANTIATE_TEST_SUITE_P(Kernels, ScreenedArgmaxTest,
                         ::testing::Values(ScreenedArgmax::Kernel::Best, ScreenedArgmax::Kernel::Rows),
                         [](const ::testing::TestParamInfo<ScreenedArgmax::Kernel> &info) {
                           return info.param == ScreenedArgmax::Kernel::Best ? "Panels" : "Rows";
                         });

} // namespace
} // namespace lathe::cpu
