#include "runtime/artifact/Artifact.h"

#include "runtime/artifact/Artifact_generated.h"
#include "runtime/plan/StepCodec.h"
#include "runtime/artifact/FileHeader.h"
#include "runtime/artifact/ParameterFile.h"
#include "runtime/artifact/SyntheticWeights.h"
#include "runtime/support/HugePages.h"
#include "runtime/tokenizer/HFTokenizer.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>

namespace lathe::artifact {
namespace {

/// Whether a verified vector's elements are aligned for their type. The
/// flatbuffer verifier checks only the 4-byte length in front of them, so a
/// corrupt file can put a [long]'s elements at 4 mod 8; reading them as
/// int64_t would be undefined behaviour. (The builder aligns only vectors
/// that have elements.)
template <typename T> bool aligned(const flatbuffers::Vector<T> *v) {
  return !v || v->size() == 0 || reinterpret_cast<uintptr_t>(v->data()) % alignof(T) == 0;
}

/// Converts one verified flatbuffer step into the plan's form. Missing
/// tables (a union tag without its value) come back as an error.
Expected<plan::Step> convertStep(const fb::Step *step) {
  if (!step->kind())
    return Error("kernel step without a kind");
  if (!aligned(step->ints()))
    return Error("kernel step '" + step->kind()->str() + "' has misaligned integers");
  std::span<const int64_t> ints;
  std::span<const float> floats;
  if (step->ints())
    ints = {step->ints()->data(), step->ints()->size()};
  if (step->floats())
    floats = {step->floats()->data(), step->floats()->size()};
  return plan::unflatten(step->kind()->string_view(), ints, floats);
}

/// The Hugging Face tokenizer of a verified description: its pieces and
/// its tables, every offset checked. HFTokenizer::create checks the rest.
Expected<HFTokenizerSpec> readHFTokenizer(const fb::Tokenizer &t, const std::string &src) {
  auto fail = [&](const std::string &what) { return Error(src + ": corrupt: " + what); };
  const fb::HFTokenizer &h = *t.hf();
  HFTokenizerSpec spec;
  if (t.scores()->size() != 0 || t.piece_offsets()->size() == 0)
    return fail("a Hugging Face tokenizer with scores or without piece offsets");
  size_t count = t.piece_offsets()->size() - 1;
  for (size_t i = 0; i < count; ++i) {
    uint32_t begin = t.piece_offsets()->Get(i), end = t.piece_offsets()->Get(i + 1);
    if (begin > end || end > t.piece_bytes()->size())
      return fail(fmt::format("tokenizer piece {} out of range", i));
    spec.vocab.emplace_back(reinterpret_cast<const char *>(t.piece_bytes()->data()) + begin,
                            end - begin);
  }
  if (h.merges()) {
    if (h.merges()->size() % 2)
      return fail("tokenizer merges are not pairs");
    for (size_t i = 0; i < h.merges()->size(); i += 2)
      spec.merges.emplace_back(h.merges()->Get(i), h.merges()->Get(i + 1));
  }
  spec.byteFallback = h.byte_fallback();
  spec.fuseUnk = h.fuse_unk();
  spec.ignoreMerges = h.ignore_merges();
  spec.unk = h.unk();
  if (h.added_tokens())
    for (const fb::AddedToken *a : *h.added_tokens())
      spec.addedTokens.push_back({a->id(), a->content() ? a->content()->str() : "",
                                  a->special(), a->lstrip(), a->rstrip(), a->single_word()});
  auto stages = [](const auto *list, std::vector<TokenizerStage> &out) {
    if (!list)
      return true;
    for (const fb::TokenizerStage *st : *list) {
      TokenizerStage stage{st->type() ? st->type()->str() : "", {}, {}};
      if (st->strings())
        for (const flatbuffers::String *x : *st->strings())
          stage.strings.push_back(x->str());
      if (!aligned(st->ints()))
        return false;
      if (st->ints())
        stage.ints.assign(st->ints()->begin(), st->ints()->end());
      out.push_back(std::move(stage));
    }
    return true;
  };
  if (!stages(h.normalizers(), spec.normalizers) ||
      !stages(h.pre_tokenizers(), spec.preTokenizers) || !stages(h.decoders(), spec.decoders))
    return fail("a tokenizer stage has misaligned integers");
  if (h.prefix_ids())
    spec.prefixIds.assign(h.prefix_ids()->begin(), h.prefix_ids()->end());
  if (h.suffix_ids())
    spec.suffixIds.assign(h.suffix_ids()->begin(), h.suffix_ids()->end());
  if (h.chat_template())
    spec.chatTemplate = h.chat_template()->str();
  spec.bos = t.bos();
  spec.eos = t.eos();
  return spec;
}

} // namespace

Expected<std::shared_ptr<const Artifact>> Artifact::load(const std::string &path,
                                                         FileMemory memory) {
  LoadOptions options;
  options.memory = memory;
  return load(path, options);
}

Expected<std::shared_ptr<const Artifact>> Artifact::load(const std::string &path,
                                                         const LoadOptions &options) {
  auto file = MappedFile::open(path, options.memory);
  if (!file)
    return file.error();
  std::shared_ptr<Artifact> artifact(new Artifact());
  artifact->file_ = file.take();
  artifact->name_ = path;
  artifact->weightsLoaded_ = !options.descriptionOnly;
  if (Status s = artifact->parse(options); !s)
    return s.error();
  return std::shared_ptr<const Artifact>(std::move(artifact));
}

std::shared_ptr<const void>
Artifact::derived(const std::string &key,
                  const std::function<std::shared_ptr<const void>()> &make) const {
  // One lock for the whole call: two sessions starting at once must not
  // both build the (large) result.
  std::lock_guard<std::mutex> lock(derivedMutex_);
  if (auto it = derived_.find(key); it != derived_.end())
    return it->second;
  std::shared_ptr<const void> value = make();
  if (value)
    derived_.emplace(key, value);
  return value;
}

Expected<std::shared_ptr<const Artifact>>
Artifact::fromContents(const ArtifactContents &contents, const std::string &name) {
  if (Status s = validateContents(contents, name); !s)
    return s.error();
  std::shared_ptr<Artifact> artifact(new Artifact());
  artifact->name_ = name;
  artifact->config_ = contents.config;
  artifact->vocabulary_ = contents.vocabulary;
  artifact->hf_ = contents.hfTokenizer;
  for (const TensorData &t : contents.tensors) {
    artifact->tensors_.push_back(t.info);
    artifact->data_.push_back(t.bytes);
  }
  artifact->schedules_ = contents.schedules;
  artifact->producer_ = contents.producer;
  return std::shared_ptr<const Artifact>(std::move(artifact));
}

const plan::KernelPlan *Artifact::schedule(std::string_view target) const {
  for (const plan::KernelPlan &p : schedules_)
    if (p.target == target)
      return &p;
  return nullptr;
}

Status Artifact::fillSyntheticWeights() {
  std::vector<size_t> offsets;
  size_t total = 0;
  for (const plan::TensorInfo &info : tensors_) {
    offsets.push_back(total);
    total += (info.storageBytes() + 63) / 64 * 64;
  }
  synthetic_ = allocateHugePages(std::max<size_t>(total, 64));
  if (!synthetic_)
    return Error(fmt::format("cannot allocate {} bytes for the speed model's weights", total));
  for (size_t i = 0; i < tensors_.size(); ++i) {
    std::span<uint8_t> out(synthetic_.get() + offsets[i], tensors_[i].storageBytes());
    if (Status s = fillSyntheticTensor(tensors_[i], uint32_t(i), out); !s)
      return s;
    data_[i] = out;
  }
  return Status::ok();
}

Status Artifact::openParameters(const fb::Parameters &params,
                                std::vector<uint64_t> offsets, const LoadOptions &options) {
  const std::string &src = file_->path();
  ExternalWeights weights{params.id(), params.data_size(), params.from_checkpoint(),
                          std::move(offsets), ""};
  // The writer lays the tensors out one way; anything else is damage (and
  // a data size no file could hold).
  uint64_t sectionSize = 0;
  if (layoutWeights(tensors_, &sectionSize) != weights.offsets ||
      sectionSize != weights.dataSize)
    return Error(src + ": corrupt: the tensors are not laid out as a parameter file's");
  // An id that covers the weights' bytes too cannot be checked here.
  if (weights.fromCheckpoint && parameterId(tensors_, weights.offsets) != weights.id)
    return Error(src + ": corrupt: the parameter id does not match the tensor table");
  if (!options.descriptionOnly) {
    std::string path = options.parameters;
    std::error_code ec;
    if (path.empty() && !std::filesystem::exists(path = defaultParameterPath(src), ec))
      return Error(fmt::format("{}: its weights are in a parameter file and {} does not exist: "
                               "pass --params FILE (lathe-pack {} CHECKPOINT -o FILE makes one)",
                               src, path, src));
    Expected<ParameterFile> file =
        openParameterFile(path, options.memory, weights.id, weights.dataSize);
    if (!file)
      return file.error();
    for (size_t i = 0; i < tensors_.size(); ++i)
      data_[i] = file->data.subspan(weights.offsets[i], tensors_[i].storageBytes());
    parameters_ = file->file;
    weights.path = path;
  }
  external_ = std::move(weights);
  return Status::ok();
}

Status Artifact::parse(const LoadOptions &options) {
  const std::string &src = file_->path();
  std::span<const uint8_t> bytes = file_->bytes();
  auto fail = [&](const std::string &what) { return Error(src + ": " + what); };

  FileHeader h;
  if (bytes.size() < sizeof h)
    return fail(fmt::format("not a Lathe artifact: {} bytes is shorter than the "
                            "64-byte header",
                            bytes.size()));
  std::memcpy(&h, bytes.data(), sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0)
    return fail("not a Lathe artifact (bad magic number)");
  if (h.version != kFormatVersion)
    return fail(fmt::format("artifact format version {} is not supported (this "
                            "runtime reads version {}); recompile the model",
                            h.version, kFormatVersion));
  uint64_t size = bytes.size();
  auto inFile = [&](uint64_t off, uint64_t len) {
    return off <= size && len <= size - off;
  };
  if (h.headerSize != sizeof h)
    return fail(fmt::format("corrupt: the header says it is {} bytes, not {}", h.headerSize,
                            sizeof h));
  if (!inFile(h.descriptionOffset, h.descriptionSize))
    return fail(fmt::format("truncated or corrupt: description at {} + {} bytes "
                            "runs past the end of the file ({} bytes)",
                            h.descriptionOffset, h.descriptionSize, size));
  if (h.dataOffset % kSectionAlignment != 0 || !inFile(h.dataOffset, h.dataSize))
    return fail(fmt::format("truncated or corrupt: weight section at {} + {} bytes "
                            "runs past the end of the file ({} bytes)",
                            h.dataOffset, h.dataSize, size));
  if (h.descriptionOffset != sizeof h || h.dataOffset < h.descriptionOffset + h.descriptionSize)
    return fail("corrupt: the header's section offsets overlap");
  if (h.dataOffset + h.dataSize != size)
    return fail(fmt::format("truncated or corrupt: the header describes {} bytes, "
                            "the file has {}",
                            h.dataOffset + h.dataSize, size));
  // The alignment padding is not covered by a checksum: it must be zero.
  for (uint64_t i = h.descriptionOffset + h.descriptionSize; i < h.dataOffset; ++i)
    if (bytes[i] != 0)
      return fail("corrupt: non-zero bytes in the padding before the weights");
  std::span<const uint8_t> desc = bytes.subspan(h.descriptionOffset, h.descriptionSize);
  std::span<const uint8_t> data = bytes.subspan(h.dataOffset, h.dataSize);
  if (checksum(desc) != h.descriptionChecksum)
    return fail("corrupt: the description's checksum does not match");
  if (checksum(data) != h.dataChecksum)
    return fail("corrupt: the weight section's checksum does not match");

  flatbuffers::Verifier verifier(desc.data(), desc.size());
  if (!fb::VerifyModelBuffer(verifier))
    return fail("corrupt: the description fails flatbuffer verification");
  const fb::Model *model = fb::GetModel(desc.data());
  if (!model->config() || !model->tokenizer() || !model->tensors() ||
      !model->schedules())
    return fail("corrupt: the description lacks config, tokenizer, tensors or "
                "schedules");

  const fb::Config *c = model->config();
  config_ = plan::ModelConfig{c->dim(),     c->hidden(),   c->layers(),
                              c->heads(),   c->kv_heads(), c->head_dim(),
                              c->vocab(),   c->context(),  c->norm_eps(),
                              c->rope_theta(),
                              c->model_name() ? c->model_name()->str() : ""};
  if (Status s = plan::validateConfig(config_, src); !s)
    return s;
  producer_ = model->producer() ? model->producer()->str() : "";

  const fb::Tokenizer *t = model->tokenizer();
  if (!t->piece_bytes() || !t->piece_offsets() || !t->scores())
    return fail("corrupt: tokenizer tables missing");
  if (t->hf()) {
    Expected<HFTokenizerSpec> spec = readHFTokenizer(*t, src);
    if (!spec)
      return spec.error();
    // Checked once here (ids, merges, stages, regexes), trusted afterwards.
    Expected<HFTokenizer> checked = HFTokenizer::create(*spec, src);
    if (!checked)
      return checked.error();
    if (checked->idCount() > static_cast<size_t>(config_.vocab))
      return fail(fmt::format("corrupt: tokenizer ids reach {}, the model has {} logits",
                              checked->idCount() - 1, config_.vocab));
    hf_ = spec.take();
  }
  size_t vocab = static_cast<size_t>(config_.vocab);
  bool hasTokenizer = t->scores()->size() != 0;
  if (!hasTokenizer)
    vocab = 0;
  if (!hf_ && (t->piece_offsets()->size() != vocab + 1 || t->scores()->size() != vocab))
    return fail(fmt::format("corrupt: tokenizer has {} offsets and {} scores for "
                            "a vocabulary of {}",
                            t->piece_offsets()->size(), t->scores()->size(), vocab));
  vocabulary_.maxTokenLength = t->max_token_length();
  vocabulary_.pieces.reserve(vocab);
  vocabulary_.scores.reserve(vocab);
  const uint8_t *pieceData = t->piece_bytes()->data();
  for (size_t i = 0; i < vocab; ++i) {
    uint32_t begin = t->piece_offsets()->Get(i), end = t->piece_offsets()->Get(i + 1);
    if (begin > end || end > t->piece_bytes()->size())
      return fail(fmt::format("corrupt: tokenizer piece {} out of range", i));
    vocabulary_.pieces.emplace_back(reinterpret_cast<const char *>(pieceData) + begin,
                                    end - begin);
    float score = t->scores()->Get(i);
    if (!std::isfinite(score))
      return fail(fmt::format("corrupt: tokenizer score {} is not finite", i));
    vocabulary_.scores.push_back(score);
  }

  // Weights in a parameter file: the tensors' offsets are in its data
  // section, which is opened once the table is read.
  const fb::Parameters *params = model->parameters();
  if (params && (model->synthetic_weights() || h.dataSize != 0))
    return fail("corrupt: weights both in the artifact and in a parameter file");
  if (!params && !options.parameters.empty())
    return fail("holds its own weights: a parameter file (" + options.parameters +
                ") is for artifacts compiled with --external-weights");
  const uint64_t sectionSize = params ? params->data_size() : h.dataSize;
  std::vector<uint64_t> offsets;

  for (const fb::Tensor *ft : *model->tensors()) {
    plan::TensorInfo info;
    info.name = ft->name() ? ft->name()->str() : "";
    if (ft->type() > fb::ElementType_MAX)
      return fail(fmt::format("tensor '{}' has unknown element type {}", info.name,
                              static_cast<int>(ft->type())));
    info.type = static_cast<ElementType>(ft->type());
    uint64_t elements = 1;
    if (!aligned(ft->shape()))
      return fail(fmt::format("corrupt: tensor '{}' has a misaligned shape", info.name));
    if (!ft->shape() || ft->shape()->size() == 0 || ft->shape()->size() > 4)
      return fail(fmt::format("tensor '{}' has no valid shape", info.name));
    for (int64_t d : *ft->shape()) {
      if (d <= 0 || d > (int64_t(1) << 32) || elements > (uint64_t(1) << 40))
        return fail(fmt::format("tensor '{}' has an invalid dimension {}", info.name, d));
      elements *= static_cast<uint64_t>(d);
      info.shape.push_back(d);
    }
    if (ft->format()) {
      Expected<formats::FormatSpec> spec = formats::parseFormatSpec(ft->format()->str());
      if (!spec)
        return fail(fmt::format("tensor '{}': {}", info.name, spec.error().message()));
      if (info.shape.size() != 2)
        return fail(fmt::format("tensor '{}' is packed as {} but not 2-D", info.name,
                                ft->format()->str()));
      info.quant = *spec;
    }
    uint64_t bytesNeeded = info.storageBytes();
    if (ft->size() != bytesNeeded)
      return fail(fmt::format("tensor '{}' ({}) holds {} bytes but its shape needs {}",
                              info.name, info.formatName(), ft->size(), bytesNeeded));
    if (model->synthetic_weights()) {
      if (ft->offset() != 0)
        return fail(fmt::format("corrupt: tensor '{}' of a speed model has data", info.name));
      data_.emplace_back();
      tensors_.push_back(std::move(info));
      continue;
    }
    if (ft->offset() % kSectionAlignment != 0 || ft->offset() > sectionSize ||
        ft->size() > sectionSize - ft->offset())
      return fail(fmt::format("tensor '{}' at offset {} + {} bytes runs past the "
                              "end of the weight section ({} bytes)",
                              info.name, ft->offset(), ft->size(), sectionSize));
    offsets.push_back(ft->offset());
    data_.push_back(params ? std::span<const uint8_t>() : data.subspan(ft->offset(), ft->size()));
    tensors_.push_back(std::move(info));
  }

  if (model->synthetic_weights() && !options.descriptionOnly)
    if (Status s = fillSyntheticWeights(); !s)
      return fail(s.error().message());
  if (params)
    if (Status s = openParameters(*params, offsets, options); !s)
      return s;

  for (const fb::Schedule *fs : *model->schedules()) {
    plan::KernelPlan p;
    p.target = fs->target() ? fs->target()->str() : "";
    if (!fs->buffers() || !fs->steps())
      return fail("corrupt: schedule '" + p.target + "' lacks buffers or steps");
    for (const fb::Buffer *b : *fs->buffers())
      p.bufferWidths.push_back(b->width());
    for (const fb::Step *step : *fs->steps()) {
      Expected<plan::Step> s = convertStep(step);
      if (!s)
        return fail("schedule '" + p.target + "': " + s.error().message());
      p.steps.push_back(*s);
    }
    p.logits = fs->logits();
    p.kvLayers = fs->kv_layers();
    p.kvWidth = fs->kv_width();
    if (fs->kv_element() > fb::ElementType_MAX)
      return fail("corrupt: schedule '" + p.target + "' has an unknown KV cache element type");
    p.kvElement = static_cast<ElementType>(fs->kv_element());
    if (fs->kv_kind() > fb::KvKind_MAX || fs->kv_block() > (uint32_t(1) << 24) ||
        fs->kv_key_group() > uint32_t(formats::kKiviMaxGroup) ||
        fs->kv_window() > uint32_t(formats::kKiviMaxWindow))
      return fail("corrupt: schedule '" + p.target + "' has an unknown KV cache format");
    p.kvFormat = {static_cast<formats::KvKind>(fs->kv_kind()),
                  static_cast<int32_t>(fs->kv_block()), static_cast<int32_t>(fs->kv_key_group()),
                  static_cast<int32_t>(fs->kv_window())};
    // Checked with the rest of the plan (validatePlan).
    if (const flatbuffers::Vector<int32_t> *tree = fs->spec_tree())
      p.specTree = speculative::TreeShape{{tree->begin(), tree->end()}};
    if (const auto *groups = fs->layer_groups())
      for (const fb::LayerGroup *g : *groups)
        p.layerGroups.push_back({g->first_layer(), g->first_step()});
    if (const fb::NativeCode *n = fs->native()) {
      if (!n->isa() || !n->object() || n->object()->size() < 4)
        return fail("corrupt: schedule '" + p.target + "' has incomplete native code");
      p.native = plan::NativeCode{n->isa()->str(), n->abi_version(), n->plan_hash(),
                                  {n->object()->begin(), n->object()->end()}};
      // Code is about to run: it gets a checksum of its own, on top of the
      // description's, so that one corrupted byte can never reach dlopen.
      if (checksum(p.native->object) != n->object_hash())
        return fail("corrupt: schedule '" + p.target + "' has native code whose "
                    "checksum does not match");
    }
    if (const fb::DeviceCode *d = fs->device()) {
      if (!d->archs() || !d->image() || d->image()->size() < 4)
        return fail("corrupt: schedule '" + p.target + "' has incomplete device code");
      p.device = plan::DeviceCode{d->archs()->str(), d->abi_version(), d->plan_hash(),
                                  {d->image()->begin(), d->image()->end()}};
      // Like native code: its own checksum before a driver ever sees it.
      if (checksum(p.device->image) != d->image_hash())
        return fail("corrupt: schedule '" + p.target + "' has device code whose "
                    "checksum does not match");
    }
    if (Status s = plan::validatePlan(p, tensors_, config_, src); !s)
      return s;
    schedules_.push_back(std::move(p));
  }
  return Status::ok();
}

} // namespace lathe::artifact
