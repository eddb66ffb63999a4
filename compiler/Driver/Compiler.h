// The library behind lathe-compile: read a model (llama2.c checkpoint,
// Hugging Face folder, GGUF or tfm .mlir), import it, lower it to a kernel plan for
// the target and write the artifact (or print an intermediate form).
#pragma once

#include "runtime/support/Expected.h"

#include <functional>
#include <optional>
#include <string>

namespace llvm {
class raw_ostream;
}

namespace lathe::compiler {

enum class EmitKind { Artifact, MLIR, Plan, Cpp, Cuda };

struct CompileOptions {
  std::string input;       // model file (llama2.c or GGUF), HF folder, or .mlir
  std::string tokenizer;   // tokenizer.bin or tokenizer.json; empty: look beside the model
  std::string target = "cpu"; // or "cuda", "cuda:sm_90a,sm_100a", ..., or "hls"
  /// --target=hls: the kernel clock of the estimate report (estimate.md).
  double hlsClockMHz = 300.0;
  /// --target=hls: rows a product computes at once (lathe-hls-schedule's
  /// unroll), and the Vitis HLS release whose pragma spellings to write.
  int64_t hlsUnroll = 1;
  /// --target=hls: the initiation interval every pipelined loop targets
  /// (lathe-hls-schedule's ii).
  int64_t hlsII = 1;
  std::string hlsTool = "2023.2";
  std::string output;      // artifact path (EmitKind::Artifact)
  std::string quant = "none"; // --quant (QuantFlag.h)
  std::string calib;          // calibration text file; empty: built-in text
  std::string quantReport;    // where to write the per-tensor report; empty: none
  /// --activations: "int8", "bf16", "float", or empty: int8 for quantized
  /// builds, float (the reference numerics) for --quant=none; on the cuda
  /// target bf16 wherever int8 is not taken, except for f32 weights.
  std::string activations;
  /// --kv: the KV cache's element type, f32 (default), f16 or bf16.
  std::string kv = "f32";
  /// --context: the model's context length instead of the checkpoint's (0:
  /// the checkpoint's). llama.cpp's llama2.c converter writes its own
  /// default, 128, into a GGUF rather than the model's.
  int64_t context = 0;
  /// --spec-tree: the token tree the decode step verifies ("4x2x2",
  /// "default"; runtime/speculative/TreeShape.h), recorded in the plan and
  /// the artifact; unset: none.
  std::optional<std::string> specTree;
  /// --prefill-groups / --group-bytes: the layers in contiguous groups
  /// that a step can run one at a time (layered prefill), this many, or
  /// each within this many weight bytes; recorded in the plan and the
  /// artifact. At most one; unset: none.
  std::optional<int64_t> prefillGroups, groupBytes;
  EmitKind emit = EmitKind::Artifact;
  /// Benchmarks only: `input` is a config.json giving the shapes; the
  /// artifact stores no weights and the runtime fills them with random
  /// values (frontend/SyntheticCheckpoint.h).
  bool syntheticWeights = false;
  /// The weights go in a parameter file, not in the artifact
  /// (runtime/artifact/ParameterFile.h). From a checkpoint the compiler
  /// writes that file beside the output (OUT.params); from a Hugging Face
  /// config.json alone it reads no weights at all, and lathe-pack packs the
  /// file later from the safetensors, on the machine that runs the model
  /// (plain formats: nothing calibrated).
  bool externalWeights = false;
};

/// Reports progress: a stage name and, for long stages, a fraction done.
using ProgressFn = std::function<void(const std::string &stage, double fraction)>;
/// Receives notes about the input the user should hear about (a GGUF's
/// K-quant tensors decoded to f32), one line each.
using NoteFn = std::function<void(const std::string &line)>;

/// Runs the whole compilation. Failures, MLIR diagnostics included (the first
/// error with its location), come back as an Error. `out` receives the text of --emit=mlir, plan, cpp or cuda.
Status compile(const CompileOptions &options, llvm::raw_ostream &out,
               const ProgressFn &progress = {}, const NoteFn &note = {});

} // namespace lathe::compiler
