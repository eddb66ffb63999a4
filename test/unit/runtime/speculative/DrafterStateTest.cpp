// The drafter's learnt state kept in a file (DrafterState.h): a drafter
// loaded from it drafts what the one that wrote it drafts, and a file that
// is not such a state, damaged, cut short or for another vocabulary is one
// line of error that changes nothing.
#include "runtime/speculative/DrafterState.h"

#include "runtime/artifact/FileHeader.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <random>
#include <unistd.h>

namespace lathe::speculative {
namespace {

std::string tempPath(const std::string &name) {
  return ::testing::TempDir() + "/lathe-" + name + "-" + std::to_string(getpid());
}

/// A drafter that has verified trees over random logits: its token and
/// pair tables hold rows, and its buckets have counts.
TreeDrafter trained(int64_t vocab, const TreeShape &shape, uint32_t seed) {
  DraftOptions o;
  o.ngrams = false;
  o.minScore = 0;
  o.nodeCost = 0.001f;
  TreeDrafter drafter(vocab, shape, o);
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 3.0f);
  std::uniform_int_distribution<int32_t> id(0, int32_t(vocab) - 1);
  std::vector<int32_t> text{id(rng), id(rng)};
  for (int step = 0; step < 300; ++step) {
    const DraftTree tree = drafter.draft(text, 100);
    std::vector<float> rows(tree.size() * size_t(vocab));
    for (float &x : rows) x = noise(rng);
    // Accept the first child, when there is one, every other step.
    std::vector<int32_t> accepted;
    if (step % 2 == 0 && !tree.children(0).empty())
      accepted.push_back(tree.children(0)[0]);
    drafter.observe(tree, rows, accepted);
    text.push_back(accepted.empty() ? id(rng) : tree.token(accepted[0]));
  }
  return drafter;
}

/// The trees a drafter drafts after each of a few texts.
std::vector<std::vector<int32_t>> draftsOf(const TreeDrafter &drafter, int64_t vocab) {
  std::vector<std::vector<int32_t>> trees;
  for (int32_t a = 0; a < int32_t(vocab); a += 7)
    for (int32_t b = 0; b < int32_t(vocab); b += 5)
      trees.push_back(drafter.draft(std::vector<int32_t>{a, b}, 100).tokens());
  return trees;
}

TEST(DrafterState, ALoadedDrafterDraftsWhatTheOneThatWroteItDrafts) {
  const TreeShape shape = *parseTreeShape("4x2x1");
  const TreeDrafter writer = trained(40, shape, 1);
  const std::string path = tempPath("drafter-state");
  ASSERT_TRUE(writeDrafterState(writer, path));
  DraftOptions o;
  o.ngrams = false;
  o.minScore = 0;
  o.nodeCost = 0.001f;
  TreeDrafter reader(40, shape, o);
  const auto before = draftsOf(reader, 40);
  auto loaded = readDrafterState(path, reader);
  ASSERT_TRUE(loaded) << loaded.error().message();
  EXPECT_TRUE(*loaded);
  const auto want = draftsOf(writer, 40);
  EXPECT_EQ(draftsOf(reader, 40), want);
  EXPECT_NE(before, want); // the cold drafter drafted otherwise
  // No temporary left behind.
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::remove(path.c_str());
}

TEST(DrafterState, AFileOfAnotherShapeKeepsWhatBothRowsHold) {
  // 12x1: rows of 12 successors; 1x1: rows of 8 (the least a table keeps).
  const TreeDrafter wide = trained(40, *parseTreeShape("12x1"), 2);
  const std::string path = tempPath("drafter-state-wide");
  ASSERT_TRUE(writeDrafterState(wide, path));
  TreeDrafter narrow(40, *parseTreeShape("1x1"), {});
  ASSERT_TRUE(readDrafterState(path, narrow));
  for (int32_t t = 0; t < 40; ++t) {
    const auto from = wide.recycling().successors(t);
    const auto got = narrow.recycling().successors(t);
    ASSERT_EQ(got.size(), std::min<size_t>(from.size(), 8)) << t;
    EXPECT_TRUE(std::equal(got.begin(), got.end(), from.begin())) << t;
    const auto p = narrow.recycling().probabilities(t);
    EXPECT_TRUE(std::equal(p.begin(), p.end(), wide.recycling().probabilities(t).begin())) << t;
  }
  // And back: the wide table takes the 8, the rest unknown.
  const std::string back = tempPath("drafter-state-narrow");
  ASSERT_TRUE(writeDrafterState(narrow, back));
  TreeDrafter wideAgain(40, *parseTreeShape("12x1"), {});
  ASSERT_TRUE(readDrafterState(back, wideAgain));
  for (int32_t t = 0; t < 40; ++t)
    EXPECT_EQ(wideAgain.recycling().successors(t).size(),
              narrow.recycling().successors(t).size());
  std::remove(path.c_str());
  std::remove(back.c_str());
}

TEST(DrafterState, BadFilesAreOneLineErrorsThatChangeNothing) {
  const TreeShape shape = *parseTreeShape("4x2x1");
  const TreeDrafter writer = trained(40, shape, 3);
  const std::string path = tempPath("drafter-state-bad");
  ASSERT_TRUE(writeDrafterState(writer, path));
  std::vector<char> good;
  {
    std::ifstream in(path, std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto write = [&](const std::vector<char> &bytes) {
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(bytes.data(), std::streamsize(bytes.size()));
  };
  auto expectError = [&](const std::string &what, const std::string &part) {
    TreeDrafter fresh(40, shape, {});
    const auto before = draftsOf(fresh, 40);
    auto r = readDrafterState(path, fresh);
    ASSERT_FALSE(r) << what;
    const std::string message = r.error().message();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(part), std::string::npos) << what << ": " << message;
    EXPECT_EQ(draftsOf(fresh, 40), before) << what;
  };
  // Missing: no state, no error.
  std::remove(path.c_str());
  TreeDrafter none(40, shape, {});
  auto missing = readDrafterState(path, none);
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);

  write({'h', 'e', 'l', 'l', 'o'});
  expectError("not a state", "not a drafter state file");
  std::vector<char> bytes = good;
  bytes[8] = 9; // the version
  write(bytes);
  expectError("another version", "version 9");
  bytes = good;
  bytes.resize(bytes.size() - 100);
  write(bytes);
  expectError("cut short", "cut short");
  bytes = good;
  bytes[bytes.size() / 2] ^= 0x10;
  write(bytes);
  expectError("a flipped bit", "checksum");
  // Contents a checksum does not catch (the checksum recomputed): a
  // successor outside the vocabulary, a pair in a slot its hash does not
  // give, a probability above 1.
  auto rewritten = [&](size_t offset, const void *value, size_t size) {
    std::vector<char> b = good;
    std::memcpy(b.data() + offset, value, size);
    const uint64_t sum = artifact::checksum(
        {reinterpret_cast<const uint8_t *>(b.data()), b.size() - sizeof(uint64_t)});
    std::memcpy(b.data() + b.size() - sizeof sum, &sum, sizeof sum);
    write(b);
  };
  const int32_t outside = 40;
  rewritten(48, &outside, 4); // token 0's first successor
  expectError("an id outside", "outside the vocabulary");
  // The last token's row: the rows before it are read and checked first,
  // and still nothing of the drafter changes.
  rewritten(48 + 39 * 64 + 7 * 4, &outside, 4);
  expectError("an id outside, late", "outside the vocabulary");
  // The counts at the end: drafted then accepted, one of each a bucket.
  uint32_t buckets;
  std::memcpy(&buckets, good.data() + 12, 4);
  const size_t drafted = good.size() - 8 - 16 * size_t(buckets);
  const size_t accepted = drafted + 8 * size_t(buckets);
  double count;
  std::memcpy(&count, good.data() + drafted, 8);
  const double more = count + 1;
  rewritten(accepted, &more, 8);
  expectError("more accepted than drafted", "acceptance counts out of range");
  const double nan = std::nan("");
  rewritten(drafted, &nan, 8);
  expectError("a count that is NaN", "acceptance counts out of range");
  const uint32_t otherBuckets = buckets + 1;
  rewritten(12, &otherBuckets, 4);
  expectError("another build's kinds of draft", "kinds of draft, this one has");
  const float above = 1.5f;
  rewritten(48 + 8 * 4, &above, 4); // token 0's first probability (k = 8)
  expectError("a probability above 1", "outside [0, 1]");
  uint32_t slot;
  const size_t firstPair = 48 + 40 * 8 * 8; // after the token table
  std::memcpy(&slot, good.data() + firstPair, 4);
  const uint32_t moved = slot ^ 1;
  rewritten(firstPair, &moved, 4);
  expectError("a pair in another slot", "not the slot of its pair");
  // Another vocabulary (the file is whole and well formed).
  TreeDrafter other(41, shape, {});
  write(good);
  auto wrongVocab = readDrafterState(path, other);
  ASSERT_FALSE(wrongVocab);
  EXPECT_NE(wrongVocab.error().message().find("40-token vocabulary; this model has 41"),
            std::string::npos)
      << wrongVocab.error().message();
  // A directory, and a file that cannot be written.
  const std::string dir = tempPath("drafter-state-dir");
  std::filesystem::create_directories(dir);
  TreeDrafter fresh(40, shape, {});
  auto directory = readDrafterState(dir, fresh);
  ASSERT_FALSE(directory);
  EXPECT_NE(directory.error().message().find("is a directory"), std::string::npos);
  Status unwritable = writeDrafterState(writer, dir + "/no/such/dir/state");
  ASSERT_FALSE(unwritable);
  EXPECT_NE(unwritable.error().message().find("cannot write"), std::string::npos);
  std::filesystem::remove_all(dir);
  std::remove(path.c_str());
}

TEST(StepCostModel, NodesCostMoreWhenSeveralSequencesShareAStep) {
  StepCostModel model(0.2);
  EXPECT_DOUBLE_EQ(model.nodeCost(1), 0.2);
  // t = a + b n with b / (a + b) = 0.2: a = 4 b. Four roots: a step's
  // fixed cost is shared by four sequences, so a node costs b / (a / 4 +
  // b) = 0.5 of one's share.
  EXPECT_NEAR(model.nodeCost(4), 0.5, 1e-12);
  EXPECT_NEAR(model.nodeCost(0), 0.2, 1e-12); // no roots counts as one
  EXPECT_LT(model.nodeCost(64), 1.0);
  EXPECT_GT(model.nodeCost(64), model.nodeCost(16));
}

} // namespace
} // namespace lathe::speculative
