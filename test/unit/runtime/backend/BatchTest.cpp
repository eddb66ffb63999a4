// The batch form: what validateBatch refuses, and the rows StepLayout gives
// each token to store into and to attend to, for chains, several sequences
// and a token tree.
#include "runtime/backend/Batch.h"
#include "runtime/kv/PagedKVCache.h"

#include "test/unit/runtime/backend/HostDevice.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace lathe::backend {
namespace {

using backend::testing::HostDevice;

class BatchTest : public ::testing::Test {
protected:
  void SetUp() override {
    kv::KVLayout l;
    l.layers = 1;
    l.width = 2;
    l.blockSize = 4;
    l.blocks = 16;
    cache = kv::PagedKVCache::create(device, l, 32).take();
  }
  /// The rows token t sees, as slots of its sequence.
  std::vector<int64_t> visibleSlots(const StepLayout &layout, SequenceId seq, size_t t) {
    std::vector<int64_t> slots;
    for (int64_t p = 0; p < layout.visible[t].count(); ++p) {
      const int32_t row = layout.visible[t][p];
      for (int64_t s = 0; s < cache->length(seq); ++s)
        if (cache->row(seq, s) == row)
          slots.push_back(s);
    }
    return slots;
  }
  HostDevice device;
  std::unique_ptr<kv::PagedKVCache> cache;
};

TEST_F(BatchTest, ValidateRefusesMalformedBatches) {
  SequenceId a = cache->addSequence();
  ASSERT_TRUE(cache->grow(a, 3));
  auto message = [&](const Batch &b) {
    Status s = validateBatch(b, 100, 32, *cache);
    return s ? std::string() : s.error().message();
  };
  Batch ok;
  const int32_t ids[] = {1, 2};
  ok.addChain(a, ids, 3, Batch::Logits::Last);
  EXPECT_EQ(message(ok), "");
  EXPECT_EQ(ok.logitRows(), 1);

  EXPECT_NE(message(Batch{}).find("no tokens"), std::string::npos);
  Batch b = ok;
  b.tokens[1] = 100;
  EXPECT_NE(message(b).find("outside the vocabulary"), std::string::npos);
  b = ok;
  b.sequences = {a, 7};
  EXPECT_NE(message(b).find("no sequence 7"), std::string::npos);
  b = ok;
  b.positions[0] = 0; // the sequence holds 3 tokens
  EXPECT_NE(message(b).find("position 0, expected 3"), std::string::npos);
  b = ok;
  b.parents[0] = 1; // a later token
  EXPECT_NE(message(b).find("not an earlier token"), std::string::npos);
  b = ok;
  b.wantsLogits.pop_back();
  EXPECT_NE(message(b).find("differ in length"), std::string::npos);
  Batch longer;
  std::vector<int32_t> many(30, 5);
  longer.addChain(a, many, 3, Batch::Logits::Last);
  EXPECT_NE(message(longer).find("context of 32"), std::string::npos);
}

TEST_F(BatchTest, ChainsSeeTheirSequencesPrefix) {
  SequenceId a = cache->addSequence(), b = cache->addSequence();
  ASSERT_TRUE(cache->grow(a, 5));
  Batch batch;
  const int32_t ta[] = {1, 2, 3}, tb[] = {4, 5};
  batch.addChain(a, ta, 5, Batch::Logits::Last);
  batch.addChain(b, tb, 0, Batch::Logits::All);
  StepLayout layout;
  ASSERT_TRUE(layout.prepare(batch, *cache));
  EXPECT_EQ(cache->length(a), 8);
  EXPECT_EQ(cache->length(b), 2);
  EXPECT_EQ(layout.storeRows[0], cache->row(a, 5));
  EXPECT_EQ(layout.storeRows[2], cache->row(a, 7));
  EXPECT_EQ(layout.storeRows[3], cache->row(b, 0));
  EXPECT_EQ(visibleSlots(layout, a, 0), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(visibleSlots(layout, a, 2), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(visibleSlots(layout, b, 3), (std::vector<int64_t>{0}));
  EXPECT_EQ(visibleSlots(layout, b, 4), (std::vector<int64_t>{0, 1}));
  // Chains need no lists of their own: a count of their sequence's rows.
  for (size_t t = 0; t < batch.size(); ++t)
    EXPECT_EQ(layout.visible[t].extraCount, 0);
  EXPECT_EQ(layout.logitTokens, (std::vector<int32_t>{2, 3, 4}));
  EXPECT_EQ(layout.mostVisible, 8);
}

TEST_F(BatchTest, TreeNodesSeeTheirAncestorsOnly) {
  SequenceId a = cache->addSequence();
  ASSERT_TRUE(cache->grow(a, 2));
  // root(0) -> x(1) -> x1(3); root -> y(2) -> y1(4)
  Batch batch;
  batch.add(a, 10, 2, -1, true);
  batch.add(a, 11, 3, 0, true);
  batch.add(a, 12, 3, 0, true);
  batch.add(a, 13, 4, 1, true);
  batch.add(a, 14, 4, 2, true);
  ASSERT_TRUE(validateBatch(batch, 100, 32, *cache));
  StepLayout layout;
  ASSERT_TRUE(layout.prepare(batch, *cache));
  EXPECT_EQ(visibleSlots(layout, a, 0), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(visibleSlots(layout, a, 1), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(visibleSlots(layout, a, 2), (std::vector<int64_t>{0, 1, 2, 4}));
  EXPECT_EQ(visibleSlots(layout, a, 3), (std::vector<int64_t>{0, 1, 2, 3, 5}));
  EXPECT_EQ(visibleSlots(layout, a, 4), (std::vector<int64_t>{0, 1, 2, 4, 6}));
  EXPECT_EQ(layout.mostVisible, 5);
}

TEST_F(BatchTest, PrepareLeavesTheCacheUnchangedWhenBlocksRunOut) {
  SequenceId a = cache->addSequence(), b = cache->addSequence();
  ASSERT_TRUE(cache->grow(b, 32));
  ASSERT_TRUE(cache->grow(a, 28)); // 15 blocks of 16 in use
  Batch batch;
  std::vector<int32_t> ta(4, 1), tb(4, 1);
  SequenceId c = cache->addSequence();
  batch.addChain(a, ta, 28, Batch::Logits::Last); // fits in a's last block
  batch.addChain(c, tb, 0, Batch::Logits::Last);  // needs the 16th block
  std::vector<int32_t> td(4, 1);
  SequenceId d = cache->addSequence();
  batch.addChain(d, td, 0, Batch::Logits::Last);  // none left
  StepLayout layout;
  Status s = layout.prepare(batch, *cache);
  ASSERT_FALSE(s);
  EXPECT_EQ(cache->length(a), 28);
  EXPECT_EQ(cache->length(c), 0);
  EXPECT_EQ(cache->usedBlocks(), 15);
}

} // namespace
} // namespace lathe::backend
