#include "compiler/Frontend/PackParameters.h"

#include "runtime/artifact/ParameterFile.h"
#include "runtime/artifact/TensorEncoding.h"
#include "runtime/formats/ElementType.h"
#include "runtime/plan/PackedTensorName.h"

#include <fmt/format.h>

#include <cstring>
#include <map>
#include <set>
#include <variant>

namespace lathe::frontend {
namespace {

/// The hyperparameters that fix the tensors' shapes and the step's
/// numerics, where a checkpoint of another model would differ.
Status checkSameModel(const plan::ModelConfig &want, const LlamaConfig &got,
                      const std::string &artifact, const std::string &source) {
  const std::pair<const char *, std::pair<int64_t, int64_t>> sizes[] = {
      {"hidden size", {want.dim, got.dim}},         {"FFN size", {want.hidden, got.hidden}},
      {"layers", {want.layers, got.layers}},        {"heads", {want.heads, got.heads}},
      {"KV heads", {want.kvHeads, got.kvHeads}},    {"head size", {want.headDim, got.headDim}},
      {"vocabulary", {want.vocab, got.vocab}}};
  for (const auto &[what, pair] : sizes)
    if (pair.first != pair.second)
      return Error(fmt::format("{} is not the model {} was compiled for: {} {} there, {} here",
                               source, artifact, what, pair.first, pair.second));
  return Status::ok();
}

const char *ropeLayoutName(plan::RopeLayout layout) {
  return layout == plan::RopeLayout::Interleaved ? "interleaved (llama2.c's)"
                                                 : "rotate-half (Hugging Face's)";
}

/// What else the weights' meaning rests on: the pairing of q/k rows under
/// RoPE (a llama2.c checkpoint and its Hugging Face conversion hold the same
/// tensors with rows in another order), the RoPE base and the norm epsilon.
Status checkSameForm(const artifact::Artifact &artifact, const LlamaConfig &got,
                     const std::string &source) {
  const std::string &name = artifact.path();
  for (const plan::KernelPlan &p : artifact.schedules())
    for (const plan::Step &step : p.steps)
      if (const auto *rope = std::get_if<plan::RopeStep>(&step)) {
        if (rope->layout != got.rope)
          return Error(fmt::format("{} pairs q/k rows for {} RoPE, {} was compiled for {}: "
                                   "compile it from this checkpoint's config",
                                   source, ropeLayoutName(got.rope), name,
                                   ropeLayoutName(rope->layout)));
        if (rope->theta != got.ropeTheta)
          return Error(fmt::format("{} is not the model {} was compiled for: RoPE base {} "
                                   "there, {} here",
                                   source, name, rope->theta, got.ropeTheta));
      }
  if (artifact.config().normEps != got.normEps)
    return Error(fmt::format("{} is not the model {} was compiled for: norm epsilon {} there, "
                             "{} here",
                             source, name, artifact.config().normEps, got.normEps));
  return Status::ok();
}

/// Row `row` of `view` (a vector is one row) as floats.
void readRow(const TensorView &view, int64_t row, std::span<float> out) {
  const size_t n = out.size();
  decodeFloats(view.bytes.data() + size_t(row) * n * elementSize(view.type), int64_t(n),
               view.type, out.data());
}

} // namespace

Status packParameters(const artifact::Artifact &artifact, const LlamaCheckpoint &checkpoint,
                      const std::string &source, const std::string &out,
                      const PackProgressFn &progress) {
  const std::string &name = artifact.path();
  const artifact::ExternalWeights *weights = artifact.externalWeights();
  if (!weights)
    return Error(name + " holds its own weights: nothing to pack (lathe-compile "
                        "--external-weights keeps them out of the artifact)");
  if (!weights->fromCheckpoint)
    return Error(name + ": the compiler changed its weights (equalized or reordered channels, "
                        "or a GGUF's blocks), so only the parameter file lathe-compile wrote "
                        "beside it holds them");
  if (Status s = checkSameModel(artifact.config(), checkpoint.config, name, source); !s)
    return s;
  if (Status s = checkSameForm(artifact, checkpoint.config, source); !s)
    return s;
  std::map<std::string, const TensorView *> byName;
  for (const auto &[tensorName, view] : namedTensors(checkpoint))
    byName.emplace(tensorName, view);
  // Every tensor checked before a byte is written.
  const std::vector<plan::TensorInfo> &tensors = artifact.tensors();
  std::vector<const TensorView *> views;
  std::set<std::string> used;
  for (const plan::TensorInfo &t : tensors) {
    const std::string from = plan::sourceTensorName(t);
    auto it = byName.find(from);
    if (it == byName.end())
      return Error(fmt::format("{} has no tensor '{}', which {} needs", source, from, name));
    const TensorView &v = *it->second;
    if (v.packed)
      return Error(fmt::format("{}: tensor '{}' is stored packed ({}); lathe-pack reads "
                               "f32, f16 and bf16 checkpoints",
                               source, from, formats::formatName(*v.packed)));
    if (v.shape != t.shape)
      return Error(fmt::format("{}: tensor '{}' is {}, {} needs {}", source, from,
                               formatShape(v.shape), name, formatShape(t.shape)));
    views.push_back(&v);
    used.insert(from);
  }
  // A tensor left over means another form of the model (an untied
  // classifier where the artifact ties it, biases it has none of).
  for (const auto &[tensorName, view] : byName)
    if (!used.count(tensorName))
      return Error(fmt::format("{} has tensor '{}', which {} has no place for: it was compiled "
                               "for another form of the model",
                               source, tensorName, name));
  return artifact::writeParameterFile(
      out, weights->id, weights->dataSize, [&](std::span<uint8_t> data) -> Status {
        for (size_t i = 0; i < tensors.size(); ++i) {
          const plan::TensorInfo &t = tensors[i];
          std::span<uint8_t> dst = data.subspan(weights->offsets[i], t.storageBytes());
          const TensorView &v = *views[i];
          if (!t.quant && v.type == t.type)
            std::memcpy(dst.data(), v.bytes.data(), dst.size()); // as stored
          else if (Status s = artifact::encodeTensor(
                       t, dst, [&](int64_t row, std::span<float> values) {
                         readRow(v, row, values);
                       });
                   !s)
            return Error(source + ": " + s.error().message());
          if (progress)
            progress(i + 1, tensors.size());
        }
        return Status::ok();
      });
}

} // namespace lathe::frontend
