// The weights and hyperparameters of a Llama-family decoder, as read from a
// checkpoint file, before anything is turned into IR. Every frontend
// (llama2.c, Hugging Face safetensors, later GGUF) fills this struct; one
// importer (LlamaImporter) turns it into `tfm` IR, so the frontends carry no
// numerics of their own. Plain C++: no MLIR here.
#pragma once

#include "runtime/formats/ElementType.h"
#include "runtime/formats/FormatSpec.h"
#include "runtime/plan/KernelPlan.h"
#include "runtime/support/Expected.h"
#include "runtime/support/MappedFile.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace lathe::frontend {

using plan::RopeLayout;

/// The model's hyperparameters (plan::ModelConfig: dim, hidden, layers,
/// heads, kvHeads, headDim, vocab, context, normEps, ropeTheta) and what
/// only the readers need to know about a checkpoint. Readers set headDim
/// to dim / heads unless the checkpoint spells out another (Qwen3).
struct LlamaConfig : plan::ModelConfig {
  bool tiedEmbedding = true;
  /// How the rows of wq/wk pair up under rotary embedding.
  RopeLayout rope = RopeLayout::Interleaved;
  /// Llama 3 frequency scaling (off by default).
  plan::RopeScaling ropeScaling;
  /// Biases on the q/k/v projections (Qwen2, Llama's attention_bias) and
  /// on the output projection (Llama's attention_bias).
  bool qkvBias = false, outputBias = false;
  /// An RMSNorm of each query and key head before RoPE (Qwen3).
  bool qkNorm = false;

  int64_t kvDim() const { return kvHeads * headDim; }
};

/// A tensor that lives inside a mapped checkpoint file (row-major).
struct TensorView {
  ElementType type = ElementType::F32;
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;
  /// Set when `bytes` are rows already packed in this format (a GGUF's
  /// Q8_0/Q4_0 blocks as INT8/INT4 groups): packedRowBytes(*packed, cols)
  /// per row, and `type` unused. Only 2-D weights read by products (linear
  /// weights, the classifier, the embedding table) may be packed.
  std::optional<formats::FormatSpec> packed;

  int64_t numElements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

struct LlamaLayerWeights {
  TensorView attnNorm;  // [dim]
  TensorView wq;        // [heads*headDim, dim]   (out, in)
  TensorView wk;        // [kvHeads*headDim, dim]
  TensorView wv;        // [kvHeads*headDim, dim]
  TensorView wo;        // [dim, heads*headDim]
  TensorView ffnNorm;   // [dim]
  TensorView w1;        // gate  [hidden, dim]
  TensorView w2;        // down  [dim, hidden]
  TensorView w3;        // up    [hidden, dim]
  /// Present as the config says (qkvBias, outputBias, qkNorm).
  std::optional<TensorView> bq, bk, bv;  // [heads*headDim], [kvHeads*headDim] x 2
  std::optional<TensorView> bo;          // [dim]
  std::optional<TensorView> qNorm, kNorm; // [headDim] each
};

struct LlamaCheckpoint {
  LlamaConfig config;
  TensorView embedding;                   // [vocab, dim]
  std::vector<LlamaLayerWeights> layers;
  TensorView finalNorm;                   // [dim]
  std::optional<TensorView> classifier;   // [vocab, dim]; absent when tied
  /// Keeps the mapped files behind every TensorView alive.
  std::vector<std::shared_ptr<MappedFile>> storage;
  /// Other memory the views point into (synthetic checkpoints).
  std::vector<std::shared_ptr<const void>> memory;
  /// What the reader imported, one line, recorded in the artifact (GGUF:
  /// each tensor type and what it became); empty for the other readers.
  std::string provenance;
  /// Changes the user should hear about (GGUF K-quants decoded to f32).
  std::vector<std::string> notes;
};

/// Rejects configs no importer can handle: non-positive or absurd (> 2^31-1)
/// sizes, dim not divisible by heads, heads not divisible by kvHeads, odd
/// head dim, non-positive normEps / ropeTheta. Readers call it before they
/// derive tensor sizes from the config. `source` names the file in errors.
Status validateConfig(const LlamaConfig &config, const std::string &source);

/// "[288, 768]": shapes in error messages.
std::string formatShape(const std::vector<int64_t> &shape);

/// Every tensor of `ckpt` under the name the importer gives its tfm.weight,
/// which an artifact's tensor keeps (llama2.c's names: tok_embeddings,
/// layers.N.attention_norm, .wq, .wk, .wv, .bq, .bk, .bv, .q_norm,
/// .k_norm, .wo, .bo, .ffn_norm, .w1, .w2, .w3, then norm and output), in
/// the importer's order; optional tensors only where present.
std::vector<std::pair<std::string, const TensorView *>> namedTensors(const LlamaCheckpoint &ckpt);

/// Checks every tensor's element count against the shape the config implies,
/// so that importers can trust the views. `source` names the file in errors.
Status validateCheckpoint(const LlamaCheckpoint &ckpt, const std::string &source);

} // namespace lathe::frontend
