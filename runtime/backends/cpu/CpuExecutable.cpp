#include "runtime/backends/cpu/CpuExecutable.h"

#include "runtime/backends/cpu/CpuDevice.h"
#include "runtime/backends/cpu/kernels/Attention.h"
#include "runtime/backends/cpu/kernels/KvStore.h"
#include "runtime/backends/cpu/kernels/Matmul.h"
#include "runtime/formats/ElementType.h"
#include "runtime/kernels/ReferenceKernels.h"
#include "runtime/plan/StepCodec.h"
#include "runtime/sampling/Sampler.h"
#include "runtime/support/HugePages.h"

#include <algorithm>
#include <cstdlib>
#include <fmt/format.h>
#include <new>
#include <string>
#include <type_traits>

namespace lathe::cpu {

using backend::KernelPath;

Expected<std::shared_ptr<backend::Executable>>
CpuExecutable::load(std::shared_ptr<const artifact::Artifact> artifact,
                    const backend::ExecutionOptions &options) {
  const plan::KernelPlan *plan = artifact->schedule(options.target);
  if (!plan)
    return Error(fmt::format("{}: compiled for no '{}' target", artifact->path(),
                             options.target));
  std::shared_ptr<native::NativeModel> nativeModel;
  // A cpu schedule's native code is its forward step; another target's
  // (the cuda host schedule) is not for this backend, which interprets
  // that plan (the reference kernels a GPU is checked against).
  if (plan->native && plan->target == "cpu" && options.nativeCode &&
      options.kernels == KernelPath::Fast) {
    auto loaded = native::NativeModel::load(*plan, artifact->path());
    if (!loaded)
      return loaded.error();
    nativeModel = *loaded;
  }
  try {
    std::shared_ptr<CpuExecutable> executable(
        new CpuExecutable(std::move(artifact), plan, options));
    executable->native_ = std::move(nativeModel);
    if (executable->native_ && !executable->decodeVectors())
      return Error("cannot allocate memory for the model's norm gains and biases");
    if (options.kernels == KernelPath::Fast &&
        std::count(executable->int8Weights_.begin(), executable->int8Weights_.end(), true) &&
        !executable->packPanels())
      return Error("cannot allocate memory to repack the weights for the int8 decode kernel");
    return std::shared_ptr<backend::Executable>(std::move(executable));
  } catch (const std::bad_alloc &) {
    return Error("cannot allocate memory for the CPU executable");
  }
}

namespace {

/// Whether no step but the classifier reads or writes `buffer`: the logits
/// buffer is then sized for the rows that return logits alone. (A plan
/// whose logits reuse a dead buffer of the same width, a model whose hidden
/// size is its vocabulary, keeps a row for every token.)
bool onlyTheLogitsStepUses(const plan::KernelPlan &plan, uint32_t buffer) {
  for (const plan::Step &step : plan.steps) {
    if (std::holds_alternative<plan::LogitsStep>(step))
      continue;
    const plan::FlatStep flat = plan::flatten(step);
    size_t at = 0;
    for (const plan::FieldInfo &field : plan::stepFields(flat.kind)) {
      switch (field.role) {
      case plan::FieldRole::Float:
        break;
      case plan::FieldRole::Buffer:
        if (flat.ints[at++] == buffer)
          return false;
        break;
      case plan::FieldRole::BufferList:
      case plan::FieldRole::TensorList:
      case plan::FieldRole::NumberList: {
        const int64_t n = flat.ints[at++];
        for (int64_t i = 0; i < n; ++i, ++at)
          if (field.role == plan::FieldRole::BufferList && flat.ints[at] == buffer)
            return false;
        break;
      }
      default:
        ++at;
        break;
      }
    }
  }
  return true;
}

} // namespace

CpuExecutable::CpuExecutable(std::shared_ptr<const artifact::Artifact> artifact,
                             const plan::KernelPlan *plan,
                             const backend::ExecutionOptions &options)
    : Executable(std::move(artifact)), plan_(plan), options_(options),
      logitRowsOnly_(onlyTheLogitsStepUses(*plan, plan->logits)) {
  if (options_.kernels == KernelPath::Reference)
    options_.nativeCode = false;
  // Which weights' products round their input to int8: what each product
  // of the plan asks for (#plan.activations), unless the options say for
  // all; only formats with integer codes can.
  // A weight read by several products takes int8 only if all of them ask.
  const auto &tensors = this->artifact().tensors();
  // bf16 activations are the plan's alone (the option overrides int8 only).
  int8Weights_.assign(tensors.size(), false);
  bf16Weights_.assign(tensors.size(), false);
  std::vector<bool> seen(tensors.size(), false);
  plan::forEachProduct(*plan_, [&](uint32_t weight, plan::Activations asked) {
    const bool want = options_.int8Activations.value_or(asked == plan::Activations::Int8) &&
                      tensors[weight].quant && formats::hasIntegerCodes(*tensors[weight].quant);
    int8Weights_[weight] = want && (!seen[weight] || int8Weights_[weight]);
    const bool bf16 = asked == plan::Activations::Bf16;
    bf16Weights_[weight] = bf16 && (!seen[weight] || bf16Weights_[weight]);
    seen[weight] = true;
  });
  if (!options_.int8Activations)
    options_.int8Activations = plan::usesInt8Activations(*plan_);
  bf16Queries_.assign(plan_->kvLayers, false);
  ropeFrequencies_.resize(plan_->steps.size());
  for (size_t i = 0; i < plan_->steps.size(); ++i) {
    const plan::Step &step = plan_->steps[i];
    if (const auto *a = std::get_if<plan::AttentionStep>(&step))
      bf16Queries_[a->layer] = a->activations == plan::Activations::Bf16;
    if (const auto *r = std::get_if<plan::RopeStep>(&step))
      ropeFrequencies_[i] = r->pairFrequencies();
  }
  // More threads than cores would only make spinning workers steal time
  // from each other (decode gets slower, not faster): clamp.
  const int cores = threading::defaultThreadCount();
  int threads = options.threads > 0 ? std::min(options.threads, cores) : cores;
  if (options_.kernels == KernelPath::Reference)
    threads = 1;
  pool_ = CpuDevice::instance().threadPool(threads);
  buffers_.resize(plan_->bufferWidths.size());
  makeScreening();
}

backend::Device &CpuExecutable::device() { return CpuDevice::instance(); }

kv::KVLayout CpuExecutable::kvLayout(int64_t blocks) const {
  return backend::kvLayoutOf(*plan_, blocks);
}

Status CpuExecutable::setMatMulObserver(backend::MatMulObserver observer) {
  if (native_ && observer)
    return Error("the generated CPU code calls no matmul observer; load with nativeCode off");
  observer_ = std::move(observer);
  return Status::ok();
}

namespace {

using PanelTable = std::vector<std::shared_ptr<const kernels::simd::PanelWeights>>;

/// Every weight whose products run int8 (`int8Weights`: packed in a format
/// with integer codes) that the panel kernel takes, repacked into one
/// huge-page arena (decode streams every panel, and the small ones would
/// otherwise sit on 4 KiB pages); indexed by tensor, null for the others.
/// Null when memory runs out.
std::shared_ptr<const PanelTable> buildPanels(const artifact::Artifact &artifact,
                                              const std::vector<bool> &int8Weights) {
  const auto &tensors = artifact.tensors();
  std::vector<uint32_t> weights;
  std::vector<size_t> offsets;
  size_t total = 0;
  for (uint32_t index = 0; index < tensors.size(); ++index) {
    const plan::TensorInfo &info = tensors[index];
    if (!int8Weights[index] || info.shape.size() != 2)
      continue;
    const size_t bytes = kernels::simd::panelStorageBytes(*info.quant, info.shape[0],
                                                          info.shape[1]);
    if (bytes == 0)
      continue;
    weights.push_back(index);
    offsets.push_back(total);
    total += bytes; // a multiple of 64: every panel stays aligned
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

bool CpuExecutable::packPanels() {
  // Built once per artifact, plan and set of int8 weights, shared by every
  // executable running them.
  try {
    std::string key = "cpu-panels:" + plan_->target + ":";
    for (size_t t = 0; t < int8Weights_.size(); ++t)
      if (int8Weights_[t])
        key += std::to_string(t) + ",";
    auto shared = artifact().derived(key, [&] {
      return std::static_pointer_cast<const void>(buildPanels(artifact(), int8Weights_));
    });
    if (!shared)
      return false;
    panels_ = *std::static_pointer_cast<const PanelTable>(shared);
    return true;
  } catch (const std::bad_alloc &) {
    return false;
  }
}

bool CpuExecutable::decodeVectors() {
  // Once per artifact, shared by every executable running it.
  auto shared = artifact().derived("cpu-vectors", [&]() -> std::shared_ptr<const void> {
    try {
      auto table = std::make_shared<VectorTable>(artifact().tensors().size());
      for (size_t t = 0; t < table->size(); ++t) {
        const plan::TensorInfo &info = artifact().tensors()[t];
        if (info.shape.size() != 1 || info.quant)
          continue;
        (*table)[t].resize(size_t(info.shape[0]));
        decodeFloats(artifact().tensorData(t).data(), info.shape[0], info.type,
                     (*table)[t].data());
      }
      return table;
    } catch (const std::bad_alloc &) {
      return nullptr;
    }
  });
  vectors_ = std::static_pointer_cast<const VectorTable>(shared);
  return vectors_ != nullptr;
}

/// The runtime side of native/CpuModelAbi.h: the generated code's calls land
/// on the executable's kernels for the step in progress.
struct NativeKernels {
  static CpuExecutable &self(LatheCpuContext *ctx) {
    return *reinterpret_cast<CpuExecutable *>(ctx);
  }
  static void matmul(LatheCpuContext *ctx, const float *x, int64_t rows, uint32_t weight,
                     float *y) {
    self(ctx).matmul(x, rows, weight, y);
  }
  static void matmuls(LatheCpuContext *ctx, const float *x, int64_t rows, uint32_t count,
                      const uint32_t *weights, float *const *outputs) {
    self(ctx).matmuls(x, rows, count, weights, outputs);
  }
  static void embedding(LatheCpuContext *ctx, uint32_t table, float *out) {
    CpuExecutable &e = self(ctx);
    const plan::TensorInfo &info = e.artifact().tensors()[table];
    kernels::embedding({info.type, e.artifact().tensorData(table).data(), info.shape[0],
                        info.shape[1], info.quant ? &*info.quant : nullptr},
                       e.batch_->tokens, out);
  }
  static void attention(LatheCpuContext *ctx, const float *q, const float *k,
                        const float *v, uint32_t layer, uint32_t heads, uint32_t kvHeads,
                        uint32_t headDim, float *out) {
    self(ctx).attention(q, k, v, layer, heads, kvHeads, headDim, out);
  }
  static void logits(LatheCpuContext *ctx, const float *x, uint32_t classifier, float *y) {
    self(ctx).logits(x, classifier, y);
  }
  static const float *vector(LatheCpuContext *ctx, uint32_t tensor) {
    return (*self(ctx).vectors_)[tensor].data();
  }
  static constexpr LatheCpuKernels table = {LATHE_CPU_ABI_VERSION, matmul, embedding,
                                            attention, matmuls, logits, vector};
};

Status CpuExecutable::beginStep(const backend::Batch &batch, kv::PagedKVCache &kv,
                                std::vector<std::vector<float>> &buffers,
                                backend::StepLayout &layout) {
  const plan::ModelConfig &c = config();
  if (Status s = backend::validateBatch(batch, c.vocab, c.context, kv); !s)
    return s;
  if (!backend::fitsPlan(kv.layout(), *plan_) || !kv.keys(0))
    return Error("the KV cache does not have this model's layout on the CPU");
  const int64_t rows = static_cast<int64_t>(batch.size());
  buffers.resize(plan_->bufferWidths.size());
  // The logits buffer holds only the rows that return logits (logits()
  // writes them one after another): a prompt's last token, not a
  // vocabulary-wide row for each of its tokens (2048 tokens of a 128k
  // vocabulary would take 1 GB).
  auto needed = [&](size_t b) {
    return size_t((b == plan_->logits && logitRowsOnly_ ? batch.logitRows() : rows) *
                  int64_t(plan_->bufferWidths[b]));
  };
  size_t growth = 0;
  for (size_t b = 0; b < buffers.size(); ++b)
    growth += std::max(needed(b), buffers[b].size()) - buffers[b].size();
  // A vector's pages are granted by overcommit and backed as it is filled:
  // refuse a growth the machine cannot back before the process is killed.
  if (Status s = CpuDevice::instance().checkAvailable(growth * sizeof(float)); !s)
    return Error(fmt::format("cannot allocate activation buffers for {} tokens ({:.1f} MiB): {}",
                             rows, double(growth * sizeof(float)) / (1 << 20),
                             s.error().message()));
  try {
    for (size_t b = 0; b < buffers.size(); ++b)
      if (buffers[b].size() < needed(b))
        buffers[b].resize(needed(b));
  } catch (const std::bad_alloc &) {
    return Error(fmt::format("cannot allocate activation buffers for {} tokens", rows));
  }
  // One attention score row per head, so that heads can run in parallel: a
  // token sees at most the context. Allocated before the cache grows, so a
  // failure leaves it unchanged.
  try {
    scratch_.resize(size_t(c.heads) * size_t(c.context));
  } catch (const std::bad_alloc &) {
    return Error("cannot allocate the attention scratch");
  }
  return layout.prepare(batch, kv);
}

Expected<std::span<const float>> CpuExecutable::execute(const backend::Batch &batch,
                                                        kv::PagedKVCache &kv) {
  std::lock_guard<std::mutex> lock(step_);
  return step(batch, kv);
}

Expected<std::vector<int32_t>> CpuExecutable::executeGreedy(const backend::Batch &batch,
                                                            kv::PagedKVCache &kv) {
  Expected<GreedyScores> step = greedyStep(batch, kv);
  if (!step)
    return step.error();
  return std::move(step->ids);
}

Expected<backend::Executable::GreedyScores>
CpuExecutable::executeGreedyScored(const backend::Batch &batch, kv::PagedKVCache &kv) {
  return greedyStep(batch, kv);
}

Expected<backend::Executable::GreedyScores>
CpuExecutable::greedyStep(const backend::Batch &batch, kv::PagedKVCache &kv) {
  std::lock_guard<std::mutex> lock(step_);
  GreedyScores out;
  // An observer sees every product.
  const bool screen = screened_ && !observer_ && batch.logitRows() <= kScreenedRows;
  greedyIds_ = screen ? &out.ids : nullptr;
  greedyScreened_ = false;
  Expected<std::span<const float>> logits = step(batch, kv);
  greedyIds_ = nullptr;
  if (!logits)
    return logits.error();
  if (greedyScreened_) {
    out.scores = screened_->estimates();
    return out;
  }
  out.ids = backend::argmaxRows(*logits, config().vocab);
  out.scores = *logits;
  return out;
}

std::optional<int64_t> CpuExecutable::greedyWeightBytes(uint32_t tensor) const {
  if (screened_ && tensor == screenedTensor_)
    return screened_->bytesPerStep();
  return std::nullopt;
}

ScreenedArgmax *CpuExecutable::screened(uint32_t tensor) {
  return tensor == screenedTensor_ ? screened_.get() : nullptr;
}

void CpuExecutable::makeScreening() {
  static const bool wanted = [] {
    const char *v = std::getenv("LATHE_CPU_SCREENED_ARGMAX");
    return !(v && std::string(v) == "0");
  }();
  if (!wanted || options_.kernels == KernelPath::Reference)
    return;
  for (const plan::Step &step : plan_->steps)
    if (const auto *l = std::get_if<plan::LogitsStep>(&step)) {
      // The float32 products' own input: not one rounded to bf16 first.
      const plan::TensorInfo &info = artifact().tensors()[l->classifier];
      if (info.type != ElementType::F32 || info.quant || info.shape.size() != 2 ||
          bf16Weights_[l->classifier] || int8Weights_[l->classifier])
        return;
      screenedTensor_ = l->classifier;
      screened_ = ScreenedArgmax::make(
          reinterpret_cast<const float *>(artifact().tensorData(l->classifier).data()),
          info.shape[0], info.shape[1], *pool_);
      return;
    }
}

Expected<std::span<const float>> CpuExecutable::step(const backend::Batch &batch,
                                                     kv::PagedKVCache &kv) {
  const plan::ModelConfig &c = config();
  if (Status s = beginStep(batch, kv, buffers_, layout_); !s)
    return s.error();
  const int64_t rows = static_cast<int64_t>(batch.size());
  batch_ = &batch;
  kv_ = &kv;
  products_ = {};

  if (native_) {
    bufferPointers_.resize(buffers_.size());
    for (size_t b = 0; b < buffers_.size(); ++b)
      bufferPointers_[b] = buffers_[b].data();
    native_->forward()(&NativeKernels::table, reinterpret_cast<LatheCpuContext *>(this),
                       bufferPointers_.data(), batch.positions.data(), rows);
  } else {
    for (size_t i = 0; i < plan_->steps.size(); ++i)
      run(i, plan_->steps[i], rows);
  }
  batch_ = nullptr;
  kv_ = nullptr;
  return std::span<const float>(buffers_[plan_->logits].data(),
                                layout_.logitTokens.size() * size_t(c.vocab));
}

namespace {

/// A CPU step between its layer groups: its own activation buffers (the
/// hidden state, and whatever else the next group reads, stays where the
/// plan put it) and its layout (the cache rows its tokens' keys and values
/// go to and see). The executable swaps them in for each group, so steps
/// run in between keep theirs.
struct CpuLayerCarry final : backend::LayerCarry {
  std::vector<std::vector<float>> buffers;
  backend::StepLayout layout;
};

} // namespace

Expected<std::span<const float>>
CpuExecutable::executeLayers(const backend::Batch &batch, kv::PagedKVCache &kv, size_t group,
                             std::unique_ptr<backend::LayerCarry> &carry) {
  if (Status s = checkLayerGroup(batch, kv, group, carry.get()); !s)
    return s.error();
  const size_t count = std::max<size_t>(1, plan_->layerGroups.size());
  std::lock_guard<std::mutex> lock(step_);
  CpuLayerCarry *state = nullptr;
  if (group == 0) {
    auto fresh = std::make_unique<CpuLayerCarry>();
    // The last layered prompt's buffers, already sized and touched: a
    // prompt's first group does not pay for allocating and zeroing them.
    fresh->buffers = std::move(spareBuffers_);
    if (Status s = beginStep(batch, kv, fresh->buffers, fresh->layout); !s)
      return s.error();
    fresh->batch = &batch;
    fresh->kv = &kv;
    state = fresh.get();
    carry = std::move(fresh);
  } else if (!(state = dynamic_cast<CpuLayerCarry *>(carry.get()))) {
    return Error("the layer carry is another backend's");
  }
  const auto [first, end] = plan::layerGroupSteps(*plan_, group);
  const int64_t rows = static_cast<int64_t>(batch.size());
  std::swap(buffers_, state->buffers);
  std::swap(layout_, state->layout);
  batch_ = &batch;
  kv_ = &kv;
  products_ = {};
  for (size_t i = first; i < end; ++i)
    run(i, plan_->steps[i], rows);
  batch_ = nullptr;
  kv_ = nullptr;
  if (group + 1 < count) {
    std::swap(buffers_, state->buffers);
    std::swap(layout_, state->layout);
    state->next = group + 1;
    return std::span<const float>();
  }
  // The last group: the executable takes back its own buffers (sized for
  // the steps it runs) but the prompt's logits, so that they live as long as
  // execute's do.
  const size_t logitCount = layout_.logitTokens.size() * size_t(config().vocab);
  std::swap(buffers_, state->buffers);
  std::swap(layout_, state->layout);
  std::swap(buffers_[plan_->logits], state->buffers[plan_->logits]);
  spareBuffers_ = std::move(state->buffers); // for the next layered prompt
  carry.reset();
  return std::span<const float>(buffers_[plan_->logits].data(), logitCount);
}

void CpuExecutable::matmul(const float *x, int64_t rows, uint32_t index, float *y) {
  matmuls(x, rows, 1, &index, &y);
}

void CpuExecutable::logits(const float *x, uint32_t classifier, float *y) {
  const std::vector<int32_t> &wanted = layout_.logitTokens;
  if (wanted.empty())
    return;
  const int64_t width = artifact().tensors()[classifier].shape[1];
  // Consecutive rows (a prompt's last token, every token of a scored text)
  // are read in place; others are gathered first.
  bool consecutive = true;
  for (size_t i = 1; i < wanted.size(); ++i)
    consecutive = consecutive && wanted[i] == wanted[i - 1] + 1;
  const float *input = x + int64_t{wanted[0]} * width;
  if (!consecutive) {
    gathered_.resize(wanted.size() * size_t(width));
    for (size_t i = 0; i < wanted.size(); ++i)
      std::copy_n(x + int64_t{wanted[i]} * width, width, gathered_.data() + i * width);
    input = gathered_.data();
  }
  // A greedy step takes the screening's ids (each token's every logit
  // computed where it cannot vouch for its candidates); every logit only
  // where the input cannot be rounded for its panels.
  if (greedyIds_) {
    if (ScreenedArgmax *s = screened(classifier);
        s && s->argmax(input, static_cast<int64_t>(wanted.size()), *pool_, *greedyIds_)) {
      greedyScreened_ = true;
      return;
    }
  }
  matmul(input, static_cast<int64_t>(wanted.size()), classifier, y);
}

void CpuExecutable::matmuls(const float *x, int64_t rows, uint32_t count,
                            const uint32_t *weights, float *const *outputs) {
  // A group's products share their input and its precision (plan.matmuls):
  // a bf16 input is rounded once for all of them.
  const float *bf16Input = nullptr;
  auto roundedBf16 = [&](uint32_t weight) {
    if (!bf16Input)
      bf16Input = roundForBf16(x, rows, artifact().tensors()[weight].shape[1]);
    return bf16Input;
  };
  if (options_.kernels == KernelPath::Reference) {
    for (uint32_t i = 0; i < count; ++i) {
      const plan::TensorInfo &info = artifact().tensors()[weights[i]];
      const float *input = x;
      if (int8Weights_[weights[i]] && roundForInt8(x, rows, info)) {
        input = rounded_.data();
        products_.int8 += 1;
      } else if (bf16Weights_[weights[i]]) {
        input = roundedBf16(weights[i]);
        products_.bf16 += 1;
      } else {
        products_.floats += 1;
      }
      kernels::matmul(input, rows,
                      {info.type, artifact().tensorData(weights[i]).data(), info.shape[0],
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
    const bool bf16 = bf16Weights_[weights[i]];
    jobs_.push_back(prepareMatmul(bf16 ? roundedBf16(weights[i]) : x, rows, weights[i],
                                  outputs[i], quantizedInputs_[i]));
    units += jobs_.back().units;
    (jobs_.back().kind != MatmulKernel::Float ? products_.int8
     : bf16                                   ? products_.bf16
                                              : products_.floats) += 1;
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

bool CpuExecutable::roundForInt8(const float *x, int64_t rows, const plan::TensorInfo &info) {
  namespace simd = kernels::simd;
  const int64_t k = info.shape[1];
  if (quantizedInputs_.empty())
    quantizedInputs_.resize(1);
  simd::Int8Activations &q = quantizedInputs_[0];
  if (!info.quant ||
      !simd::quantizeActivations(x, rows, k, *info.quant, q, simd::CodeOrder::Columns))
    return false;
  rounded_.resize(size_t(rows * k));
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t c = 0; c < k; ++c)
      rounded_[size_t(t * k + c)] = float(q.codes[size_t(t * q.codesPerRow + c)]) *
                                    q.scales[size_t(t * q.blocksPerRow + c / q.blockSize)];
  return true;
}

const float *CpuExecutable::roundForBf16(const float *x, int64_t rows, int64_t width) {
  bf16Rounded_.resize(size_t(rows * width));
  for (size_t i = 0; i < bf16Rounded_.size(); ++i)
    bf16Rounded_[i] = bf16ToFloat(floatToBf16(x[i]));
  return bf16Rounded_.data();
}

CpuExecutable::MatmulJob CpuExecutable::prepareMatmul(const float *x, int64_t rows,
                                                      uint32_t index, float *y,
                                                      kernels::simd::Int8Activations &quantized) {
  namespace simd = kernels::simd;
  const plan::TensorInfo &info = artifact().tensors()[index];
  const int64_t n = info.shape[0], k = info.shape[1];
  MatmulJob job{MatmulKernel::Float, index, x, rows, y, nullptr,
                (n + kRowsPerUnit - 1) / kRowsPerUnit};
  // An earlier product of the group with the same format and kernel has
  // quantized this input already (q/k/v usually share one format).
  for (const MatmulJob &earlier : jobs_) {
    const plan::TensorInfo &other = artifact().tensors()[earlier.weight];
    if (earlier.quantized && int8Weights_[index] && other.quant && info.quant &&
        *other.quant == *info.quant &&
        other.shape[1] == k && bool(panels_[earlier.weight]) == bool(panels_[index])) {
      job.kind = earlier.kind;
      job.quantized = earlier.quantized;
      job.units = earlier.kind == MatmulKernel::Panels ? panels_[index]->panels : job.units;
      return job;
    }
  }
  const bool int8 = int8Weights_[index];
  if (int8 && panels_[index] &&
      simd::quantizeActivations(x, rows, k, *info.quant, quantized, simd::CodeOrder::Columns)) {
    job.kind = MatmulKernel::Panels;
    job.quantized = &quantized;
    job.units = panels_[index]->panels;
  } else if (int8 && info.quant && simd::supportsInt8Activations(*info.quant) &&
             simd::quantizeActivations(x, rows, k, *info.quant, quantized)) {
    job.kind = MatmulKernel::Int8Rows;
    job.quantized = &quantized;
  }
  return job;
}

void CpuExecutable::runMatmul(const MatmulJob &job, int64_t u0, int64_t u1) {
  namespace simd = kernels::simd;
  if (job.kind == MatmulKernel::Panels) {
    simd::matmulPanels(*job.quantized, *panels_[job.weight], job.y, u0, u1);
    return;
  }
  const plan::TensorInfo &info = artifact().tensors()[job.weight];
  const uint8_t *data = artifact().tensorData(job.weight).data();
  const int64_t n = info.shape[0], k = info.shape[1];
  const int64_t n0 = u0 * kRowsPerUnit, n1 = std::min(n, u1 * kRowsPerUnit);
  const float *x = job.x;
  if (job.kind == MatmulKernel::Int8Rows)
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

void CpuExecutable::attention(const float *q, const float *k, const float *v, uint32_t layer,
                              uint32_t heads, uint32_t kvHeads, uint32_t headDim, float *out) {
  const int64_t stride = config().context;
  kernels::KVLayerView cache{kv_->keys(layer),
                             kv_->values(layer),
                             stride,
                             static_cast<int64_t>(plan_->kvWidth),
                             kv_->layout().format,
                             kv_->windowKeys(layer),
                             kv_->windowValues(layer),
                             kv_->layout().rows()};
  const bool reference = options_.kernels == KernelPath::Reference;
  if (bf16Queries_[layer])
    q = roundForBf16(q, int64_t(layout_.visible.size()), int64_t(heads) * headDim);
  if (reference)
    kernels::storeKV(k, v, layout_.storeRows, cache);
  else
    kernels::simd::storeKV(k, v, layout_.storeRows, cache);
  pool_->parallelFor(0, heads, [&](int64_t h0, int64_t h1) {
    float *scratch = scratch_.data() + h0 * stride;
    if (reference)
      kernels::attendHeads(q, layout_.visible, heads, kvHeads, headDim, cache, h0, h1, scratch,
                           out);
    else
      kernels::simd::attendHeads(q, layout_.visible, heads, kvHeads, headDim, cache, h0, h1,
                                 scratch, out);
  });
}

void CpuExecutable::run(size_t index, const plan::Step &step, int64_t rows) {
  auto weight = [&](uint32_t index) {
    const plan::TensorInfo &info = artifact().tensors()[index];
    int64_t cols = info.shape.size() == 2 ? info.shape[1] : info.shape[0];
    int64_t r = info.shape.size() == 2 ? info.shape[0] : 1;
    return kernels::WeightView{info.type, artifact().tensorData(index).data(), r, cols,
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
          kernels::embedding(weight(s.table), batch_->tokens, buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::RmsNormStep>) {
          // A gain shorter than the row normalizes each slice on its own:
          // the buffer is then rows * slices rows of the gain's length.
          const int64_t slice = artifact().tensors()[s.gain].shape[0];
          kernels::rmsNorm(buf(s.input), weight(s.gain), s.epsilon,
                           rows * (width(s.input) / slice), slice, buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::MatMulStep>) {
          if (observer_)
            observer_(index, buf(s.input), rows, width(s.input));
          matmul(buf(s.input), rows, s.weight, buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::MatMulsStep>) {
          if (observer_)
            observer_(index, buf(s.input), rows, width(s.input));
          outputPointers_.clear();
          for (uint32_t o : s.outputs)
            outputPointers_.push_back(buf(o));
          matmuls(buf(s.input), rows, static_cast<uint32_t>(s.weights.size()), s.weights.data(),
                  outputPointers_.data());
        } else if constexpr (std::is_same_v<T, plan::AddRmsNormStep>) {
          kernels::addRmsNorm(buf(s.lhs), buf(s.rhs), weight(s.gain), s.epsilon, rows,
                              width(s.lhs), buf(s.sum), buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::RopeStep>) {
          kernels::rope(buf(s.input), batch_->positions, width(s.input), s.headDim,
                        ropeFrequencies_[index], s.pairOrder, s.layout, buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::AttentionStep>) {
          attention(buf(s.queries), buf(s.keys), buf(s.values), s.layer, s.heads, s.kvHeads,
                    s.headDim, buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::SiluMulStep>) {
          kernels::siluMul(buf(s.gate), buf(s.up), rows * width(s.gate), buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::AddStep>) {
          kernels::add(buf(s.lhs), buf(s.rhs), rows * width(s.lhs), buf(s.output));
        } else if constexpr (std::is_same_v<T, plan::BiasAddStep>) {
          kernels::biasAdd(buf(s.input), weight(s.bias), rows, width(s.input), buf(s.output));
        } else {
          static_assert(std::is_same_v<T, plan::LogitsStep>, "a step without a kernel");
          logits(buf(s.input), s.classifier, buf(s.output));
        }
      },
      step);
}

} // namespace lathe::cpu
