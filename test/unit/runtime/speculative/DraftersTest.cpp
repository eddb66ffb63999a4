#include "runtime/speculative/NgramDrafter.h"
#include "runtime/speculative/SuffixIndex.h"
#include "runtime/speculative/TokenRecycling.h"
#include "runtime/speculative/TreeDrafter.h"

#include "runtime/sampling/Sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <random>
#include <unistd.h>

namespace lathe::speculative {
namespace {

using Chains = std::vector<std::vector<int32_t>>;

TEST(NgramDrafter, LongestMatchFirstThenMostRecent) {
  //                          0  1  2  3  4  5  6  7  8  9 10 11 12
  const std::vector<int32_t> t{1, 2, 3, 4, 9, 2, 3, 5, 6, 7, 1, 2, 3};
  NgramOptions o;
  o.maxMatch = 3;
  o.minMatch = 1;
  o.maxChains = 8;
  // "1 2 3" occurs at 0; "2 3" also at 5; "3" also at 2 and 6 (used).
  EXPECT_EQ(ngramContinuations(t, 3, o), (Chains{{4, 9, 2}, {5, 6, 7}}));
  o.maxChains = 1;
  EXPECT_EQ(ngramContinuations(t, 3, o), (Chains{{4, 9, 2}}));
  o.maxChains = 8;
  o.minMatch = 3;
  EXPECT_EQ(ngramContinuations(t, 2, o), (Chains{{4, 9}}));
}

TEST(NgramDrafter, ContinuationsStopAtTheEndOfTheText) {
  const std::vector<int32_t> t{5, 6, 5, 6, 5};
  NgramOptions o;
  o.maxMatch = 2;
  o.minMatch = 2;
  // "6 5" at 1..2 continues "6 5"; the text ends there.
  EXPECT_EQ(ngramContinuations(t, 4, o), (Chains{{6, 5}}));
  EXPECT_TRUE(ngramContinuations(std::vector<int32_t>{5}, 4, o).empty());
  EXPECT_TRUE(ngramContinuations(std::vector<int32_t>{1, 2, 3, 4}, 4, o).empty());
  EXPECT_TRUE(ngramContinuations(t, 0, o).empty());
}

TEST(NgramDrafter, SuffixContinuationsCountWhatFollowed) {
  // "1 2" was followed by "3 4" twice and "5 1" once; the longest suffix
  // that occurred before ("1 2", not "9 1 2") is the match.
  const std::vector<int32_t> t{1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 9, 1, 2};
  NgramOptions o;
  o.maxMatch = 3;
  o.minMatch = 1;
  const ContinuationTrie trie = suffixContinuations(t, 2, o);
  EXPECT_EQ(trie.match, 2);
  EXPECT_EQ(trie.counts[0], 3);
  ASSERT_EQ(trie.children[0].size(), 2u);
  const int32_t three = trie.children[0][0], five = trie.children[0][1];
  EXPECT_EQ(trie.tokens[three], 3);
  EXPECT_EQ(trie.counts[three], 2);
  EXPECT_EQ(trie.tokens[five], 5);
  EXPECT_EQ(trie.counts[five], 1);
  ASSERT_EQ(trie.children[three].size(), 1u);
  EXPECT_EQ(trie.tokens[trie.children[three][0]], 4);
  // Continuations are cut to the length asked for.
  ASSERT_EQ(trie.children[five].size(), 1u);
  EXPECT_TRUE(trie.children[trie.children[five][0]].empty());

  o.maxOccurrences = 1; // the most recent only
  const ContinuationTrie recent = suffixContinuations(t, 2, o);
  EXPECT_EQ(recent.counts[0], 1);
  ASSERT_EQ(recent.children[0].size(), 1u);
  EXPECT_EQ(recent.tokens[recent.children[0][0]], 3);

  EXPECT_EQ(suffixContinuations(std::vector<int32_t>{1, 2, 3}, 4, o).match, 0);
}

/// Every occurrence of `suffix` in `index`, most recent first, with at
/// most `length` tokens of what followed.
Chains occurrencesOf(const SuffixIndex &index, std::vector<int32_t> suffix, int64_t length) {
  Chains out;
  index.occurrences(suffix, length, [&](std::span<const int32_t> c) {
    out.emplace_back(c.begin(), c.end());
    return true;
  });
  return out;
}

TEST(SuffixIndex, FindsOccurrencesAcrossTextsMostRecentFirst) {
  SuffixIndex index;
  EXPECT_TRUE(index.newest().empty());
  index.add(std::vector<int32_t>{1, 2, 3, 4, 1, 2, 5});
  index.add(std::vector<int32_t>{7, 1, 2});     // ends right after the match
  index.add(std::vector<int32_t>{9, 1, 2, 3, 6}); // the newest
  EXPECT_EQ(index.size(), 15);
  EXPECT_EQ(index.texts(), 3u);
  EXPECT_EQ(std::vector<int32_t>(index.newest().begin(), index.newest().end()),
            (std::vector<int32_t>{9, 1, 2, 3, 6}));
  // Newest text first; a continuation stops at its text's end (empty for
  // the second text), and at `length`.
  EXPECT_EQ(occurrencesOf(index, {1, 2}, 2), (Chains{{3, 6}, {}, {5}, {3, 4}}));
  // A longer suffix narrows the matches; one longer than any text's
  // tokens before the pair matches nothing.
  EXPECT_EQ(occurrencesOf(index, {9, 1, 2}, 8), (Chains{{3, 6}}));
  EXPECT_EQ(occurrencesOf(index, {4, 1, 2}, 8), (Chains{{5}}));
  EXPECT_TRUE(occurrencesOf(index, {0, 9, 1, 2}, 8).empty());
  // Matches never span two texts: "5 7" is the end of one and the start of
  // the next.
  EXPECT_TRUE(occurrencesOf(index, {5, 7}, 8).empty());
  EXPECT_TRUE(occurrencesOf(index, {2}, 8).empty()); // one token: not looked up
  // The visitor stops the walk.
  int visits = 0;
  index.occurrences(std::vector<int32_t>{1, 2}, 4, [&](std::span<const int32_t>) {
    return ++visits < 2;
  });
  EXPECT_EQ(visits, 2);
}

TEST(SuffixIndex, DropsTheOldestTextsPastItsCapacity) {
  SuffixIndex index(10);
  index.add(std::vector<int32_t>{1, 2, 3});
  index.add(std::vector<int32_t>{4, 5, 6});
  index.add(std::vector<int32_t>{7, 8, 9});
  EXPECT_EQ(index.size(), 9);
  // 9 + 4 > 10: the oldest go until 3/4 of the capacity holds the rest.
  index.add(std::vector<int32_t>{1, 2, 10, 11});
  EXPECT_LE(index.size(), 10);
  const auto texts = index.contents();
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_EQ(std::vector<int32_t>(texts[0].begin(), texts[0].end()),
            (std::vector<int32_t>{7, 8, 9}));
  EXPECT_EQ(std::vector<int32_t>(texts[1].begin(), texts[1].end()),
            (std::vector<int32_t>{1, 2, 10, 11}));
  // The dropped text's pairs are gone from the index, the kept ones found.
  EXPECT_EQ(occurrencesOf(index, {1, 2}, 4), (Chains{{10, 11}}));
  EXPECT_TRUE(occurrencesOf(index, {4, 5}, 4).empty());
  EXPECT_EQ(occurrencesOf(index, {7, 8}, 4), (Chains{{9}}));
  // A text longer than the capacity keeps its end.
  index.add(std::vector<int32_t>(25, 3));
  EXPECT_EQ(index.size(), 10);
  EXPECT_EQ(index.texts(), 1u);
  // Every text added is counted, the dropped ones too.
  EXPECT_EQ(index.added(), 5);
}

TEST(SuffixIndex, SuffixContinuationsReadEarlierTextsAfterTheirOwn) {
  SuffixIndex history;
  history.add(std::vector<int32_t>{5, 1, 2, 8, 9});
  history.add(std::vector<int32_t>{6, 1, 2, 3, 7});
  NgramOptions o;
  o.maxMatch = 3;
  o.minMatch = 2;
  // The text's own "1 2" ran on "3 4"; the newest earlier text's "1 2 3 7",
  // the oldest's "1 2 8 9".
  const std::vector<int32_t> text{1, 2, 3, 4, 0, 1, 2};
  const ContinuationTrie trie = suffixContinuations(text, 2, o, &history);
  EXPECT_EQ(trie.match, 2);
  EXPECT_EQ(trie.counts[0], 3);
  ASSERT_EQ(trie.children[0].size(), 2u);
  const int32_t three = trie.children[0][0], eight = trie.children[0][1];
  EXPECT_EQ(trie.tokens[three], 3);
  EXPECT_EQ(trie.counts[three], 2);
  EXPECT_EQ(trie.tokens[eight], 8);
  // The longest suffix that occurred anywhere wins: "6 1 2" only in the
  // history, though the text itself has "1 2".
  const std::vector<int32_t> six{4, 6, 1, 2};
  const ContinuationTrie longer = suffixContinuations(six, 2, o, &history);
  EXPECT_EQ(longer.match, 3);
  EXPECT_EQ(longer.counts[0], 1);
  // A whole text as the suffix can match too (it has no earlier occurrence
  // of its own).
  const ContinuationTrie whole = suffixContinuations(std::vector<int32_t>{1, 2}, 2, o, &history);
  EXPECT_EQ(whole.match, 2);
  EXPECT_EQ(whole.counts[0], 2);
  // Without the history, nothing.
  EXPECT_EQ(suffixContinuations(std::vector<int32_t>{1, 2}, 2, o).match, 0);
}

void expectSameTrie(const ContinuationTrie &a, const ContinuationTrie &b, const std::string &what) {
  EXPECT_EQ(a.match, b.match) << what;
  EXPECT_EQ(a.tokens, b.tokens) << what;
  EXPECT_EQ(a.parents, b.parents) << what;
  EXPECT_EQ(a.counts, b.counts) << what;
  EXPECT_EQ(a.children, b.children) << what;
}

TEST(TextIndex, FindsTheTextsOwnOccurrencesAsTheScanDoes) {
  // Texts of a few ids (many repeats) growing token by token, with and
  // without earlier texts, matches of 1-4 tokens (1 is scanned either
  // way) and few or many occurrences counted: the index gives the scan's
  // trie every time.
  std::mt19937 rng(5);
  SuffixIndex history;
  for (int t = 0; t < 20; ++t) {
    std::vector<int32_t> text(30);
    for (int32_t &x : text) x = int32_t(rng() % 5);
    history.add(text);
  }
  for (int trial = 0; trial < 6; ++trial) {
    NgramOptions o;
    o.minMatch = trial % 3 == 2 ? 1 : 2;
    o.maxOccurrences = trial % 2 ? 3 : 64;
    const SuffixIndex *earlier = trial >= 3 ? &history : nullptr;
    std::vector<int32_t> text;
    TextIndex index;
    for (int i = 0; i < 300; ++i) {
      text.push_back(int32_t(rng() % (trial % 2 ? 3 : 6)));
      index.update(text);
      ASSERT_EQ(index.size(), int64_t(text.size()));
      const std::string what = fmt::format("trial {}, length {}", trial, text.size());
      expectSameTrie(suffixContinuations(text, 5, o, earlier, &index),
                     suffixContinuations(text, 5, o, earlier), what);
    }
  }
  // A text that does not extend the indexed one is indexed afresh; an
  // index behind its text is not used.
  TextIndex index;
  index.update(std::vector<int32_t>{1, 2, 3, 1, 2, 3, 1, 2});
  const std::vector<int32_t> other{4, 1, 2, 4, 1, 2};
  index.update(other);
  EXPECT_EQ(index.lastAfter(1, 2), 6); // 4 1 2 4 1 2: after positions 6 and 3
  EXPECT_EQ(index.previous(6), 3);
  EXPECT_EQ(index.previous(3), -1);
  EXPECT_EQ(index.lastAfter(2, 3), -1); // the old text's pairs are gone
  expectSameTrie(suffixContinuations(other, 3, {}, nullptr, &index),
                 suffixContinuations(other, 3), "another text");
  const std::vector<int32_t> longer{4, 1, 2, 4, 1, 2, 4, 1, 2};
  expectSameTrie(suffixContinuations(longer, 3, {}, nullptr, &index),
                 suffixContinuations(longer, 3), "an index behind its text");
}

TEST(SuffixIndex, TextsFileRoundTripsAndBadLinesAreOneLineErrors) {
  const std::string path = ::testing::TempDir() + "/lathe-texts-" + std::to_string(getpid());
  std::remove(path.c_str());
  auto none = readTextsFile(path, 100);
  ASSERT_TRUE(none) << none.error().message(); // a missing file is no texts
  EXPECT_TRUE(none->empty());
  ASSERT_TRUE(appendTextToFile(path, std::vector<int32_t>{1, 2, 3}));
  ASSERT_TRUE(appendTextToFile(path, std::vector<int32_t>{99}));
  auto texts = readTextsFile(path, 100);
  ASSERT_TRUE(texts) << texts.error().message();
  EXPECT_EQ(*texts, (Chains{{1, 2, 3}, {99}}));
  auto small = readTextsFile(path, 99); // 99 is not an id of a 99-token vocabulary
  ASSERT_FALSE(small);
  EXPECT_NE(small.error().message().find(path + ":2: expected token ids below 99"),
            std::string::npos)
      << small.error().message();
  for (const char *bad : {"1 2 x3\n", "1,2\n", "-4\n", "99999999999999999999\n"}) {
    std::ofstream(path) << bad;
    auto r = readTextsFile(path, 100);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().message().find('\n'), std::string::npos);
    EXPECT_NE(r.error().message().find(path + ":1:"), std::string::npos) << r.error().message();
  }
  std::ofstream(path) << "\n 4  5\t6 \r\n\n";
  auto spaced = readTextsFile(path, 100);
  ASSERT_TRUE(spaced) << spaced.error().message();
  EXPECT_EQ(*spaced, (Chains{{4, 5, 6}}));
  // A last line without its newline keeps its ids: the next text starts a
  // line of its own (it was glued on, 3 becoming 31).
  std::ofstream(path) << "1 2 3";
  ASSERT_TRUE(appendTextToFile(path, std::vector<int32_t>{1, 7}));
  auto unterminated = readTextsFile(path, 100);
  ASSERT_TRUE(unterminated) << unterminated.error().message();
  EXPECT_EQ(*unterminated, (Chains{{1, 2, 3}, {1, 7}}));
  std::remove(path.c_str());
}

TEST(NgramDrafter, ChainsShareNodesInTheTree) {
  auto shape = parseTreeShape("3x1x1");
  ASSERT_TRUE(shape);
  const std::vector<int32_t> t{1, 2, 7, 8, 1, 2, 7, 9, 1, 2};
  DraftTree tree(*shape, t.back(), 100);
  NgramOptions o;
  o.maxMatch = 2;
  o.minMatch = 2;
  // Continuations 7 9 1 and 7 8 1: both below one node for 7, whose one
  // child slot the first takes.
  EXPECT_EQ(draftNgrams(t, tree, o), 2);
  ASSERT_EQ(tree.children(0).size(), 1u);
  const int32_t seven = tree.children(0)[0];
  EXPECT_EQ(tree.token(seven), 7);
  ASSERT_EQ(tree.children(seven).size(), 1u);
  EXPECT_EQ(tree.token(tree.children(seven)[0]), 9);
  EXPECT_EQ(tree.size(), 4u);
}

TEST(TokenRecycling, KeepsTheTopKBestFirstLowestIdOnTies) {
  TokenRecycling table(8, 3);
  EXPECT_TRUE(table.successors(2).empty());
  const std::vector<float> logits{0.5f, 3.0f, -1.0f, 3.0f, 2.0f, 0.0f, 2.5f, 1.0f};
  table.update(2, logits);
  const auto s = table.successors(2);
  EXPECT_EQ(std::vector<int32_t>(s.begin(), s.end()), (std::vector<int32_t>{1, 3, 6}));
  // The latest logits replace the row.
  table.update(2, std::vector<float>{9, 0, 0, 0, 0, 0, 0, 8});
  const auto t = table.successors(2);
  EXPECT_EQ(std::vector<int32_t>(t.begin(), t.end()), (std::vector<int32_t>{0, 7, 1}));
  EXPECT_TRUE(table.successors(-1).empty());
  EXPECT_TRUE(table.successors(8).empty());
}

TEST(TokenRecycling, TopKOfAFullVocabularyMatchesASort) {
  // 32000 logits with many ties and a NaN: the chunked scan keeps what a
  // sort by score (the lower id first on ties) keeps.
  const int64_t vocab = 32000;
  TokenRecycling table(vocab, 8);
  std::vector<float> logits(vocab);
  uint64_t state = 3;
  for (float &l : logits)
    l = float(splitmix64Next(state) % 4000) * 0.01f;
  logits[31999] = 45.0f;
  logits[12345] = std::nanf("");
  table.update(5, logits);
  std::vector<int32_t> ids(vocab);
  for (int32_t i = 0; i < vocab; ++i)
    ids[i] = i;
  ids.erase(ids.begin() + 12345);
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  ids.resize(8);
  const auto got = table.successors(5);
  EXPECT_EQ(std::vector<int32_t>(got.begin(), got.end()), ids);
}

TEST(TokenRecycling, TopKMatchesASortWhateverTheOrder) {
  // The scan skips runs of 64 by the k-th best so far: rows that
  // rise (every value beats it), fall, repeat one value, hold NaN and
  // infinities, and end in a partial run, for several k.
  uint64_t state = 11;
  for (int trial = 0; trial < 24; ++trial) {
    const int64_t vocab = 1 + int64_t(splitmix64Next(state) % 700);
    const int32_t k = 1 + int32_t(splitmix64Next(state) % 9);
    std::vector<float> logits(static_cast<size_t>(vocab));
    for (int64_t i = 0; i < vocab; ++i) {
      switch (trial % 4) {
      case 0: logits[i] = float(i); break;            // rising
      case 1: logits[i] = float(vocab - i); break;    // falling
      case 2: logits[i] = 1.5f; break;                // all tied
      default: logits[i] = float(splitmix64Next(state) % 50) - 25.0f;
      }
      const uint64_t r = splitmix64Next(state) % 37;
      if (r == 0)
        logits[i] = std::nanf("");
      else if (r == 1)
        logits[i] = -INFINITY;
      else if (r == 2)
        logits[i] = INFINITY;
    }
    TokenRecycling table(vocab, k);
    table.update(0, logits);
    std::vector<int32_t> ids;
    for (int32_t i = 0; i < vocab; ++i)
      if (!std::isnan(logits[i]))
        ids.push_back(i);
    std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
      return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
    });
    ids.resize(std::min<size_t>(ids.size(), size_t(k)));
    const auto got = table.successors(0);
    EXPECT_EQ(std::vector<int32_t>(got.begin(), got.end()), ids) << "trial " << trial;
  }
}

TEST(TokenRecycling, RowsWrittenInAnyOrderReadBackAsLastWritten) {
  // Rows are kept densely in the order first written: thousands of them,
  // rewritten out of order, each reads back its latest successors, and a
  // row never written reads as none.
  const int64_t vocab = 4096;
  TokenRecycling table(vocab, 2);
  std::vector<float> logits(static_cast<size_t>(vocab), 0.0f);
  auto write = [&](int32_t token, int32_t best, int32_t previous) {
    logits[size_t(best)] = 5.0f;
    logits[size_t((best + 1) % vocab)] = 4.0f;
    table.update(token, logits, previous);
    logits[size_t(best)] = logits[size_t((best + 1) % vocab)] = 0.0f;
  };
  for (int32_t t = 0; t < vocab; t += 2)
    write(t, (t * 7) % vocab, (t + 1) % vocab);
  for (int32_t t = vocab - 2; t >= 0; t -= 6)
    write(t, (t * 3) % vocab, (t + 1) % vocab);
  int32_t pairsFound = 0;
  for (int32_t t = 0; t < vocab; ++t) {
    const auto got = table.successors(t);
    if (t % 2) {
      EXPECT_TRUE(got.empty());
      continue;
    }
    const int32_t best = (vocab - 2 - t) % 6 == 0 ? (t * 3) % vocab : (t * 7) % vocab;
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0], best);
    EXPECT_EQ(got[1], (best + 1) % vocab);
    // A pair's row is gone where a later pair took its slot (2048 pairs in
    // 65536 slots: a few dozen); else it is the latest.
    const auto pair = table.pairSuccessors((t + 1) % vocab, t);
    if (!pair.empty()) {
      EXPECT_EQ(pair[0], best);
      ++pairsFound;
    }
  }
  EXPECT_GT(pairsFound, 1900);
}

TEST(TokenRecycling, KeysRowsByPairsToo) {
  TokenRecycling table(8, 2);
  table.update(2, std::vector<float>{0, 5, 0, 0, 0, 0, 4, 0}, /*previous=*/7);
  table.update(2, std::vector<float>{0, 0, 0, 9, 0, 0, 0, 0}, /*previous=*/6);
  const auto after72 = table.pairSuccessors(7, 2);
  EXPECT_EQ(std::vector<int32_t>(after72.begin(), after72.end()), (std::vector<int32_t>{1, 6}));
  const auto p = table.pairProbabilities(7, 2);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_NEAR(p[0], 1 / (1 + std::exp(-1.0)), 1e-6);
  EXPECT_EQ(table.pairSuccessors(6, 2)[0], 3);
  EXPECT_EQ(table.successors(2)[0], 3); // the latest, whatever came before
  EXPECT_TRUE(table.pairSuccessors(5, 2).empty());
  EXPECT_TRUE(table.pairSuccessors(-1, 2).empty());
}

TEST(TokenRecycling, ExpandsBreadthFirstToTheShape) {
  auto shape = parseTreeShape("2x2");
  ASSERT_TRUE(shape);
  TokenRecycling table(10, 2);
  auto oneHot = [](int32_t a, int32_t b) {
    std::vector<float> l(10, 0.0f);
    l[a] = 2, l[b] = 1;
    return l;
  };
  table.update(1, oneHot(2, 3));
  table.update(2, oneHot(4, 5));
  // Token 3 has no row: its node stays a leaf.
  DraftTree tree(*shape, 1, 100);
  EXPECT_EQ(table.expand(tree), 4);
  EXPECT_EQ(tree.tokens(), (std::vector<int32_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(tree.parents(), (std::vector<int32_t>{-1, 0, 0, 1, 1}));
}

TEST(TokenRecycling, FillsWhatTheNgramsLeft) {
  auto shape = parseTreeShape("2x1");
  ASSERT_TRUE(shape);
  TokenRecycling table(10, 2);
  std::vector<float> l(10, 0.0f);
  l[6] = 3, l[4] = 2;
  table.update(3, l);
  DraftTree tree(*shape, 3, 100);
  tree.addChain(0, std::vector<int32_t>{4, 5}); // an n-gram continuation
  EXPECT_EQ(table.expand(tree), 1);
  // The n-gram child stays first; 6 takes the second slot, 4 is there.
  EXPECT_EQ(tree.tokens(), (std::vector<int32_t>{3, 4, 5, 6}));
}

} // namespace
} // namespace lathe::speculative

namespace lathe::speculative {
namespace {

std::vector<float> peaked(int64_t vocab, int32_t best, float margin) {
  std::vector<float> l(size_t(vocab), 0.0f);
  l[best] = margin;
  return l;
}

TEST(TreeDrafter, DraftsNgramChainsAndConfidentSuccessors) {
  auto shape = parseTreeShape("2x1x1");
  ASSERT_TRUE(shape);
  DraftOptions o;
  o.ngram.minMatch = 2;
  o.minScore = 0.2f; // a fixed threshold: nodes cost (almost) nothing
  o.nodeCost = 0.001f;
  TreeDrafter drafter(32, *shape, o);
  // After 6 the model is sure of 8 (recycled); "4 5 6" ran on "9 10" before.
  const std::vector<int32_t> prompt{4, 5, 6, 9, 10, 4, 5, 6};
  std::vector<float> rows;
  for (int32_t t : prompt) {
    const std::vector<float> l = peaked(32, t == 6 ? 8 : 0, t == 6 ? 20.0f : 0.0f);
    rows.insert(rows.end(), l.begin(), l.end());
  }
  drafter.observePrompt(prompt, rows);
  const DraftTree tree = drafter.draft(prompt, 100);
  // Root 6 -> {8 (p ~ 1), 9 -> 10 (the n-gram chain)}; 10's successor is
  // unknown and 8's row is flat (below the threshold).
  ASSERT_EQ(tree.children(0).size(), 2u);
  EXPECT_EQ(tree.token(tree.children(0)[0]), 8);
  const int32_t nine = tree.child(0, 9);
  ASSERT_GE(nine, 0);
  EXPECT_GE(tree.child(nine, 10), 0);
  // A budget of 2 nodes keeps the best child only.
  const DraftTree small = drafter.draft(prompt, 2);
  EXPECT_EQ(small.tokens(), (std::vector<int32_t>{6, 8}));
}

TEST(TreeDrafter, DraftsFromTheTextsItRemembers) {
  auto shape = parseTreeShape("1x1x1");
  ASSERT_TRUE(shape);
  DraftOptions o;
  o.recycling = false;
  o.nodeCost = 0.001f;
  TreeDrafter drafter(32, *shape, o);
  const std::vector<int32_t> text{3, 4, 5};
  // Nothing of its own to go on: the root has no child.
  EXPECT_EQ(drafter.draft(text, 100).size(), 1u);
  drafter.remember(std::vector<int32_t>{9, 4, 5, 6, 7, 8});
  const DraftTree tree = drafter.draft(text, 100);
  EXPECT_EQ(tree.tokens(), (std::vector<int32_t>{5, 6, 7, 8}));
}

TEST(StepCostModel, FitsTheCostOfANodeFromStepsOfSeveralSizes) {
  StepCostModel model(0.2);
  EXPECT_DOUBLE_EQ(model.nodeCost(), 0.2);
  // Steps of one size say nothing about the slope: the prior stands.
  for (int i = 0; i < 40; ++i)
    model.observe(3, 1.0);
  EXPECT_FALSE(model.measured());
  EXPECT_DOUBLE_EQ(model.nodeCost(), 0.2);
  // t = 1 + 0.25 tokens: a root-only step takes 1.25, a node 0.25 of it.
  for (int i = 0; i < 200; ++i) {
    const int64_t tokens = 1 + i % 5;
    model.observe(tokens, 1.0 + 0.25 * double(tokens));
  }
  EXPECT_TRUE(model.measured());
  EXPECT_NEAR(model.nodeCost(), 0.2, 1e-3);
  // The cost changes (another machine, another build): recent steps weigh
  // most, and the fit stands while the sizes stop varying (their spread
  // decays below the bound: no slope is fitted from one size).
  for (int i = 0; i < 200; ++i) {
    const int64_t tokens = 1 + i % 4;
    model.observe(tokens, 1.0 + 1.0 * double(tokens));
  }
  EXPECT_NEAR(model.nodeCost(), 0.5, 1e-2);
  for (int i = 0; i < 400; ++i)
    model.observe(2, 3.0);
  EXPECT_NEAR(model.nodeCost(), 0.5, 1e-2);
  // Nonsense (no tokens, no time) is ignored.
  model.observe(0, 1.0);
  model.observe(3, 0.0);
  EXPECT_NEAR(model.nodeCost(), 0.5, 1e-2);
}

TEST(StepCostModel, LeavesOutAStepOfMoreTokensThanAnyBefore) {
  // The first step of 9 tokens takes 30 (the backend grows its buffers in
  // it); the rest follow t = 1 + 0.25 tokens: a node costs 0.2 of a
  // root-only step, as if that step had not been.
  StepCostModel model(0.5);
  for (int i = 0; i < 20; ++i)
    model.observe(1, 1.25);
  model.observe(9, 30.0);
  for (int i = 0; i < 40; ++i)
    model.observe(i % 2 ? 9 : 1, i % 2 ? 3.25 : 1.25);
  EXPECT_TRUE(model.measured());
  EXPECT_NEAR(model.nodeCost(), 0.2, 1e-3);
}

TEST(TreeDrafter, LearnsFromEveryBucketHowHighRawProbabilitiesRun) {
  // After 5 the table holds 3 at a raw probability of about 0.25 (a bucket
  // never drafted yet), after 6 it holds 8 at about 0.97. While nothing
  // has been judged, 3 is worth a node of cost 0.2; once 8 has been
  // drafted after 6 and refused until its own bucket gives up on it,
  // every raw probability is taken to run high, and 3 is not drafted
  // either.
  auto shape = parseTreeShape("1");
  ASSERT_TRUE(shape);
  DraftOptions o;
  o.ngrams = false;
  o.nodeCost = 0.2f;
  TreeDrafter drafter(32, *shape, o);
  const std::vector<float> afterFive = peaked(32, 3, 0.85f), afterSix = peaked(32, 8, 6.0f);
  std::vector<float> rows = afterFive;
  rows.insert(rows.end(), afterSix.begin(), afterSix.end());
  drafter.observePrompt(std::vector<int32_t>{5, 6}, rows);
  ASSERT_NEAR(drafter.recycling().probabilities(5)[0], 0.25, 0.01);
  const std::vector<int32_t> endsInFive{1, 5}, endsInSix{1, 6};
  EXPECT_EQ(drafter.draft(endsInFive, 8).tokens(), (std::vector<int32_t>{5, 3}));
  EXPECT_DOUBLE_EQ(drafter.calibration(), 1.0);
  // 8 is drafted until its own bucket's refusals outweigh its raw 0.97.
  int refused = 0;
  for (DraftTree tree = drafter.draft(endsInSix, 8); tree.size() == 2;
       tree = drafter.draft(endsInSix, 8)) {
    ASSERT_EQ(tree.tokens(), (std::vector<int32_t>{6, 8}));
    std::vector<float> logits = afterSix; // the root's row, then 8's
    logits.resize(2 * 32, 0.0f);
    drafter.observe(tree, logits, {}); // 8 refused: the target chose another
    ASSERT_LT(++refused, 40);
  }
  EXPECT_GE(refused, 2);
  EXPECT_LT(drafter.calibration(), 0.6);
  EXPECT_EQ(drafter.draft(endsInFive, 8).tokens(), (std::vector<int32_t>{5}));
}

TEST(TreeDrafter, DraftsANodeOnlyWhileItIsWorthItsCost) {
  auto shape = parseTreeShape("1x1x1x1x1x1");
  ASSERT_TRUE(shape);
  // A history that continues "1 2" with "3 4 5 6 7" every time.
  auto drafted = [&](float cost, std::vector<std::pair<int64_t, double>> steps = {}) {
    DraftOptions o;
    o.recycling = false;
    o.nodeCost = cost;
    TreeDrafter drafter(32, *shape, o);
    for (int i = 0; i < 4; ++i)
      drafter.remember(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7});
    for (auto [tokens, seconds] : steps)
      drafter.observeStep(tokens, seconds);
    return drafter.draft(std::vector<int32_t>{9, 1, 2}, 100).size() - 1;
  };
  // The chain's scores fall with depth (0.6, 0.36, 0.22, ...): cheap nodes
  // take more of it than dear ones, and a node dearer than a whole step's
  // worth of tokens is never run.
  const size_t cheap = drafted(0.01f), dear = drafted(0.3f);
  EXPECT_EQ(cheap, 5u);
  EXPECT_GE(dear, 1u);
  EXPECT_LT(dear, cheap);
  EXPECT_EQ(drafted(1.5f), 0u);
  // Measured steps replace the prior: nodes that cost nothing measurable.
  std::vector<std::pair<int64_t, double>> flat;
  for (int i = 0; i < 40; ++i)
    flat.push_back({1 + i % 6, 1.0});
  EXPECT_EQ(drafted(1.5f, flat), 5u);
}

TEST(TreeDrafter, LearnsThatRejectedDraftsAreNotWorthRunning) {
  auto shape = parseTreeShape("1x1x1x1");
  ASSERT_TRUE(shape);
  TreeDrafter drafter(16, *shape, {});
  const std::vector<int32_t> text{1, 2, 3, 1, 2, 3, 1, 2};
  size_t first = 0;
  for (int round = 0; round < 40; ++round) {
    const DraftTree tree = drafter.draft(text, 100);
    if (round == 0)
      first = tree.size();
    // The target never agrees: its logits favour token 15 everywhere.
    std::vector<float> rows;
    for (size_t n = 0; n < tree.size(); ++n) {
      const std::vector<float> l = peaked(16, 15, 1.0f);
      rows.insert(rows.end(), l.begin(), l.end());
    }
    drafter.observe(tree, rows, {});
  }
  EXPECT_GT(first, 1u); // the n-gram chain "3 1 2" was drafted at first
  const DraftTree later = drafter.draft(text, 100);
  EXPECT_EQ(later.child(0, 3), -1);
}

// A text longer than the capacity keeps its last tokens, as documented.
TEST(SuffixIndex, ALongTextKeepsItsLastTokens) {
  SuffixIndex index(10);
  std::vector<int32_t> t(25);
  std::iota(t.begin(), t.end(), 0);
  index.add(t);
  ASSERT_EQ(index.contents().size(), 1u);
  EXPECT_EQ(std::vector<int32_t>(index.contents()[0].begin(), index.contents()[0].end()),
            std::vector<int32_t>(t.begin() + 15, t.end()));
}

// A text rolled back and grown again differently is indexed afresh: no
// pair of the old text stays to be found.
TEST(TextIndex, ARolledBackTextIsIndexedAfresh) {
  TextIndex index;
  index.update(std::vector<int32_t>{5, 1, 2, 3});
  const std::vector<int32_t> b{5, 1, 2, 4, 9, 2, 4};
  index.update(b);
  EXPECT_EQ(index.lastAfter(2, 3), -1);
  expectSameTrie(suffixContinuations(b, 3, {}, nullptr, &index), suffixContinuations(b, 3),
                 "rolled back text");
}

// An index behind its text is not used: the drafts equal a scan's.
TEST(TextIndex, AnIndexBehindItsTextIsNotUsed) {
  TextIndex index;
  index.update(std::vector<int32_t>{1, 2, 3});
  const std::vector<int32_t> text{1, 2, 3, 1, 2, 7, 1, 2};
  expectSameTrie(suffixContinuations(text, 3, {}, nullptr, &index), suffixContinuations(text, 3),
                 "behind");
}

// The history is not read once the text itself gave maxOccurrences.
TEST(NgramDrafter, HistoryIsNotReadPastMaxOccurrences) {
  SuffixIndex history;
  history.add(std::vector<int32_t>{1, 2, 8});
  NgramOptions o;
  o.minMatch = 2;
  o.maxOccurrences = 1;
  const ContinuationTrie trie =
      suffixContinuations(std::vector<int32_t>{1, 2, 3, 1, 2}, 2, o, &history);
  EXPECT_EQ(trie.counts[0], 1);
}

// Token 0 is a token like any other: as the one before (its pair row is
// kept) and as a successor (a row starting with it is not empty).
TEST(TokenRecycling, TokenZeroIsAnOrdinaryToken) {
  TokenRecycling table(8, 2);
  table.update(2, std::vector<float>{9, 0, 0, 5, 0, 0, 0, 0}, /*previous=*/0);
  const auto after02 = table.pairSuccessors(0, 2);
  EXPECT_EQ(std::vector<int32_t>(after02.begin(), after02.end()), (std::vector<int32_t>{0, 3}));
  const auto after2 = table.successors(2);
  EXPECT_EQ(std::vector<int32_t>(after2.begin(), after2.end()), (std::vector<int32_t>{0, 3}));
}

// A table asked for k = 0 keeps one successor a token (k is at least 1).
TEST(TokenRecycling, KeepsAtLeastOneSuccessor) {
  TokenRecycling table(8, 0);
  table.update(2, std::vector<float>{0, 0, 0, 0, 7, 0, 0, 0});
  const auto after2 = table.successors(2);
  EXPECT_EQ(std::vector<int32_t>(after2.begin(), after2.end()), (std::vector<int32_t>{4}));
}

} // namespace
} // namespace lathe::speculative
