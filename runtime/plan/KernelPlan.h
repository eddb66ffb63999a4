// The kernel plan: what one forward step runs, lowered from the tfm IR at
// compile time and executed by the runtime. Steps read and write activation
// buffers (one row per token of the step, fixed width) and read weight
// tensors by index. The compiler builds it, the artifact stores it, the
// loader rebuilds it and validates it before anything runs.
#pragma once

#include "runtime/formats/ElementType.h"
#include "runtime/formats/FormatSpec.h"
#include "runtime/formats/KvFormat.h"
#include "runtime/plan/RopeFrequencies.h"
#include "runtime/plan/RopeLayout.h"
#include "runtime/speculative/TreeShape.h"
#include "runtime/support/Expected.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <variant>
#include <utility>
#include <vector>

namespace lathe::plan {


/// What a product rounds its input to (#plan.activations): Int8 rounds it
/// to int8 per weight block and uses integer dot products (weights whose
/// format has integer codes only); Bf16 rounds each value to bfloat16
/// (nearest, ties to even) and sums in float, as frameworks' bf16 products
/// do (the tensor cores then take an input in one part, not three); Float
/// keeps the reference numerics.
enum class Activations : uint8_t { Float = 0, Int8 = 1, Bf16 = 2 };

/// "float", "int8" or "bf16".
const char *activationsName(Activations activations);
/// The precision activationsName names; empty for any other text.
std::optional<Activations> parseActivations(std::string_view name);



/// A model's hyperparameters: the one definition that the checkpoint
/// readers fill (compiler/Frontend/LlamaCheckpoint.h extends it), the
/// artifact stores and the runtime reads.
struct ModelConfig {
  int64_t dim = 0, hidden = 0, layers = 0, heads = 0, kvHeads = 0,
          headDim = 0, vocab = 0, context = 0;
  float normEps = 1e-5f;
  float ropeTheta = 10000.0f;
  std::string name;
};

struct TensorInfo {
  std::string name;
  ElementType type = ElementType::F32;   // meaningful when !quant
  std::vector<int64_t> shape;            // logical shape, [out, in] for weights
  /// A packed format (runtime/formats): rows of packedRowBytes each.
  std::optional<formats::FormatSpec> quant;

  /// Bytes the tensor occupies; 0 when the shape is not valid for the format.
  uint64_t storageBytes() const;
  /// "f32" or the format's canonical name, e.g. "bfp4:block=32".
  std::string formatName() const;
};

/// What a step's field holds: the index of an activation buffer or of a
/// weight tensor, a list of either, a count or size, a float, or an enum.
enum class FieldRole : uint8_t {
  Buffer,
  Tensor,
  BufferList,
  TensorList,
  Number,
  Float,
  Enum,
  /// A list of counts (an array attribute of the op; empty when absent).
  NumberList
};

struct FieldInfo {
  const char *name;
  FieldRole role;
};

/// The steps of a plan. Each is the runtime's form of one kernel of the
/// `plan` dialect (dialects/KernelPlan/KernelPlanOps.td): kName is the op's
/// name without "plan.", and its fields are the op's operands in order (the
/// function's token, position and cache arguments left out; a variadic
/// operand becomes a list) followed by its attributes in the order the op
/// declares them. Serialization, loading, hashing and naming follow from
/// kName, kFields and fields() alone (StepCodec.h); only validation and
/// the kernels are written per step.
struct EmbeddingStep {
  uint32_t table, output;
  static constexpr const char *kName = "embedding";
  static constexpr FieldInfo kFields[] = {{"table", FieldRole::Tensor},
                                          {"out", FieldRole::Buffer}};
  auto fields() { return std::tie(table, output); }
};
struct RmsNormStep {
  uint32_t input, gain, output;
  float epsilon;
  static constexpr const char *kName = "rms_norm";
  static constexpr FieldInfo kFields[] = {{"input", FieldRole::Buffer},
                                          {"gain", FieldRole::Tensor},
                                          {"out", FieldRole::Buffer},
                                          {"epsilon", FieldRole::Float}};
  auto fields() { return std::tie(input, gain, output, epsilon); }
};
struct MatMulStep {
  uint32_t input, weight, output;
  Activations activations = Activations::Float;
  static constexpr const char *kName = "matmul";
  static constexpr FieldInfo kFields[] = {{"input", FieldRole::Buffer},
                                          {"weight", FieldRole::Tensor},
                                          {"out", FieldRole::Buffer},
                                          {"activations", FieldRole::Enum}};
  auto fields() { return std::tie(input, weight, output, activations); }
};
/// Products of one input run as one parallel job (q/k/v, gate/up).
struct MatMulsStep {
  uint32_t input;
  std::vector<uint32_t> weights, outputs;
  Activations activations = Activations::Float;
  static constexpr const char *kName = "matmuls";
  static constexpr FieldInfo kFields[] = {{"input", FieldRole::Buffer},
                                          {"weights", FieldRole::TensorList},
                                          {"outs", FieldRole::BufferList},
                                          {"activations", FieldRole::Enum}};
  auto fields() { return std::tie(input, weights, outputs, activations); }
};
struct RopeStep {
  uint32_t input, output, headDim;
  float theta;
  RopeLayout layout;
  /// Llama 3 frequency scaling (RopeFrequencies.h); 0 = plain RoPE.
  float scalingFactor = 0.0f, lowFreqFactor = 0.0f, highFreqFactor = 0.0f;
  uint32_t originalContext = 0;
  /// Per group of heads, the pair whose frequency turns each position
  /// (pairOrderProblem in RopeFrequencies.h); empty: pair j at position j.
  std::vector<uint32_t> pairOrder;
  static constexpr const char *kName = "rope";
  static constexpr FieldInfo kFields[] = {{"input", FieldRole::Buffer},
                                          {"out", FieldRole::Buffer},
                                          {"head_dim", FieldRole::Number},
                                          {"theta", FieldRole::Float},
                                          {"layout", FieldRole::Enum},
                                          {"scaling_factor", FieldRole::Float},
                                          {"low_freq_factor", FieldRole::Float},
                                          {"high_freq_factor", FieldRole::Float},
                                          {"original_context", FieldRole::Number},
                                          {"pair_order", FieldRole::NumberList}};
  auto fields() {
    return std::tie(input, output, headDim, theta, layout, scalingFactor, lowFreqFactor,
                    highFreqFactor, originalContext, pairOrder);
  }
  RopeScaling scaling() const {
    return {scalingFactor, lowFreqFactor, highFreqFactor, int64_t(originalContext)};
  }
  /// Each pair's frequency (ropeFrequencies), before any pair order.
  std::vector<double> pairFrequencies() const {
    return ropeFrequencies(double(theta), int64_t(headDim), scaling());
  }
  /// The frequency of each position of a head, per group of heads
  /// (orderedFrequencies): headDim / 2 values without a pair order.
  std::vector<double> frequencies() const {
    return orderedFrequencies(pairFrequencies(), pairOrder);
  }
};
/// out[t, n] = input[t, n] + bias[n].
struct BiasAddStep {
  uint32_t input, bias, output;
  static constexpr const char *kName = "bias_add";
  static constexpr FieldInfo kFields[] = {{"input", FieldRole::Buffer},
                                          {"bias", FieldRole::Tensor},
                                          {"out", FieldRole::Buffer}};
  auto fields() { return std::tie(input, bias, output); }
};
/// `activations`: Bf16 rounds each query value to bfloat16 before its
/// products with the cached keys (the keys are the cache's elements, the
/// probabilities and every sum stay float); Float keeps the reference
/// numerics. Int8 is not an attention precision.
struct AttentionStep {
  uint32_t queries, keys, values, output, layer, heads, kvHeads, headDim;
  Activations activations = Activations::Float;
  static constexpr const char *kName = "attention";
  static constexpr FieldInfo kFields[] = {
      {"queries", FieldRole::Buffer}, {"keys", FieldRole::Buffer},
      {"values", FieldRole::Buffer},  {"out", FieldRole::Buffer},
      {"layer", FieldRole::Number},   {"heads", FieldRole::Number},
      {"kv_heads", FieldRole::Number}, {"head_dim", FieldRole::Number},
      {"activations", FieldRole::Enum}};
  auto fields() {
    return std::tie(queries, keys, values, output, layer, heads, kvHeads, headDim,
                    activations);
  }
};
struct SiluMulStep {
  uint32_t gate, up, output;
  static constexpr const char *kName = "silu_mul";
  static constexpr FieldInfo kFields[] = {{"lhs", FieldRole::Buffer},
                                          {"rhs", FieldRole::Buffer},
                                          {"out", FieldRole::Buffer}};
  auto fields() { return std::tie(gate, up, output); }
};
struct AddStep {
  uint32_t lhs, rhs, output;
  static constexpr const char *kName = "add";
  static constexpr FieldInfo kFields[] = {{"lhs", FieldRole::Buffer},
                                          {"rhs", FieldRole::Buffer},
                                          {"out", FieldRole::Buffer}};
  auto fields() { return std::tie(lhs, rhs, output); }
};
/// sum = lhs + rhs, then output = RMSNorm(sum) * gain.
struct AddRmsNormStep {
  uint32_t lhs, rhs, gain, sum, output;
  float epsilon;
  static constexpr const char *kName = "add_rms_norm";
  static constexpr FieldInfo kFields[] = {
      {"lhs", FieldRole::Buffer}, {"rhs", FieldRole::Buffer}, {"gain", FieldRole::Tensor},
      {"sum", FieldRole::Buffer}, {"out", FieldRole::Buffer}, {"epsilon", FieldRole::Float}};
  auto fields() { return std::tie(lhs, rhs, gain, sum, output, epsilon); }
};
struct LogitsStep {
  uint32_t input, classifier, output;
  Activations activations = Activations::Float;
  static constexpr const char *kName = "logits";
  static constexpr FieldInfo kFields[] = {{"input", FieldRole::Buffer},
                                          {"classifier", FieldRole::Tensor},
                                          {"out", FieldRole::Buffer},
                                          {"activations", FieldRole::Enum}};
  auto fields() { return std::tie(input, classifier, output, activations); }
};

using Step = std::variant<EmbeddingStep, RmsNormStep, MatMulStep, MatMulsStep, RopeStep,
                          AttentionStep, SiluMulStep, AddStep, AddRmsNormStep, LogitsStep,
                          BiasAddStep>;

/// Generated code for a plan (runtime/backends/cpu/native/CpuModelAbi.h).
struct NativeCode {
  std::string isa;            // e.g. "x86-64-v3"
  uint32_t abiVersion = 0;
  uint64_t planHash = 0;
  std::vector<uint8_t> object; // ELF shared object
};

/// A model's generated GPU kernels (runtime/backends/cuda/kernels/CudaFrame.h).
struct DeviceCode {
  std::string archs;          // e.g. "sm_90a"
  uint32_t abiVersion = 0;
  uint64_t planHash = 0;
  std::vector<uint8_t> image; // nvcc's fatbin
};

/// A group of consecutive layers that a step can run on its own (layered
/// prefill): from layer firstLayer and step firstStep to the next group's.
/// The first group also runs the steps before the first layer (the
/// embedding), the last the steps after the last layer (the final norm and
/// the classifier).
struct LayerGroup {
  uint32_t firstLayer = 0, firstStep = 0;
  bool operator==(const LayerGroup &) const = default;
};

struct KernelPlan {
  std::string target = "cpu"; // or "cuda"
  std::vector<uint64_t> bufferWidths;
  std::vector<Step> steps;
  uint32_t logits = 0;     // buffer holding [tokens, vocab] scores
  uint32_t kvLayers = 0;
  uint64_t kvWidth = 0;    // kv_heads * head_dim
  /// How the KV cache stores its rows (lathe-compile --kv).
  formats::KvFormat kvFormat;
  /// kvFormat's element type when it is plain, f32 when it is compressed
  /// (the CUDA code generator reads it; validatePlan checks that they agree).
  ElementType kvElement = ElementType::F32;
  /// The token tree the decode step was compiled to verify (lathe-compile
  /// --spec-tree, #plan.spec_tree): `--speculate` runs it when given no
  /// shape, and refuses a shape of more nodes than its nodeCount(), the
  /// tokens of one verification step. Unset: none compiled in (the
  /// runtime's default shape, any size). It changes no step, so planHash
  /// leaves it out.
  std::optional<speculative::TreeShape> specTree;
  /// The layers in contiguous groups (lathe-compile --prefill-groups or
  /// --group-bytes, #plan.layer_groups), in order: the first at layer 0
  /// and step 0, each group's attention steps those of its layers. Empty:
  /// none compiled in. It changes no step, so planHash leaves it out.
  std::vector<LayerGroup> layerGroups;
  /// Generated host code: the cpu target's forward step, the cuda
  /// target's host schedule (docs/artifact.md).
  std::optional<NativeCode> native;
  std::optional<DeviceCode> device;
};

/// A hash of everything a plan computes (steps, widths, logits buffer), so
/// that generated code can be matched to the plan it was generated from.
uint64_t planHash(const KernelPlan &plan);

/// Checks that every index is in range and every width and shape agrees, so
/// that kernels can run without checks of their own. `source` names the
/// artifact in messages.
Status validatePlan(const KernelPlan &plan, const std::vector<TensorInfo> &tensors,
                    const ModelConfig &config, const std::string &source);

/// Checks the hyperparameters for consistency and sane ranges.
Status validateConfig(const ModelConfig &config, const std::string &source);

/// A short human-readable name of a step's kernel, e.g. "matmul".
const char *stepName(const Step &step);

/// The steps [first, end) that layer group `group` runs: from its firstStep
/// to the next group's, the last group to the end; without groups, group 0
/// is every step. `group` must be below max(1, layerGroups.size()).
std::pair<size_t, size_t> layerGroupSteps(const KernelPlan &plan, size_t group);

/// Calls fn(weight, activations) for every matrix product of the plan, in
/// step order: each weight of a matmul or matmuls step, and the classifier
/// of the logits step.
template <typename Fn> void forEachProduct(const KernelPlan &plan, Fn &&fn) {
  for (const Step &step : plan.steps) {
    if (const auto *m = std::get_if<MatMulStep>(&step))
      fn(m->weight, m->activations);
    else if (const auto *g = std::get_if<MatMulsStep>(&step))
      for (uint32_t w : g->weights)
        fn(w, g->activations);
    else if (const auto *l = std::get_if<LogitsStep>(&step))
      fn(l->classifier, l->activations);
  }
}

/// Whether any product of the plan asks for int8 activations.
bool usesInt8Activations(const KernelPlan &plan);

} // namespace lathe::plan
