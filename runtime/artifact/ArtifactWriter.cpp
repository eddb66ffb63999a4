#include "runtime/artifact/ArtifactWriter.h"

#include "runtime/artifact/Artifact_generated.h"
#include "runtime/artifact/FileHeader.h"
#include "runtime/artifact/ParameterFile.h"
#include "runtime/plan/StepCodec.h"
#include "runtime/tokenizer/HFTokenizer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <memory>
#include <type_traits>

namespace lathe::artifact {
namespace {

flatbuffers::Offset<fb::Step> buildStep(flatbuffers::FlatBufferBuilder &b,
                                        const plan::Step &step) {
  plan::FlatStep flat = plan::flatten(step);
  return fb::CreateStep(b, b.CreateString(flat.kind), b.CreateVector(flat.ints),
                        b.CreateVector(flat.floats));
}

/// The plan's layer groups; absent when it has none.
flatbuffers::Offset<flatbuffers::Vector<const fb::LayerGroup *>>
layerGroups(flatbuffers::FlatBufferBuilder &b, const plan::KernelPlan &p) {
  if (p.layerGroups.empty())
    return 0;
  std::vector<fb::LayerGroup> groups;
  for (const plan::LayerGroup &g : p.layerGroups)
    groups.emplace_back(g.firstLayer, g.firstStep);
  return b.CreateVectorOfStructs(groups);
}

flatbuffers::Offset<fb::HFTokenizer> buildHFTokenizer(flatbuffers::FlatBufferBuilder &b,
                                                      const HFTokenizerSpec &spec) {
  std::vector<int32_t> merges;
  for (auto [x, y] : spec.merges)
    merges.insert(merges.end(), {x, y});
  std::vector<flatbuffers::Offset<fb::AddedToken>> added;
  for (const AddedToken &a : spec.addedTokens)
    added.push_back(fb::CreateAddedToken(b, a.id, b.CreateString(a.content), a.special,
                                         a.lstrip, a.rstrip, a.singleWord));
  auto stages = [&](const std::vector<TokenizerStage> &list) {
    std::vector<flatbuffers::Offset<fb::TokenizerStage>> out;
    for (const TokenizerStage &st : list)
      out.push_back(fb::CreateTokenizerStage(b, b.CreateString(st.type),
                                             b.CreateVectorOfStrings(st.strings),
                                             b.CreateVector(st.ints)));
    return b.CreateVector(out);
  };
  auto normalizers = stages(spec.normalizers);
  auto preTokenizers = stages(spec.preTokenizers);
  auto decoders = stages(spec.decoders);
  flatbuffers::Offset<flatbuffers::String> chatTemplate;
  if (!spec.chatTemplate.empty())
    chatTemplate = b.CreateString(spec.chatTemplate);
  return fb::CreateHFTokenizer(b, b.CreateVector(merges), spec.byteFallback, spec.fuseUnk,
                               spec.ignoreMerges, spec.unk, b.CreateVector(added), normalizers,
                               preTokenizers, decoders, b.CreateVector(spec.prefixIds),
                               b.CreateVector(spec.suffixIds), chatTemplate);
}

/// The tensors' infos, in order.
std::vector<plan::TensorInfo> tensorInfos(const ArtifactContents &contents) {
  std::vector<plan::TensorInfo> infos;
  for (const TensorData &t : contents.tensors)
    infos.push_back(t.info);
  return infos;
}

/// The parameter id of external weights: the table's, and the tensors'
/// bytes too where the compiler changed them (ParameterFile.h).
uint64_t contentsParameterId(const ArtifactContents &contents,
                             const std::vector<uint64_t> &offsets) {
  const uint64_t table = parameterId(tensorInfos(contents), offsets);
  if (contents.weightsFromCheckpoint)
    return table;
  std::vector<std::span<const uint8_t>> bytes;
  for (const TensorData &t : contents.tensors)
    bytes.push_back(t.bytes);
  return boundParameterId(table, bytes);
}

/// Lays the tensors out in the weight section (the parameter file's data
/// section when the weights are external): each one 64-byte aligned.
std::vector<uint64_t> layoutTensors(const ArtifactContents &contents, uint64_t *sectionSize) {
  if (contents.syntheticWeights) { // nothing stored: every tensor at 0
    *sectionSize = 0;
    return std::vector<uint64_t>(contents.tensors.size(), 0);
  }
  return layoutWeights(tensorInfos(contents), sectionSize);
}

std::vector<uint8_t> buildDescription(const ArtifactContents &c,
                                      const std::vector<uint64_t> &offsets,
                                      uint64_t sectionSize) {
  flatbuffers::FlatBufferBuilder b(1 << 20);
  const plan::ModelConfig &cfg = c.config;
  auto config = fb::CreateConfig(b, cfg.dim, cfg.hidden, cfg.layers, cfg.heads,
                                 cfg.kvHeads, cfg.headDim, cfg.vocab, cfg.context,
                                 cfg.normEps, cfg.ropeTheta,
                                 b.CreateString(cfg.name));

  std::vector<uint8_t> pieceBytes;
  std::vector<uint32_t> pieceOffsets{0};
  const std::vector<std::string> &pieces =
      c.hfTokenizer ? c.hfTokenizer->vocab : c.vocabulary.pieces;
  for (const std::string &p : pieces) {
    pieceBytes.insert(pieceBytes.end(), p.begin(), p.end());
    pieceOffsets.push_back(static_cast<uint32_t>(pieceBytes.size()));
  }
  flatbuffers::Offset<fb::HFTokenizer> hf = 0;
  if (c.hfTokenizer)
    hf = buildHFTokenizer(b, *c.hfTokenizer);
  auto tokenizer = fb::CreateTokenizer(
      b, b.CreateVector(pieceBytes), b.CreateVector(pieceOffsets),
      b.CreateVector(c.vocabulary.scores), c.vocabulary.maxTokenLength,
      c.hfTokenizer ? c.hfTokenizer->bos : Tokenizer::kBos,
      c.hfTokenizer ? c.hfTokenizer->eos : Tokenizer::kEos, hf);

  std::vector<flatbuffers::Offset<fb::Tensor>> tensors;
  for (size_t i = 0; i < c.tensors.size(); ++i) {
    const TensorData &t = c.tensors[i];
    tensors.push_back(fb::CreateTensor(
        b, b.CreateString(t.info.name), static_cast<fb::ElementType>(t.info.type),
        b.CreateVector(t.info.shape), offsets[i], t.bytes.size(),
        t.info.quant ? b.CreateString(formats::formatName(*t.info.quant)) : 0));
  }

  std::vector<flatbuffers::Offset<fb::Schedule>> schedules;
  for (const plan::KernelPlan &p : c.schedules) {
    std::vector<flatbuffers::Offset<fb::Buffer>> buffers;
    for (uint64_t w : p.bufferWidths)
      buffers.push_back(fb::CreateBuffer(b, w));
    std::vector<flatbuffers::Offset<fb::Step>> steps;
    for (const plan::Step &s : p.steps)
      steps.push_back(buildStep(b, s));
    flatbuffers::Offset<fb::NativeCode> native = 0;
    if (p.native)
      native = fb::CreateNativeCode(b, b.CreateString(p.native->isa),
                                    p.native->abiVersion, p.native->planHash,
                                    b.CreateVector(p.native->object),
                                    checksum(p.native->object));
    flatbuffers::Offset<fb::DeviceCode> device = 0;
    if (p.device)
      device = fb::CreateDeviceCode(b, b.CreateString(p.device->archs), p.device->abiVersion,
                                    p.device->planHash, b.CreateVector(p.device->image),
                                    checksum(p.device->image));
    schedules.push_back(fb::CreateSchedule(
        b, b.CreateString(p.target), b.CreateVector(buffers), b.CreateVector(steps),
        p.logits, p.kvLayers, p.kvWidth, native, static_cast<fb::ElementType>(p.kvElement),
        device, static_cast<fb::KvKind>(p.kvFormat.kind),
        static_cast<uint32_t>(p.kvFormat.block), static_cast<uint32_t>(p.kvFormat.keyGroup),
        static_cast<uint32_t>(std::max(p.kvFormat.window, 0)),
        p.specTree ? b.CreateVector(p.specTree->branching) : 0, layerGroups(b, p)));
  }

  flatbuffers::Offset<fb::Parameters> parameters = 0;
  if (c.externalWeights)
    parameters = fb::CreateParameters(b, contentsParameterId(c, offsets), sectionSize,
                                      c.weightsFromCheckpoint);
  auto model = fb::CreateModel(b, config, tokenizer, b.CreateVector(tensors),
                               b.CreateVector(schedules), b.CreateString(c.producer),
                               c.syntheticWeights, parameters);
  fb::FinishModelBuffer(b, model);
  return {b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize()};
}

} // namespace

Status validateContents(const ArtifactContents &c, const std::string &path) {
  if (Status s = plan::validateConfig(c.config, path); !s)
    return s;
  std::vector<plan::TensorInfo> infos;
  for (const TensorData &t : c.tensors) {
    if (t.info.storageBytes() == 0 || t.info.storageBytes() != t.bytes.size())
      return Error(fmt::format("{}: tensor '{}' ({}) holds {} bytes, its shape needs {}",
                               path, t.info.name, t.info.formatName(),
                               t.bytes.size(), t.info.storageBytes()));
    infos.push_back(t.info);
  }
  if (c.hfTokenizer) {
    if (!c.vocabulary.pieces.empty())
      return Error(path + ": both a llama2.c and a Hugging Face tokenizer");
    Expected<HFTokenizer> t = HFTokenizer::create(*c.hfTokenizer, path);
    if (!t)
      return t.error();
    if (t->idCount() > static_cast<size_t>(c.config.vocab))
      return Error(fmt::format("{}: tokenizer has ids up to {}, the model {} logits", path,
                               t->idCount() - 1, c.config.vocab));
  }
  // An artifact may come without a tokenizer (it then runs from token ids).
  if (!c.vocabulary.pieces.empty() &&
      c.vocabulary.pieces.size() != static_cast<size_t>(c.config.vocab))
    return Error(fmt::format("{}: tokenizer has {} tokens, the model {}", path,
                             c.vocabulary.pieces.size(), c.config.vocab));
  for (const plan::KernelPlan &p : c.schedules)
    if (Status s = plan::validatePlan(p, infos, c.config, path); !s)
      return s;
  return Status::ok();
}

namespace {

struct FileCloser {
  void operator()(FILE *f) const { std::fclose(f); }
};

} // namespace

Status writeArtifact(const ArtifactContents &contents, const std::string &path,
                     const ProgressFn &progress) {
  if (Status s = validateContents(contents, path); !s)
    return s;
  if (contents.syntheticWeights && contents.externalWeights)
    return Error(path + ": a speed model's weights are made at load, not kept in a file");
  uint64_t sectionSize = 0;
  std::vector<uint64_t> offsets = layoutTensors(contents, &sectionSize);
  std::vector<uint8_t> description = buildDescription(contents, offsets, sectionSize);
  // External weights: the section is the parameter file's, not the artifact's.
  const uint64_t dataSize = contents.externalWeights ? 0 : sectionSize;

  FileHeader header{};
  std::memcpy(header.magic, kMagic, sizeof kMagic);
  header.version = kFormatVersion;
  header.headerSize = sizeof(FileHeader);
  header.descriptionOffset = sizeof(FileHeader);
  header.descriptionSize = description.size();
  header.dataOffset =
      alignUp(header.descriptionOffset + description.size(), kSectionAlignment);
  header.dataSize = dataSize;
  header.descriptionChecksum = checksum(description);

  // The data checksum covers the section as laid out, padding included.
  std::vector<uint8_t> section(dataSize, 0);
  for (size_t i = 0; i < contents.tensors.size() && dataSize > 0; ++i)
    std::memcpy(section.data() + offsets[i], contents.tensors[i].bytes.data(),
                contents.tensors[i].bytes.size());
  header.dataChecksum = checksum(section);

  std::string tmp = path + ".tmp";
  std::unique_ptr<FILE, FileCloser> f(std::fopen(tmp.c_str(), "wb"));
  if (!f)
    return Error(tmp + ": cannot create: " + std::strerror(errno));
  std::vector<uint8_t> padding(header.dataOffset - header.descriptionOffset -
                                   description.size(),
                               0);
  bool ok = std::fwrite(&header, sizeof header, 1, f.get()) == 1 &&
            std::fwrite(description.data(), 1, description.size(), f.get()) ==
                description.size() &&
            std::fwrite(padding.data(), 1, padding.size(), f.get()) == padding.size();
  constexpr uint64_t kChunk = 4 << 20;
  for (uint64_t done = 0; ok && done < section.size(); done += kChunk) {
    uint64_t n = std::min<uint64_t>(kChunk, section.size() - done);
    ok = std::fwrite(section.data() + done, 1, n, f.get()) == n;
    if (progress)
      progress(done + n, section.size());
  }
  ok = ok && std::fflush(f.get()) == 0;
  f.reset();
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string msg = path + ": cannot write: " + std::strerror(errno);
    std::remove(tmp.c_str());
    return Error(msg);
  }
  return Status::ok();
}

Status writeParameters(const ArtifactContents &contents, const std::string &path,
                       const ProgressFn &progress) {
  if (!contents.externalWeights)
    return Error(path + ": the artifact keeps its weights itself");
  if (Status s = validateContents(contents, path); !s)
    return s;
  uint64_t sectionSize = 0;
  std::vector<plan::TensorInfo> infos = tensorInfos(contents);
  std::vector<uint64_t> offsets = layoutWeights(infos, &sectionSize);
  return writeParameterFile(path, contentsParameterId(contents, offsets), sectionSize,
                            [&](std::span<uint8_t> data) {
                              uint64_t done = 0;
                              for (size_t i = 0; i < contents.tensors.size(); ++i) {
                                const TensorData &t = contents.tensors[i];
                                std::memcpy(data.data() + offsets[i], t.bytes.data(),
                                            t.bytes.size());
                                done += t.bytes.size();
                                if (progress)
                                  progress(done, sectionSize);
                              }
                              return Status::ok();
                            });
}

} // namespace lathe::artifact
