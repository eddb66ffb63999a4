// The KV-cache row codec of runtime/formats/KvFormat.h: names, default
// blocks, row sizes, hand-computed rows, and round trips of random and
// extreme rows against the error bound of each format.
#include "runtime/formats/KvFormat.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace lathe::formats {
namespace {

KvFormat resolved(std::string_view text, int64_t headDim) {
  Expected<KvFormat> parsed = parseKvFormat(text);
  EXPECT_TRUE(parsed) << text;
  Expected<KvFormat> f = resolveKvFormat(*parsed, headDim);
  EXPECT_TRUE(f) << text << ": " << f.error().message();
  return *f;
}

std::vector<float> roundTrip(KvFormat f, const std::vector<float> &x) {
  std::vector<uint8_t> row(kvRowBytes(f, int64_t(x.size())), 0xAB);
  encodeKvRow(f, x, row.data());
  std::vector<float> out(x.size(), -1.0f);
  decodeKvValues(f, row.data(), 0, out);
  return out;
}

TEST(KvFormatTest, NamesParseBack) {
  for (std::string_view text :
       {"f32", "f16", "bf16", "int8", "bfp8:block=16", "bfp4:block=32:window=8",
        "bfp4:block=8:window=1", "int8:window=16", "bfp8:block=32:window=1048576"}) {
    KvFormat f = resolved(text, 64);
    EXPECT_EQ(kvFormatName(f), text);
  }
  // A row format's window is written when above 0, or 0 where the kind has
  // a default window (bfp4), so that names parse back; int8 and bfp8
  // without one keep the names from before windows.
  EXPECT_EQ(kvFormatName(resolved("bfp4:window=0", 64)), "bfp4:block=32:window=0");
  EXPECT_EQ(kvFormatName(resolved("bfp8:window=0", 64)), "bfp8:block=32");
  EXPECT_EQ(kvFormatName(resolved("int8:window=0", 64)), "int8");
  // Unresolved (window -1): not written.
  EXPECT_EQ(kvFormatName(*parseKvFormat("bfp4:block=8")), "bfp4:block=8");
  EXPECT_EQ(kvFormatName(resolved("bfp4", 48)),
            "bfp4:block=16:window=" + std::to_string(kBfp4DefaultWindow));
  EXPECT_EQ(kvFormatName(resolved("int8", 48)), "int8");
  EXPECT_EQ(resolved("int8", 48).block, 48);
}

// 32, or head_dim below 32, or the largest power of two dividing both; int8
// always head_dim. Blocks must tile each head.
TEST(KvFormatTest, DefaultBlocks) {
  EXPECT_EQ(defaultKvBlock(KvKind::Bfp4, 64), 32);
  EXPECT_EQ(defaultKvBlock(KvKind::Bfp4, 128), 32);
  EXPECT_EQ(defaultKvBlock(KvKind::Bfp8, 48), 16);
  EXPECT_EQ(defaultKvBlock(KvKind::Bfp8, 80), 16);
  EXPECT_EQ(defaultKvBlock(KvKind::Bfp8, 96), 32);
  EXPECT_EQ(defaultKvBlock(KvKind::Bfp4, 24), 24);
  EXPECT_EQ(defaultKvBlock(KvKind::Bfp4, 4), 4);
  EXPECT_EQ(defaultKvBlock(KvKind::Int8, 48), 48);
}

TEST(KvFormatTest, ResolveRefusesBlocksThatDoNotTileAHead) {
  auto message = [](std::string_view text, int64_t headDim) {
    Expected<KvFormat> f = resolveKvFormat(*parseKvFormat(text), headDim);
    return f ? std::string("accepted") : f.error().message();
  };
  EXPECT_EQ(message("bfp4:block=32", 48), "block=32 does not divide head_dim 48");
  EXPECT_EQ(message("bfp8:block=96", 48), "block=96 does not divide head_dim 48");
  EXPECT_EQ(message("bfp4:block=3", 48), "block=3: bfp4 needs an even block (two 4-bit "
                                         "mantissas a byte)");
  EXPECT_EQ(message("bfp8:block=3", 48), "accepted");
  // An artifact's int8 block other than head_dim (resolveKvFormat is also
  // the loader's check).
  EXPECT_EQ(resolveKvFormat({KvKind::Int8, 16}, 48).error().message(),
            "int8 has one scale per head: its block is head_dim 48, not 16");
}

// Per row of 288 values (6 heads of 48), scales and exponents included.
TEST(KvFormatTest, RowBytes) {
  EXPECT_EQ(kvRowBytes(resolved("f32", 48), 288), 1152u);
  EXPECT_EQ(kvRowBytes(resolved("bf16", 48), 288), 576u);
  EXPECT_EQ(kvRowBytes(resolved("int8", 48), 288), 6u * (4 + 48));
  EXPECT_EQ(kvRowBytes(resolved("bfp8", 48), 288), 18u * (1 + 16));
  EXPECT_EQ(kvRowBytes(resolved("bfp4", 48), 288), 18u * (1 + 8));
  EXPECT_EQ(kvRowBytes(resolved("bfp4:block=48", 48), 288), 6u * (1 + 24));
}

// int8, block 4: max 127 -> scale 1.0 (0x3F800000), -63.5 rounds half to
// even to -64 (0xC0). bfp4, block 4, {1.0, -0.3, 0.75, 3.0}: e = 1, step
// 0.5, codes 2, -1, 2 (0.75 / 0.5 = 1.5 ties to even), 6 (docs/formats.md's
// worked example); second block {0.1, 1.9, 0, 0}: e = 0, step 0.25, codes
// 0, 8 -> saturates to 7, 0, 0.
TEST(KvFormatTest, HandComputedRows) {
  const KvFormat int8 = resolved("int8", 4);
  std::vector<uint8_t> row(kvRowBytes(int8, 4));
  const std::vector<float> x = {127.0f, -63.5f, 0.0f, 1.0f};
  encodeKvRow(int8, x, row.data());
  EXPECT_EQ(row, (std::vector<uint8_t>{0x00, 0x00, 0x80, 0x3F, 0x7F, 0xC0, 0x00, 0x01}));

  const KvFormat bfp4 = resolved("bfp4:block=4", 8);
  row.assign(kvRowBytes(bfp4, 8), 0);
  const std::vector<float> y = {1.0f, -0.3f, 0.75f, 3.0f, 0.1f, 1.9f, 0.0f, 0.0f};
  encodeKvRow(bfp4, y, row.data());
  EXPECT_EQ(row, (std::vector<uint8_t>{0x80, 0xF2, 0x62, 0x7F, 0x70, 0x00}));
  std::vector<float> back(8);
  decodeKvValues(bfp4, row.data(), 0, back);
  EXPECT_EQ(back, (std::vector<float>{1.0f, -0.5f, 1.0f, 3.0f, 0.0f, 1.75f, 0.0f, 0.0f}));
  // A head's slice decodes on its own.
  std::vector<float> second(4);
  decodeKvValues(bfp4, row.data(), 4, second);
  EXPECT_EQ(second, (std::vector<float>{0.0f, 1.75f, 0.0f, 0.0f}));
}

// Random rows at several magnitudes, per element:
//   int8: |x - x'| <= s / 2 with s = max|x| / 127 of the block (plus the
//         float32 roundings of s and of q * s: 1e-4 of s is ample);
//   bfp:  |x - x'| <= step / 2 with step = 2^(floor(log2 max|x|) - (m - 2)),
//         except values within half a step of 2^(e+1), which saturate to
//         (2^(m-1) - 1) * step: error <= step.
TEST(KvFormatTest, RoundTripWithinTheFormatsBound) {
  std::mt19937 rng(7);
  for (const char *spec : {"int8", "bfp8:block=16", "bfp8:block=48", "bfp4:block=16",
                           "bfp4:block=8", "bfp8:block=3"}) {
    const KvFormat f = resolved(spec, 48);
    for (float sigma : {1e-3f, 1.0f, 1e3f, 3e30f}) {
      SCOPED_TRACE(std::string(spec) + " sigma " + std::to_string(sigma));
      std::normal_distribution<float> dist(0.0f, sigma);
      std::vector<float> x(6 * 48);
      for (float &v : x) v = dist(rng);
      x[5] = 0.0f;
      x[50] *= 40.0f; // an outlier in one block
      const std::vector<float> back = roundTrip(f, x);
      for (size_t b = 0; b < x.size(); b += size_t(f.block)) {
        double maxAbs = 0;
        for (size_t i = b; i < b + size_t(f.block); ++i)
          maxAbs = std::max(maxAbs, std::fabs(double(x[i])));
        for (size_t i = b; i < b + size_t(f.block); ++i) {
          ASSERT_TRUE(std::isfinite(back[i])) << i;
          const double err = std::fabs(double(back[i]) - x[i]);
          if (f.kind == KvKind::Int8) {
            ASSERT_LE(err, maxAbs / 127 * (0.5 + 1e-4)) << i;
          } else {
            const int m = kvCodeBits(f.kind);
            const double step = std::ldexp(1.0, std::ilogb(maxAbs) - (m - 2));
            const bool saturates = std::fabs(x[i]) > ((1 << (m - 1)) - 1) * step;
            ASSERT_LE(err, saturates ? step : step / 2) << i;
          }
        }
      }
    }
  }
}

TEST(KvFormatTest, ZeroRowsDecodeToZero) {
  for (const char *spec : {"int8", "bfp8", "bfp4"}) {
    const std::vector<float> x(96, 0.0f);
    const std::vector<float> back = roundTrip(resolved(spec, 48), x);
    for (float v : back) {
      EXPECT_EQ(v, 0.0f) << spec;
      EXPECT_FALSE(std::signbit(v)) << spec;
    }
  }
}

// The largest and smallest floats, subnormals beside them, and blocks
// mixing magnitudes 2^250 apart: every decoded value is finite, keeps its
// sign or becomes zero, and the largest keep their size.
TEST(KvFormatTest, ExtremeValuesStayFinite) {
  const float big = std::numeric_limits<float>::max();
  const float tiny = std::numeric_limits<float>::denorm_min();
  const float smallNormal = std::numeric_limits<float>::min();
  for (const char *spec : {"int8", "bfp8:block=4", "bfp4:block=4"}) {
    SCOPED_TRACE(spec);
    const KvFormat f = resolved(spec, 4);
    const std::vector<float> x = {big, -big, tiny, 1.0f,  smallNormal, -tiny, 3e-39f, -1e-45f,
                                  -big, 1e30f, -1e-30f, 0.0f};
    const std::vector<float> back = roundTrip(f, x);
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_TRUE(std::isfinite(back[i])) << i << ": " << back[i];
      EXPECT_TRUE(back[i] == 0.0f || std::signbit(back[i]) == std::signbit(x[i])) << i;
    }
    // +-FLT_MAX come back within one part in 2^(bits - 2) (bfp's largest
    // code is 2^(m-1) - 1 steps of 2^(e - (m - 2))).
    const double rel = f.kind == KvKind::Bfp4 ? 0.25 : 1.0 / 64;
    EXPECT_NEAR(back[0] / double(big), 1.0, rel);
    EXPECT_NEAR(back[1] / double(-big), 1.0, rel);
  }
}

// A block holding NaN or infinity decodes to NaN (attention then yields NaN,
// as with an f32 cache); the other blocks of the row are untouched.
TEST(KvFormatTest, NonFiniteBlocksDecodeToNaN) {
  for (const char *spec : {"int8", "bfp8:block=4", "bfp4:block=4"}) {
    SCOPED_TRACE(spec);
    const KvFormat f = resolved(spec, 4);
    std::vector<float> x = {1, 2, 3, 4, 5, std::nanf(""), 7, 8, -1, -2, -3, -4};
    x[9] = -std::numeric_limits<float>::infinity();
    const std::vector<float> back = roundTrip(f, x);
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(back[i], x[i], 0.5) << i;
    for (int i = 4; i < 12; ++i) EXPECT_TRUE(std::isnan(back[i])) << i;
  }
}

// KIVI (int4, int2): the spec's options, defaults and errors.
TEST(KvFormatTest, KiviSpecs) {
  for (std::string_view text : {"int4:group=32:window=32", "int2:group=16:window=0",
                                "int4:group=64:window=128"})
    EXPECT_EQ(kvFormatName(resolved(text, 64)), text);
  // Defaults: keys in groups of 32 tokens, a window of one group, values in
  // blocks of 32 channels or the largest power of two dividing head_dim.
  const KvFormat int4 = resolved("int4", 48);
  EXPECT_EQ(kvFormatName(int4), "int4:group=32:window=32");
  EXPECT_EQ(int4.block, 16);
  EXPECT_EQ(resolved("int2", 128).block, 32);
  EXPECT_EQ(resolved("int2:group=16", 64).block, 16);
  EXPECT_EQ(resolved("int4:window=8", 64).window, 8);
  EXPECT_EQ(resolved("int4:window=8:group=8", 64).keyGroup, 8);
  EXPECT_EQ(resolved("int4:window=0", 64).window, 0);
  // Resolving is idempotent (the loader's check of an artifact's format).
  EXPECT_EQ(*resolveKvFormat(int4, 48), int4);

  auto message = [](std::string_view text, int64_t headDim = 48) {
    Expected<KvFormat> parsed = parseKvFormat(text);
    if (!parsed)
      return parsed.error().message();
    Expected<KvFormat> f = resolveKvFormat(*parsed, headDim);
    return f ? std::string("accepted") : f.error().message();
  };
  EXPECT_EQ(message("int3"), "unknown KV format 'int3' (expected f32, f16, bf16, int8, bfp8, "
                             "bfp4, int4 or int2)");
  EXPECT_EQ(message("int4:block=16"),
            "unknown option 'block=16' (int4 takes group=G and window=R)");
  EXPECT_EQ(message("int2:groups=4"), "unknown option 'groups=4' (int2 takes group=G and window=R)");
  EXPECT_EQ(message("int4:group"), "unknown option 'group' (int4 takes group=G and window=R)");
  EXPECT_EQ(message("int4:group=x"), "group=x: expected a whole number from 0 to 256");
  EXPECT_EQ(message("int4:group=512"), "group=512: expected a whole number from 0 to 256");
  EXPECT_EQ(message("int4:group=1"), "group=1: a key group needs at least 2 tokens");
  EXPECT_EQ(message("int4:window=-1"), "window=-1: expected a whole number from 0 to 1048576");
  EXPECT_EQ(message("int4:window="), "window=: expected a whole number from 0 to 1048576");
  EXPECT_EQ(message("int4:group=8:group=8"), "option 'group' repeats");
  EXPECT_EQ(message("int4:window=8:window=9"), "option 'window' repeats");
  EXPECT_EQ(message("int4:"), "unknown option '' (int4 takes group=G and window=R)");
  EXPECT_EQ(message("int2:group=2"),
            "group=2: value blocks of 2 channels do not fill whole bytes of int2 codes (4 a byte)");
  // An artifact's block (resolveKvFormat is also the loader's check).
  EXPECT_EQ(resolveKvFormat({KvKind::Int2, 6, 32, 32}, 48).error().message(),
            "value block 6 does not divide head_dim 48 in whole bytes");
  EXPECT_EQ(message("int2", 6), "int2 packs 4 channels a byte: head_dim 6 is not a multiple");
  EXPECT_EQ(message("int4:group=6", 48), "accepted");
  EXPECT_EQ(message("bfp4:group=8"),
            "unknown option 'group=8' (bfp4 takes block=N and window=R)");
}

// int8, bfp8 and bfp4 with a window of recent tokens kept in f32: defaults
// (bfp4 kBfp4DefaultWindow, the others none), which caches are windowed,
// resolving idempotent, and the errors.
TEST(KvFormatTest, RowFormatWindows) {
  EXPECT_EQ(defaultKvWindow(KvKind::Bfp4), kBfp4DefaultWindow);
  EXPECT_EQ(defaultKvWindow(KvKind::Bfp8), 0);
  EXPECT_EQ(defaultKvWindow(KvKind::Int8), 0);
  EXPECT_EQ(defaultKvWindow(KvKind::Int4, 16), 16);
  EXPECT_EQ(resolved("bfp4", 48).window, kBfp4DefaultWindow);
  EXPECT_EQ(resolved("bfp8", 48).window, 0);
  EXPECT_EQ(resolved("int8", 48).window, 0);
  EXPECT_EQ(resolved("int8:window=4", 48).window, 4);
  EXPECT_EQ(resolved("bfp4:window=0", 48).window, 0);
  EXPECT_EQ(parseKvFormat("bfp8")->window, -1);
  EXPECT_EQ(parseKvFormat("bfp8:window=2:block=8")->block, 8);
  EXPECT_TRUE(resolved("bfp4", 48).windowed());
  EXPECT_TRUE(resolved("int8:window=1", 48).windowed());
  EXPECT_FALSE(resolved("bfp4:window=0", 48).windowed());
  EXPECT_FALSE(resolved("f32", 48).windowed());
  EXPECT_TRUE(resolved("int4:window=0", 48).windowed()); // KIVI: always a window pool
  for (std::string_view text : {"bfp4", "bfp8:window=3", "int8:window=0", "bfp4:window=0"}) {
    const KvFormat f = resolved(text, 48);
    EXPECT_EQ(*resolveKvFormat(f, 48), f) << text;
    EXPECT_EQ(resolved(kvFormatName(f), 48), f) << text;
  }
  // Old artifacts: a row format stored with window 0 loads unchanged.
  EXPECT_EQ(*resolveKvFormat({KvKind::Bfp4, 16, 0, 0}, 48), (KvFormat{KvKind::Bfp4, 16, 0, 0}));
  // A plain format has no window; an artifact's past the bound is refused.
  EXPECT_EQ(resolveKvFormat({KvKind::F16, 0, 0, 8}, 48)->window, 0);
  EXPECT_EQ(resolveKvFormat({KvKind::Int8, 48, 0, kKiviMaxWindow + 1}, 48).error().message(),
            "window=1048577: at most 1048576 tokens");
  auto message = [](std::string_view text) {
    Expected<KvFormat> parsed = parseKvFormat(text);
    return parsed ? std::string("accepted") : parsed.error().message();
  };
  EXPECT_EQ(message("int8:window=-1"), "window=-1: expected a whole number from 0 to 1048576");
  EXPECT_EQ(message("bfp4:window=2097152"),
            "window=2097152: expected a whole number from 0 to 1048576");
  EXPECT_EQ(message("bfp8:window=1:window=1"), "option 'window' repeats");
  EXPECT_EQ(message("int8:block=48"), "unknown option 'block=48' (int8 takes window=R; its "
                                      "block is head_dim, one scale per token row and KV head)");
  EXPECT_EQ(message("f32:window=8"), "f32 takes no options");
}

// Per token row of 288 values (6 heads of 48, value blocks of 16): 18
// blocks of an f16 scale and zero and 8 (int4) or 4 (int2) bytes of codes.
// A key group of 32 tokens: an f16 scale and zero per channel, then 32
// rows of codes.
TEST(KvFormatTest, KiviBytes) {
  EXPECT_EQ(kvRowBytes(resolved("int4", 48), 288), 18u * (4 + 8));
  EXPECT_EQ(kvRowBytes(resolved("int2", 48), 288), 18u * (4 + 4));
  EXPECT_EQ(kiviKeyGroupBytes(resolved("int4", 48), 288), 288u * 4 + 32 * 144);
  EXPECT_EQ(kiviKeyGroupBytes(resolved("int2", 48), 288), 288u * 4 + 32 * 72);
  EXPECT_EQ(kiviKeyGroupBytes(resolved("bfp4", 48), 288), 0u);
}

// Values 0..15 of a block of 4 with min 0 and max 15: scale 1, zero 0,
// codes exactly the values, packed low nibble first.
TEST(KvFormatTest, KiviHandComputedRow) {
  const KvFormat f = resolved("int4:group=4", 4);
  ASSERT_EQ(f.block, 4);
  std::vector<uint8_t> row(kvRowBytes(f, 4));
  encodeKvRow(f, std::vector<float>{0.0f, 15.0f, 7.0f, 3.0f}, row.data());
  // f16 1.0 = 0x3C00, f16 0 = 0x0000.
  EXPECT_EQ(row, (std::vector<uint8_t>{0x00, 0x3C, 0x00, 0x00, 0xF0, 0x37}));
  // int2, {-1, 2, 0.5, 1}: scale (2 - -1) / 3 = 1, zero -1, codes 0, 3,
  // 1.5 -> 2 (ties to even), 2.
  const KvFormat g = resolved("int2:group=4", 4);
  row.assign(kvRowBytes(g, 4), 0);
  encodeKvRow(g, std::vector<float>{-1.0f, 2.0f, 0.5f, 1.0f}, row.data());
  EXPECT_EQ(row, (std::vector<uint8_t>{0x00, 0x3C, 0x00, 0xBC, 0xAC}));
  std::vector<float> back(4);
  decodeKvValues(g, row.data(), 0, back);
  EXPECT_EQ(back, (std::vector<float>{-1.0f, 2.0f, 1.0f, 1.0f}));
}

// Random values, per element: |x - x'| <= s / 2 with s = (max - min) /
// qmax of its block (values) or of its channel over the group (keys),
// plus the f16 roundings of s and of the zero min: qmax codes of a scale
// off by 2^-11 of itself and a zero off by 2^-11 of |min|.
TEST(KvFormatTest, KiviRoundTripWithinBound) {
  std::mt19937 rng(11);
  for (const char *spec : {"int4", "int2", "int4:group=8", "int2:group=64"}) {
    const KvFormat f = resolved(spec, 48);
    const int qmax = (1 << kvCodeBits(f.kind)) - 1;
    const int64_t width = 96, rows = f.keyGroup;
    for (float sigma : {1e-2f, 1.0f, 100.0f}) {
      SCOPED_TRACE(std::string(spec) + " sigma " + std::to_string(sigma));
      std::normal_distribution<float> dist(0.0f, sigma);
      std::vector<float> x(size_t(rows * width));
      for (float &v : x) v = dist(rng) + (&v - x.data()) % 7 * sigma; // channel offsets
      auto bound = [&](double lo, double hi) {
        const double s = (hi - lo) / qmax;
        return s * (0.5 + qmax * 1e-3) + std::fabs(lo) * 1e-3 + 1e-30;
      };
      // Values: each row on its own.
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<float> row(x.begin() + r * width, x.begin() + (r + 1) * width);
        const std::vector<float> back = roundTrip(f, row);
        for (int64_t b = 0; b < width; b += f.block) {
          const auto [lo, hi] = std::minmax_element(row.begin() + b, row.begin() + b + f.block);
          for (int64_t i = b; i < b + f.block; ++i)
            ASSERT_LE(std::fabs(double(back[i]) - row[i]), bound(*lo, *hi)) << r << " " << i;
        }
      }
      // Keys: per channel over the group; a head's slice decodes alone.
      std::vector<uint8_t> group(kiviKeyGroupBytes(f, width));
      encodeKiviKeys(f, x.data(), rows, width, group.data());
      for (int64_t c = 0; c < width; ++c) {
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t r = 0; r < rows; ++r) {
          lo = std::min(lo, double(x[r * width + c]));
          hi = std::max(hi, double(x[r * width + c]));
        }
        for (int64_t r = 0; r < rows; ++r) {
          float back;
          decodeKiviKey(f, group.data(), width, r, c, {&back, 1});
          ASSERT_LE(std::fabs(double(back) - x[r * width + c]), bound(lo, hi)) << r << " " << c;
        }
      }
      std::vector<float> head(48), one(1);
      decodeKiviKey(f, group.data(), width, rows - 1, 48, head);
      decodeKiviKey(f, group.data(), width, rows - 1, 50, one);
      EXPECT_EQ(head[2], one[0]);
    }
  }
}

// A partial key group (a block quantized after a rollback into it) takes
// its scales from the rows it has; NaN or infinity in a channel decodes to
// NaN in that channel only, and constant channels come back exactly.
TEST(KvFormatTest, KiviKeyGroupEdges) {
  const KvFormat f = resolved("int4:group=4", 4);
  const std::vector<float> keys = {1.0f, 5.0f, NAN, 0.5f, //
                                   2.0f, 5.0f, 0.0f, 0.5f, //
                                   3.0f, 5.0f, 0.0f, 0.5f};
  std::vector<uint8_t> group(kiviKeyGroupBytes(f, 4));
  encodeKiviKeys(f, keys.data(), 3, 4, group.data());
  for (int64_t r = 0; r < 3; ++r) {
    std::vector<float> back(4);
    decodeKiviKey(f, group.data(), 4, r, 0, back);
    EXPECT_NEAR(back[0], keys[r * 4], 0.1);
    EXPECT_EQ(back[1], 5.0f);
    EXPECT_TRUE(std::isnan(back[2]));
    EXPECT_EQ(back[3], 0.5f);
  }
}

} // namespace
} // namespace lathe::formats
