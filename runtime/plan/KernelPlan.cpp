#include "runtime/plan/KernelPlan.h"

#include "runtime/artifact/FileHeader.h"
#include "runtime/formats/RowCodec.h"
#include "runtime/plan/StepCodec.h"

#include <cmath>
#include <fmt/format.h>
#include <type_traits>

namespace lathe::plan {
namespace {

/// Walks the steps in order, tracking which buffers hold data, and reports the
/// first inconsistency with the step's position and kernel in the message.
class PlanChecker {
public:
  PlanChecker(const KernelPlan &plan, const std::vector<TensorInfo> &tensors,
              const ModelConfig &config, const std::string &source)
      : plan_(plan), tensors_(tensors), config_(config), source_(source),
        written_(plan.bufferWidths.size(), false) {}

  Status run() {
    if (plan_.bufferWidths.empty() || plan_.steps.empty())
      return Error(source_ + ": kernel plan '" + plan_.target + "' is empty");
    for (uint64_t w : plan_.bufferWidths)
      if (w == 0 || w > (uint64_t(1) << 24))
        return Error(fmt::format("{}: kernel plan has a buffer of width {}",
                                 source_, w));
    if (plan_.kvLayers != static_cast<uint64_t>(config_.layers) ||
        plan_.kvWidth != static_cast<uint64_t>(config_.kvHeads * config_.headDim))
      return Error(fmt::format(
          "{}: kernel plan KV cache ({} layers x {}) does not match the config "
          "({} layers x {})",
          source_, plan_.kvLayers, plan_.kvWidth, config_.layers,
          config_.kvHeads * config_.headDim));
    // A compressed format must be one lathe-compile could have resolved for
    // this head_dim (its blocks tile each head); kvElement mirrors it.
    Expected<formats::KvFormat> kv = formats::resolveKvFormat(plan_.kvFormat, config_.headDim);
    if (!kv || !(*kv == plan_.kvFormat))
      return Error(fmt::format("{}: kernel plan KV format '{}' does not fit head_dim {}{}",
                               source_, formats::kvFormatName(plan_.kvFormat), config_.headDim,
                               kv ? "" : ": " + kv.error().message()));
    if (plan_.kvElement != formats::plainElement(plan_.kvFormat).value_or(ElementType::F32))
      return Error(fmt::format("{}: kernel plan KV element {} disagrees with its KV format '{}'",
                               source_, elementTypeName(plan_.kvElement),
                               formats::kvFormatName(plan_.kvFormat)));
    // The shape by the rules of its parser; a verification step stores
    // every node's key and value at the sequence's tail, so its tree must
    // fit in the context.
    if (plan_.specTree)
      if (Expected<speculative::TreeShape> tree =
              speculative::makeTreeShape(plan_.specTree->branching);
          !tree)
        return Error(fmt::format("{}: kernel plan's token tree: {}", source_,
                                 tree.error().message()));
    if (plan_.specTree && plan_.specTree->nodeCount() > config_.context)
      return Error(fmt::format("{}: kernel plan's token tree {} has {} nodes, more than the "
                               "context of {} tokens",
                               source_, plan_.specTree->str(), plan_.specTree->nodeCount(),
                               config_.context));
    for (size_t i = 0; i < plan_.steps.size(); ++i) {
      index_ = i;
      Status s = std::visit([&](const auto &step) { return check(step); },
                            plan_.steps[i]);
      if (!s)
        return s;
    }
    if (Status s = checkLayerGroups(); !s)
      return s;
    if (plan_.logits >= plan_.bufferWidths.size() || !written_[plan_.logits])
      return Error(source_ + ": kernel plan's logits buffer is never written");
    // The logits step writes only the rows a batch asks for: the buffer the
    // plan returns must be its output.
    if (!lastLogitsWrite_)
      return Error(source_ + ": kernel plan's logits buffer is not written by its logits step");
    if (plan_.bufferWidths[plan_.logits] != static_cast<uint64_t>(config_.vocab))
      return Error(fmt::format("{}: logits buffer width {} differs from the "
                               "vocabulary size {}",
                               source_, plan_.bufferWidths[plan_.logits],
                               config_.vocab));
    return Status::ok();
  }

private:
  /// Layer groups cut the steps where the compiler found each group's first
  /// layer to begin: the cuts must be in order, and every step that names a
  /// layer (attention) must fall in its layer's group, the embedding in the
  /// first group and the classifier in the last, so that running the groups
  /// one after another is the whole step.
  Status checkLayerGroups() const {
    const std::vector<LayerGroup> &groups = plan_.layerGroups;
    if (groups.empty())
      return Status::ok();
    auto bad = [&](const std::string &what) {
      return Error(fmt::format("{}: kernel plan's layer groups: {}", source_, what));
    };
    if (groups.front().firstLayer != 0 || groups.front().firstStep != 0)
      return bad("the first group starts at layer 0 and step 0");
    for (size_t g = 1; g < groups.size(); ++g)
      if (groups[g].firstLayer <= groups[g - 1].firstLayer ||
          groups[g].firstLayer >= uint64_t(config_.layers) ||
          groups[g].firstStep <= groups[g - 1].firstStep ||
          groups[g].firstStep >= plan_.steps.size())
        return bad(fmt::format("group {} (layer {}, step {}) does not follow group {} (layer "
                               "{}, step {}) within {} layers and {} steps",
                               g, groups[g].firstLayer, groups[g].firstStep, g - 1,
                               groups[g - 1].firstLayer, groups[g - 1].firstStep,
                               config_.layers, plan_.steps.size()));
    size_t group = 0;
    for (size_t i = 0; i < plan_.steps.size(); ++i) {
      while (group + 1 < groups.size() && groups[group + 1].firstStep <= i)
        ++group;
      const size_t last = groups.size() - 1;
      const Step &step = plan_.steps[i];
      if (const auto *a = std::get_if<AttentionStep>(&step)) {
        const bool inGroup = a->layer >= groups[group].firstLayer &&
                             (group == last || a->layer < groups[group + 1].firstLayer);
        if (!inGroup)
          return bad(fmt::format("step {} (attention of layer {}) falls in group {}, which "
                                 "starts at layer {}",
                                 i, a->layer, group, groups[group].firstLayer));
      } else if (std::holds_alternative<EmbeddingStep>(step) && group != 0) {
        return bad(fmt::format("step {} (embedding) falls in group {}, not the first", i, group));
      } else if (std::holds_alternative<LogitsStep>(step) && group != last) {
        return bad(fmt::format("step {} (logits) falls in group {}, not the last", i, group));
      }
    }
    return Status::ok();
  }

  Error fail(const std::string &what) const {
    return Error(fmt::format("{}: kernel plan step {} ({}): {}", source_,
                             index_, stepName(plan_.steps[index_]), what));
  }

  Status read(uint32_t buffer, uint64_t *width) {
    if (buffer >= plan_.bufferWidths.size())
      return fail(fmt::format("buffer {} out of range", buffer));
    if (!written_[buffer])
      return fail(fmt::format("reads buffer {} before it is written", buffer));
    *width = plan_.bufferWidths[buffer];
    return Status::ok();
  }

  Status write(uint32_t buffer, uint64_t expectedWidth) {
    if (buffer >= plan_.bufferWidths.size())
      return fail(fmt::format("buffer {} out of range", buffer));
    if (buffer == plan_.logits)
      lastLogitsWrite_ = std::holds_alternative<LogitsStep>(plan_.steps[index_]);
    if (plan_.bufferWidths[buffer] != expectedWidth)
      return fail(fmt::format("output buffer {} has width {}, expected {}",
                              buffer, plan_.bufferWidths[buffer], expectedWidth));
    written_[buffer] = true;
    return Status::ok();
  }

  Status tensor(uint32_t index, size_t rank, const TensorInfo **out) {
    if (index >= tensors_.size())
      return fail(fmt::format("tensor {} out of range", index));
    if (tensors_[index].shape.size() != rank)
      return fail(fmt::format("tensor '{}' has rank {}, expected {}",
                              tensors_[index].name, tensors_[index].shape.size(),
                              rank));
    *out = &tensors_[index];
    return Status::ok();
  }

  Status matmul(uint32_t input, uint32_t weight, uint32_t output) {
    uint64_t k;
    const TensorInfo *w;
    if (Status s = read(input, &k); !s) return s;
    if (Status s = tensor(weight, 2, &w); !s) return s;
    if (static_cast<uint64_t>(w->shape[1]) != k)
      return fail(fmt::format("weight '{}' is [{}, {}] but the input width is {}",
                              w->name, w->shape[0], w->shape[1], k));
    if (input == output)
      return fail("output aliases the input");
    return write(output, static_cast<uint64_t>(w->shape[0]));
  }

  /// Embedding rows, norm gains and biases are read as plain numbers.
  Status plain(const TensorInfo *t) {
    if (t->quant)
      return fail(fmt::format("tensor '{}' is {}, this kernel reads f32/f16/bf16",
                              t->name, t->formatName()));
    return Status::ok();
  }

  Status check(const EmbeddingStep &s) {
    const TensorInfo *t;
    if (Status st = tensor(s.table, 2, &t); !st) return st;
    if (t->shape[0] != config_.vocab)
      return fail(fmt::format("table '{}' has {} rows, vocabulary is {}",
                              t->name, t->shape[0], config_.vocab));
    return write(s.output, static_cast<uint64_t>(t->shape[1]));
  }
  Status check(const RmsNormStep &s) {
    return rmsNorm(s.input, s.gain, s.output, s.epsilon, /*slices=*/true);
  }
  /// A norm of whole rows, or with `slices` of each gain-wide slice of a row.
  Status rmsNorm(uint32_t input, uint32_t gain, uint32_t output, float epsilon, bool slices) {
    uint64_t w;
    const TensorInfo *g;
    if (Status st = read(input, &w); !st) return st;
    if (Status st = tensor(gain, 1, &g); !st) return st;
    if (Status st = plain(g); !st) return st;
    const uint64_t n = static_cast<uint64_t>(g->shape[0]);
    if (slices ? (n == 0 || w % n != 0) : n != w)
      return fail(fmt::format("gain '{}' has {} elements, input width is {}", g->name, n, w));
    if (!(epsilon > 0.0f) || !std::isfinite(epsilon))
      return fail("epsilon must be positive");
    return write(output, w);
  }
  Status check(const BiasAddStep &s) {
    uint64_t w;
    const TensorInfo *b;
    if (Status st = read(s.input, &w); !st) return st;
    if (Status st = tensor(s.bias, 1, &b); !st) return st;
    if (Status st = plain(b); !st) return st;
    if (static_cast<uint64_t>(b->shape[0]) != w)
      return fail(fmt::format("bias '{}' has {} elements, input width is {}", b->name,
                              b->shape[0], w));
    return write(s.output, w);
  }
  Status check(const MatMulStep &s) { return matmul(s.input, s.weight, s.output); }
  Status check(const MatMulsStep &s) {
    if (s.weights.size() != s.outputs.size() || s.weights.size() < 2)
      return fail(fmt::format("{} weights for {} outputs", s.weights.size(), s.outputs.size()));
    for (size_t i = 0; i < s.weights.size(); ++i) {
      for (size_t j = 0; j < i; ++j)
        if (s.outputs[j] == s.outputs[i])
          return fail(fmt::format("writes buffer {} twice", s.outputs[i]));
      if (Status st = matmul(s.input, s.weights[i], s.outputs[i]); !st)
        return st;
    }
    return Status::ok();
  }
  Status check(const AddRmsNormStep &s) {
    if (Status st = elementwise(s.lhs, s.rhs, s.sum); !st)
      return st;
    if (s.output == s.sum)
      return fail("output aliases the sum");
    return rmsNorm(s.sum, s.gain, s.output, s.epsilon, /*slices=*/false);
  }
  Status check(const LogitsStep &s) {
    return matmul(s.input, s.classifier, s.output);
  }
  Status check(const RopeStep &s) {
    uint64_t w;
    if (Status st = read(s.input, &w); !st) return st;
    if (s.headDim == 0 || s.headDim % 2 != 0 || w % s.headDim != 0)
      return fail(fmt::format("head_dim {} does not split width {} into even heads",
                              s.headDim, w));
    if (!(s.theta > 0.0f) || !std::isfinite(s.theta))
      return fail("theta must be positive");
    if (s.layout != RopeLayout::Interleaved && s.layout != RopeLayout::RotateHalf)
      return fail("unknown rope layout");
    if (const char *problem = ropeScalingProblem(s.scaling()))
      return fail(problem);
    if (const char *problem = pairOrderProblem(s.pairOrder, s.headDim, w / s.headDim))
      return fail(problem);
    return write(s.output, w);
  }
  Status check(const AttentionStep &s) {
    uint64_t q, k, v;
    if (Status st = read(s.queries, &q); !st) return st;
    if (Status st = read(s.keys, &k); !st) return st;
    if (Status st = read(s.values, &v); !st) return st;
    if (s.layer >= plan_.kvLayers)
      return fail(fmt::format("layer {} out of range", s.layer));
    if (s.kvHeads == 0 || s.heads == 0 || s.heads % s.kvHeads != 0 ||
        s.headDim == 0)
      return fail(fmt::format("{} heads, {} kv heads of {} do not group",
                              s.heads, s.kvHeads, s.headDim));
    // Backends size their per-head scratch by the config.
    if (s.heads != uint64_t(config_.heads) || s.kvHeads != uint64_t(config_.kvHeads) ||
        s.headDim != uint64_t(config_.headDim))
      return fail(fmt::format("{} heads, {} kv heads of {} differ from the config's {}, {} "
                              "of {}",
                              s.heads, s.kvHeads, s.headDim, config_.heads, config_.kvHeads,
                              config_.headDim));
    if (q != uint64_t(s.heads) * s.headDim ||
        k != uint64_t(s.kvHeads) * s.headDim || v != k || k != plan_.kvWidth)
      return fail(fmt::format("widths q {}, k {}, v {} do not match {} heads, "
                              "{} kv heads of {}",
                              q, k, v, s.heads, s.kvHeads, s.headDim));
    if (s.output == s.queries || s.output == s.keys || s.output == s.values)
      return fail("output aliases an input");
    if (s.activations == Activations::Int8)
      return fail("attention takes float or bf16 queries, not int8");
    return write(s.output, q);
  }
  Status check(const SiluMulStep &s) { return elementwise(s.gate, s.up, s.output); }
  Status check(const AddStep &s) { return elementwise(s.lhs, s.rhs, s.output); }

  Status elementwise(uint32_t a, uint32_t b, uint32_t out) {
    uint64_t wa, wb;
    if (Status st = read(a, &wa); !st) return st;
    if (Status st = read(b, &wb); !st) return st;
    if (wa != wb)
      return fail(fmt::format("operand widths {} and {} differ", wa, wb));
    return write(out, wa);
  }

  const KernelPlan &plan_;
  const std::vector<TensorInfo> &tensors_;
  const ModelConfig &config_;
  const std::string &source_;
  std::vector<bool> written_;
  size_t index_ = 0;
  bool lastLogitsWrite_ = false; // the last write of the logits buffer was a logits step
};

} // namespace

uint64_t planHash(const KernelPlan &plan) {
  std::vector<uint8_t> bytes;
  auto put = [&](const void *p, size_t n) {
    const uint8_t *b = static_cast<const uint8_t *>(p);
    bytes.insert(bytes.end(), b, b + n);
  };
  for (uint64_t w : plan.bufferWidths)
    put(&w, sizeof w);
  // Each step as it is stored (StepCodec): kind, integer and float fields.
  for (const Step &step : plan.steps) {
    FlatStep flat = flatten(step);
    put(flat.kind.data(), flat.kind.size() + 1);
    uint64_t counts[2] = {flat.ints.size(), flat.floats.size()};
    put(counts, sizeof counts);
    put(flat.ints.data(), flat.ints.size() * sizeof(int64_t));
    put(flat.floats.data(), flat.floats.size() * sizeof(float));
  }
  put(&plan.logits, sizeof plan.logits);
  put(&plan.kvLayers, sizeof plan.kvLayers);
  put(&plan.kvWidth, sizeof plan.kvWidth);
  put(&plan.kvElement, sizeof plan.kvElement);
  put(&plan.kvFormat.kind, sizeof plan.kvFormat.kind);
  put(&plan.kvFormat.block, sizeof plan.kvFormat.block);
  put(&plan.kvFormat.keyGroup, sizeof plan.kvFormat.keyGroup);
  put(&plan.kvFormat.window, sizeof plan.kvFormat.window);
  return artifact::checksum(bytes);
}

uint64_t TensorInfo::storageBytes() const {
  uint64_t elements = 1;
  for (int64_t d : shape) {
    if (d <= 0)
      return 0;
    elements *= static_cast<uint64_t>(d);
  }
  if (!quant)
    return elements * elementSize(type);
  if (shape.size() != 2)
    return 0;
  return static_cast<uint64_t>(shape[0]) * formats::packedRowBytes(*quant, shape[1]);
}

std::string TensorInfo::formatName() const {
  return quant ? formats::formatName(*quant) : std::string(elementTypeName(type));
}

Status validatePlan(const KernelPlan &plan, const std::vector<TensorInfo> &tensors,
                    const ModelConfig &config, const std::string &source) {
  return PlanChecker(plan, tensors, config, source).run();
}

Status validateConfig(const ModelConfig &c, const std::string &source) {
  auto bad = [&](const std::string &what) {
    return Error(source + ": invalid model config: " + what);
  };
  constexpr int64_t kMaxWidth = int64_t(1) << 20, kMaxCount = int64_t(1) << 24;
  if (c.dim <= 0 || c.dim > kMaxWidth || c.hidden <= 0 || c.hidden > kMaxWidth)
    return bad(fmt::format("dim {} / hidden {} out of range", c.dim, c.hidden));
  if (c.layers <= 0 || c.layers > 4096)
    return bad(fmt::format("{} layers", c.layers));
  if (c.heads <= 0 || c.kvHeads <= 0 || c.heads % c.kvHeads != 0)
    return bad(fmt::format("{} heads and {} kv heads", c.heads, c.kvHeads));
  // The attention's width heads * head_dim is usually dim, but need not be
  // (Qwen3: 16 heads of 128 in a 1024-wide model).
  // Divided, not multiplied: a corrupt artifact's counts may overflow.
  if (c.headDim <= 0 || c.headDim % 2 != 0 || c.headDim > kMaxWidth / c.heads)
    return bad(fmt::format("head_dim {} x {} heads: not an even head size in range",
                           c.headDim, c.heads));
  if (c.vocab <= 0 || c.vocab > kMaxCount || c.context <= 0 || c.context > kMaxCount)
    return bad(fmt::format("vocab {} / context {} out of range", c.vocab,
                           c.context));
  if (!(c.normEps > 0.0f) || !std::isfinite(c.normEps) || !(c.ropeTheta > 0.0f) ||
      !std::isfinite(c.ropeTheta))
    return bad("norm epsilon and rope theta must be positive");
  return Status::ok();
}

const char *activationsName(Activations activations) {
  switch (activations) {
  case Activations::Int8: return "int8";
  case Activations::Bf16: return "bf16";
  case Activations::Float: break;
  }
  return "float";
}

std::optional<Activations> parseActivations(std::string_view name) {
  for (Activations a : {Activations::Float, Activations::Int8, Activations::Bf16})
    if (name == activationsName(a))
      return a;
  return std::nullopt;
}

const char *stepName(const Step &step) {
  return std::visit([](const auto &s) { return std::decay_t<decltype(s)>::kName; }, step);
}

std::pair<size_t, size_t> layerGroupSteps(const KernelPlan &plan, size_t group) {
  const std::vector<LayerGroup> &groups = plan.layerGroups;
  const size_t first = groups.empty() ? 0 : groups[group].firstStep; // group 0's is 0
  const size_t end = group + 1 < groups.size() ? groups[group + 1].firstStep : plan.steps.size();
  return {first, end};
}

bool usesInt8Activations(const KernelPlan &plan) {
  bool any = false;
  forEachProduct(plan, [&](uint32_t, Activations a) { any = any || a == Activations::Int8; });
  return any;
}

} // namespace lathe::plan
