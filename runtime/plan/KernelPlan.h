// The kernel plan: what one forward step runs, lowered from the tfm IR at
// compile time and executed by the runtime. Steps read and write activation
// buffers (one row per token of the step, fixed width) and read weight
// tensors by index. The compiler builds it, the artifact stores it, the
// loader rebuilds it and validates it before anything runs.
#pragma once

#include "runtime/formats/ElementType.h"
#include "runtime/formats/FormatSpec.h"
#include "runtime/support/Expected.h"

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace lathe::plan {

enum class RopeLayout : uint8_t { Interleaved = 0, RotateHalf = 1 };

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

struct EmbeddingStep { uint32_t table, output; };
struct RmsNormStep { uint32_t input, gain, output; float epsilon; };
struct MatMulStep { uint32_t input, weight, output; };
struct RopeStep { uint32_t input, output, headDim; float theta; RopeLayout layout; };
struct AttentionStep {
  uint32_t queries, keys, values, output, layer, heads, kvHeads, headDim;
};
struct SiluMulStep { uint32_t gate, up, output; };
struct AddStep { uint32_t lhs, rhs, output; };
struct LogitsStep { uint32_t input, classifier, output; };

using Step = std::variant<EmbeddingStep, RmsNormStep, MatMulStep, RopeStep,
                          AttentionStep, SiluMulStep, AddStep, LogitsStep>;

/// Generated code for a plan (runtime/backends/cpu/native/CpuModelAbi.h).
struct NativeCode {
  std::string isa;            // e.g. "x86-64-v3"
  uint32_t abiVersion = 0;
  uint64_t planHash = 0;
  std::vector<uint8_t> object; // ELF shared object
};

/// What the plan's matmuls round their inputs to. Int8: every matmul whose
/// weight format has integer kernels (INT8/INT4, BFP8/BFP4, MXINT8, MXFP4)
/// rounds its input to int8 per weight block and uses integer dot products;
/// the others stay float. Float: the reference numerics.
enum class Activations : uint8_t { Float = 0, Int8 = 1 };

/// "float" or "int8".
const char *activationsName(Activations activations);

struct KernelPlan {
  std::string target = "cpu";
  Activations activations = Activations::Float;
  std::vector<uint64_t> bufferWidths;
  std::vector<Step> steps;
  uint32_t logits = 0;     // buffer holding [tokens, vocab] scores
  uint32_t kvLayers = 0;
  uint64_t kvWidth = 0;    // kv_heads * head_dim
  std::optional<NativeCode> native;
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

} // namespace lathe::plan
