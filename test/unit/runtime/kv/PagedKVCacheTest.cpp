// The paged KV cache: blocks taken and given back, copy on write after a
// fork, commit of a kept tail, rollback, and byte accounting. Slots are
// filled with values naming (sequence, slot, layer, key/value) so that a
// test can tell exactly which data each slot holds.
#include "runtime/kv/PagedKVCache.h"

#include "test/unit/runtime/backend/HostDevice.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>

namespace lathe::kv {
namespace {

using backend::testing::HostDevice;

KVLayout smallLayout(int64_t blocks) {
  KVLayout l;
  l.layers = 2;
  l.width = 3;
  l.blockSize = 4;
  l.blocks = blocks;
  return l;
}

class PagedKVCacheTest : public ::testing::Test {
protected:
  void SetUp() override {
    auto c = PagedKVCache::create(device, smallLayout(8), 20);
    ASSERT_TRUE(c) << c.error().message();
    cache = c.take();
  }
  float *at(SequenceId s, int64_t slot, int64_t layer, bool value) {
    uint8_t *base = value ? cache->values(layer) : cache->keys(layer);
    return reinterpret_cast<float *>(base) + int64_t{cache->row(s, slot)} * 3;
  }
  /// Writes a value naming (tag, slot, layer, kind) into every element.
  void fill(SequenceId s, int64_t from, int64_t to, float tag) {
    for (int64_t slot = from; slot < to; ++slot)
      for (int64_t l = 0; l < 2; ++l)
        for (bool v : {false, true})
          for (int e = 0; e < 3; ++e)
            at(s, slot, l, v)[e] = tag * 1000 + float(slot) * 10 + float(l) * 2 + (v ? 1 : 0);
  }
  float tagOf(SequenceId s, int64_t slot) {
    return std::floor(at(s, slot, 1, true)[2] / 1000);
  }
  float slotOf(SequenceId s, int64_t slot) {
    const float v = at(s, slot, 0, false)[0];
    return std::fmod(v, 1000.0f) / 10;
  }
  HostDevice device;
  std::unique_ptr<PagedKVCache> cache;
};

TEST_F(PagedKVCacheTest, GrowsByWholeBlocksAndAccountsBytes) {
  SequenceId a = cache->addSequence();
  EXPECT_EQ(cache->usedBlocks(), 0);
  ASSERT_TRUE(cache->grow(a, 5));
  EXPECT_EQ(cache->length(a), 5);
  EXPECT_EQ(cache->usedBlocks(), 2);
  // 2 layers x (keys + values) x 4 rows x 3 floats per block.
  EXPECT_EQ(cache->layout().blockBytes(), size_t(2 * 2 * 4 * 3 * 4));
  EXPECT_EQ(cache->usedBytes(), 2 * cache->layout().blockBytes());
  EXPECT_EQ(cache->capacityBytes(), 8 * cache->layout().blockBytes());
  ASSERT_TRUE(cache->grow(a, 3));
  EXPECT_EQ(cache->usedBlocks(), 2);
  ASSERT_TRUE(cache->grow(a, 1));
  EXPECT_EQ(cache->usedBlocks(), 3);
}

TEST_F(PagedKVCacheTest, RefusesPastTheContextAndWhenFull) {
  SequenceId a = cache->addSequence();
  Status s = cache->grow(a, 21);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("context of 20 tokens"), std::string::npos);
  EXPECT_EQ(cache->length(a), 0);
  ASSERT_TRUE(cache->grow(a, 20)); // 5 blocks
  SequenceId b = cache->addSequence();
  ASSERT_TRUE(cache->grow(b, 12)); // 3 blocks: the pool is full
  s = cache->grow(b, 1);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("KV cache is full"), std::string::npos);
  EXPECT_EQ(cache->length(b), 12);
  EXPECT_EQ(cache->freeBlocks(), 0);
}

TEST_F(PagedKVCacheTest, BlocksAreReusedAcrossSequencesWithoutLeaks) {
  for (int round = 0; round < 50; ++round) {
    std::vector<SequenceId> ids;
    for (int i = 0; i < 4; ++i) {
      ids.push_back(cache->addSequence());
      ASSERT_TRUE(cache->grow(ids.back(), 1 + (round + i) % 8));
      fill(ids.back(), 0, cache->length(ids.back()), float(i + 1));
    }
    for (int i = 0; i < 4; ++i)
      for (int64_t slot = 0; slot < cache->length(ids[i]); ++slot)
        ASSERT_EQ(tagOf(ids[i], slot), float(i + 1));
    for (SequenceId id : ids)
      cache->removeSequence(id);
    ASSERT_EQ(cache->usedBlocks(), 0) << "round " << round;
  }
  // Sequence ids are reused too: the table does not grow without bound.
  SequenceId again = cache->addSequence();
  EXPECT_LT(again, 4);
}

TEST_F(PagedKVCacheTest, ForkSharesBlocksUntilAWriteCopiesThem) {
  SequenceId a = cache->addSequence();
  ASSERT_TRUE(cache->grow(a, 6));
  fill(a, 0, 6, 1);
  auto b = cache->fork(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(cache->length(*b), 6);
  EXPECT_EQ(cache->usedBlocks(), 2); // shared
  EXPECT_EQ(cache->row(a, 5), cache->row(*b, 5));
  // b writes into the shared half-full block: it gets a copy of its own.
  ASSERT_TRUE(cache->grow(*b, 1));
  EXPECT_EQ(cache->usedBlocks(), 3);
  EXPECT_NE(cache->row(a, 5), cache->row(*b, 5));
  EXPECT_EQ(cache->row(a, 0), cache->row(*b, 0)); // the full block stays shared
  EXPECT_EQ(tagOf(*b, 5), 1.0f);                  // copied data
  fill(*b, 6, 7, 2);
  fill(*b, 4, 6, 3); // b's own copy of the block
  EXPECT_EQ(tagOf(a, 4), 1.0f);
  EXPECT_EQ(tagOf(a, 5), 1.0f);
  cache->removeSequence(a);
  EXPECT_EQ(cache->usedBlocks(), 2); // b still holds the first block
  cache->removeSequence(*b);
  EXPECT_EQ(cache->usedBlocks(), 0);
  EXPECT_FALSE(cache->fork(*b));
}

TEST_F(PagedKVCacheTest, TruncateGivesBackEmptyBlocks) {
  SequenceId a = cache->addSequence();
  ASSERT_TRUE(cache->grow(a, 10));
  fill(a, 0, 10, 1);
  cache->truncate(a, 5);
  EXPECT_EQ(cache->length(a), 5);
  EXPECT_EQ(cache->usedBlocks(), 2);
  cache->truncate(a, 0);
  EXPECT_EQ(cache->usedBlocks(), 0);
  cache->truncate(a, 3); // longer than the sequence: nothing
  EXPECT_EQ(cache->length(a), 0);
}

TEST_F(PagedKVCacheTest, CommitMovesKeptSlotsDownAndDropsTheRest) {
  SequenceId a = cache->addSequence();
  ASSERT_TRUE(cache->grow(a, 3));
  fill(a, 0, 3, 1);
  ASSERT_TRUE(cache->grow(a, 7)); // a step's tail: slots 3..9
  fill(a, 3, 10, 2);
  const int64_t kept[] = {4, 7, 9};
  ASSERT_TRUE(cache->commit(a, 3, kept));
  EXPECT_EQ(cache->length(a), 6);
  EXPECT_EQ(cache->usedBlocks(), 2);
  EXPECT_EQ(slotOf(a, 2), 2.0f); // untouched
  EXPECT_EQ(slotOf(a, 3), 4.0f);
  EXPECT_EQ(slotOf(a, 4), 7.0f);
  EXPECT_EQ(slotOf(a, 5), 9.0f);
  EXPECT_EQ(tagOf(a, 5), 2.0f);
  // Every layer and both keys and values moved.
  EXPECT_EQ(at(a, 5, 1, false)[1], 2000.0f + 90 + 2);
  EXPECT_EQ(at(a, 5, 0, true)[1], 2000.0f + 90 + 1);
}

TEST_F(PagedKVCacheTest, CommitRefusesBadSlotsAndCopiesSharedBlocks) {
  SequenceId a = cache->addSequence();
  ASSERT_TRUE(cache->grow(a, 8));
  fill(a, 0, 8, 1);
  const int64_t unordered[] = {6, 5};
  EXPECT_FALSE(cache->commit(a, 4, unordered));
  const int64_t below[] = {3};
  EXPECT_FALSE(cache->commit(a, 4, below));
  const int64_t past[] = {8};
  EXPECT_FALSE(cache->commit(a, 4, past));
  EXPECT_EQ(cache->length(a), 8);
  auto b = cache->fork(a);
  ASSERT_TRUE(b);
  const int64_t kept[] = {7};
  ASSERT_TRUE(cache->commit(a, 4, kept));
  EXPECT_EQ(slotOf(a, 4), 7.0f);
  EXPECT_EQ(slotOf(*b, 4), 4.0f); // the fork's data is its own
  EXPECT_EQ(cache->length(*b), 8);
}

TEST_F(PagedKVCacheTest, CommitThatOnlyDropsSlotsNeedsNoFreeBlock) {
  // A forked sequence shares the block holding `base`; keeping nothing (or
  // only slots already in place) writes nothing, so it needs no copy even
  // when the pool is full.
  SequenceId a = cache->addSequence();
  ASSERT_TRUE(cache->grow(a, 6));
  auto b = cache->fork(a);
  ASSERT_TRUE(b);
  SequenceId filler = cache->addSequence(), more = cache->addSequence();
  ASSERT_TRUE(cache->grow(filler, 20)); // every other block
  ASSERT_TRUE(cache->grow(more, 4));
  ASSERT_EQ(cache->freeBlocks(), 0);
  const int64_t inPlace[] = {5};
  EXPECT_TRUE(cache->commit(a, 5, inPlace));
  EXPECT_TRUE(cache->commit(a, 5, {}));
  EXPECT_EQ(cache->length(a), 5);
  EXPECT_EQ(cache->length(*b), 6);
}

// Compressed rows (int8, bfp4): the layout counts their packed bytes, and a
// fork's copy on write and a commit's moves carry whole rows, scales and
// exponents with them, so each slot decodes to what was stored in it.
TEST(PagedKVCacheCompressed, CopiesWholePackedRows) {
  for (const char *spec : {"int8", "bfp4:block=4:window=0"}) {
    SCOPED_TRACE(spec);
    HostDevice device;
    KVLayout layout = smallLayout(8);
    layout.width = 8; // 2 heads of 4
    layout.format = *formats::resolveKvFormat(*formats::parseKvFormat(spec), 4);
    const size_t rowBytes = layout.format.kind == formats::KvKind::Int8 ? 2 * (4 + 4) : 2 * 3;
    EXPECT_EQ(layout.rowBytes(), rowBytes);
    EXPECT_EQ(layout.tokenBytes(), 2 * 2 * rowBytes);
    EXPECT_EQ(layout.blockBytes(), 2 * 2 * 4 * rowBytes);
    auto created = PagedKVCache::create(device, layout, 20);
    ASSERT_TRUE(created) << created.error().message();
    PagedKVCache &cache = **created;
    // Each (tag, slot) row differs; a slot must decode exactly as its row
    // encoded and decoded on its own does.
    auto row = [](float tag, int64_t slot) {
      std::vector<float> x(8);
      for (int i = 0; i < 8; ++i) x[i] = tag + float(slot) * 0.37f - float(i) * 0.11f;
      return x;
    };
    auto store = [&](SequenceId s, int64_t slot, float tag) {
      const std::vector<float> x = row(tag, slot);
      for (int64_t l = 0; l < 2; ++l)
        for (uint8_t *base : {cache.keys(l), cache.values(l)})
          formats::encodeKvRow(layout.format, x, base + size_t(cache.row(s, slot)) * rowBytes);
    };
    auto decoded = [&](SequenceId s, int64_t slot, int64_t layer, bool value) {
      std::vector<float> out(8);
      const uint8_t *base = value ? cache.values(layer) : cache.keys(layer);
      formats::decodeKvValues(layout.format, base + size_t(cache.row(s, slot)) * rowBytes, 0, out);
      return out;
    };
    auto expected = [&](float tag, int64_t slot) {
      std::vector<float> x = row(tag, slot), out(8);
      std::vector<uint8_t> packed(rowBytes);
      formats::encodeKvRow(layout.format, x, packed.data());
      formats::decodeKvValues(layout.format, packed.data(), 0, out);
      return out;
    };
    SequenceId a = cache.addSequence();
    ASSERT_TRUE(cache.grow(a, 6));
    for (int64_t slot = 0; slot < 6; ++slot) store(a, slot, 1);
    auto b = cache.fork(a);
    ASSERT_TRUE(b);
    ASSERT_TRUE(cache.grow(*b, 1)); // copies the shared, half-full block
    ASSERT_NE(cache.row(a, 5), cache.row(*b, 5));
    store(*b, 6, 2);
    store(*b, 4, 3);
    for (int64_t l = 0; l < 2; ++l)
      for (bool v : {false, true}) {
        EXPECT_EQ(decoded(*b, 5, l, v), expected(1, 5)); // copied with its scales
        EXPECT_EQ(decoded(*b, 4, l, v), expected(3, 4));
        EXPECT_EQ(decoded(a, 4, l, v), expected(1, 4)); // a's row untouched
      }
    // Commit keeps slots 4 and 6 of b's tail from base 4: slot 6 moves to 5.
    const int64_t kept[] = {4, 6};
    ASSERT_TRUE(cache.commit(*b, 4, kept));
    EXPECT_EQ(cache.length(*b), 6);
    for (int64_t l = 0; l < 2; ++l)
      for (bool v : {false, true}) {
        EXPECT_EQ(decoded(*b, 5, l, v), expected(2, 6));
        EXPECT_EQ(decoded(*b, 4, l, v), expected(3, 4));
      }
    cache.truncate(*b, 3);
    EXPECT_EQ(cache.length(*b), 3);
    EXPECT_EQ(decoded(*b, 2, 1, true), expected(1, 2));
  }
}

TEST(PagedKVCacheCompressed, RefusesBlocksThatDoNotTileARow) {
  HostDevice device;
  KVLayout layout = smallLayout(8);
  layout.format = {formats::KvKind::Bfp8, 2}; // width 3
  auto c = PagedKVCache::create(device, layout, 10);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().message(), "KV cache: rows of 3 values cannot be cut into blocks of 2");
}

TEST(PagedKVCacheCreate, RefusesBadShapesAndReportsAllocationFailure) {
  HostDevice device;
  KVLayout bad = smallLayout(0);
  EXPECT_FALSE(PagedKVCache::create(device, bad, 10));
  KVLayout huge = smallLayout(1 << 24);
  auto c = PagedKVCache::create(device, huge, 10);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("cannot allocate"), std::string::npos);
  // Sizes whose byte count would overflow are refused before any allocation.
  KVLayout overflow = smallLayout(1 << 20);
  overflow.layers = int64_t(1) << 40;
  overflow.width = int64_t(1) << 20;
  auto o = PagedKVCache::create(device, overflow, 10);
  ASSERT_FALSE(o);
  EXPECT_NE(o.error().message().find("do not fit in memory"), std::string::npos);
}

// Windowed caches, KIVI (int4, int2: blocks of one key group) and int8 /
// bfp with window=R (blocks of 4 here): rows written as f32 window rows,
// quantized once their block is complete and older than the window, and
// decoded back into a window block when written into again. Each slot is
// checked against the row stored in it: exact while in the window; once
// quantized, KIVI within the codes' error (0.1 here: ranges of ~1.2 per
// channel or block over 15 or 3 steps; int2's half step is 0.2), a row
// format as the row codec encodes and decodes that row on its own (to 1e-5:
// a row decoded and sealed again may get an int8 scale an ulp apart).
class PagedKVCacheWindow : public ::testing::TestWithParam<const char *> {
protected:
  void SetUp() override {
    layout = smallLayout(8);
    layout.width = 8; // 2 heads of 4
    layout.format = *formats::resolveKvFormat(*formats::parseKvFormat(GetParam()), 4);
    ASSERT_TRUE(layout.windowed());
    layout.blockSize = layout.kivi() ? layout.format.keyGroup : 4;
    auto c = PagedKVCache::create(device, layout, 32);
    ASSERT_TRUE(c) << c.error().message();
    cache = c.take();
  }
  // One copy of the arithmetic (no inlining that could contract it
  // differently), so that stored and expected rows are bit-identical.
  [[gnu::noinline]] static std::vector<float> row(float tag, int64_t slot, int64_t layer,
                                                  bool value) {
    std::vector<float> x(8);
    for (int i = 0; i < 8; ++i)
      x[i] = tag + float(slot) * 0.17f - float(i) * 0.11f + float(layer) * 0.5f + (value ? 2 : 0);
    return x;
  }
  bool inWindow(SequenceId s, int64_t slot) const { return cache->row(s, slot) >= layout.rows(); }
  /// What the step would store: f32 window rows.
  void store(SequenceId s, int64_t slot, float tag) {
    ASSERT_TRUE(inWindow(s, slot)) << slot;
    const int64_t r = cache->row(s, slot) - layout.rows();
    for (int64_t l = 0; l < 2; ++l)
      for (bool v : {false, true}) {
        const std::vector<float> x = row(tag, slot, l, v);
        std::copy(x.begin(), x.end(), (v ? cache->windowValues(l) : cache->windowKeys(l)) + r * 8);
      }
  }
  std::vector<float> decoded(SequenceId s, int64_t slot, int64_t l, bool v) {
    std::vector<float> out(8);
    const int64_t r = cache->row(s, slot);
    if (r >= layout.rows()) {
      const float *w = (v ? cache->windowValues(l) : cache->windowKeys(l)) + (r - layout.rows()) * 8;
      std::copy(w, w + 8, out.begin());
    } else if (v || !layout.kivi()) {
      const uint8_t *base = v ? cache->values(l) : cache->keys(l);
      formats::decodeKvValues(layout.format, base + size_t(r) * layout.rowBytes(), 0, out);
    } else {
      formats::decodeKiviKey(layout.format,
                             cache->keys(l) + size_t(r / layout.blockSize) * layout.keyGroupBytes(),
                             8, r % layout.blockSize, 0, out);
    }
    return out;
  }
  /// Slot `slot` holds the row of `tag`: exactly if `exact` (by default:
  /// in the window), else within the codes' error.
  void expectHolds(SequenceId s, int64_t slot, float tag, std::optional<bool> exact = {}) {
    const double tolerance = !layout.kivi()                                  ? 1e-5
                             : layout.format.kind == formats::KvKind::Int4 ? 0.1
                                                                           : 0.25;
    for (int64_t l = 0; l < 2; ++l)
      for (bool v : {false, true}) {
        const std::vector<float> got = decoded(s, slot, l, v);
        std::vector<float> want = row(tag, slot, l, v);
        const bool exactly = exact.value_or(inWindow(s, slot));
        if (!exactly && !layout.kivi()) {
          // The row codec's own round trip of the row.
          std::vector<uint8_t> packed(layout.rowBytes());
          formats::encodeKvRow(layout.format, want, packed.data());
          formats::decodeKvValues(layout.format, packed.data(), 0, want);
        }
        for (int i = 0; i < 8; ++i) {
          if (exactly)
            ASSERT_EQ(got[i], want[i]) << "slot " << slot << " " << i;
          else
            ASSERT_NEAR(got[i], want[i], tolerance) << "slot " << slot << " " << i;
        }
      }
  }
  HostDevice device;
  KVLayout layout;
  std::unique_ptr<PagedKVCache> cache;
};

TEST_P(PagedKVCacheWindow, SealsBlocksLeavingTheWindowAndAccountsBytes) {
  ASSERT_EQ(layout.blockSize, 4);
  const int64_t window = layout.format.window;
  // Bytes: a block of every layer's key group (row formats: 4 key rows) and
  // value rows; a token is that over 4; the window is f32.
  EXPECT_EQ(layout.blockBytes(),
            2 * (layout.kivi() ? layout.keyGroupBytes() : 4 * layout.rowBytes()) +
                2 * 4 * layout.rowBytes());
  EXPECT_EQ(layout.tokenBytes(), (layout.blockBytes() + 3) / 4);
  EXPECT_EQ(layout.windowTokenBytes(), 2u * 2 * 8 * 4);
  SequenceId a = cache->addSequence();
  ASSERT_TRUE(cache->grow(a, 6));
  for (int64_t slot = 0; slot < 6; ++slot) store(a, slot, 1);
  EXPECT_EQ(cache->usedWindowBlocks(), 2);
  EXPECT_EQ(cache->usedBytes(), 2 * layout.windowBlockBytes());
  // Growing to 6 + 7 seals the blocks complete at 6 and older than the
  // newest `window` slots of 13.
  ASSERT_TRUE(cache->grow(a, 7));
  for (int64_t slot = 6; slot < 13; ++slot) store(a, slot, 1);
  const int64_t sealed = std::min<int64_t>(6, 13 - window) / 4;
  for (int64_t slot = 0; slot < 13; ++slot) {
    EXPECT_EQ(inWindow(a, slot), slot >= sealed * 4) << slot;
    expectHolds(a, slot, 1);
  }
  EXPECT_EQ(cache->usedBlocks(), 4);
  EXPECT_EQ(cache->usedWindowBlocks(), 4 - sealed);
  EXPECT_EQ(cache->usedBytes(), size_t(sealed) * layout.blockBytes() +
                                    size_t(4 - sealed) * layout.windowBlockBytes());
  EXPECT_EQ(cache->freeBlocks(), 4);
  // One more token: now everything older than the window is quantized.
  ASSERT_TRUE(cache->grow(a, 1));
  store(a, 13, 1);
  for (int64_t slot = 0; slot < 14; ++slot) {
    EXPECT_EQ(inWindow(a, slot), slot >= std::min<int64_t>(13, 14 - window) / 4 * 4) << slot;
    expectHolds(a, slot, 1);
  }
  cache->removeSequence(a);
  EXPECT_EQ(cache->freeBlocks(), 8);
  EXPECT_EQ(cache->usedBytes(), 0u);
}

// A rollback into a quantized block keeps its rows as they decode; the next
// write decodes the block into a window block of its own (exactly those
// values) before writing after them.
TEST_P(PagedKVCacheWindow, RollbackIntoAQuantizedGroup) {
  SequenceId a = cache->addSequence();
  for (int64_t slot = 0; slot < 24; ++slot) {
    ASSERT_TRUE(cache->grow(a, 1));
    store(a, slot, 1);
  }
  ASSERT_FALSE(inWindow(a, 9));
  std::vector<std::vector<float>> before;
  for (int64_t slot = 8; slot < 10; ++slot)
    before.push_back(decoded(a, slot, 1, false));
  cache->truncate(a, 10); // inside the group of slots 8..11
  EXPECT_EQ(cache->length(a), 10);
  ASSERT_TRUE(cache->grow(a, 3));
  EXPECT_TRUE(inWindow(a, 8));
  for (int64_t slot = 8; slot < 10; ++slot)
    EXPECT_EQ(decoded(a, slot, 1, false), before[size_t(slot - 8)]);
  for (int64_t slot = 10; slot < 13; ++slot) store(a, slot, 2);
  for (int64_t slot = 0; slot < 10; ++slot) expectHolds(a, slot, 1, slot < 8 ? std::nullopt : std::optional(false));
  for (int64_t slot = 10; slot < 13; ++slot) expectHolds(a, slot, 2);
  // Growing on quantizes the rebuilt group again.
  for (int64_t slot = 13; slot < 30; ++slot) {
    ASSERT_TRUE(cache->grow(a, 1));
    store(a, slot, 3);
  }
  EXPECT_FALSE(inWindow(a, 9));
  for (int64_t slot = 0; slot < 10; ++slot) expectHolds(a, slot, 1);
  for (int64_t slot = 10; slot < 13; ++slot) expectHolds(a, slot, 2);
}

// Forks share quantized and window blocks; a block is quantized once for
// every sequence holding it; a fork writing into a shared block (window or
// quantized) gets its own window copy; commit moves window rows.
TEST_P(PagedKVCacheWindow, ForkAndCommitAcrossGroups) {
  SequenceId a = cache->addSequence();
  ASSERT_TRUE(cache->grow(a, 10));
  for (int64_t slot = 0; slot < 10; ++slot) store(a, slot, 1);
  auto b = cache->fork(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(cache->usedBlocks(), 3);
  // a grows far enough to quantize slots 0..7: b's table follows.
  ASSERT_TRUE(cache->grow(a, std::max<int64_t>(1, 8 + layout.format.window - 10 + 1)));
  for (int64_t slot = 10; slot < cache->length(a); ++slot) store(a, slot, 4);
  EXPECT_FALSE(inWindow(a, 7));
  EXPECT_EQ(cache->row(a, 7), cache->row(*b, 7));
  EXPECT_FALSE(inWindow(*b, 7));
  EXPECT_NE(cache->row(a, 9), cache->row(*b, 9)); // a copied its partial block
  for (int64_t slot = 0; slot < 10; ++slot) {
    expectHolds(a, slot, 1);
    expectHolds(*b, slot, 1);
  }
  // b rolls back into the shared quantized group and writes: its own copy.
  cache->truncate(*b, 6);
  ASSERT_TRUE(cache->grow(*b, 5)); // slots 6..10, a tree of 5 from base 6
  EXPECT_TRUE(inWindow(*b, 4));
  EXPECT_FALSE(inWindow(a, 4));
  for (int64_t slot = 6; slot < 11; ++slot) store(*b, slot, 5 + float(slot));
  // Keep slots 7 and 10: they move to 6 and 7.
  const int64_t kept[] = {7, 10};
  ASSERT_TRUE(cache->commit(*b, 6, kept));
  EXPECT_EQ(cache->length(*b), 8);
  for (int64_t slot = 0; slot < 6; ++slot) expectHolds(*b, slot, 1, false);
  for (int64_t l = 0; l < 2; ++l)
    for (bool v : {false, true}) {
      EXPECT_EQ(decoded(*b, 6, l, v), row(12, 7, l, v));
      EXPECT_EQ(decoded(*b, 7, l, v), row(15, 10, l, v));
    }
  for (int64_t slot = 0; slot < 10; ++slot) expectHolds(a, slot, 1);
  cache->removeSequence(a);
  cache->removeSequence(*b);
  EXPECT_EQ(cache->freeBlocks(), 8);
}

// Sequences hold at most `blocks` blocks of either pool together.
TEST_P(PagedKVCacheWindow, FullnessCountsBothPools) {
  SequenceId a = cache->addSequence();
  ASSERT_TRUE(cache->grow(a, 20));
  SequenceId b = cache->addSequence();
  ASSERT_TRUE(cache->grow(b, 12));
  EXPECT_EQ(cache->freeBlocks(), 0);
  Status full = cache->grow(b, 1);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().message(),
            "the KV cache is full: 1 more blocks of 4 tokens needed, 0 free");
}

INSTANTIATE_TEST_SUITE_P(Formats, PagedKVCacheWindow,
                         ::testing::Values("int4:group=4:window=4", "int2:group=4:window=4",
                                           "int4:group=4:window=0", "int4:group=4:window=6",
                                           "bfp4:block=4:window=4", "bfp4:block=2:window=6",
                                           "int8:window=1", "bfp8:block=2:window=4"));

// The bytes lathe-run reports for a sequence of a windowed row format: its
// quantized slots at their packed size, the rest at f32's.
TEST(PagedKVCacheCompressed, WindowedRowFormatBytes) {
  KVLayout layout = smallLayout(8);
  layout.width = 8;
  layout.format = *formats::resolveKvFormat(*formats::parseKvFormat("bfp4:block=4:window=5"), 4);
  EXPECT_EQ(layout.rowBytes(), 2u * 3);
  EXPECT_EQ(layout.tokenBytes(), 2u * 2 * 6);
  EXPECT_EQ(layout.windowTokenBytes(), 2u * 2 * 8 * 4);
  // 13 slots: the grow to 13 sealed the whole blocks before 13 - 5 = 8.
  EXPECT_EQ(layout.quantizedSlots(13), 8);
  EXPECT_EQ(layout.sequenceBytes(13), 8.0 * 24 + 5.0 * 128);
  EXPECT_EQ(layout.quantizedSlots(4), 0);
  EXPECT_EQ(layout.totalBytes(), size_t(2) * 2 * 32 * (6 + 32));
  // Without a window: every slot packed, no window pool.
  layout.format.window = 0;
  EXPECT_EQ(layout.sequenceBytes(13), 13.0 * 24);
  EXPECT_EQ(layout.windowTokenBytes(), 0u);
  EXPECT_EQ(layout.totalBytes(), size_t(2) * 2 * 32 * 6);
}

TEST(PagedKVCacheCompressed, KiviNeedsBlocksOfItsGroup) {
  HostDevice device;
  KVLayout layout = smallLayout(8);
  layout.width = 8;
  layout.format = *formats::resolveKvFormat(*formats::parseKvFormat("int4:group=8"), 4);
  auto c = PagedKVCache::create(device, layout, 10);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().message(),
            "KV cache: int4:group=8:window=8 needs blocks of its key group (8 slots), not 4");
}

// Committing nothing at the sequence's length is allowed and changes nothing.
TEST_F(PagedKVCacheTest, CommitAtTheLengthIsANoOp) {
  SequenceId a = cache->addSequence();
  ASSERT_TRUE(cache->grow(a, 6));
  EXPECT_TRUE(cache->commit(a, 6, {}));
  EXPECT_EQ(cache->length(a), 6);
}

// Two kept slots moved into the same shared block copy that block once: the
// commit fits in the one free block left, and the fork keeps its own rows.
TEST_F(PagedKVCacheTest, CommitCopiesASharedBlockOnceForSeveralMoves) {
  SequenceId a = cache->addSequence();
  ASSERT_TRUE(cache->grow(a, 8));
  fill(a, 0, 8, 1);
  auto b = cache->fork(a);
  ASSERT_TRUE(b);
  SequenceId filler = cache->addSequence();
  ASSERT_TRUE(cache->grow(filler, 20));
  ASSERT_EQ(cache->freeBlocks(), 1);
  const int64_t kept[] = {5, 6};
  ASSERT_TRUE(cache->commit(a, 4, kept));
  EXPECT_EQ(slotOf(a, 4), 5.0f);
  EXPECT_EQ(slotOf(a, 5), 6.0f);
  EXPECT_EQ(slotOf(*b, 4), 4.0f);
}

// Sealing a window block that a fork shares keeps its reference count:
// removing one sequence leaves the other's blocks in use.
TEST_P(PagedKVCacheWindow, SealingASharedBlockKeepsItsReferences) {
  SequenceId a = cache->addSequence();
  ASSERT_TRUE(cache->grow(a, 10));
  auto b = cache->fork(a);
  ASSERT_TRUE(b);
  ASSERT_TRUE(cache->grow(a, std::max<int64_t>(1, 8 + layout.format.window - 10 + 1)));
  ASSERT_FALSE(inWindow(*b, 7));
  cache->removeSequence(a);
  EXPECT_EQ(cache->usedBlocks(), 3); // b still holds its 3 blocks
}

// Rolled back into a sealed block it holds alone, a sequence grows again
// with no free block: the sealed block is swapped for a window one.
TEST_P(PagedKVCacheWindow, GrowingBackIntoASealedBlockNeedsNoFreeBlock) {
  SequenceId a = cache->addSequence();
  for (int i = 0; i < 32; ++i)
    ASSERT_TRUE(cache->grow(a, 1));
  cache->truncate(a, 9);
  ASSERT_FALSE(inWindow(a, 8));
  SequenceId c = cache->addSequence();
  ASSERT_TRUE(cache->grow(c, 20));
  ASSERT_EQ(cache->freeBlocks(), 0);
  EXPECT_TRUE(cache->grow(a, 1)); // the quantized block is swapped for a window one
}

// A windowed cache whose bytes the host cannot reach (a GPU's) seals and
// unseals through its executable's codec (CudaExecutable's kernels): the
// cache hands it the blocks its bookkeeping moves, and refuses to be made
// without one.
class RemoteDevice final : public backend::Device {
  class RemoteBuffer final : public backend::Buffer {
  public:
    explicit RemoteBuffer(size_t n) : n(n) {}
    size_t size() const override { return n; }
    uint8_t *hostData() override { return nullptr; }
    size_t n;
  };

public:
  std::string name() const override { return "remote"; }
  Expected<std::unique_ptr<backend::Buffer>> allocate(size_t bytes) override {
    return std::unique_ptr<backend::Buffer>(new RemoteBuffer(bytes));
  }
  void copy(backend::Buffer &, size_t, size_t, size_t) override { ++copies; }
  int copies = 0;
};

struct RecordingCodec final : KvDeviceCodec {
  void seal(backend::Buffer &, const KVLayout &, int32_t window, int32_t sealed) override {
    seals.emplace_back(window, sealed);
  }
  void unseal(backend::Buffer &, const KVLayout &, int32_t from, int32_t to,
              int64_t rows) override {
    unseals.push_back({from, to, rows});
  }
  void copyRows(backend::Buffer &, const KVLayout &, std::span<const RowMove> moves) override {
    ++rowCopyCalls;
    for (const RowMove &move : moves)
      rowCopies.emplace_back(move.to, move.from);
  }
  int rowCopyCalls = 0;
  std::vector<std::pair<int32_t, int32_t>> seals;
  std::vector<std::array<int64_t, 3>> unseals;
  std::vector<std::pair<int64_t, int64_t>> rowCopies;
};

TEST(PagedKVCacheCodec, SealsAndUnsealsThroughTheCodecWhereTheHostCannotReach) {
  RemoteDevice device;
  KVLayout layout = smallLayout(4);
  layout.width = 8;
  layout.format = *formats::resolveKvFormat(*formats::parseKvFormat("int4:group=4:window=4"), 4);
  layout.blockSize = 4;
  auto refused = PagedKVCache::create(device, layout, 16);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("seals its blocks"), std::string::npos)
      << refused.error().message();

  auto codec = std::make_shared<RecordingCodec>();
  auto made = PagedKVCache::create(device, layout, 16, codec);
  ASSERT_TRUE(made) << made.error().message();
  PagedKVCache &cache = **made;
  SequenceId a = cache.addSequence();
  ASSERT_TRUE(cache.grow(a, 8)); // two window blocks, nothing older than the window yet
  EXPECT_TRUE(codec->seals.empty());
  const int32_t first = cache.blockTable(a)[0];
  EXPECT_GE(first, layout.blocks); // a window block
  ASSERT_TRUE(cache.grow(a, 1));   // slots 0-3 are now older than the newest 4 of 9
  ASSERT_EQ(codec->seals.size(), 1u);
  EXPECT_EQ(codec->seals[0].first, first);
  EXPECT_EQ(codec->seals[0].second, cache.blockTable(a)[0]);
  EXPECT_LT(cache.blockTable(a)[0], layout.blocks); // the sealed block took its place
  EXPECT_LT(cache.row(a, 3), layout.rows());
  // Rolled back into the sealed block and written again: its first 2 rows
  // are decoded into a window block of the sequence's own.
  const int32_t sealed = cache.blockTable(a)[0];
  cache.truncate(a, 2);
  ASSERT_TRUE(cache.grow(a, 1));
  ASSERT_EQ(codec->unseals.size(), 1u);
  EXPECT_EQ(codec->unseals[0][0], sealed);
  EXPECT_EQ(codec->unseals[0][1], cache.blockTable(a)[0]);
  EXPECT_EQ(codec->unseals[0][2], 2);
  EXPECT_GE(cache.blockTable(a)[0], layout.blocks);
  EXPECT_EQ(codec->seals.size(), 1u);

  // A cache without a window never calls it.
  KVLayout plain = smallLayout(4);
  auto unwindowed = PagedKVCache::create(device, plain, 16, codec);
  ASSERT_TRUE(unwindowed) << unwindowed.error().message();
  SequenceId b = (*unwindowed)->addSequence();
  ASSERT_TRUE((*unwindowed)->grow(b, 16));
  EXPECT_EQ(codec->seals.size(), 1u);
  EXPECT_EQ(codec->unseals.size(), 1u);
}

TEST(PagedKVCacheCodec, CompressedRowsMoveThroughTheCodecWholeBlocksAsBytes) {
  // A device that keeps a compressed block's rows its own way (the GPU's:
  // by KV head) copies single rows through the codec; an f32 cache's rows,
  // and whole blocks (copy on write), stay byte copies.
  RemoteDevice device;
  KVLayout layout = smallLayout(8);
  layout.width = 8;
  layout.format = *formats::resolveKvFormat(*formats::parseKvFormat("bfp4:block=8:window=0"), 8);
  auto codec = std::make_shared<RecordingCodec>();
  auto made = PagedKVCache::create(device, layout, 16, codec);
  ASSERT_TRUE(made) << made.error().message();
  PagedKVCache &cache = **made;
  SequenceId a = cache.addSequence();
  ASSERT_TRUE(cache.grow(a, 3));
  ASSERT_TRUE(cache.grow(a, 4)); // a tree of 4 nodes in slots 3-6
  const int64_t kept[] = {4, 6}; // its accepted path: slots 4 and 6 move to 3 and 4
  const int32_t to3 = cache.row(a, 3), to4 = cache.row(a, 4), from4 = cache.row(a, 4),
                from6 = cache.row(a, 6);
  device.copies = 0;
  ASSERT_TRUE(cache.commit(a, 3, kept));
  ASSERT_EQ(codec->rowCopies.size(), 2u);
  EXPECT_EQ(codec->rowCopyCalls, 1); // the commit's moves in one call, in order
  EXPECT_EQ(codec->rowCopies[0], std::make_pair(int64_t(to3), int64_t(from4)));
  EXPECT_EQ(codec->rowCopies[1], std::make_pair(int64_t(to4), int64_t(from6)));
  EXPECT_EQ(device.copies, 0);
  EXPECT_EQ(cache.length(a), 5);
  EXPECT_TRUE(codec->seals.empty());
  // A commit that moves nothing calls nothing.
  ASSERT_TRUE(cache.grow(a, 2));
  const int64_t inPlace[] = {5};
  ASSERT_TRUE(cache.commit(a, 5, inPlace));
  EXPECT_EQ(codec->rowCopyCalls, 1);
  EXPECT_EQ(cache.length(a), 6);
  // A shared block written into is copied whole, as bytes.
  auto forked = cache.fork(a);
  ASSERT_TRUE(forked);
  ASSERT_TRUE(cache.grow(*forked, 1));
  EXPECT_GT(device.copies, 0);
  EXPECT_EQ(codec->rowCopies.size(), 2u);

  // An f32 cache's rows are byte copies, codec or not.
  auto plain = PagedKVCache::create(device, smallLayout(8), 16, codec);
  ASSERT_TRUE(plain);
  SequenceId b = (*plain)->addSequence();
  ASSERT_TRUE((*plain)->grow(b, 7));
  device.copies = 0;
  ASSERT_TRUE((*plain)->commit(b, 3, kept));
  EXPECT_EQ(codec->rowCopies.size(), 2u);
  EXPECT_EQ(codec->rowCopyCalls, 1);
  EXPECT_EQ(device.copies, 2 * 2 * 2); // 2 rows x 2 layers x keys and values
}

} // namespace
} // namespace lathe::kv
