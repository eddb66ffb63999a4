// Parameter files (runtime/artifact/ParameterFile.h): an artifact written
// with external weights loads them from the file beside it or the one
// named, bit for bit; the loader refuses a missing, truncated, flipped or
// foreign file with one line naming it, and an embedded artifact refuses
// a file at all.
#include "runtime/artifact/Artifact.h"
#include "runtime/artifact/ArtifactWriter.h"
#include "runtime/artifact/ParameterFile.h"
#include "runtime/engine/Session.h"
#include "test/unit/TempFolder.h"
#include "test/unit/runtime/artifact/TinyModel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace lathe::artifact {
namespace {

using test::TinyModel;

const test::TempFolder kTemp("parameter-file");

std::vector<char> readAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void writeAll(const std::string &path, const std::vector<char> &bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size());
}

/// Writes the tiny model as `name`.lathe with its weights in `name`.params.
std::string writeExternal(TinyModel &m, const std::string &name) {
  m.contents.externalWeights = true;
  m.contents.weightsFromCheckpoint = true;
  const std::string path = kTemp.file(name + ".lathe");
  EXPECT_TRUE(writeArtifact(m.contents, path));
  EXPECT_TRUE(writeParameters(m.contents, defaultParameterPath(path)));
  return path;
}

Expected<std::shared_ptr<const Artifact>> loadWith(const std::string &path,
                                                   const std::string &parameters) {
  LoadOptions options;
  options.parameters = parameters;
  return Artifact::load(path, options);
}

std::vector<float> logits(std::shared_ptr<const Artifact> a) {
  auto session = Session::create(std::move(a));
  EXPECT_TRUE(session) << session.error().message();
  auto out = session->forward(std::vector<int32_t>{1, 5, 7});
  EXPECT_TRUE(out) << out.error().message();
  return {out->begin(), out->end()};
}

TEST(ParameterFileTest, WeightsComeFromTheFileBesideTheArtifact) {
  TinyModel embeddedModel, externalModel;
  const std::string embeddedPath = kTemp.file("embedded.lathe");
  ASSERT_TRUE(writeArtifact(embeddedModel.contents, embeddedPath));
  const std::string path = writeExternal(externalModel, "beside");
  EXPECT_EQ(defaultParameterPath(path), kTemp.file("beside.params"));
  auto embedded = Artifact::load(embeddedPath);
  auto a = Artifact::load(path);
  ASSERT_TRUE(a) << a.error().message();
  ASSERT_TRUE(embedded) << embedded.error().message();
  // The artifact holds the table, the file the bytes.
  EXPECT_LT(std::filesystem::file_size(path), std::filesystem::file_size(embeddedPath));
  const ExternalWeights *weights = (*a)->externalWeights();
  ASSERT_NE(weights, nullptr);
  EXPECT_EQ(weights->path, defaultParameterPath(path));
  EXPECT_TRUE(weights->fromCheckpoint);
  EXPECT_EQ((*embedded)->externalWeights(), nullptr);
  for (size_t i = 0; i < externalModel.contents.tensors.size(); ++i) {
    std::span<const uint8_t> want = externalModel.contents.tensors[i].bytes;
    std::span<const uint8_t> got = (*a)->tensorData(i);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_TRUE(std::equal(want.begin(), want.end(), got.begin())) << i;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(got.data()) % 64, 0u) << "tensor " << i;
  }
  EXPECT_EQ(logits(*a), logits(*embedded));
}

TEST(ParameterFileTest, AFileNamedElsewhereAndTheDescriptionAlone) {
  TinyModel m;
  const std::string path = writeExternal(m, "named");
  const std::string moved = kTemp.file("elsewhere.params");
  std::filesystem::rename(defaultParameterPath(path), moved);
  auto missing = Artifact::load(path);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message(),
            path + ": its weights are in a parameter file and " + defaultParameterPath(path) +
                " does not exist: pass --params FILE (lathe-pack " + path +
                " CHECKPOINT -o FILE makes one)");
  auto named = loadWith(path, moved);
  ASSERT_TRUE(named) << named.error().message();
  EXPECT_EQ((*named)->externalWeights()->path, moved);
  LoadOptions description;
  description.descriptionOnly = true;
  auto table = Artifact::load(path, description);
  ASSERT_TRUE(table) << table.error().message();
  EXPECT_TRUE((*table)->externalWeights()->path.empty());
  EXPECT_EQ((*table)->externalWeights()->offsets.size(), m.contents.tensors.size());
  EXPECT_TRUE((*table)->tensorData(0).empty());
  EXPECT_FALSE((*table)->weightsLoaded());
  auto session = Session::create(*table);
  ASSERT_FALSE(session);
  EXPECT_EQ(session.error().message(),
            path + ": loaded without its weights (its description only), which nothing can "
                   "run");
}

TEST(ParameterFileTest, AnEmbeddedArtifactRefusesAFile) {
  TinyModel embeddedModel, externalModel;
  const std::string embeddedPath = kTemp.file("own.lathe");
  ASSERT_TRUE(writeArtifact(embeddedModel.contents, embeddedPath));
  const std::string path = writeExternal(externalModel, "other");
  auto a = loadWith(embeddedPath, defaultParameterPath(path));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().message(),
            embeddedPath + ": holds its own weights: a parameter file (" +
                defaultParameterPath(path) + ") is for artifacts compiled with "
                                             "--external-weights");
}

TEST(ParameterFileTest, AnotherTensorTableIsRefused) {
  TinyModel m, renamed;
  const std::string path = writeExternal(m, "first");
  renamed.contents.tensors[3].info.name = "wq_renamed";
  // The plan names tensors by index, so only the table differs.
  const std::string otherPath = writeExternal(renamed, "second");
  auto a = loadWith(path, defaultParameterPath(otherPath));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().message(),
            defaultParameterPath(otherPath) +
                ": holds the weights of another model or build (its parameter id does not "
                "match the artifact's tensors): pack it for this artifact with lathe-pack");
}

TEST(ParameterFileTest, WeightsTheCompilerChangedBindTheFileToTheirBytes) {
  // The same table, other values: a file packed from the checkpoint fits
  // (the table is all lathe-pack makes them from), but where the compiler
  // changed the weights the id covers their bytes, so the other file is
  // refused.
  for (bool fromCheckpoint : {true, false}) {
    TinyModel m, other;
    for (float &v : other.storage[3])
      v *= 2.0f;
    const std::string tag = fromCheckpoint ? "checkpoint" : "compiler";
    m.contents.externalWeights = other.contents.externalWeights = true;
    m.contents.weightsFromCheckpoint = other.contents.weightsFromCheckpoint = fromCheckpoint;
    const std::string path = kTemp.file(tag + "-mine.lathe");
    ASSERT_TRUE(writeArtifact(m.contents, path));
    ASSERT_TRUE(writeParameters(m.contents, defaultParameterPath(path)));
    const std::string otherParams = kTemp.file(tag + "-other.params");
    ASSERT_TRUE(writeParameters(other.contents, otherParams));
    EXPECT_TRUE(Artifact::load(path)) << tag;
    EXPECT_EQ(bool(loadWith(path, otherParams)), fromCheckpoint) << tag;
  }
}

TEST(ParameterFileTest, EveryTruncationAndEveryFlippedByteIsRefused) {
  TinyModel m;
  const std::string path = writeExternal(m, "damaged");
  const std::vector<char> bytes = readAll(defaultParameterPath(path));
  const std::string bad = kTemp.file("bad.params");
  for (size_t n = 0; n < bytes.size(); n += (n < 256 ? 1 : 7)) {
    writeAll(bad, std::vector<char>(bytes.begin(), bytes.begin() + n));
    auto a = loadWith(path, bad);
    ASSERT_FALSE(a) << "loaded a file cut to " << n << " bytes";
    EXPECT_EQ(a.error().message().rfind(bad + ": ", 0), 0u) << a.error().message();
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::vector<char> copy = bytes;
    copy[i] ^= 0x10;
    writeAll(bad, copy);
    auto a = loadWith(path, bad);
    ASSERT_FALSE(a) << "accepted a flip at byte " << i;
    EXPECT_EQ(a.error().message().rfind(bad + ": ", 0), 0u) << a.error().message();
  }
  writeAll(bad, bytes); // and the good copy loads
  EXPECT_TRUE(loadWith(path, bad));
}

TEST(ParameterFileTest, TheIdCoversTheWholeTable) {
  TinyModel m;
  std::vector<plan::TensorInfo> infos;
  for (const TensorData &t : m.contents.tensors)
    infos.push_back(t.info);
  uint64_t size = 0;
  const std::vector<uint64_t> offsets = layoutWeights(infos, &size);
  EXPECT_EQ(size % 64, 0u);
  for (uint64_t o : offsets)
    EXPECT_EQ(o % 64, 0u);
  const uint64_t id = parameterId(infos, offsets);
  auto changed = [&](auto change) {
    std::vector<plan::TensorInfo> copy = infos;
    std::vector<uint64_t> where = offsets;
    change(copy, where);
    return parameterId(copy, where) != id;
  };
  EXPECT_TRUE(changed([](auto &t, auto &) { t[2].name += "x"; }));
  EXPECT_TRUE(changed([](auto &t, auto &) { t[2].type = ElementType::BF16; }));
  EXPECT_TRUE(changed([](auto &t, auto &) { std::swap(t[3].shape[0], t[3].shape[1]); }));
  EXPECT_TRUE(changed([](auto &t, auto &) {
    t[2].quant = *formats::parseFormatSpec("int8:group=32");
  }));
  EXPECT_TRUE(changed([](auto &, auto &o) { o[2] += 64; }));
  EXPECT_TRUE(changed([](auto &t, auto &o) {
    t.pop_back();
    o.pop_back();
  }));
}

TEST(ParameterFileTest, WriterRefusals) {
  TinyModel m;
  EXPECT_FALSE(writeParameters(m.contents, kTemp.file("none.params")));
  m.contents.externalWeights = true;
  m.contents.syntheticWeights = true;
  Status s = writeArtifact(m.contents, kTemp.file("both.lathe"));
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("a speed model's weights are made at load"),
            std::string::npos);
  // A failed fill leaves nothing behind.
  const std::string path = kTemp.file("failed.params");
  std::filesystem::remove(path);
  Status failed = writeParameterFile(path, 1, 64, [](std::span<uint8_t>) -> Status {
    return Error("stop");
  });
  EXPECT_FALSE(failed);
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

} // namespace
} // namespace lathe::artifact
