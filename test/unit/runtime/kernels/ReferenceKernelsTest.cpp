// The reference kernels against direct float64 formulas on fresh random
// inputs, and against each other where two paths must agree (prefill vs
// token by token, GQA vs repeated KV heads, the two RoPE layouts).
#include "runtime/kernels/ReferenceKernels.h"
#include "test/unit/runtime/kernels/CausalRows.h"

#include "runtime/formats/RowCodec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace lathe::kernels {
namespace {

std::vector<float> randomVector(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float &x : v) x = dist(rng);
  return v;
}

WeightView view(const std::vector<float> &w, int64_t rows, int64_t cols) {
  return {ElementType::F32, reinterpret_cast<const uint8_t *>(w.data()), rows, cols};
}

double relError(const std::vector<float> &got, const std::vector<double> &want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / den);
}

TEST(ElementTypeTest, HalfPrecisionVectors) {
  EXPECT_EQ(f16ToFloat(0x3C00), 1.0f);
  EXPECT_EQ(f16ToFloat(0xC000), -2.0f);
  EXPECT_EQ(f16ToFloat(0x7BFF), 65504.0f);          // largest normal
  EXPECT_EQ(f16ToFloat(0x0001), std::ldexp(1.0f, -24)); // smallest subnormal
  EXPECT_EQ(f16ToFloat(0x0200), std::ldexp(1.0f, -15));
  EXPECT_TRUE(std::isinf(f16ToFloat(0x7C00)));
  EXPECT_TRUE(std::isnan(f16ToFloat(0x7E00)));
  EXPECT_TRUE(std::signbit(f16ToFloat(0x8000)));
  EXPECT_EQ(bf16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(bf16ToFloat(0xC0A0), -5.0f);
}

// float32 outputs of float64-accumulated dot products: relative error is
// bounded by the final rounding, ~6e-8; 1e-6 leaves margin.
TEST(ReferenceKernelsTest, MatmulMatchesFloat64) {
  const int64_t rows = 3, k = 67, n = 29;
  auto x = randomVector(rows * k, 1), w = randomVector(n * k, 2);
  std::vector<float> out(rows * n);
  matmul(x.data(), rows, view(w, n, k), out.data());
  std::vector<double> want(rows * n);
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t i = 0; i < k; ++i) s += double(x[t * k + i]) * w[j * k + i];
      want[t * n + j] = s;
    }
  EXPECT_LT(relError(out, want), 1e-6);
}

TEST(ReferenceKernelsTest, HalfWeightsDecodeExactly) {
  // bf16 values are exactly representable in f32: the product must equal the
  // f32 product of the widened weights.
  const int64_t k = 16, n = 5;
  auto x = randomVector(k, 3), w = randomVector(n * k, 4);
  std::vector<uint16_t> bf(n * k);
  std::vector<float> widened(n * k);
  for (size_t i = 0; i < bf.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &w[i], 4);
    bf[i] = static_cast<uint16_t>(bits >> 16);
    widened[i] = bf16ToFloat(bf[i]);
  }
  std::vector<float> a(n), b(n);
  matmul(x.data(), 1, {ElementType::BF16, reinterpret_cast<const uint8_t *>(bf.data()), n, k},
         a.data());
  matmul(x.data(), 1, view(widened, n, k), b.data());
  EXPECT_EQ(a, b);
}

TEST(ReferenceKernelsTest, PackedWeightsDecodeRowByRow) {
  // The packed matmul must equal the plain matmul over the decoded matrix
  // exactly: same decode (runtime/formats), same summation.
  const int64_t rows = 3, k = 96, n = 7;
  auto x = randomVector(rows * k, 20), w = randomVector(n * k, 21);
  for (const char *name : {"bfp4:block=32", "bfp8:block=16", "mxfp4_e2m1", "mxfp6_e3m2",
                           "mxint8", "fp6_4p2", "fp6_4p2:group=32", "int4:group=32:asym",
                           "int8:group=64"}) {
    auto spec = formats::parseFormatSpec(name);
    ASSERT_TRUE(spec) << name;
    size_t rowBytes = formats::packedRowBytes(*spec, k);
    std::vector<uint8_t> packed(rowBytes * n);
    std::vector<float> decoded(n * k);
    for (int64_t r = 0; r < n; ++r) {
      ASSERT_TRUE(formats::quantizeRow(*spec, {w.data() + r * k, size_t(k)},
                                       {packed.data() + r * rowBytes, rowBytes}));
      formats::dequantizeRow(*spec, {packed.data() + r * rowBytes, rowBytes},
                             {decoded.data() + r * k, size_t(k)});
    }
    std::vector<float> a(rows * n), b(rows * n);
    matmul(x.data(), rows, {ElementType::F32, packed.data(), n, k, &*spec}, a.data());
    matmul(x.data(), rows, view(decoded, n, k), b.data());
    EXPECT_EQ(a, b) << name;
  }
}

TEST(ReferenceKernelsTest, RmsNormMatchesFloat64) {
  const int64_t rows = 2, width = 48;
  auto x = randomVector(rows * width, 5), g = randomVector(width, 6);
  std::vector<float> out(rows * width);
  rmsNorm(x.data(), view(g, 1, width), 1e-5f, rows, width, out.data());
  std::vector<double> want(rows * width);
  for (int64_t t = 0; t < rows; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < width; ++i) ss += double(x[t * width + i]) * x[t * width + i];
    double scale = 1.0 / std::sqrt(ss / width + 1e-5);
    for (int64_t i = 0; i < width; ++i) want[t * width + i] = x[t * width + i] * scale * g[i];
  }
  EXPECT_LT(relError(out, want), 1e-6);
}

// Rotation angles and signs at nonzero positions against hand-computed
// float64 values: pair i of a head turns by position * theta^(-2i/headDim),
// (x0, x1) -> (x0 cos - x1 sin, x0 sin + x1 cos).
TEST(ReferenceKernelsTest, RopeRotatesByTheRightAngle) {
  // headDim 4, theta 10000: pair 0 turns by 1 rad per position, pair 1 by
  // 0.01. Interleaved pairs are (0,1) and (2,3).
  const std::vector<float> x = {1.0f, 0.0f, 0.0f, 2.0f};
  std::vector<float> out(4);
  const std::vector<int32_t> one = {1}, three = {3};
  rope(x.data(), one, 4, 4, plan::ropeFrequencies(10000.0, 4), {}, plan::RopeLayout::Interleaved, out.data());
  EXPECT_NEAR(out[0], 0.5403023058681398, 1e-7);  // cos 1
  EXPECT_NEAR(out[1], 0.8414709848078965, 1e-7);  // sin 1
  EXPECT_NEAR(out[2], -2 * 0.009999833334166664, 1e-7); // -2 sin 0.01
  EXPECT_NEAR(out[3], 2 * 0.9999500004166653, 1e-7);    // 2 cos 0.01
  rope(x.data(), three, 4, 4, plan::ropeFrequencies(10000.0, 4), {}, plan::RopeLayout::Interleaved, out.data());
  EXPECT_NEAR(out[0], -0.9899924966004454, 1e-7); // cos 3
  EXPECT_NEAR(out[1], 0.1411200080598672, 1e-7);  // sin 3
  EXPECT_NEAR(out[2], -2 * 0.029995500202495664, 1e-7);
  EXPECT_NEAR(out[3], 2 * 0.9995500337489875, 1e-7);
  // Rotate-half pairs are (0,2) and (1,3): the same turns on other lanes.
  const std::vector<float> h = {1.0f, 0.0f, 0.0f, 2.0f};
  rope(h.data(), one, 4, 4, plan::ropeFrequencies(10000.0, 4), {}, plan::RopeLayout::RotateHalf, out.data());
  EXPECT_NEAR(out[0], 0.5403023058681398, 1e-7);
  EXPECT_NEAR(out[2], 0.8414709848078965, 1e-7);
  EXPECT_NEAR(out[1], -2 * 0.009999833334166664, 1e-7);
  EXPECT_NEAR(out[3], 2 * 0.9999500004166653, 1e-7);
}

// A pair order (lathe-reorder-key-channels) moves pairs within each head
// group's heads and their frequencies with them: rotating a row whose pairs
// were permuted, interleaved, under the order gives, bit for bit,
// the permuted rotation of the original row in its own layout. Three heads
// of 8 in three groups (queries with a KV head each), and the same order
// table shared by six heads (two query heads a KV head).
TEST(ReferenceKernelsTest, RopePairOrderMovesFrequenciesWithPairs) {
  const int64_t headDim = 8, half = 4;
  const std::vector<uint32_t> order = {3, 1, 0, 2, 0, 1, 2, 3, 2, 3, 1, 0};
  ASSERT_EQ(plan::pairOrderProblem(order, headDim, 3), nullptr);
  ASSERT_EQ(plan::pairOrderProblem(order, headDim, 6), nullptr);
  EXPECT_NE(plan::pairOrderProblem(order, headDim, 4), nullptr); // 3 groups, 4 heads
  std::mt19937 rng(7);
  std::normal_distribution<float> dist;
  const std::vector<int32_t> positions = {0, 5, 117};
  for (int64_t heads : {3, 6})
    for (plan::RopeLayout layout : {plan::RopeLayout::Interleaved, plan::RopeLayout::RotateHalf}) {
      const int64_t width = heads * headDim, rows = int64_t(positions.size());
      std::vector<float> x(rows * width), moved(x.size()), want(x.size()), got(x.size());
      for (float &v : x)
        v = dist(rng);
      // moved: pair order[g][j] of head h (of group g) at (2j, 2j + 1).
      auto channels = [&](int64_t h, int64_t pair) {
        const int64_t base = h * headDim;
        return layout == plan::RopeLayout::Interleaved
                   ? std::pair{base + 2 * pair, base + 2 * pair + 1}
                   : std::pair{base + pair, base + pair + half};
      };
      for (int64_t t = 0; t < rows; ++t)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t j = 0; j < half; ++j) {
            auto [a, b] = channels(h, order[(h * 3 / heads) * half + j]);
            moved[t * width + h * headDim + 2 * j] = x[t * width + a];
            moved[t * width + h * headDim + 2 * j + 1] = x[t * width + b];
          }
      rope(x.data(), positions, width, headDim, plan::ropeFrequencies(500000.0, headDim), {},
           layout, want.data());
      rope(moved.data(), positions, width, headDim, plan::ropeFrequencies(500000.0, headDim),
           order, plan::RopeLayout::Interleaved, got.data());
      for (int64_t t = 0; t < rows; ++t)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t j = 0; j < half; ++j) {
            auto [a, b] = channels(h, order[(h * 3 / heads) * half + j]);
            EXPECT_EQ(got[t * width + h * headDim + 2 * j], want[t * width + a]);
            EXPECT_EQ(got[t * width + h * headDim + 2 * j + 1], want[t * width + b]);
          }
    }
}

// Heads of 160 (80 pairs: lathe_rope computes a row's angles 64 pairs at a
// time) under a pair order of 2 groups, in place: every pair turns by its
// own pair's angle, bit for bit the rotation written out element by element.
TEST(ReferenceKernelsTest, RopeOrderOverManyPairsInPlace) {
  const int64_t headDim = 160, half = 80, heads = 4, width = heads * headDim;
  std::mt19937 rng(11);
  std::vector<uint32_t> order(2 * half);
  for (int64_t g = 0; g < 2; ++g) {
    for (int64_t j = 0; j < half; ++j)
      order[size_t(g * half + j)] = uint32_t(j);
    std::shuffle(order.begin() + g * half, order.begin() + (g + 1) * half, rng);
  }
  ASSERT_EQ(plan::pairOrderProblem(order, headDim, heads), nullptr);
  const std::vector<double> freq = plan::ropeFrequencies(10000.0, headDim);
  const std::vector<int32_t> positions = {3, 250};
  std::normal_distribution<float> dist;
  std::vector<float> x(positions.size() * width), want(x.size());
  for (float &v : x)
    v = dist(rng);
  for (size_t t = 0; t < positions.size(); ++t)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t j = 0; j < half; ++j) {
        const double angle = double(positions[t]) * freq[order[size_t(h * 2 / heads * half + j)]];
        const int64_t a = int64_t(t) * width + h * headDim + j, b = a + half;
        want[a] = float(double(x[a]) * std::cos(angle) - double(x[b]) * std::sin(angle));
        want[b] = float(double(x[a]) * std::sin(angle) + double(x[b]) * std::cos(angle));
      }
  rope(x.data(), positions, width, headDim, freq, order, plan::RopeLayout::RotateHalf, x.data());
  for (size_t i = 0; i < x.size(); ++i)
    ASSERT_EQ(x[i], want[i]) << "element " << i;
}

// Llama 3 scaling against transformers' formula evaluated by hand (Python,
// float64) for head_dim 16, theta 10000, factor 8, low/high frequency
// factors 1 and 4, original context 32: wavelengths below 8 stay (pair 0),
// above 32 turn 8 times slower (pairs 2..7), pair 1 (19.87) blends.
TEST(ReferenceKernelsTest, RopeFrequenciesFollowLlama3Scaling) {
  const std::vector<double> plain = plan::ropeFrequencies(10000.0, 16);
  const std::vector<double> scaled = plan::ropeFrequencies(10000.0, 16, {8.0f, 1.0f, 4.0f, 32});
  const double want[] = {1.0,    0.09583998588296266, 0.0125,  0.003952847075210474,
                         0.00125, 0.0003952847075210474, 0.000125, 3.952847075210474e-05};
  ASSERT_EQ(scaled.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_NEAR(scaled[i], want[i], 1e-15 + 1e-12 * want[i]) << "pair " << i;
    EXPECT_NEAR(plain[i], std::pow(10000.0, -i / 8.0), 1e-15) << "pair " << i;
  }
  EXPECT_EQ(plan::ropeScalingProblem({8.0f, 1.0f, 4.0f, 32}), nullptr);
  EXPECT_NE(plan::ropeScalingProblem({8.0f, 4.0f, 1.0f, 32}), nullptr); // low >= high
  EXPECT_NE(plan::ropeScalingProblem({0.5f, 1.0f, 4.0f, 32}), nullptr); // factor < 1
  EXPECT_NE(plan::ropeScalingProblem({8.0f, 1.0f, 4.0f, 0}), nullptr);
}

TEST(ReferenceKernelsTest, BiasAddAddsTheVectorToEveryRow) {
  const std::vector<float> x = {1, 2, 3, 4, 5, 6}, bias = {0.5f, -1, 2};
  std::vector<float> out(6);
  biasAdd(x.data(), {ElementType::F32, reinterpret_cast<const uint8_t *>(bias.data()), 1, 3},
          2, 3, out.data());
  EXPECT_EQ(out, (std::vector<float>{1.5f, 1, 5, 4.5f, 4, 8}));
}

TEST(ReferenceKernelsTest, RopeLayoutsAgreeUnderThePermutation) {
  const int64_t headDim = 8, width = 16, half = headDim / 2;
  auto x = randomVector(2 * width, 7);
  // The same vectors in rotate-half order: interleaved dim 2i+j -> j*half+i.
  std::vector<float> xh(x.size());
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t d = 0; d < width; ++d) {
      int64_t h = d / headDim, w = d % headDim;
      xh[t * width + h * headDim + (w % 2) * half + w / 2] = x[t * width + d];
    }
  std::vector<int32_t> pos{0, 37};
  std::vector<float> a(x.size()), b(x.size());
  rope(x.data(), pos, width, headDim, plan::ropeFrequencies(10000.0, headDim), {}, plan::RopeLayout::Interleaved, a.data());
  rope(xh.data(), pos, width, headDim, plan::ropeFrequencies(10000.0, headDim), {}, plan::RopeLayout::RotateHalf, b.data());
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t d = 0; d < width; ++d) {
      int64_t h = d / headDim, w = d % headDim;
      EXPECT_EQ(a[t * width + d], b[t * width + h * headDim + (w % 2) * half + w / 2]);
    }
  // Position 0 rotates by nothing.
  for (int64_t d = 0; d < width; ++d)
    EXPECT_EQ(a[d], x[d]);
  // A rotation keeps each pair's norm.
  for (int64_t i = 0; i < width; i += 2) {
    double before = std::hypot(x[width + i], x[width + i + 1]);
    double after = std::hypot(a[width + i], a[width + i + 1]);
    EXPECT_NEAR(before, after, 1e-5);
  }
}

using testing::CausalRows;

struct AttentionCase {
  int64_t heads, kvHeads, headDim, capacity;
  std::vector<float> keys, values, scratch;
  explicit AttentionCase(int64_t h, int64_t kv, int64_t d, int64_t cap)
      : heads(h), kvHeads(kv), headDim(d), capacity(cap),
        keys(cap * kv * d), values(cap * kv * d), scratch(cap) {}
  KVLayerView cache() { return {keys.data(), values.data(), capacity, kvHeads * headDim}; }
};

TEST(ReferenceKernelsTest, AttentionMatchesFloat64AndPrefillMatchesDecode) {
  const int64_t heads = 4, kvHeads = 2, headDim = 8, T = 5;
  auto q = randomVector(T * heads * headDim, 8);
  auto k = randomVector(T * kvHeads * headDim, 9);
  auto v = randomVector(T * kvHeads * headDim, 10);
  std::vector<int32_t> pos{0, 1, 2, 3, 4};

  AttentionCase whole(heads, kvHeads, headDim, 8);
  std::vector<float> outWhole(T * heads * headDim);
  CausalRows rows(pos, 8);
  attention(q.data(), k.data(), v.data(), rows.store, rows.visible, heads, kvHeads, headDim,
            whole.cache(), whole.scratch.data(), outWhole.data());

  AttentionCase steps(heads, kvHeads, headDim, 8);
  std::vector<float> outSteps(T * heads * headDim);
  for (int64_t t = 0; t < T; ++t) {
    CausalRows one({static_cast<int32_t>(t)}, 8);
    attention(q.data() + t * heads * headDim, k.data() + t * kvHeads * headDim,
              v.data() + t * kvHeads * headDim, one.store, one.visible, heads, kvHeads,
              headDim, steps.cache(), steps.scratch.data(), outSteps.data() + t * heads * headDim);
  }
  EXPECT_EQ(outWhole, outSteps);

  // The same rows scattered over the cache, as a paged cache holds them.
  AttentionCase paged(heads, kvHeads, headDim, 8);
  std::vector<float> outPaged(T * heads * headDim);
  CausalRows scattered(pos, 8, {6, 2, 7, 0, 3, 1, 5, 4});
  attention(q.data(), k.data(), v.data(), scattered.store, scattered.visible, heads, kvHeads,
            headDim, paged.cache(), paged.scratch.data(), outPaged.data());
  EXPECT_EQ(outWhole, outPaged);

  std::vector<double> want(outWhole.size());
  int64_t kvw = kvHeads * headDim, qw = heads * headDim;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < heads; ++h) {
      int64_t g = h / (heads / kvHeads);
      std::vector<double> s(t + 1);
      double mx = -1e300, sum = 0;
      for (int64_t p = 0; p <= t; ++p) {
        double d = 0;
        for (int64_t i = 0; i < headDim; ++i)
          d += double(q[t * qw + h * headDim + i]) * k[p * kvw + g * headDim + i];
        s[p] = d / std::sqrt(double(headDim));
        mx = std::max(mx, s[p]);
      }
      for (double &x : s) sum += (x = std::exp(x - mx));
      for (int64_t i = 0; i < headDim; ++i) {
        double acc = 0;
        for (int64_t p = 0; p <= t; ++p) acc += s[p] * v[p * kvw + g * headDim + i];
        want[t * qw + h * headDim + i] = acc / sum;
      }
    }
  EXPECT_LT(relError(outWhole, want), 1e-6);
}

TEST(ReferenceKernelsTest, GroupedQueryEqualsRepeatedHeads) {
  const int64_t heads = 4, kvHeads = 1, headDim = 4, T = 3;
  auto q = randomVector(T * heads * headDim, 11);
  auto k = randomVector(T * headDim, 12), v = randomVector(T * headDim, 13);
  std::vector<float> k4, v4; // the single KV head repeated for every query head
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < heads; ++h) {
      k4.insert(k4.end(), k.begin() + t * headDim, k.begin() + (t + 1) * headDim);
      v4.insert(v4.end(), v.begin() + t * headDim, v.begin() + (t + 1) * headDim);
    }
  std::vector<int32_t> pos{0, 1, 2};
  AttentionCase gqa(heads, kvHeads, headDim, 4), mha(heads, heads, headDim, 4);
  std::vector<float> a(T * heads * headDim), b(a.size());
  CausalRows rows(pos, 4);
  attention(q.data(), k.data(), v.data(), rows.store, rows.visible, heads, kvHeads, headDim,
            gqa.cache(), gqa.scratch.data(), a.data());
  attention(q.data(), k4.data(), v4.data(), rows.store, rows.visible, heads, heads, headDim,
            mha.cache(), mha.scratch.data(), b.data());
  EXPECT_EQ(a, b);
}

TEST(ReferenceKernelsTest, SiluMulAndAdd) {
  std::vector<float> g{-2.0f, 0.0f, 1.5f}, u{3.0f, 4.0f, -1.0f}, out(3);
  siluMul(g.data(), u.data(), 3, out.data());
  for (int i = 0; i < 3; ++i)
    EXPECT_NEAR(out[i], g[i] / (1.0 + std::exp(-double(g[i]))) * u[i], 1e-6);
  add(g.data(), u.data(), 3, out.data());
  EXPECT_EQ(out, (std::vector<float>{1.0f, 4.0f, 0.5f}));
}

} // namespace
} // namespace lathe::kernels
