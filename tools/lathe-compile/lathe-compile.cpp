// lathe-compile: model -> one .lathe artifact. Thin: flags in, library call,
// one line of error out.
#include "compiler/Driver/Compiler.h"
#include "runtime/artifact/ParameterFile.h"
#include "tools/CommandLine.h"

#include "llvm/Support/raw_ostream.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <unistd.h>

int main(int argc, char **argv) {
  CLI::App app{"lathe-compile: compile a transformer model into a Lathe artifact"};
  lathe::compiler::CompileOptions options;
  std::string emit = "artifact";
  bool quiet = false;
  app.add_option("model", options.input,
                 "llama2.c checkpoint (.bin), Hugging Face folder, GGUF file (llama), or tfm .mlir")
      ->required();
  app.add_option("--tokenizer", options.tokenizer,
                 "llama2.c tokenizer.bin, Hugging Face tokenizer.json or a GGUF (default: "
                 "a GGUF model's own; else tokenizer.bin, else tokenizer.json, beside the model)");
  app.add_option("--target", options.target,
                 "code generation target: cpu (default), cuda[:ARCH,...] (default "
                 "architecture sm_90a; needs nvcc), or hls (a Vitis HLS project folder)");
  app.add_option("--hls-unroll", options.hlsUnroll,
                 "--target=hls: most rows a product computes at once (lathe-hls-schedule)")
      ->capture_default_str();
  app.add_option("--hls-ii", options.hlsII,
                 "--target=hls: the initiation interval every pipelined loop targets "
                 "(lathe-hls-schedule)")
      ->capture_default_str();
  app.add_option("--hls-tool", options.hlsTool,
                 "--target=hls: the Vitis HLS release whose pragma spellings to write: 2023.2 "
                 "(2022.1 and later) or 2020.2")
      ->capture_default_str();
  app.add_option("--hls-clock", options.hlsClockMHz,
                 "--target=hls: the kernel clock in MHz its estimate report (estimate.md) "
                 "converts cycles at")
      ->capture_default_str();
  app.add_option("-o,--output", options.output,
                 "artifact to write (--target=hls: the project folder)");
  app.add_option("--emit", emit,
                 "artifact, mlir (the tfm IR after quantization), plan (the kernel "
                 "plan), cpp (the generated CPU code; with --target=cuda its host "
                 "schedule) or cuda (the generated CUDA code)")
      ->check(CLI::IsMember({"artifact", "mlir", "plan", "cpp", "cuda"}));
  app.add_option("--quant", options.quant,
                 "weight format: none; a format such as bfp4:block=32, mxfp6_e3m2, "
                 "fp6_4p2, int4:group=32 (docs/formats.md), optionally with :reorder, "
                 ":no-equalize (no channel equalization), :classifier (the classifier in "
                 "FORMAT too; default: at 8 bits) or :float-classifier (left unpacked); or "
                 "mixed:bits=B")
      ->capture_default_str();
  app.add_option("--activations", options.activations,
                 "precision of matmul inputs: int8 (integer kernels where the weight "
                 "format has them), bf16 (each input rounded to bfloat16, sums in float) "
                 "or float (the reference numerics); default: int8 for quantized builds "
                 "and GGUFs of Q8_0/Q4_0 matrices (--target=hls: when its integer products "
                 "take every format; --target=cuda: not for mixed:bits), float otherwise; "
                 "--target=cuda: bf16 wherever int8 is not taken, except for f32 weights")
      ->check(CLI::IsMember({"int8", "bf16", "float"}));
  app.add_option("--kv", options.kv,
                 "how the KV cache stores keys and values: f32, f16, bf16 (half the "
                 "memory), int8[:window=R] (a scale per token row and KV head), "
                 "bfp8[:block=N][:window=R] or bfp4[:block=N][:window=R] (an exponent per N "
                 "values along head_dim; bfp4 keeps the newest 8 tokens in f32 by default), "
                 "int4|int2[:group=G][:window=R] (KIVI: keys per channel over groups of G "
                 "tokens, values per token); int8 and bfp also take :no-equalize, bfp "
                 ":no-reorder (docs/cli.md). --target=cuda takes every kind but int4 and "
                 "int2, with no window; --target=hls keeps f32")
      ->capture_default_str();
  app.add_option("--quant-report", options.quantReport,
                 "write each linear weight's format, bits and error to FILE");
  app.add_option("--calib", options.calib,
                 "calibration text for --quant (default: a built-in short text)");
  app.add_flag("--synthetic-weights", options.syntheticWeights,
               "benchmarks only: MODEL is a Hugging Face config.json (or its folder) giving "
               "the shapes; the artifact stores no weights, and the runtime fills them with "
               "seeded random values when it loads it (a speed model)");
  app.add_flag("--external-weights", options.externalWeights,
               "keep the weights out of the artifact, in a parameter file: from a checkpoint "
               "the compiler writes OUT.params beside it; from a Hugging Face config.json "
               "alone it reads no weights, and lathe-pack OUT CHECKPOINT packs them later "
               "(plain formats, nothing calibrated)");
  auto *contextOpt = app.add_option("--context", options.context,
                 "context length to compile for instead of the checkpoint's (GGUFs from "
                 "llama.cpp's llama2.c converter say 128 whatever the model had)");
  std::string specTree;
  auto *specTreeOpt = app.add_option("--spec-tree", specTree,
                 "compile the decode step to verify speculative token trees of this shape: "
                 "the branching per depth (e.g. 4x2x2) or default (4x2x2x1x1x1x1x1); "
                 "lathe-run --speculate runs it and refuses larger trees");
  int64_t prefillGroups = 0, groupBytes = 0;
  auto *prefillGroupsOpt = app.add_option("--prefill-groups", prefillGroups,
                 "split the layers into N contiguous groups that a step can run one at a "
                 "time (layered prefill), recorded in the artifact");
  auto *groupBytesOpt = app.add_option("--group-bytes", groupBytes,
                 "split the layers into contiguous groups of at most B bytes of weights "
                 "each (a larger layer is a group of its own)");
  app.add_flag("-q,--quiet", quiet,
               "no progress, notes or 'wrote' line (progress shows only on a terminal)");
  if (auto status = lathe::tools::parseCommandLine(app, argc, argv, "lathe-compile"))
    return *status;
  // 0 is the driver's "the checkpoint's own"; given on the command line it
  // is a mistake, not that.
  if (*contextOpt && options.context == 0) {
    std::fprintf(stderr, "lathe-compile: --context=0: expected a positive length\n");
    return 1;
  }
  if (*specTreeOpt)
    options.specTree = specTree;
  if (*prefillGroupsOpt)
    options.prefillGroups = prefillGroups;
  if (*groupBytesOpt)
    options.groupBytes = groupBytes;
  options.emit = emit == "mlir"   ? lathe::compiler::EmitKind::MLIR
                 : emit == "plan" ? lathe::compiler::EmitKind::Plan
                 : emit == "cpp"  ? lathe::compiler::EmitKind::Cpp
                 : emit == "cuda" ? lathe::compiler::EmitKind::Cuda
                                  : lathe::compiler::EmitKind::Artifact;

  // Progress only on a terminal, so logs and pipes stay clean.
  bool showProgress = !quiet && isatty(STDERR_FILENO);
  auto progress = [&](const std::string &stage, double fraction) {
    if (!showProgress)
      return;
    std::fprintf(stderr, "\r\033[K%s", stage.c_str());
    if (fraction > 0)
      std::fprintf(stderr, " %3.0f%%", fraction * 100);
    std::fflush(stderr);
  };
  auto note = [&](const std::string &line) {
    if (quiet)
      return;
    if (showProgress)
      std::fprintf(stderr, "\r\033[K");
    std::fprintf(stderr, "lathe-compile: note: %s\n", line.c_str());
  };
  lathe::Status status = lathe::compiler::compile(options, llvm::outs(), progress, note);
  if (showProgress)
    std::fprintf(stderr, "\r\033[K");
  if (!status) {
    std::fprintf(stderr, "lathe-compile: %s\n", status.error().message().c_str());
    return 1;
  }
  if (options.emit == lathe::compiler::EmitKind::Artifact && !quiet) {
    std::fprintf(stderr, "wrote %s\n", options.output.c_str());
    if (options.externalWeights && !options.input.ends_with(".json"))
      std::fprintf(stderr, "wrote %s\n",
                   lathe::artifact::defaultParameterPath(options.output).c_str());
  }
  return 0;
}
