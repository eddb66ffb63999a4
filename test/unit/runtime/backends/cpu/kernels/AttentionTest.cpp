// The SIMD attention kernel against the float64 reference (attendHeads in
// ReferenceKernels) on fresh random caches and queries, on every Highway
// target this machine can run: decode (one row, short and long contexts),
// prefill (a block of rows, each attending to its own prefix), grouped KV
// heads, head dimensions that are and are not multiples of the vector
// length, and head sub-ranges as threads split them.
#include "runtime/backends/cpu/kernels/Attention.h"

#include "runtime/kernels/ReferenceKernels.h"
#include "test/unit/runtime/backends/cpu/kernels/SimdTestSupport.h"
#include "test/unit/runtime/kernels/CausalRows.h"


#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace lathe::kernels::simd {
namespace {

using testing::targetName;

// float32 scores, Exp and sums over at most a few hundred positions: the
// relative error of each head's output against float64 is a few float32
// ulps times log(len); 2e-6 of the head's norm leaves a wide margin.
constexpr double kTolerance = 2e-6;
constexpr float kUntouched = 12345.0f;

struct Case {
  int64_t heads, kvHeads, headDim, capacity;
  std::vector<int32_t> positions;
  int64_t h0, h1;
};

std::vector<int32_t> range(int32_t first, int32_t count) {
  std::vector<int32_t> v(count);
  std::iota(v.begin(), v.end(), first);
  return v;
}

std::string describe(const Case &c) {
  return "heads=" + std::to_string(c.heads) + "/" + std::to_string(c.kvHeads) +
         " dim=" + std::to_string(c.headDim) + " rows=" + std::to_string(c.positions.size()) +
         " last=" + std::to_string(c.positions.back()) + " h=[" + std::to_string(c.h0) + "," +
         std::to_string(c.h1) + ")";
}

class AttentionTest : public testing::PerTarget {};

/// Compares the kernels on case `c`; with `scattered` the cache rows are a
/// random permutation (as in a paged cache) instead of positions in order.
void check(const Case &c, uint32_t seed, float sigma, double tolerance = kTolerance,
           bool scattered = false) {
  SCOPED_TRACE(describe(c) + (scattered ? " scattered" : ""));
  const int64_t kvWidth = c.kvHeads * c.headDim, qWidth = c.heads * c.headDim;
  const int64_t rows = static_cast<int64_t>(c.positions.size());
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> keys(c.capacity * kvWidth), values(c.capacity * kvWidth),
      q(rows * qWidth);
  for (float &x : keys) x = dist(rng);
  for (float &x : values) x = dist(rng);
  for (float &x : q) x = dist(rng);
  KVLayerView cache{keys.data(), values.data(), c.capacity, kvWidth};
  std::vector<int32_t> permutation;
  if (scattered) {
    permutation.resize(c.capacity);
    std::iota(permutation.begin(), permutation.end(), 0);
    std::shuffle(permutation.begin(), permutation.end(), rng);
  }
  const kernels::testing::CausalRows causal(c.positions, c.capacity, permutation);

  std::vector<float> expected(rows * qWidth, kUntouched), got(rows * qWidth, kUntouched);
  std::vector<float> refScratch(c.capacity), scratch((c.h1 - c.h0) * c.capacity);
  kernels::attendHeads(q.data(), causal.visible, c.heads, c.kvHeads, c.headDim, cache, c.h0,
                       c.h1, refScratch.data(), expected.data());
  simd::attendHeads(q.data(), causal.visible, c.heads, c.kvHeads, c.headDim, cache, c.h0, c.h1,
                    scratch.data(), got.data());
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t h = 0; h < c.heads; ++h) {
      const float *e = expected.data() + t * qWidth + h * c.headDim;
      const float *g = got.data() + t * qWidth + h * c.headDim;
      if (h < c.h0 || h >= c.h1) {
        for (int64_t i = 0; i < c.headDim; ++i)
          ASSERT_EQ(g[i], kUntouched) << "row " << t << " head " << h << " was written";
        continue;
      }
      double err = 0, ref = 0;
      for (int64_t i = 0; i < c.headDim; ++i) {
        ASSERT_TRUE(std::isfinite(g[i]));
        err += (double(g[i]) - e[i]) * (double(g[i]) - e[i]);
        ref += double(e[i]) * e[i];
      }
      EXPECT_LE(std::sqrt(err / ref), tolerance) << "row " << t << " head " << h;
    }
}

TEST_P(AttentionTest, DecodeMatchesReference) {
  const Case cases[] = {
      {6, 6, 48, 256, {0}, 0, 6},     {6, 6, 48, 256, {1}, 0, 6},
      {6, 6, 48, 256, {127}, 0, 3},   {6, 6, 48, 256, {255}, 3, 6},
      {8, 2, 64, 300, {299}, 1, 7},   {4, 4, 7, 40, {38}, 0, 4},
      {2, 1, 100, 70, {66}, 0, 2},    {4, 2, 128, 33, {17}, 2, 3},
      {3, 3, 16, 9, {8}, 0, 3},       {1, 1, 1, 5, {4}, 0, 1},
  };
  uint32_t seed = 1;
  for (const Case &c : cases) check(c, seed++, 1.0f);
  for (const Case &c : cases) check(c, seed++, 1.0f, kTolerance, /*scattered=*/true);
}

TEST_P(AttentionTest, PrefillMatchesReference) {
  const Case cases[] = {
      {6, 6, 48, 256, range(0, 128), 0, 6},
      {6, 6, 48, 256, range(100, 31), 0, 4},
      {8, 2, 64, 64, range(3, 61), 2, 8},
      {5, 5, 20, 20, range(0, 20), 0, 5},
  };
  uint32_t seed = 100;
  for (const Case &c : cases) check(c, seed++, 1.0f);
  for (const Case &c : cases) check(c, seed++, 1.0f, kTolerance, /*scattered=*/true);
}

// Token-tree visibility: a prefix of the sequence's rows and then a list of
// other rows (the node's ancestors). The SIMD kernel reads the same rows in
// the same order as the reference, and as a run over one contiguous list.
TEST_P(AttentionTest, PrefixPlusExtraRowsMatchesReferenceAndContiguousRun) {
  const int64_t heads = 4, kvHeads = 2, dim = 24, capacity = 64;
  std::mt19937 rng(21);
  std::normal_distribution<float> dist;
  std::vector<float> keys(capacity * kvHeads * dim), values(keys.size()), q(2 * heads * dim);
  for (float &x : keys) x = dist(rng);
  for (float &x : values) x = dist(rng);
  for (float &x : q) x = dist(rng);
  KVLayerView cache{keys.data(), values.data(), capacity, kvHeads * dim};
  std::vector<int32_t> identity(capacity);
  std::iota(identity.begin(), identity.end(), 0);
  const std::vector<int32_t> extraA = {40, 45, 47}, extraB = {41, 63};
  const std::vector<backend::VisibleRows> tree = {
      {identity.data(), 13, extraA.data(), 3}, {identity.data(), 30, extraB.data(), 2}};
  // The same rows as one list each.
  std::vector<int32_t> listA(identity.begin(), identity.begin() + 13), listB(identity.begin(),
                                                                             identity.begin() + 30);
  listA.insert(listA.end(), extraA.begin(), extraA.end());
  listB.insert(listB.end(), extraB.begin(), extraB.end());
  const std::vector<backend::VisibleRows> lists = {{listA.data(), 16, nullptr, 0},
                                                   {listB.data(), 32, nullptr, 0}};
  std::vector<float> expected(q.size()), got(q.size()), flat(q.size());
  std::vector<float> refScratch(capacity), scratch(heads * capacity);
  kernels::attendHeads(q.data(), tree, heads, kvHeads, dim, cache, 0, heads, refScratch.data(),
                       expected.data());
  simd::attendHeads(q.data(), tree, heads, kvHeads, dim, cache, 0, heads, scratch.data(),
                    got.data());
  simd::attendHeads(q.data(), lists, heads, kvHeads, dim, cache, 0, heads, scratch.data(),
                    flat.data());
  EXPECT_EQ(got, flat);
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], expected[i], 1e-5 * (1 + std::fabs(expected[i])));
}

// Large scores (peaked softmax): the maximum is subtracted before Exp, as in
// the reference, so nothing overflows. exp() turns a score's absolute
// rounding error (float32 ulps of scores in the hundreds) into a relative
// error of the weights, hence the looser bound.
TEST_P(AttentionTest, PeakedScoresStayFinite) {
  check({6, 6, 48, 128, {127}, 0, 6}, 7, 6.0f, 5e-5);
  check({2, 2, 33, 64, range(0, 64), 0, 2}, 8, 5.0f, 5e-5);
}

// A NaN in a query or a cached key makes that head's output NaN, as in the
// reference (exp(NaN) must not become a zero weight).
TEST_P(AttentionTest, NaNPropagates) {
  const int64_t heads = 2, dim = 20, capacity = 40;
  std::mt19937 rng(3);
  std::normal_distribution<float> dist;
  std::vector<float> keys(capacity * heads * dim), values(keys.size()), q(heads * dim);
  for (float &x : keys) x = dist(rng);
  for (float &x : values) x = dist(rng);
  for (float &x : q) x = dist(rng);
  q[3] = std::nanf("");                           // head 0's query
  keys[17 * heads * dim + dim + 5] = std::nanf(""); // head 1's key at position 17
  KVLayerView cache{keys.data(), values.data(), capacity, heads * dim};
  const kernels::testing::CausalRows causal({30}, capacity);
  std::vector<float> out(heads * dim), scratch(heads * capacity);
  simd::attendHeads(q.data(), causal.visible, heads, heads, dim, cache, 0, heads, scratch.data(),
                    out.data());
  for (float v : out) EXPECT_TRUE(std::isnan(v));
}

// A cache of f16 or bf16 rows (stored rounded, read back exactly): the SIMD
// kernel promotes the same values the reference converts, so they agree as
// closely as on an f32 cache; head dims that are not a multiple of the
// vector length take the scalar tail path.
TEST_P(AttentionTest, HalfPrecisionCachesMatchReference) {
  for (ElementType element : {ElementType::F16, ElementType::BF16}) {
    for (int64_t dim : {48, 20, 7}) {
      SCOPED_TRACE(std::string(elementTypeName(element)) + " dim " + std::to_string(dim));
      const int64_t heads = 4, kvHeads = 2, capacity = 40, kvWidth = kvHeads * dim;
      std::mt19937 rng(5 + dim);
      std::normal_distribution<float> dist;
      std::vector<uint16_t> keys(capacity * kvWidth), values(keys.size());
      for (uint16_t &x : keys)
        x = element == ElementType::F16 ? floatToF16(dist(rng)) : floatToBf16(dist(rng));
      for (uint16_t &x : values)
        x = element == ElementType::F16 ? floatToF16(dist(rng)) : floatToBf16(dist(rng));
      std::vector<float> q(3 * heads * dim);
      for (float &x : q) x = dist(rng);
      KVLayerView cache{keys.data(), values.data(), capacity, kvWidth,
                        formats::plainKvFormat(element)};
      const kernels::testing::CausalRows causal({5, 17, 39}, capacity);
      std::vector<float> expected(q.size()), got(q.size());
      std::vector<float> refScratch(capacity), scratch(heads * capacity);
      kernels::attendHeads(q.data(), causal.visible, heads, kvHeads, dim, cache, 0, heads,
                           refScratch.data(), expected.data());
      simd::attendHeads(q.data(), causal.visible, heads, kvHeads, dim, cache, 0, heads,
                        scratch.data(), got.data());
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], expected[i], 1e-5 * (1 + std::fabs(expected[i]))) << i;
    }
  }
}

// Storing converts to the cache's element: f16 rows hold the rounded values.
TEST(StoreKV, ConvertsToTheCacheElement) {
  std::vector<float> k = {1.0f, 1.0f + std::ldexp(1.0f, -11) * 3, -2.5f, 65519.0f};
  std::vector<float> v = {0.1f, 0.2f, 0.3f, 0.4f};
  std::vector<uint16_t> keys(8, 0), values(8, 0);
  KVLayerView cache{keys.data(), values.data(), 2, 4,
                    formats::plainKvFormat(ElementType::F16)};
  const std::vector<int32_t> rows = {1};
  kernels::storeKV(k.data(), v.data(), rows, cache);
  EXPECT_EQ(keys[0], 0);
  EXPECT_EQ(keys[4], floatToF16(1.0f));
  EXPECT_EQ(keys[5], 0x3c02);
  EXPECT_EQ(keys[7], 0x7bff);
  EXPECT_EQ(values[4], floatToF16(0.1f));
}

/// A cache of `capacity` rows of `heads` x `dim` values drawn from N(0, 1)
/// (and f32 copies of the same values), stored compressed by storeKV. With
/// a window (format.window > 0: bfp4 by default) rows from kWindowRow on
/// are f32 window rows, as the paged cache keeps its newest ones.
struct CompressedCache {
  static constexpr int64_t kWindowRow = 64;
  CompressedCache(formats::KvFormat format, int64_t kvHeads, int64_t dim, int64_t capacity,
                  std::mt19937 &rng)
      : width(kvHeads * dim), rowBytes(formats::kvRowBytes(format, width)),
        windowRow(format.window > 0 ? std::min(kWindowRow, capacity) : capacity),
        plainKeys(capacity * width), plainValues(capacity * width),
        keys(capacity * rowBytes), values(capacity * rowBytes),
        plain{plainKeys.data(), plainValues.data(), capacity, width} {
    std::normal_distribution<float> dist;
    for (float &x : plainKeys) x = dist(rng);
    for (float &x : plainValues) x = dist(rng);
    // The rows below the window encoded as the store step of a cache
    // without one encodes them (as the paged cache seals them).
    formats::KvFormat rowFormat = format;
    rowFormat.window = 0;
    std::vector<int32_t> rows(windowRow);
    std::iota(rows.begin(), rows.end(), 0);
    kernels::storeKV(plainKeys.data(), plainValues.data(), rows,
                     {keys.data(), values.data(), capacity, width, rowFormat});
    windowKeys.assign(plainKeys.begin() + windowRow * width, plainKeys.end());
    windowValues.assign(plainValues.begin() + windowRow * width, plainValues.end());
    view = {keys.data(),       values.data(),       capacity, width, format,
            windowKeys.data(), windowValues.data(), windowRow};
    // What the cache holds as f32 rows: decoded below the window, as
    // stored from it on.
    decodedKeys = plainKeys;
    decodedValues = plainValues;
    for (int64_t r = 0; r < windowRow; ++r) {
      formats::decodeKvValues(format, keys.data() + size_t(r) * rowBytes, 0,
                              {decodedKeys.data() + r * width, size_t(width)});
      formats::decodeKvValues(format, values.data() + size_t(r) * rowBytes, 0,
                              {decodedValues.data() + r * width, size_t(width)});
    }
    decoded = {decodedKeys.data(), decodedValues.data(), capacity, width};
  }
  // The vectors own the rows the views point at: a copy must not point
  // into the original (worstAgainstPlain returns caches by value).
  CompressedCache(const CompressedCache &) = delete;
  int64_t width;
  size_t rowBytes;
  int64_t windowRow;
  std::vector<float> plainKeys, plainValues;
  std::vector<uint8_t> keys, values;
  std::vector<float> windowKeys, windowValues, decodedKeys, decodedValues;
  KVLayerView view, plain, decoded;
};

/// The relative L2 error of each head's output, worst over rows and heads.
double worstHeadError(const std::vector<float> &got, const std::vector<float> &expected,
                      int64_t dim) {
  double worst = 0;
  for (size_t h0 = 0; h0 < got.size(); h0 += size_t(dim)) {
    double err = 0, ref = 0;
    for (size_t i = h0; i < h0 + size_t(dim); ++i) {
      err += (double(got[i]) - expected[i]) * (double(got[i]) - expected[i]);
      ref += double(expected[i]) * expected[i];
    }
    worst = std::max(worst, std::sqrt(err / ref));
  }
  return worst;
}

/// The RMS error per output element of SIMD attention on a compressed
/// cache (its `view`) against the reference on the f32 values it was made
/// from (its `plain`), for 3 query rows of `heads` heads (one KV head
/// each) drawn from `rng`; checks that the cache does hold rounded values.
template <class Cache>
double rmsAgainstPlain(const Cache &cache, int64_t heads, int64_t dim, int64_t capacity,
                       std::mt19937 &rng) {
  const kernels::testing::CausalRows causal({95, 50, 10}, capacity);
  std::normal_distribution<float> dist;
  std::vector<float> q(3 * heads * dim);
  for (float &x : q) x = dist(rng);
  std::vector<float> exact(q.size()), got(q.size()), scratch(heads * capacity);
  kernels::attendHeads(q.data(), causal.visible, heads, heads, dim, cache.plain, 0, heads,
                       scratch.data(), exact.data());
  simd::attendHeads(q.data(), causal.visible, heads, heads, dim, cache.view, 0, heads,
                    scratch.data(), got.data());
  double sum = 0;
  for (size_t i = 0; i < got.size(); ++i)
    sum += (double(got[i]) - exact[i]) * (double(got[i]) - exact[i]);
  const double rms = std::sqrt(sum / double(got.size()));
  EXPECT_GT(rms, 0.0);
  return rms;
}

/// The query cases the cache tests run on a cache of `capacity` rows:
/// decode rows at the end and the start, a prefill block, and a decode row
/// whose rows are scattered over the cache; queries N(0, 1) from `rng`, and
/// heads [h0, heads) as a thread's share (h0 = 1 when there are more than
/// 2). fn(positions, causal, q, h0).
template <class Fn>
void forEachQueryCase(int64_t heads, int64_t dim, int64_t capacity, std::mt19937 &rng, Fn fn) {
  std::vector<int32_t> permutation(capacity);
  std::iota(permutation.begin(), permutation.end(), 0);
  std::shuffle(permutation.begin(), permutation.end(), rng);
  for (const auto &[positions, scattered] :
       {std::pair{std::vector<int32_t>{95}, false}, std::pair{std::vector<int32_t>{0}, false},
        std::pair{range(40, 29), false}, std::pair{std::vector<int32_t>{70}, true}}) {
    const kernels::testing::CausalRows causal(positions, capacity,
                                              scattered ? permutation : std::vector<int32_t>{});
    std::normal_distribution<float> dist;
    std::vector<float> q(positions.size() * heads * dim);
    for (float &x : q) x = dist(rng);
    fn(positions, causal, q, heads > 2 ? int64_t(1) : int64_t(0));
  }
}

/// Heads [h0, heads) of every row of `out` (rows of heads * dim), checking
/// that the heads below h0 were left zero.
std::vector<float> headsFrom(const std::vector<float> &out, int64_t heads, int64_t dim,
                             int64_t h0) {
  const int64_t width = heads * dim;
  std::vector<float> kept;
  for (size_t t = 0; t < out.size() / size_t(width); ++t) {
    kept.insert(kept.end(), out.begin() + t * width + h0 * dim, out.begin() + (t + 1) * width);
    for (int64_t i = 0; i < h0 * dim; ++i)
      EXPECT_EQ(out[t * width + i], 0.0f) << "head below h0 written";
  }
  return kept;
}

/// A cache test's shape: a --kv spec, query heads, KV heads, head_dim.
struct KvShape {
  const char *spec;
  int64_t heads, kvHeads, dim;
};

/// fn(shape, format, rng) for each shape, its spec resolved for its
/// head_dim and rng seeded firstSeed, firstSeed + 1, ... in order.
template <class Fn>
void forEachKvShape(std::span<const KvShape> shapes, uint32_t firstSeed, Fn fn) {
  uint32_t seed = firstSeed;
  for (const KvShape &shape : shapes) {
    SCOPED_TRACE(std::string(shape.spec) + " dim " + std::to_string(shape.dim));
    std::mt19937 rng(seed++);
    fn(shape, *formats::resolveKvFormat(*formats::parseKvFormat(shape.spec), shape.dim), rng);
  }
}

/// The worst rmsAgainstPlain over 8 caches of 6 heads of 48 and 96 rows
/// in format `spec`, made by make(format, heads, dim, capacity, rng) with
/// rng seeded firstSeed .. firstSeed + 7.
template <class MakeCache>
double worstAgainstPlain(const char *spec, uint32_t firstSeed, MakeCache make) {
  const int64_t heads = 6, dim = 48, capacity = 96;
  const formats::KvFormat format =
      *formats::resolveKvFormat(*formats::parseKvFormat(spec), dim);
  double worst = 0;
  for (uint32_t seed = firstSeed; seed < firstSeed + 8; ++seed) {
    std::mt19937 rng(seed);
    const auto cache = make(format, heads, dim, capacity, rng);
    worst = std::max(worst, rmsAgainstPlain(cache, heads, dim, capacity, rng));
  }
  return worst;
}

// Compressed caches (int8, bfp8, bfp4, several blocks): the SIMD kernel
// reads the same values the reference decodes (codes times the block's
// scale; it multiplies a block's partial sums, or the softmax weight, by the
// scale instead of each value), so it agrees with the float64 reference on
// the compressed cache as closely as on an f32 one: kTolerance of each
// head's norm. Blocks holding whole vectors are read in place with full
// vectors (AVX-512: blocks of 16, 32, 48) or vectors of 8 lanes (blocks of
// 8 and 24); the others (int8 of 7, bfp8 block 3, bfp4 block 2) take the
// path that decodes a head's slice into a buffer. Decode rows, a prefill
// block and scattered rows; grouped KV heads and head sub-ranges as threads
// split them. bfp4 has a window by default: rows from 64 on are f32 (the
// scattered case mixes the two kinds of row within passes of four keys);
// window=0 and windows of int8 and bfp8 at the end.
TEST_P(AttentionTest, CompressedCachesMatchReference) {
  const KvShape shapes[] = {
      {"int8", 6, 6, 48},           {"int8", 8, 2, 64},          {"int8", 4, 2, 7},
      {"bfp8:block=16", 6, 6, 48},  {"bfp8:block=24", 4, 2, 48}, {"bfp8:block=3", 2, 1, 12},
      {"bfp8:block=8", 2, 2, 16},   {"bfp4:block=8", 4, 2, 48},
      {"bfp4:block=16", 6, 6, 48},  {"bfp4:block=32", 8, 2, 128}, {"bfp4:block=2", 4, 4, 10},
      {"bfp4:block=48", 6, 3, 48},
      {"bfp4:block=16:window=0", 6, 6, 48},  {"bfp4:block=8:window=0", 4, 2, 48},
      {"bfp4:block=2:window=0", 4, 4, 10},   {"int8:window=4", 8, 2, 64},
      {"int8:window=4", 4, 2, 7},            {"bfp8:block=16:window=16", 6, 6, 48},
      {"bfp8:block=3:window=1", 2, 1, 12},
  };
  const int64_t capacity = 96;
  forEachKvShape(shapes, 300, [&](const KvShape &shape, const formats::KvFormat &format,
                                  std::mt19937 &rng) {
    CompressedCache cache(format, shape.kvHeads, shape.dim, capacity, rng);
    forEachQueryCase(shape.heads, shape.dim, capacity, rng,
                     [&](const std::vector<int32_t> &positions,
                         const kernels::testing::CausalRows &causal, const std::vector<float> &q,
                         int64_t h0) {
      const int64_t h1 = shape.heads;
      std::vector<float> expected(q.size(), 0.0f), got(q.size(), 0.0f);
      std::vector<float> refScratch(capacity), scratch((h1 - h0) * capacity);
      kernels::attendHeads(q.data(), causal.visible, shape.heads, shape.kvHeads, shape.dim,
                           cache.view, h0, h1, refScratch.data(), expected.data());
      simd::attendHeads(q.data(), causal.visible, shape.heads, shape.kvHeads, shape.dim,
                        cache.view, h0, h1, scratch.data(), got.data());
      for (float v : got) ASSERT_TRUE(std::isfinite(v));
      // Heads below h0 stay zero in both; the others agree.
      EXPECT_LE(worstHeadError(headsFrom(got, shape.heads, shape.dim, h0),
                               headsFrom(expected, shape.heads, shape.dim, h0), shape.dim),
                kTolerance)
          << positions.size() << " rows from " << positions.front();
    });
  });
}

/// Attention of query heads [h0, heads) on a cache read in place (`view`,
/// by the reference and the SIMD kernels) against the reference on the f32
/// rows the cache decodes to (`decoded`), within `tolerance`.
void expectAsOnTheDecodedCache(const KvShape &shape, int64_t capacity,
                               const kernels::KVLayerView &view,
                               const kernels::KVLayerView &decodedView,
                               const std::vector<int32_t> &positions,
                               const kernels::testing::CausalRows &causal,
                               const std::vector<float> &q, int64_t h0, double tolerance) {
  const int64_t h1 = shape.heads;
  std::vector<float> decoded(q.size(), 0.0f), reference(q.size(), 0.0f), got(q.size(), 0.0f);
  std::vector<float> refScratch(capacity), scratch((h1 - h0) * capacity);
  kernels::attendHeads(q.data(), causal.visible, shape.heads, shape.kvHeads, shape.dim,
                       decodedView, h0, h1, refScratch.data(), decoded.data());
  kernels::attendHeads(q.data(), causal.visible, shape.heads, shape.kvHeads, shape.dim, view,
                       h0, h1, refScratch.data(), reference.data());
  simd::attendHeads(q.data(), causal.visible, shape.heads, shape.kvHeads, shape.dim, view, h0,
                    h1, scratch.data(), got.data());
  for (float v : got) ASSERT_TRUE(std::isfinite(v));
  const std::vector<float> decodedHeads = headsFrom(decoded, shape.heads, shape.dim, h0);
  EXPECT_LE(worstHeadError(headsFrom(got, shape.heads, shape.dim, h0), decodedHeads, shape.dim),
            tolerance)
      << positions.size() << " rows from " << positions.front();
  EXPECT_LE(
      worstHeadError(headsFrom(reference, shape.heads, shape.dim, h0), decodedHeads, shape.dim),
      tolerance);
}

// Windowed caches (int8, bfp8, bfp4 with window=R): rows below windowRow
// are read compressed, rows from it on as f32 (the compressed arrays hold
// zero bytes there, which would decode to 0), in place and on the decoding
// path, and by the reference; all agree with plain attention over the same
// rows decoded to f32 to kTolerance of each head's norm.
TEST_P(AttentionTest, WindowedCachesMatchDecodedCache) {
  const KvShape shapes[] = {
      {"bfp4", 6, 6, 48},         {"bfp4:block=32", 8, 2, 128}, {"int8:window=4", 8, 2, 64},
      {"bfp4:block=2", 4, 4, 10}, {"bfp8:block=3:window=1", 2, 1, 12},
      {"int8:window=1", 4, 2, 7},
  };
  const int64_t capacity = 96;
  forEachKvShape(shapes, 700, [&](const KvShape &shape, const formats::KvFormat &format,
                                  std::mt19937 &rng) {
    ASSERT_GT(format.window, 0);
    CompressedCache cache(format, shape.kvHeads, shape.dim, capacity, rng);
    forEachQueryCase(shape.heads, shape.dim, capacity, rng,
                     [&](const std::vector<int32_t> &positions,
                         const kernels::testing::CausalRows &causal, const std::vector<float> &q,
                         int64_t h0) {
      expectAsOnTheDecodedCache(shape, capacity, cache.view, cache.decoded, positions, causal, q,
                                h0, kTolerance);
    });
  });
}

// What compression costs: the output on a compressed cache against the same
// attention on the f32 values it was made from (float64 reference), for
// N(0, 1) keys, values and queries, as the RMS error per output element
// (outputs are softmax-weighted averages of values of rms 1) and its worst
// over 8 caches. A value's error is at most half a step: int8 max|x| / 254
// of its head (~0.01 here), bfp8 up to twice that (steps are powers of
// two, per block of 16), bfp4 16x bfp8's; key errors move the softmax
// weights too. Worst seen: int8 0.0024, bfp8 0.0029, bfp4 block 16 0.055,
// block 48 0.063; the bounds are about 1.5x those. Without a window: with
// one (bfp4's default) a third of the rows are f32, for a smaller error.
TEST_P(AttentionTest, CompressedCachesStayCloseToF32) {
  const std::pair<const char *, double> bounds[] = {{"int8", 0.004},
                                                    {"bfp8:block=16", 0.0045},
                                                    {"bfp4:block=16:window=0", 0.08},
                                                    {"bfp4:block=48:window=0", 0.095},
                                                    {"bfp4:block=16", 0.08}};
  for (const auto &[spec, bound] : bounds) {
    SCOPED_TRACE(spec);
    EXPECT_LE(worstAgainstPlain(spec, 400,
                                [](const formats::KvFormat &format, int64_t heads, int64_t dim,
                                   int64_t capacity, std::mt19937 &rng) {
                                  return CompressedCache(format, heads, dim, capacity, rng);
                                }),
              bound);
  }
}

// A NaN in a cached key poisons its block, so the head reading it yields
// NaN, as with an f32 cache; the other KV head's queries stay finite.
TEST_P(AttentionTest, CompressedNaNPropagates) {
  for (const char *spec : {"int8", "bfp4:block=4:window=0"}) {
    SCOPED_TRACE(spec);
    const int64_t heads = 2, dim = 8, capacity = 20;
    std::mt19937 rng(9);
    const formats::KvFormat format = *formats::resolveKvFormat(*formats::parseKvFormat(spec), dim);
    CompressedCache cache(format, heads, dim, capacity, rng);
    std::vector<float> k(cache.plainKeys.begin() + 7 * heads * dim,
                         cache.plainKeys.begin() + 8 * heads * dim);
    k[dim + 2] = std::nanf(""); // KV head 1, position 7
    const std::vector<int32_t> row = {7};
    kernels::storeKV(k.data(), cache.plainValues.data() + 7 * heads * dim, row, cache.view);
    const kernels::testing::CausalRows causal({12}, capacity);
    std::vector<float> q(heads * dim, 0.5f), out(q.size()), scratch(heads * capacity);
    simd::attendHeads(q.data(), causal.visible, heads, heads, dim, cache.view, 0, heads,
                      scratch.data(), out.data());
    for (int64_t i = 0; i < dim; ++i) EXPECT_TRUE(std::isfinite(out[i])) << i;
    for (int64_t i = dim; i < 2 * dim; ++i) EXPECT_TRUE(std::isnan(out[i])) << i;
  }
}

/// A KIVI cache (int4, int2) of `capacity` rows: rows below windowRow
/// quantized (keys per channel over groups of format.keyGroup rows, values
/// per token), the rest f32 window rows; and the same cache decoded into
/// f32 rows. Keys get per-channel offsets and a few large channels, the
/// shape KIVI quantizes keys per channel for.
struct KiviCache {
  KiviCache(formats::KvFormat format, int64_t kvHeads, int64_t dim, int64_t capacity,
            int64_t windowRow, std::mt19937 &rng)
      : width(kvHeads * dim), plainKeys(capacity * width), plainValues(capacity * width),
        decodedKeys(capacity * width), decodedValues(capacity * width),
        keys(size_t(windowRow / format.keyGroup) * formats::kiviKeyGroupBytes(format, width)),
        values(size_t(windowRow) * formats::kvRowBytes(format, width)),
        windowKeys(plainKeys.begin() + windowRow * width, plainKeys.end()),
        windowValues(plainValues.begin() + windowRow * width, plainValues.end()) {
    std::normal_distribution<float> dist;
    for (size_t i = 0; i < plainKeys.size(); ++i) {
      const int64_t c = int64_t(i) % width;
      plainKeys[i] = dist(rng) * (c % 7 == 3 ? 6.0f : 1.0f) + float(c % 5) * 0.5f;
      plainValues[i] = dist(rng);
    }
    windowKeys.assign(plainKeys.begin() + windowRow * width, plainKeys.end());
    windowValues.assign(plainValues.begin() + windowRow * width, plainValues.end());
    const int64_t g = format.keyGroup;
    const size_t groupBytes = formats::kiviKeyGroupBytes(format, width);
    const size_t rowBytes = formats::kvRowBytes(format, width);
    for (int64_t r = 0; r < capacity; ++r) {
      std::span<float> k(decodedKeys.data() + r * width, size_t(width));
      std::span<float> v(decodedValues.data() + r * width, size_t(width));
      if (r >= windowRow) {
        std::copy_n(plainKeys.data() + r * width, width, k.data());
        std::copy_n(plainValues.data() + r * width, width, v.data());
        continue;
      }
      if (r % g == 0)
        formats::encodeKiviKeys(format, plainKeys.data() + r * width, g, width,
                                keys.data() + size_t(r / g) * groupBytes);
      formats::encodeKvRow(format, {plainValues.data() + r * width, size_t(width)},
                           values.data() + size_t(r) * rowBytes);
      formats::decodeKiviKey(format, keys.data() + size_t(r / g) * groupBytes, width, r % g, 0,
                             k);
      formats::decodeKvValues(format, values.data() + size_t(r) * rowBytes, 0, v);
    }
    view = {keys.data(), values.data(), capacity, width, format,
            windowKeys.data(), windowValues.data(), windowRow};
    decoded = {decodedKeys.data(), decodedValues.data(), capacity, width};
    plain = {plainKeys.data(), plainValues.data(), capacity, width};
  }
  int64_t width;
  std::vector<float> plainKeys, plainValues, decodedKeys, decodedValues;
  std::vector<uint8_t> keys, values;
  std::vector<float> windowKeys, windowValues;
  KVLayerView view, decoded, plain;
};

// KIVI caches (int4, int2): the SIMD kernel reads the codes in place,
// folding each key group's channel scales into the query and each value
// block's scale into the softmax weight, and adds the zeros' terms apart
// (q . z per key group, sum of w * z per value block). It must agree with
// plain attention over the same cache decoded to f32 rows, and with the
// reference kernel on the KIVI cache, to 1e-5 of each head's norm: the
// zero term is summed apart from the codes' dot, so a score's float32
// rounding is relative to |(q * s) . c| + |q . z| rather than |q . k|
// (the offsets here make those a few times |q . k|), 5x kTolerance.
// Rows: quantized groups then the f32 window; decode rows, a prefill run,
// scattered rows (as in a paged cache), grouped KV heads, head sub-ranges,
// head slices that are and are not whole vectors of bytes (int2 dim 8:
// 2 bytes a head; int4 dim 12, blocks of 4).
TEST_P(AttentionTest, KiviCachesMatchDecodedCache) {
  const KvShape shapes[] = {
      {"int4", 6, 6, 48},          {"int2", 6, 6, 48},          {"int4", 8, 2, 64},
      {"int2:group=16", 4, 2, 128}, {"int4:group=4", 4, 4, 12}, {"int2:group=8", 2, 1, 8},
      {"int4:group=8", 3, 3, 80},
  };
  const int64_t capacity = 96;
  forEachKvShape(shapes, 500, [&](const KvShape &shape, const formats::KvFormat &format,
                                  std::mt19937 &rng) {
    const int64_t windowRow = 64 / format.keyGroup * format.keyGroup;
    KiviCache cache(format, shape.kvHeads, shape.dim, capacity, windowRow, rng);
    forEachQueryCase(shape.heads, shape.dim, capacity, rng,
                     [&](const std::vector<int32_t> &positions,
                         const kernels::testing::CausalRows &causal, const std::vector<float> &q,
                         int64_t h0) {
      expectAsOnTheDecodedCache(shape, capacity, cache.view, cache.decoded, positions, causal, q,
                                h0, 1e-5);
    });
  });
}

// How far KIVI's codes move attention from the f32 cache they came from,
// with two thirds of the rows quantized (RMS error over outputs; keys with
// offsets and 6x channels, so peaked scores): measured worst over seeds
// 600-607 0.072 (int4) and 0.366 (int2); the bounds leave 25%. A guard
// against regressions in the codecs, not a derived bound.
TEST_P(AttentionTest, KiviCachesStayCloseToF32) {
  const std::pair<const char *, double> bounds[] = {{"int4", 0.09}, {"int2", 0.46}};
  for (const auto &[spec, bound] : bounds) {
    SCOPED_TRACE(spec);
    EXPECT_LE(worstAgainstPlain(spec, 600,
                                [](const formats::KvFormat &format, int64_t heads, int64_t dim,
                                   int64_t capacity, std::mt19937 &rng) {
                                  return KiviCache(format, heads, dim, capacity, 64, rng);
                                }),
              bound);
  }
}

// A NaN key in a quantized group poisons its channel's scale: every head
// reading that KV head's group gets NaN, the other KV head stays finite.
TEST_P(AttentionTest, KiviNaNPropagates) {
  const int64_t heads = 2, dim = 8, capacity = 20;
  std::mt19937 rng(9);
  const formats::KvFormat format =
      *formats::resolveKvFormat(*formats::parseKvFormat("int4:group=4"), dim);
  KiviCache cache(format, heads, dim, capacity, 8, rng);
  cache.plainKeys[5 * heads * dim + dim + 2] = std::nanf(""); // KV head 1, row 5
  formats::encodeKiviKeys(format, cache.plainKeys.data() + 4 * heads * dim, 4, heads * dim,
                          cache.keys.data() + formats::kiviKeyGroupBytes(format, heads * dim));
  const kernels::testing::CausalRows causal({12}, capacity);
  std::vector<float> q(heads * dim, 0.5f), out(q.size()), scratch(heads * capacity);
  simd::attendHeads(q.data(), causal.visible, heads, heads, dim, cache.view, 0, heads,
                    scratch.data(), out.data());
  for (int64_t i = 0; i < dim; ++i) EXPECT_TRUE(std::isfinite(out[i])) << i;
  for (int64_t i = dim; i < 2 * dim; ++i) EXPECT_TRUE(std::isnan(out[i])) << i;
}

INSTANTIATE_TEST_SUITE_P(Targets, AttentionTest,
                         ::testing::Values(int64_t{HWY_AVX3}, int64_t{HWY_AVX2},
                                           int64_t{HWY_EMU128}),
                         targetName);

} // namespace
} // namespace lathe::kernels::simd
