// The artifact writer and loader: a round trip of a tiny hand-built model,
// and the loader's answer to every truncation and every flipped byte (an
// error message, never a crash or a silently different model).
#include "runtime/artifact/Artifact.h"
#include "runtime/artifact/ArtifactWriter.h"
#include "runtime/artifact/Artifact_generated.h"
#include "runtime/artifact/FileHeader.h"
#include "runtime/engine/Session.h"
#include "test/unit/TempFolder.h"
#include "test/unit/runtime/artifact/TinyModel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

namespace lathe::artifact {
namespace {

using test::TinyModel;

const test::TempFolder kTemp("artifact");

std::string tempFile(const std::string &name) { return kTemp.file(name); }

std::vector<char> readAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void writeAll(const std::string &path, const std::vector<char> &bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size());
}

TEST(ArtifactTest, RoundTrip) {
  TinyModel m;
  std::string path = tempFile("roundtrip.lathe");
  ASSERT_TRUE(writeArtifact(m.contents, path));
  auto a = Artifact::load(path);
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ((*a)->config().dim, 8);
  EXPECT_EQ((*a)->config().name, "tiny");
  EXPECT_EQ((*a)->producer(), "ArtifactTest");
  ASSERT_EQ((*a)->tensors().size(), m.contents.tensors.size());
  for (size_t i = 0; i < m.contents.tensors.size(); ++i) {
    auto data = (*a)->tensorData(i);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(data.data()) % kSectionAlignment, 0u);
    ASSERT_EQ(data.size(), m.contents.tensors[i].bytes.size());
    EXPECT_TRUE(std::equal(data.begin(), data.end(), m.contents.tensors[i].bytes.begin()));
  }
  const plan::KernelPlan *p = (*a)->schedule("cpu");
  ASSERT_NE(p, nullptr);
  // The schedule reads back as written: every step (StepCodec), widths and
  // the plan hash that covers them.
  EXPECT_EQ(p->steps.size(), m.contents.schedules[0].steps.size());
  EXPECT_EQ(plan::planHash(*p), plan::planHash(m.contents.schedules[0]));
  EXPECT_EQ(p->bufferWidths, m.contents.schedules[0].bufferWidths);
  EXPECT_EQ((*a)->schedule("cuda"), nullptr);
  EXPECT_TRUE((*a)->vocabulary().pieces.empty());
  // No tree compiled in (as in every artifact from before --spec-tree).
  EXPECT_FALSE(p->specTree);

  auto session = Session::create(*a);
  ASSERT_TRUE(session);
  std::vector<int32_t> tokens{1, 5, 11};
  auto logits = session->forward(tokens);
  ASSERT_TRUE(logits) << logits.error().message();
  ASSERT_EQ(logits->size(), 12u);
  std::vector<float> fromFile(logits->begin(), logits->end());
  // Bit for bit what the same contents give without the file in between
  // (the reference kernels, so the values do not depend on the machine).
  SessionOptions reference;
  reference.kernels = KernelPath::Reference;
  auto direct = Artifact::fromContents(m.contents, "in memory");
  ASSERT_TRUE(direct) << direct.error().message();
  auto fileSession = Session::create(*a, reference), memorySession =
                                                         Session::create(*direct, reference);
  ASSERT_TRUE(fileSession && memorySession);
  auto l1 = fileSession->forward(tokens);
  ASSERT_TRUE(l1);
  std::vector<float> referenceFromFile(l1->begin(), l1->end());
  auto l2 = memorySession->forward(tokens);
  ASSERT_TRUE(l2);
  EXPECT_EQ(referenceFromFile, std::vector<float>(l2->begin(), l2->end()));
  for (size_t i = 0; i < fromFile.size(); ++i)
    EXPECT_NEAR(fromFile[i], referenceFromFile[i], 1e-5f * (1 + std::fabs(referenceFromFile[i])));
  // Context is 6: three more tokens fit, a fourth does not.
  std::vector<int32_t> three{2, 3, 4};
  EXPECT_TRUE(session->forward(three));
  std::vector<int32_t> one{1};
  auto over = session->forward(one);
  ASSERT_FALSE(over);
  EXPECT_NE(over.error().message().find("context of 6"), std::string::npos);
  std::filesystem::remove(path);
}

// Data derived once per artifact (the CPU backend's repacked weights) is
// built by the first caller only, also when sessions start on several
// threads at once; a failed build (null) is not kept.
// A Hugging Face tokenizer for the 12-token model: every field set, so the
// round trip below covers every table of the section.
HFTokenizerSpec tinyHFTokenizer() {
  HFTokenizerSpec s;
  s.vocab = {"<unk>", "a", "b", "ab", "\u0120", "\u0120ab", "", "c"};
  s.merges = {{1, 2}, {4, 3}};
  s.byteFallback = true;
  s.fuseUnk = true;
  s.ignoreMerges = true;
  s.unk = 0;
  s.addedTokens = {{10, "<s>", true}, {11, "<x>", false, true, true, true}};
  s.normalizers = {{"NFC", {}, {}}};
  s.preTokenizers = {{"Split", {"\\p{L}+|\\s+"}, {}}, {"ByteLevel", {}, {0, 0}}};
  s.decoders = {{"ByteLevel", {}, {}}, {"Strip", {" "}, {1, 0}}};
  s.prefixIds = {10};
  s.suffixIds = {11};
  s.bos = 10;
  s.eos = -1;
  s.chatTemplate = "{% for m in messages %}{{ m.content }}{% endfor %}";
  return s;
}

TEST(ArtifactTest, HFTokenizerRoundTrip) {
  TinyModel m;
  m.contents.hfTokenizer = tinyHFTokenizer();
  std::string path = tempFile("hf-tokenizer.lathe");
  ASSERT_TRUE(writeArtifact(m.contents, path));
  auto a = Artifact::load(path);
  ASSERT_TRUE(a) << a.error().message();
  ASSERT_NE((*a)->hfTokenizer(), nullptr);
  EXPECT_EQ(*(*a)->hfTokenizer(), tinyHFTokenizer());
  EXPECT_TRUE((*a)->vocabulary().pieces.empty());
  // A llama2.c artifact has no HF section.
  TinyModel plain;
  ASSERT_TRUE(writeArtifact(plain.contents, tempFile("plain.lathe")));
  auto b = Artifact::load(tempFile("plain.lathe"));
  ASSERT_TRUE(b);
  EXPECT_EQ((*b)->hfTokenizer(), nullptr);
}

TEST(ArtifactTest, WriterRefusesABadHFTokenizer) {
  TinyModel m;
  m.contents.hfTokenizer = tinyHFTokenizer();
  m.contents.hfTokenizer->addedTokens.push_back({12, "<y>", true});
  Status s = writeArtifact(m.contents, tempFile("hf-bad1.lathe"));
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("tokenizer has ids up to 12, the model 12 logits"),
            std::string::npos);
  m.contents.hfTokenizer = tinyHFTokenizer();
  m.contents.hfTokenizer->preTokenizers[0].strings[0] = "(?<=a)";
  s = writeArtifact(m.contents, tempFile("hf-bad2.lathe"));
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("pre-tokenizer regex"), std::string::npos);
  m.contents.hfTokenizer = tinyHFTokenizer();
  m.contents.vocabulary.pieces = {"x"};
  s = writeArtifact(m.contents, tempFile("hf-bad3.lathe"));
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("both a llama2.c and a Hugging Face tokenizer"),
            std::string::npos);
}

TEST(ArtifactTest, DerivedDataIsBuiltOnceAndShared) {
  TinyModel m;
  auto a = Artifact::fromContents(m.contents, "tiny");
  ASSERT_TRUE(a) << a.error().message();
  std::atomic<int> builds{0};
  auto make = [&] {
    builds.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return std::static_pointer_cast<const void>(std::make_shared<int>(42));
  };
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<const void>> got(8);
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] { got[i] = (*a)->derived("key", make); });
  for (auto &t : threads) t.join();
  EXPECT_EQ(builds.load(), 1);
  for (const auto &g : got) {
    ASSERT_EQ(g, got[0]);
    EXPECT_EQ(*std::static_pointer_cast<const int>(g), 42);
  }
  EXPECT_NE((*a)->derived("other", make), got[0]);
  EXPECT_EQ(builds.load(), 2);

  int failures = 0;
  auto failing = [&] {
    ++failures;
    return std::shared_ptr<const void>();
  };
  EXPECT_EQ((*a)->derived("failing", failing), nullptr);
  EXPECT_EQ((*a)->derived("failing", failing), nullptr);
  EXPECT_EQ(failures, 2);
}

TEST(ArtifactTest, EveryTruncationIsRefused) {
  TinyModel m;
  std::string path = tempFile("full.lathe"), cut = tempFile("cut.lathe");
  ASSERT_TRUE(writeArtifact(m.contents, path));
  std::vector<char> bytes = readAll(path);
  for (size_t n = 0; n < bytes.size(); n += (n < 256 ? 1 : 13)) {
    writeAll(cut, std::vector<char>(bytes.begin(), bytes.begin() + n));
    auto a = Artifact::load(cut);
    ASSERT_FALSE(a) << "loaded a file cut to " << n << " bytes";
    EXPECT_EQ(a.error().message().rfind(cut, 0), 0u) << a.error().message();
  }
  std::filesystem::remove(path);
  std::filesystem::remove(cut);
}

TEST(ArtifactTest, EveryFlippedByteIsRefused) {
  TinyModel m;
  std::string path = tempFile("good.lathe"), bad = tempFile("flipped.lathe");
  ASSERT_TRUE(writeArtifact(m.contents, path));
  std::vector<char> bytes = readAll(path);
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::vector<char> copy = bytes;
    copy[i] ^= 0x10;
    writeAll(bad, copy);
    auto a = Artifact::load(bad);
    ASSERT_FALSE(a) << "accepted a flip at byte " << i;
  }
  std::filesystem::remove(path);
  std::filesystem::remove(bad);
}

TEST(ArtifactTest, WriterRefusesInconsistentPlans) {
  {
    TinyModel m;
    std::get<plan::MatMulStep>(m.contents.schedules[0].steps[2]).input = 42;
    Status s = writeArtifact(m.contents, tempFile("bad1.lathe"));
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message().find("step 2 (matmul): buffer 42 out of range"),
              std::string::npos)
        << s.error().message();
  }
  {
    TinyModel m; // the k projection read before anything wrote its input
    std::get<plan::MatMulStep>(m.contents.schedules[0].steps[3]).input = 7;
    Status s = writeArtifact(m.contents, tempFile("bad2.lathe"));
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message().find("before it is written"), std::string::npos);
  }
  {
    TinyModel m; // weight of the wrong width
    std::get<plan::MatMulStep>(m.contents.schedules[0].steps[14]).weight = 2;
    Status s = writeArtifact(m.contents, tempFile("bad3.lathe"));
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message().find("input width is 16"), std::string::npos)
        << s.error().message();
  }
  {
    TinyModel m;
    m.contents.config.headDim = 3;
    Status s = writeArtifact(m.contents, tempFile("bad4.lathe"));
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message().find("invalid model config"), std::string::npos);
  }
  {
    // An attention step with more heads than the config: backends size
    // their per-head scratch by the config, so it is refused. (Widths: 4
    // query heads of 2 match the step's own buffers.)
    TinyModel m;
    auto &a = std::get<plan::AttentionStep>(m.contents.schedules[0].steps[7]);
    a.heads = 4, a.kvHeads = 2, a.headDim = 2;
    Status s = writeArtifact(m.contents, tempFile("bad5.lathe"));
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message().find("differ from the config's 2, 1 of 4"),
              std::string::npos)
        << s.error().message();
  }
  {
    // Int8 is no attention precision (bf16 queries are).
    TinyModel m;
    std::get<plan::AttentionStep>(m.contents.schedules[0].steps[7]).activations =
        plan::Activations::Int8;
    Status s = writeArtifact(m.contents, tempFile("bad6q.lathe"));
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message().find("attention takes float or bf16 queries, not int8"),
              std::string::npos)
        << s.error().message();
  }
  {
    // A rope whose pair order is not a permutation per group of heads.
    TinyModel m;
    std::get<plan::RopeStep>(m.contents.schedules[0].steps[5]).pairOrder = {0, 0};
    Status s = writeArtifact(m.contents, tempFile("bad7.lathe"));
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message().find("permutation of the pairs"), std::string::npos)
        << s.error().message();
  }
  {
    // The returned buffer written last by a plain product, not the logits
    // step: it would return rows the batch did not ask for.
    TinyModel m;
    auto &steps = m.contents.schedules[0].steps;
    m.contents.tensors.push_back(m.contents.tensors[0]); // a [12, 8] weight
    steps.push_back(plan::MatMulStep{1, uint32_t(m.contents.tensors.size() - 1), 8});
    Status s = writeArtifact(m.contents, tempFile("bad6.lathe"));
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message().find("not written by its logits step"), std::string::npos)
        << s.error().message();
  }
}

// A compressed KV format (kind and block; KIVI's key group and window, a
// row format's window) is part of the schedule: it reads back as written
// and the loaded model runs with it, on both kernel paths (KIVI: past its
// window, so that the cache quantizes key groups).
TEST(ArtifactTest, CompressedKvFormatRoundTrips) {
  for (formats::KvFormat format : {formats::KvFormat{formats::KvKind::Int8, 4},
                                   formats::KvFormat{formats::KvKind::Bfp4, 2},
                                   formats::KvFormat{formats::KvKind::Bfp4, 2, 0, 2},
                                   formats::KvFormat{formats::KvKind::Int8, 4, 0, 1},
                                   formats::KvFormat{formats::KvKind::Int4, 4, 2, 1},
                                   formats::KvFormat{formats::KvKind::Int2, 4, 2, 0}}) {
    SCOPED_TRACE(formats::kvFormatName(format));
    TinyModel m;
    m.contents.schedules[0].kvFormat = format;
    std::string path = tempFile("kv.lathe");
    ASSERT_TRUE(writeArtifact(m.contents, path));
    auto a = Artifact::load(path);
    ASSERT_TRUE(a) << a.error().message();
    const plan::KernelPlan *p = (*a)->schedule("cpu");
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->kvFormat, format);
    EXPECT_EQ(p->kvElement, ElementType::F32);
    EXPECT_EQ(plan::planHash(*p), plan::planHash(m.contents.schedules[0]));
    for (KernelPath kernels : {KernelPath::Fast, KernelPath::Reference}) {
      SessionOptions options;
      options.kernels = kernels;
      auto session = Session::create(*a, options);
      ASSERT_TRUE(session) << session.error().message();
      EXPECT_EQ(session->kvCache().layout().format, format);
      std::vector<int32_t> tokens{1, 5, 11};
      auto logits = session->forward(tokens);
      ASSERT_TRUE(logits) << logits.error().message();
      for (float v : *logits) EXPECT_TRUE(std::isfinite(v));
      for (int32_t token : {3, 7, 2}) {
        auto next = session->forward(std::vector<int32_t>{token});
        ASSERT_TRUE(next) << next.error().message();
        for (float v : *next) EXPECT_TRUE(std::isfinite(v));
      }
      if (format.kivi())
        EXPECT_LT(session->kvCache().row(session->sequence(), 0),
                  session->kvCache().layout().rows()); // quantized
    }
    std::filesystem::remove(path);
  }
}

// A KV format the model's head_dim (4) cannot hold, or one that disagrees
// with the plan's element type, is refused with the reason.
TEST(ArtifactTest, WriterRefusesBadKvFormats) {
  auto refusal = [](auto change) {
    TinyModel m;
    change(m.contents.schedules[0]);
    Status s = writeArtifact(m.contents, tempFile("badkv.lathe"));
    return s ? std::string("accepted") : s.error().message();
  };
  EXPECT_NE(refusal([](plan::KernelPlan &p) { p.kvFormat = {formats::KvKind::Bfp8, 3}; })
                .find("KV format 'bfp8:block=3' does not fit head_dim 4: block=3 does not "
                      "divide head_dim 4"),
            std::string::npos);
  EXPECT_NE(refusal([](plan::KernelPlan &p) { p.kvFormat = {formats::KvKind::Int8, 2}; })
                .find("int8 has one scale per head"),
            std::string::npos);
  EXPECT_NE(refusal([](plan::KernelPlan &p) { p.kvFormat = {formats::KvKind::Bfp4, 0}; })
                .find("KV format 'bfp4:window=0' does not fit head_dim 4"),
            std::string::npos);
  EXPECT_NE(refusal([](plan::KernelPlan &p) { p.kvFormat = {formats::KvKind::Int2, 2, 4, 0}; })
                .find("value block 2 does not divide head_dim 4 in whole bytes"),
            std::string::npos);
  EXPECT_NE(refusal([](plan::KernelPlan &p) { p.kvFormat = {formats::KvKind::Int4, 4, 0, 0}; })
                .find("does not fit head_dim 4"),
            std::string::npos);
  EXPECT_NE(refusal([](plan::KernelPlan &p) {
              p.kvFormat = formats::plainKvFormat(ElementType::F16);
            }).find("KV element f32 disagrees with its KV format 'f16'"),
            std::string::npos);
  // The cuda target takes KIVI's caches and f32 windows too
  // (CudaWindowedKv.cuh).
  EXPECT_EQ(refusal([](plan::KernelPlan &p) {
              p.target = "cuda";
              p.kvFormat = {formats::KvKind::Int4, 4, 2, 0};
            }),
            "accepted");
  EXPECT_EQ(refusal([](plan::KernelPlan &p) {
              p.target = "cuda";
              p.kvFormat = {formats::KvKind::Bfp4, 2, 0, 8};
            }),
            "accepted");
}

/// A copy of the artifact `bytes` whose scalar of type T at `field` of the
/// flatbuffer table `object` (a table inside `bytes`) `edit` changed, with
/// the description's checksum recomputed so that the change reaches the
/// checks behind it.
template <typename T, typename Edit>
std::vector<char> editField(const std::vector<char> &bytes, const void *object,
                            flatbuffers::voffset_t field, Edit edit) {
  FileHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  // Generated tables derive privately from flatbuffers::Table, at offset 0.
  const auto *table = static_cast<const flatbuffers::Table *>(object);
  const size_t at = table->GetAddressOf(field) - reinterpret_cast<const uint8_t *>(bytes.data());
  std::vector<char> copy = bytes;
  T value;
  std::memcpy(&value, &copy[at], sizeof value);
  edit(value);
  std::memcpy(&copy[at], &value, sizeof value);
  h.descriptionChecksum = checksum(
      {reinterpret_cast<const uint8_t *>(copy.data() + h.descriptionOffset), h.descriptionSize});
  std::memcpy(copy.data(), &h, sizeof h);
  return copy;
}

const fb::Model *descriptionOf(const std::vector<char> &bytes) {
  FileHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  return fb::GetModel(bytes.data() + h.descriptionOffset);
}

// The token tree the step was compiled to verify (lathe-compile
// --spec-tree) reads back as written; it changes no step, so not the hash.
TEST(ArtifactTest, SpecTreeRoundTrips) {
  TinyModel m;
  m.contents.schedules[0].specTree = *speculative::parseTreeShape("2x1");
  std::string path = tempFile("spectree.lathe");
  ASSERT_TRUE(writeArtifact(m.contents, path));
  auto a = Artifact::load(path);
  ASSERT_TRUE(a) << a.error().message();
  const plan::KernelPlan *p = (*a)->schedule("cpu");
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(p->specTree);
  EXPECT_EQ(p->specTree->branching, (std::vector<int32_t>{2, 1}));
  EXPECT_EQ(p->specTree->nodeCount(), 5);
  TinyModel without;
  EXPECT_EQ(plan::planHash(*p), plan::planHash(without.contents.schedules[0]));

  // A stored branching of 0 (a flipped byte the checksum was made to
  // agree with) is refused with the shape's own message.
  std::vector<char> bytes = readAll(path);
  const auto *tree = descriptionOf(bytes)->schedules()->Get(0)->spec_tree();
  ASSERT_NE(tree, nullptr);
  const size_t at = reinterpret_cast<const char *>(tree->data()) - bytes.data();
  std::memset(&bytes[at], 0, sizeof(int32_t));
  FileHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  h.descriptionChecksum = checksum(
      {reinterpret_cast<const uint8_t *>(bytes.data() + h.descriptionOffset), h.descriptionSize});
  std::memcpy(bytes.data(), &h, sizeof h);
  writeAll(path, bytes);
  auto bad = Artifact::load(path);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find(
                "kernel plan's token tree: tree shape '0x1': depth 1 has branching 0"),
            std::string::npos)
      << bad.error().message();
  std::filesystem::remove(path);
}

// The writer refuses a malformed tree and one the context (6) cannot hold.
TEST(ArtifactTest, WriterRefusesBadSpecTrees) {
  auto refusal = [](std::vector<int32_t> branching) {
    TinyModel m;
    m.contents.schedules[0].specTree = speculative::TreeShape{std::move(branching)};
    Status s = writeArtifact(m.contents, tempFile("badtree.lathe"));
    return s ? std::string("accepted") : s.error().message();
  };
  EXPECT_NE(refusal({}).find("kernel plan's token tree: tree shape '': empty"), std::string::npos);
  EXPECT_NE(refusal({2, -1}).find("tree shape '2x-1': depth 2 has branching -1"),
            std::string::npos);
  EXPECT_NE(refusal({2, 2}).find("kernel plan's token tree 2x2 has 7 nodes, more than the "
                                 "context of 6 tokens"),
            std::string::npos);
  EXPECT_EQ(refusal({1, 1, 1, 1, 1}), "accepted"); // 6 nodes: the whole context
}

/// TinyModel with its layer twice (layer 1 reads layer 0's weights): the
/// embedding is step 0, layer 0 steps 1-15 (its attention step 7), layer 1
/// steps 16-30 (attention 22), the final norm and the logits 31 and 32.
TinyModel twoLayers() {
  TinyModel m;
  m.contents.config.layers = 2;
  plan::KernelPlan &p = m.contents.schedules[0];
  p.kvLayers = 2;
  std::vector<plan::Step> layer(p.steps.begin() + 1, p.steps.end() - 2);
  for (plan::Step &step : layer)
    if (auto *a = std::get_if<plan::AttentionStep>(&step))
      a->layer = 1;
  p.steps.insert(p.steps.end() - 2, layer.begin(), layer.end());
  return m;
}

// The layer groups (lathe-compile --prefill-groups) read back as written;
// they change no step, so not the hash.
TEST(ArtifactTest, LayerGroupsRoundTrip) {
  TinyModel m = twoLayers();
  const plan::KernelPlan without = m.contents.schedules[0];
  m.contents.schedules[0].layerGroups = {{0, 0}, {1, 16}};
  std::string path = tempFile("groups.lathe");
  ASSERT_TRUE(writeArtifact(m.contents, path));
  auto a = Artifact::load(path);
  ASSERT_TRUE(a) << a.error().message();
  const plan::KernelPlan *p = (*a)->schedule("cpu");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->layerGroups, (std::vector<plan::LayerGroup>{{0, 0}, {1, 16}}));
  EXPECT_EQ(plan::planHash(*p), plan::planHash(without));
  std::filesystem::remove(path);

  // Without groups (every artifact from before them): none.
  TinyModel plain;
  ASSERT_TRUE(writeArtifact(plain.contents, path));
  auto b = Artifact::load(path);
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_TRUE((*b)->schedule("cpu")->layerGroups.empty());
  std::filesystem::remove(path);
}

// Groups must cut the steps in order, each attention in its layer's group,
// the embedding in the first and the classifier in the last: the loader
// (and the writer, through the same check) refuses anything else.
TEST(ArtifactTest, WriterRefusesBadLayerGroups) {
  auto refusal = [](std::vector<plan::LayerGroup> groups) {
    TinyModel m = twoLayers();
    m.contents.schedules[0].layerGroups = std::move(groups);
    Status s = writeArtifact(m.contents, tempFile("badgroups.lathe"));
    return s ? std::string("accepted") : s.error().message();
  };
  EXPECT_EQ(refusal({{0, 0}}), "accepted");
  EXPECT_EQ(refusal({{0, 0}, {1, 16}}), "accepted");
  // Any cut between the attentions of layers 0 and 1 keeps each in its group.
  EXPECT_EQ(refusal({{0, 0}, {1, 8}}), "accepted");
  EXPECT_NE(refusal({{0, 1}}).find(
                "kernel plan's layer groups: the first group starts at layer 0 and step 0"),
            std::string::npos);
  EXPECT_NE(refusal({{1, 0}}).find("the first group starts at layer 0 and step 0"),
            std::string::npos);
  EXPECT_NE(refusal({{0, 0}, {1, 7}}).find(
                "step 7 (attention of layer 0) falls in group 1, which starts at layer 1"),
            std::string::npos);
  EXPECT_NE(refusal({{0, 0}, {1, 23}}).find(
                "step 22 (attention of layer 1) falls in group 0, which starts at layer 0"),
            std::string::npos);
  EXPECT_NE(refusal({{0, 0}, {0, 16}}).find("group 1 (layer 0, step 16) does not follow "
                                            "group 0 (layer 0, step 0) within 2 layers and "
                                            "33 steps"),
            std::string::npos);
  EXPECT_NE(refusal({{0, 0}, {2, 16}}).find("does not follow"), std::string::npos);
  EXPECT_NE(refusal({{0, 0}, {1, 33}}).find("does not follow"), std::string::npos);
}

// Found by fuzz-artifact (docs/reliability.md): a [long] vector moved by
// 4 bytes passes the flatbuffer verifier, which checks only the alignment
// of a vector's length, and its elements were then read as misaligned
// int64_t (UBSan: "load of misaligned address ... for type 'const long'").
TEST(ArtifactTest, MisalignedIntegerVectorsAreRefused) {
  TinyModel m;
  m.contents.hfTokenizer = tinyHFTokenizer();
  std::string path = tempFile("aligned.lathe"), bad = tempFile("misaligned.lathe");
  ASSERT_TRUE(writeArtifact(m.contents, path));
  const std::vector<char> bytes = readAll(path);
  const fb::Model *model = descriptionOf(bytes);
  // The vector's offset field pointed 4 bytes further on.
  auto shifted = [&](const void *table, flatbuffers::voffset_t field) {
    return editField<uint32_t>(bytes, table, field, [](uint32_t &offset) { offset += 4; });
  };
  const struct {
    const char *what;
    std::vector<char> bytes;
    const char *message;
  } cases[] = {
      {"a tensor's shape", shifted(model->tensors()->Get(0), fb::Tensor::VT_SHAPE),
       "tensor 'tok_embeddings' has a misaligned shape"},
      {"a step's integers", shifted(model->schedules()->Get(0)->steps()->Get(2), fb::Step::VT_INTS),
       "step 'matmul' has misaligned integers"},
      // The input fuzz-artifact found: the Strip decoder's parameters.
      {"a tokenizer stage's integers",
       shifted(model->tokenizer()->hf()->decoders()->Get(1), fb::TokenizerStage::VT_INTS),
       "a tokenizer stage has misaligned integers"},
  };
  for (const auto &c : cases) {
    writeAll(bad, c.bytes);
    auto a = Artifact::load(bad);
    ASSERT_FALSE(a) << c.what;
    EXPECT_NE(a.error().message().find(c.message), std::string::npos) << a.error().message();
  }
  std::filesystem::remove(path);
  std::filesystem::remove(bad);
}

// Found by fuzz-artifact: a head count (the input had 1945555039024054274
// heads of 8) whose product with head_dim overflows int64 (UBSan: "signed
// integer overflow" in plan::validateConfig); a huge head_dim likewise.
TEST(ArtifactTest, AttentionWidthOverflowIsRefused) {
  TinyModel m;
  std::string path = tempFile("heads.lathe"), bad = tempFile("huge-heads.lathe");
  ASSERT_TRUE(writeArtifact(m.contents, path));
  const std::vector<char> bytes = readAll(path);
  const struct {
    flatbuffers::voffset_t field;
    const char *message;
  } cases[] = {
      {fb::Config::VT_HEADS, "head_dim 4 x 4611686018427387904 heads"},
      {fb::Config::VT_HEAD_DIM, "head_dim 4611686018427387904 x 2 heads"},
  };
  for (const auto &c : cases) {
    writeAll(bad, editField<int64_t>(bytes, descriptionOf(bytes)->config(), c.field,
                                     [](int64_t &n) { n = int64_t(1) << 62; }));
    auto a = Artifact::load(bad);
    ASSERT_FALSE(a) << c.message;
    EXPECT_NE(a.error().message().find(c.message), std::string::npos) << a.error().message();
  }
  std::filesystem::remove(path);
  std::filesystem::remove(bad);
}

TEST(ArtifactTest, NotAnArtifact) {
  std::string path = tempFile("text.lathe");
  writeAll(path, std::vector<char>(100, 'x'));
  auto a = Artifact::load(path);
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message().find("bad magic"), std::string::npos);
  auto missing = Artifact::load(tempFile("does-not-exist.lathe"));
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("cannot open"), std::string::npos);
  std::filesystem::remove(path);
}

TEST(ChecksumTest, SensitiveToEveryByteAndLength) {
  std::vector<uint8_t> data(100, 7);
  uint64_t base = checksum(data);
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] ^= 1;
    EXPECT_NE(checksum(data), base) << i;
    data[i] ^= 1;
  }
  EXPECT_NE(checksum(std::span<const uint8_t>(data).first(99)), base);
  EXPECT_EQ(checksum(data), base);
}

} // namespace
} // namespace lathe::artifact
