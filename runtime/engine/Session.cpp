#include "runtime/engine/Session.h"

#include "runtime/kernels/ReferenceKernels.h"
#include "runtime/kernels/simd/Attention.h"
#include "runtime/kernels/simd/Matmul.h"
#include "runtime/support/HugePages.h"

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
                                  const SessionOptions &options) {
  const std::string &target = options.target;
  const plan::KernelPlan *plan = artifact->schedule(target);
  if (!plan)
    return Error(fmt::format("{}: compiled for no '{}' target; recompile with "
                             "lathe-compile --target={}",
                             artifact->path(), target, target));
  if (options.int8Activations && options.kernels == KernelPath::Reference)
    return Error("--int8-activations runs the SIMD integer kernels; it cannot be combined "
                 "with --kernels=reference");
  if (options.threads < 0 || options.threads > 1024)
    return Error(fmt::format("--threads must be between 1 and 1024 (0: every core), got {}",
                             options.threads));
  std::shared_ptr<native::NativeModel> nativeModel;
  if (plan->native && options.nativeCode && options.kernels == KernelPath::Simd) {
    auto loaded = native::NativeModel::load(*plan, artifact->path());
    if (!loaded)
      return loaded.error();
    nativeModel = *loaded;
  }
  // The KV cache is allocated up front: refuse sizes that cannot be served
  // instead of failing later.
  const plan::ModelConfig &c = artifact->config();
  uint64_t kvBytes = 2ull * plan->kvLayers * uint64_t(c.context) * plan->kvWidth * 4;
  try {
    Session session(std::move(artifact), plan, options);
    session.native_ = std::move(nativeModel);
    if (session.int8Activations_ && !session.packPanels())
      return Error("cannot allocate memory to repack the weights for the int8 decode kernel");
    return session;
  } catch (const std::bad_alloc &) {
    return Error(fmt::format("cannot allocate {:.1f} MiB for the KV cache",
                             double(kvBytes) / (1 << 20)));
  }
}

Session::Session(std::shared_ptr<const artifact::Artifact> artifact,
                 const plan::KernelPlan *plan, const SessionOptions &options)
    : artifact_(std::move(artifact)), plan_(plan), kernels_(options.kernels),
      int8Activations_(options.int8Activations && options.kernels == KernelPath::Simd) {
  const plan::ModelConfig &c = artifact_->config();
  size_t kvSize = plan_->kvLayers * c.context * plan_->kvWidth;
  keys_.assign(kvSize, 0.0f);
  values_.assign(kvSize, 0.0f);
  // One attention score row per head, so that heads can run in parallel.
  scratch_.assign(c.heads * c.context, 0.0f);
  // More threads than cores would only make spinning workers steal time
  // from each other (decode gets slower, not faster): clamp.
  const int cores = threading::defaultThreadCount();
  int threads = options.threads > 0 ? std::min(options.threads, cores) : cores;
  if (kernels_ == KernelPath::Reference)
    threads = 1;
  pool_ = std::make_shared<threading::ThreadPool>(threads);
  buffers_.resize(plan_->bufferWidths.size());
}

namespace {

using PanelTable = std::vector<std::shared_ptr<const kernels::simd::PanelWeights>>;

/// Every matmul weight of `plan` the panel kernel takes, repacked into one
/// huge-page arena (decode streams every panel, and the small ones would
/// otherwise sit on 4 KiB pages); indexed by tensor, null for the others.
/// Null when memory runs out.
std::shared_ptr<const PanelTable> buildPanels(const artifact::Artifact &artifact,
                                              const plan::KernelPlan &plan) {
  const auto &tensors = artifact.tensors();
  std::vector<uint32_t> weights;
  std::vector<size_t> offsets;
  size_t total = 0;
  std::vector<bool> seen(tensors.size(), false);
  auto consider = [&](uint32_t index) {
    const plan::TensorInfo &info = tensors[index];
    if (seen[index] || !info.quant || info.shape.size() != 2)
      return;
    seen[index] = true;
    const size_t bytes = kernels::simd::panelStorageBytes(*info.quant, info.shape[0],
                                                          info.shape[1]);
    if (bytes == 0)
      return;
    weights.push_back(index);
    offsets.push_back(total);
    total += bytes; // a multiple of 64: every panel stays aligned
  };
  for (const plan::Step &step : plan.steps) {
    if (const auto *m = std::get_if<plan::MatMulStep>(&step))
      consider(m->weight);
    if (const auto *l = std::get_if<plan::LogitsStep>(&step))
      consider(l->classifier);
  }
  auto table = std::make_shared<PanelTable>(tensors.size());
  if (weights.empty())
    return table;
  std::shared_ptr<uint8_t> arena = allocateHugePages(total);
  if (!arena)
    return nullptr;
  for (size_t i = 0; i < weights.size(); ++i) {
    const plan::TensorInfo &info = tensors[weights[i]];
    auto panels = std::make_shared<kernels::simd::PanelWeights>();
    if (!kernels::simd::packPanels(artifact.tensorData(weights[i]).data(), *info.quant,
                                   info.shape[0], info.shape[1], *panels, arena, offsets[i]))
      return nullptr;
    (*table)[weights[i]] = std::move(panels);
  }
  return table;
}

} // namespace

bool Session::packPanels() {
  // Built once per artifact and plan, shared by every session running it.
  try {
    auto shared = artifact_->derived("cpu-panels:" + plan_->target, [&] {
      return std::static_pointer_cast<const void>(buildPanels(*artifact_, *plan_));
    });
    if (!shared)
      return false;
    panels_ = *std::static_pointer_cast<const PanelTable>(shared);
    return true;
  } catch (const std::bad_alloc &) {
    return false;
  }
}

/// The runtime side of runtime/native/CpuModelAbi.h: the generated code's
/// calls land on the session's kernels.
struct NativeKernels {
  static Session &session(LatheCpuContext *ctx) { return *reinterpret_cast<Session *>(ctx); }
  static void matmul(LatheCpuContext *ctx, const float *x, int64_t rows, uint32_t weight,
                     float *y) {
    session(ctx).matmul(x, rows, weight, y);
  }
  static void matmuls(LatheCpuContext *ctx, const float *x, int64_t rows, uint32_t count,
                      const uint32_t *weights, float *const *outputs) {
    session(ctx).matmuls(x, rows, count, weights, outputs);
  }
  static void embedding(LatheCpuContext *ctx, uint32_t table, float *out) {
    Session &s = session(ctx);
    const plan::TensorInfo &info = s.artifact_->tensors()[table];
    kernels::embedding({info.type, s.artifact_->tensorData(table).data(), info.shape[0],
                        info.shape[1], info.quant ? &*info.quant : nullptr},
                       s.tokens_, out);
  }
  static void attention(LatheCpuContext *ctx, const float *q, const float *k,
                        const float *v, uint32_t layer, uint32_t heads, uint32_t kvHeads,
                        uint32_t headDim, float *out) {
    session(ctx).attention(q, k, v, layer, heads, kvHeads, headDim, out);
  }
  static const float *f32Tensor(LatheCpuContext *ctx, uint32_t index) {
    Session &s = session(ctx);
    if (s.artifact_->tensors()[index].type != ElementType::F32 ||
        s.artifact_->tensors()[index].quant)
      return nullptr;
    return reinterpret_cast<const float *>(s.artifact_->tensorData(index).data());
  }
  static constexpr LatheCpuKernels table = {LATHE_CPU_ABI_VERSION, matmul, embedding,
                                            attention, f32Tensor, matmuls};
};

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

  if (native_) {
    bufferPointers_.resize(buffers_.size());
    for (size_t b = 0; b < buffers_.size(); ++b)
      bufferPointers_[b] = buffers_[b].data();
    native_->forward()(&NativeKernels::table, reinterpret_cast<LatheCpuContext *>(this),
                       bufferPointers_.data(), positions_.data(), rows, allLogits ? 1 : 0);
  } else {
    for (size_t i = 0; i < plan_->steps.size(); ++i)
      run(i, plan_->steps[i], rows, allLogits);
  }
  position_ += rows;
  size_t logitRows = allLogits ? rows : 1;
  return std::span<const float>(buffers_[plan_->logits].data(), logitRows * c.vocab);
}

int Session::threads() const { return pool_->size(); }

void Session::matmul(const float *x, int64_t rows, uint32_t index, float *y) {
  matmuls(x, rows, 1, &index, &y);
}

void Session::matmuls(const float *x, int64_t rows, uint32_t count, const uint32_t *weights,
                      float *const *outputs) {
  if (kernels_ == KernelPath::Reference) {
    for (uint32_t i = 0; i < count; ++i) {
      const plan::TensorInfo &info = artifact_->tensors()[weights[i]];
      kernels::matmul(x, rows,
                      {info.type, artifact_->tensorData(weights[i]).data(), info.shape[0],
                       info.shape[1], info.quant ? &*info.quant : nullptr},
                      outputs[i]);
    }
    return;
  }
  if (quantizedInputs_.size() < count)
    quantizedInputs_.resize(count);
  jobs_.clear();
  int64_t units = 0;
  for (uint32_t i = 0; i < count; ++i) {
    jobs_.push_back(prepareMatmul(x, rows, weights[i], outputs[i], quantizedInputs_[i]));
    units += jobs_.back().units;
  }
  // Units are numbered across the products in order; a thread's contiguous
  // share may span several of them.
  pool_->parallelFor(0, units, [&](int64_t u0, int64_t u1) {
    int64_t first = 0;
    for (const MatmulJob &job : jobs_) {
      const int64_t lo = std::max(u0, first), hi = std::min(u1, first + job.units);
      if (lo < hi)
        runMatmul(job, lo - first, hi - first);
      first += job.units;
    }
  });
}

Session::MatmulJob Session::prepareMatmul(const float *x, int64_t rows, uint32_t index,
                                          float *y, kernels::simd::Int8Activations &quantized) {
  namespace simd = kernels::simd;
  const plan::TensorInfo &info = artifact_->tensors()[index];
  const int64_t n = info.shape[0], k = info.shape[1];
  MatmulJob job{MatmulJob::Kind::Float, index, x, rows, y, nullptr,
                (n + kRowsPerUnit - 1) / kRowsPerUnit};
  // An earlier product of the group with the same format and kernel has
  // quantized this input already (q/k/v usually share one format).
  for (const MatmulJob &earlier : jobs_) {
    const plan::TensorInfo &other = artifact_->tensors()[earlier.weight];
    if (earlier.quantized && other.quant && info.quant && *other.quant == *info.quant &&
        other.shape[1] == k && bool(panels_[earlier.weight]) == bool(panels_[index])) {
      job.kind = earlier.kind;
      job.quantized = earlier.quantized;
      job.units = earlier.kind == MatmulJob::Kind::Panels ? panels_[index]->panels : job.units;
      return job;
    }
  }
  if (int8Activations_ && panels_[index] &&
      simd::quantizeActivations(x, rows, k, *info.quant, quantized, simd::CodeOrder::Columns)) {
    job.kind = MatmulJob::Kind::Panels;
    job.quantized = &quantized;
    job.units = panels_[index]->panels;
  } else if (int8Activations_ && info.quant && simd::supportsInt8Activations(*info.quant) &&
             simd::quantizeActivations(x, rows, k, *info.quant, quantized)) {
    job.kind = MatmulJob::Kind::Int8Rows;
    job.quantized = &quantized;
  }
  return job;
}

void Session::runMatmul(const MatmulJob &job, int64_t u0, int64_t u1) {
  namespace simd = kernels::simd;
  if (job.kind == MatmulJob::Kind::Panels) {
    simd::matmulPanels(*job.quantized, *panels_[job.weight], job.y, u0, u1);
    return;
  }
  const plan::TensorInfo &info = artifact_->tensors()[job.weight];
  const uint8_t *data = artifact_->tensorData(job.weight).data();
  const int64_t n = info.shape[0], k = info.shape[1];
  const int64_t n0 = u0 * kRowsPerUnit, n1 = std::min(n, u1 * kRowsPerUnit);
  const float *x = job.x;
  if (job.kind == MatmulJob::Kind::Int8Rows)
    simd::matmulPackedInt8(*job.quantized, data, *info.quant, n, job.y, n0, n1);
  else if (info.quant)
    simd::matmulPacked(x, job.rows, data, *info.quant, n, k, job.y, n0, n1);
  else if (info.type == ElementType::F32)
    simd::matmulF32(x, job.rows, reinterpret_cast<const float *>(data), n, k, job.y, n0, n1);
  else if (info.type == ElementType::BF16)
    simd::matmulBF16(x, job.rows, reinterpret_cast<const uint16_t *>(data), n, k, job.y, n0, n1);
  else
    simd::matmulF16(x, job.rows, reinterpret_cast<const uint16_t *>(data), n, k, job.y, n0, n1);
}

void Session::attention(const plan::AttentionStep &s, int64_t rows) {
  (void)rows;
  attention(buffers_[s.queries].data(), buffers_[s.keys].data(),
            buffers_[s.values].data(), s.layer, s.heads, s.kvHeads, s.headDim,
            buffers_[s.output].data());
}

void Session::attention(const float *q, const float *k, const float *v, uint32_t layer,
                        uint32_t heads, uint32_t kvHeads, uint32_t headDim, float *out) {
  const plan::ModelConfig &c = artifact_->config();
  size_t layerOffset = layer * c.context * plan_->kvWidth;
  kernels::KVLayerView cache{keys_.data() + layerOffset, values_.data() + layerOffset,
                             c.context, static_cast<int64_t>(plan_->kvWidth)};
  kernels::storeKV(k, v, positions_, cache);
  pool_->parallelFor(0, heads, [&](int64_t h0, int64_t h1) {
    float *scratch = scratch_.data() + h0 * c.context;
    if (kernels_ == KernelPath::Reference)
      kernels::attendHeads(q, positions_, heads, kvHeads, headDim, cache, h0, h1, scratch, out);
    else
      kernels::simd::attendHeads(q, positions_, heads, kvHeads, headDim, cache, h0, h1,
                                 scratch, out);
  });
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
          matmul(buf(s.input), rows, s.weight, buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::RopeStep>) {
          kernels::rope(buf(s.input), positions_, width(s.input), s.headDim, s.theta,
                        s.layout, buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::AttentionStep>) {
          attention(s, rows);
        } else if constexpr (std::is_same_v<T, plan::SiluMulStep>) {
          kernels::siluMul(buf(s.gate), buf(s.up), rows * width(s.gate), buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::AddStep>) {
          kernels::add(buf(s.lhs), buf(s.rhs), rows * width(s.lhs), buf(s.output));
        } else {
          // Decoding needs only the last row's scores: skip the others.
          int64_t first = allLogits ? 0 : rows - 1;
          matmul(buf(s.input) + first * width(s.input), rows - first, s.classifier,
                 buf(s.output));
        }
      },
      step);
}

} // namespace lathe
