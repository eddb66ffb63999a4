// The HLS target (lathe-compile --target=hls -o DIR): a Vitis HLS project
// generated from the model's kernel plan through MLIR's EmitC, with the
// weights in the formats the quantization passes chose (docs/hls.md).
#pragma once

#include "codegen/HLS/HlsPragmas.h"
#include "codegen/KernelPlan/BuildKernelPlan.h"
#include "runtime/formats/FormatSpec.h"
#include "runtime/support/Expected.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lathe::codegen {

/// One kernel call of the generated step, as the estimate report
/// (HlsEstimate.h) counts it.
struct HlsKernelCall {
  /// MatVecInt8: a product with int8 activations (lathe_hls::productsInt8).
  enum class Kind {
    Embedding, RmsNorm, AddRmsNorm, MatVec, MatVecInt8, Rope, Attention, SiluMul, BiasAdd, Add
  };
  Kind kind = Kind::MatVec;
  /// The template instance, e.g. "rmsNorm<288, 288, 1>", or the generated
  /// product function ("lathe_product3"): calls of one instance share its
  /// hardware.
  std::string instance;
  /// Products and the embedding: the weights' format ("f32", "int8:group=32").
  std::string format;
  /// Products: the matrix; the embedding: cols its width; element-wise
  /// kernels: cols their width (rows 1); RMSNorm: rows slices of cols.
  int64_t rows = 0, cols = 0;
  /// Attention: heads, KV heads, head width; rope: headDim and its groups in heads.
  int64_t heads = 0, kvHeads = 0, headDim = 0;
  /// Weight bytes it reads for one token (the embedding: one row).
  uint64_t weightBytes = 0;
  /// The target II of its pipelined loops (#plan.hls_loop); products: the
  /// rows at a time too.
  int64_t ii = 1, unroll = 1;
  /// Products: the banks their parallel accesses to a local array spread
  /// over (#plan.hls_array_partition): a float product's rows at once over
  /// its decoded rows, an int8 product's block of codes; 1 when the array
  /// is not split. And whether decoding a row group overlaps the previous
  /// group's dot products (#plan.hls_dataflow).
  int64_t banks = 1;
  bool dataflow = false;
  /// Products: values per weight block (1 for plain f32/f16/bf16).
  int64_t block = 1;
};

/// What the generator writes: text files by name, and the weight and
/// rotary-table blobs the kernel reads over its memory interfaces; and
/// what the estimate report needs.
struct HlsProject {
  std::vector<std::pair<std::string, std::string>> files;
  std::vector<uint8_t> weights;
  std::vector<double> ropeTables;
  plan::ModelConfig config;
  std::vector<HlsKernelCall> calls;
  /// On-chip arrays of the top function's file: activation buffers and
  /// constant gains and biases, in bytes (totals, and each array's).
  uint64_t bufferBytes = 0, constantBytes = 0;
  std::vector<uint64_t> arrayBytes;
  uint64_t cacheFloats = 0;
};

struct HlsOptions {
  /// The Vitis HLS release whose pragma spellings to write.
  hls::HlsTool tool = hls::HlsTool::Vitis2023_2;
};

/// Whether the target's int8-activation products (lathe_hls::productsInt8)
/// take weights in `spec`: the formats with integer codes
/// (formats::hasIntegerCodes) but asymmetric INT, whose CPU kernel sums in
/// another order. lathe-compile --target=hls rounds activations to int8 by
/// default when every packed format of the build is one of these.
bool hlsTakesInt8Activations(const formats::FormatSpec &spec);

/// The project of `model` (a CPU kernel plan with an f32 KV cache, its
/// products with float activations or, for weights hlsTakesInt8Activations
/// takes, int8 ones), with the loop and interface attributes
/// lathe-hls-schedule put on its plan IR (defaults where there are none).
/// Errors are one line: a weight format or kernel the target has no code
/// for, an interface too shallow for what the design reads.
Expected<HlsProject> emitHlsProject(const LoweredModel &model, const HlsOptions &options = {});

/// Writes `project` into `dir` (created if missing): the files, weights.bin
/// and rope_tables.bin.
Status writeHlsProject(const HlsProject &project, const std::string &dir);

} // namespace lathe::codegen
