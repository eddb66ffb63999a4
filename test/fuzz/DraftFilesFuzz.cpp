// Fuzzes the files speculative decoding reads from users (lathe-run's and
// lathe-serve's --draft-history and --draft-state): readTextsFile and
// readDrafterState (runtime/speculative/SuffixIndex.h, DrafterState.h) on
// an input split at its first NUL into a texts file and a state file.
// Whatever they accept must give a drafter whose trees hold only ids of the
// vocabulary, within the shape and the nodes asked for; a refused file
// must leave the drafter drafting as before.
//
// The state's checksum stops almost every mutant at the first check, so
// the mutator recomputes it in 7 mutants of 8, and in one of 4 replaces a
// state part that lost its magic with a freshly written one (a drafter
// trained on the mutator's seed), so that mutants reach the checks behind
// the checksum: sizes, ids, probabilities, pair slots, counts.
#include "FuzzInputFiles.h"

#include "runtime/artifact/FileHeader.h"
#include "runtime/speculative/DrafterState.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <vector>

extern "C" size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t maxSize);

namespace {

namespace sp = lathe::speculative;

constexpr int64_t kVocab = 16;

const sp::TreeShape &shape() {
  static const sp::TreeShape s = *sp::parseTreeShape("4x2x1");
  return s;
}

[[noreturn]] void fail(const char *what) {
  std::fprintf(stderr, "draft files: %s\n", what);
  std::abort();
}

/// A state file of a drafter that verified a few trees of random logits.
std::vector<uint8_t> freshState(unsigned seed) {
  sp::DraftOptions o;
  o.minScore = 0;
  o.nodeCost = 0.001f;
  sp::TreeDrafter drafter(kVocab, shape(), o);
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 3.0f);
  std::vector<int32_t> text{int32_t(rng() % kVocab), int32_t(rng() % kVocab)};
  for (int step = 0; step < 6; ++step) {
    const sp::DraftTree tree = drafter.draft(text, 8);
    std::vector<float> rows(tree.size() * size_t(kVocab));
    for (float &x : rows) x = noise(rng);
    drafter.observe(tree, rows, {});
    text.push_back(int32_t(rng() % kVocab));
  }
  const std::string path = lathe::fuzz::scratch().path() + "/fresh.bin";
  if (!sp::writeDrafterState(drafter, path))
    fail("cannot write a fresh state");
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Checks a tree drafted after `text` with room for `maxNodes`.
void checkTree(const sp::DraftTree &tree, int64_t maxNodes) {
  if (tree.size() < 1 || int64_t(tree.size()) > std::max<int64_t>(maxNodes, 1) ||
      int64_t(tree.size()) > shape().nodeCount())
    fail("a tree larger than its room or its shape");
  for (int32_t n = 0; n < int32_t(tree.size()); ++n) {
    if (tree.token(n) < 0 || tree.token(n) >= kVocab)
      fail("a drafted id outside the vocabulary");
    if (tree.depth(n) > int32_t(shape().branching.size()))
      fail("a node deeper than the shape");
  }
}

std::vector<std::vector<int32_t>> draftsOf(const sp::TreeDrafter &drafter) {
  std::vector<std::vector<int32_t>> trees;
  for (int32_t a = 0; a < kVocab; a += 3)
    for (int64_t room : {1, 4, 100}) {
      const std::vector<int32_t> text{a, int32_t((a * 7 + 1) % kVocab), a};
      const sp::DraftTree tree = drafter.draft(text, room);
      checkTree(tree, room);
      trees.push_back(tree.tokens());
    }
  return trees;
}

} // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t maxSize,
                                          unsigned int seed) {
  size = LLVMFuzzerMutate(data, size, maxSize);
  const auto parts = lathe::fuzz::splitAtFirstNul({data, size});
  const size_t at = parts.file ? parts.json.size() + 1 : size;
  const size_t stateSize = size - at;
  if (seed % 4 == 0 && (stateSize < 8 || std::memcmp(data + at, "LTHDRFT1", 8) != 0)) {
    const std::vector<uint8_t> state = freshState(seed);
    const size_t texts = parts.json.size();
    if (texts + 1 + state.size() <= maxSize) {
      data[texts] = 0;
      std::memcpy(data + texts + 1, state.data(), state.size());
      return texts + 1 + state.size();
    }
  }
  if (seed % 8 != 0 && stateSize > 8) {
    const uint64_t sum = lathe::artifact::checksum({data + at, stateSize - 8});
    std::memcpy(data + size - 8, &sum, 8);
  }
  return size;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const auto parts = lathe::fuzz::splitAtFirstNul({data, size});
  const auto &scratch = lathe::fuzz::scratch();
  const std::string texts = scratch.write("history.ids", parts.json);
  sp::TreeDrafter drafter(kVocab, shape(), {});
  if (auto read = sp::readTextsFile(texts, kVocab)) {
    for (const std::vector<int32_t> &text : *read) {
      for (int32_t id : text)
        if (id < 0 || id >= kVocab)
          fail("readTextsFile accepted an id outside the vocabulary");
      drafter.remember(text);
    }
  }
  if (!parts.file)
    return 0;
  const std::string state = scratch.write("state.bin", *parts.file);
  const auto before = draftsOf(drafter);
  auto loaded = sp::readDrafterState(state, drafter);
  if (!loaded) {
    if (loaded.error().message().find('\n') != std::string::npos)
      fail("an error of more than one line");
    if (draftsOf(drafter) != before)
      fail("a refused state changed the drafter");
    return 0;
  }
  draftsOf(drafter);
  return 0;
}
