#include "compiler/Frontend/PackParameters.h"

#include "runtime/artifact/ParameterFile.h"
#include "runtime/artifact/TensorEncoding.h"
#include "runtime/formats/ElementType.h"
#include "runtime/plan/PackedTensorName.h"

#include <fmt/format.h>

#include <cstring>
#include <map>

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
  std::map<std::string, const TensorView *> byName;
  for (const auto &[tensorName, view] : namedTensors(checkpoint))
    byName.emplace(tensorName, view);
  // Every tensor checked before a byte is written.
  const std::vector<plan::TensorInfo> &tensors = artifact.tensors();
  std::vector<const TensorView *> views;
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
  }
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
