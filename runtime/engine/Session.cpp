#include "runtime/engine/Session.h"

#include "runtime/kernels/ReferenceKernels.h"

#include <fmt/format.h>
#include <new>
#include <type_traits>

namespace lathe {

Status checkTokenIds(const plan::ModelConfig &config, std::span<const int32_t> tokens) {
  for (int32_t t : tokens)
    if (t < 0 || t >= config.vocab)
      return Error(fmt::format("token id {} is outside the vocabulary (0..{})", t,
                               config.vocab - 1));
  return Status::ok();
}

Expected<Session> Session::create(std::shared_ptr<const artifact::Artifact> artifact,
                                  const std::string &target) {
  const plan::KernelPlan *plan = artifact->schedule(target);
  if (!plan)
    return Error(fmt::format("{}: compiled for no '{}' target; recompile with "
                             "lathe-compile --target={}",
                             artifact->path(), target, target));
  // The KV cache is allocated up front: refuse sizes that cannot be served
  // instead of failing later.
  const plan::ModelConfig &c = artifact->config();
  uint64_t kvBytes = 2ull * plan->kvLayers * uint64_t(c.context) * plan->kvWidth * 4;
  try {
    return Session(std::move(artifact), plan);
  } catch (const std::bad_alloc &) {
    return Error(fmt::format("cannot allocate {:.1f} MiB for the KV cache",
                             double(kvBytes) / (1 << 20)));
  }
}

Session::Session(std::shared_ptr<const artifact::Artifact> artifact,
                 const plan::KernelPlan *plan)
    : artifact_(std::move(artifact)), plan_(plan) {
  const plan::ModelConfig &c = artifact_->config();
  size_t kvSize = plan_->kvLayers * c.context * plan_->kvWidth;
  keys_.assign(kvSize, 0.0f);
  values_.assign(kvSize, 0.0f);
  scratch_.assign(c.context, 0.0f);
  buffers_.resize(plan_->bufferWidths.size());
}

Expected<std::span<const float>> Session::forward(std::span<const int32_t> tokens,
                                                  bool allLogits) {
  const plan::ModelConfig &c = artifact_->config();
  if (tokens.empty())
    return Error("forward: no tokens to run");
  if (Status s = checkTokenIds(c, tokens); !s)
    return s.error();
  if (position_ + static_cast<int64_t>(tokens.size()) > c.context)
    return Error(fmt::format("the sequence would reach {} tokens, longer than the "
                             "model's context of {} tokens",
                             position_ + tokens.size(), c.context));
  int64_t rows = static_cast<int64_t>(tokens.size());
  tokens_.assign(tokens.begin(), tokens.end());
  positions_.resize(rows);
  for (int64_t i = 0; i < rows; ++i)
    positions_[i] = static_cast<int32_t>(position_ + i);
  try {
    for (size_t b = 0; b < buffers_.size(); ++b)
      if (buffers_[b].size() < rows * plan_->bufferWidths[b])
        buffers_[b].resize(rows * plan_->bufferWidths[b]);
  } catch (const std::bad_alloc &) {
    return Error(fmt::format("cannot allocate activation buffers for {} tokens", rows));
  }

  for (size_t i = 0; i < plan_->steps.size(); ++i)
    run(i, plan_->steps[i], rows, allLogits);
  position_ += rows;
  size_t logitRows = allLogits ? rows : 1;
  return std::span<const float>(buffers_[plan_->logits].data(), logitRows * c.vocab);
}

void Session::run(size_t index, const plan::Step &step, int64_t rows, bool allLogits) {
  auto weight = [&](uint32_t index) {
    const plan::TensorInfo &info = artifact_->tensors()[index];
    int64_t cols = info.shape.size() == 2 ? info.shape[1] : info.shape[0];
    int64_t r = info.shape.size() == 2 ? info.shape[0] : 1;
    return kernels::WeightView{info.type, artifact_->tensorData(index).data(), r, cols,
                               info.quant ? &*info.quant : nullptr};
  };
  auto buf = [&](uint32_t index) { return buffers_[index].data(); };
  auto width = [&](uint32_t index) {
    return static_cast<int64_t>(plan_->bufferWidths[index]);
  };

  std::visit(
      [&](const auto &s) {
        using T = std::decay_t<decltype(s)>;
        if constexpr (std::is_same_v<T, plan::EmbeddingStep>) {
          kernels::embedding(weight(s.table), tokens_, buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::RmsNormStep>) {
          kernels::rmsNorm(buf(s.input), weight(s.gain), s.epsilon, rows,
                           width(s.input), buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::MatMulStep>) {
          if (observer_)
            observer_(index, buf(s.input), rows, width(s.input));
          kernels::matmul(buf(s.input), rows, weight(s.weight), buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::RopeStep>) {
          kernels::rope(buf(s.input), positions_, width(s.input), s.headDim, s.theta,
                        s.layout, buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::AttentionStep>) {
          const plan::ModelConfig &c = artifact_->config();
          size_t layerOffset = s.layer * c.context * plan_->kvWidth;
          kernels::KVLayerView cache{keys_.data() + layerOffset,
                                     values_.data() + layerOffset, c.context,
                                     static_cast<int64_t>(plan_->kvWidth)};
          kernels::attention(buf(s.queries), buf(s.keys), buf(s.values), positions_,
                             s.heads, s.kvHeads, s.headDim, cache, scratch_.data(),
                             buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::SiluMulStep>) {
          kernels::siluMul(buf(s.gate), buf(s.up), rows * width(s.gate), buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::AddStep>) {
          kernels::add(buf(s.lhs), buf(s.rhs), rows * width(s.lhs), buf(s.output));
        } else {
          // Decoding needs only the last row's scores: skip the others.
          int64_t first = allLogits ? 0 : rows - 1;
          kernels::matmul(buf(s.input) + first * width(s.input), rows - first,
                          weight(s.classifier), buf(s.output));
        }
      },
      step);
}

} // namespace lathe
