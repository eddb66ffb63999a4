#include "compiler/Driver/Compiler.h"

#include "compiler/Driver/KvFlag.h"
#include "compiler/Driver/QuantFlag.h"
#include "compiler/Calibration/Calibration.h"
#include "compiler/Driver/QuantReport.h"
#include "codegen/CPU/NativeBuild.h"
#include "codegen/CPU/EmitCpuModel.h"
#include "codegen/CUDA/EmitCudaModel.h"
#include "codegen/CUDA/EmitCudaSchedule.h"
#include "codegen/CUDA/NvccBuild.h"
#include "codegen/HLS/EmitHlsProject.h"
#include "codegen/HLS/HlsEstimate.h"
#include "passes/Passes.h"

#include "codegen/KernelPlan/BuildKernelPlan.h"
#include "compiler/Frontend/GgufCheckpoint.h"
#include "compiler/Frontend/GgufTokenizer.h"
#include "compiler/Frontend/HFCheckpoint.h"
#include "compiler/Frontend/Llama2cCheckpoint.h"
#include "compiler/Frontend/LlamaImporter.h"
#include "compiler/Frontend/SyntheticCheckpoint.h"
#include "dialects/Transformer/TransformerDialect.h"
#include "runtime/artifact/ArtifactWriter.h"
#include "runtime/artifact/ParameterFile.h"
#include "runtime/speculative/TreeShape.h"
#include "runtime/tokenizer/HFTokenizerJson.h"
#include "runtime/tokenizer/TextTokenizer.h"
#include "runtime/tokenizer/Tokenizer.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/raw_ostream.h"

#include <fmt/format.h>
#include <filesystem>

namespace fs = std::filesystem;

namespace lathe::compiler {
namespace {

/// The format whose error equalization minimises in a mixed build, before
/// the formats are chosen: a budget near 4 bits gives most tensors a 4-bit
/// format, and a block outlier hurts a 4-bit format most.
const formats::FormatSpec kMixedEqualizeFormat = [] {
  formats::FormatSpec spec;
  spec.kind = formats::FormatKind::INT4;
  spec.blockSize = 32;
  return spec;
}();

bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// The KV cache's element type in the tfm dialect for a resolved format.
mlir::Type kvElementType(mlir::MLIRContext &context, formats::KvFormat f) {
  switch (f.kind) {
  case formats::KvKind::F32: return mlir::Float32Type::get(&context);
  case formats::KvKind::F16: return mlir::Float16Type::get(&context);
  case formats::KvKind::BF16: return mlir::BFloat16Type::get(&context);
  case formats::KvKind::Int8:
    return tfm::KVQuantType::get(&context, tfm::KVQuantKind::int8, f.block, 0, f.window);
  case formats::KvKind::Bfp8:
    return tfm::KVQuantType::get(&context, tfm::KVQuantKind::bfp8, f.block, 0, f.window);
  case formats::KvKind::Bfp4:
    return tfm::KVQuantType::get(&context, tfm::KVQuantKind::bfp4, f.block, 0, f.window);
  case formats::KvKind::Int4:
    return tfm::KVQuantType::get(&context, tfm::KVQuantKind::int4, f.block, f.keyGroup,
                                 f.window);
  case formats::KvKind::Int2:
    return tfm::KVQuantType::get(&context, tfm::KVQuantKind::int2, f.block, f.keyGroup,
                                 f.window);
  }
  return mlir::Float32Type::get(&context);
}

/// The model's name for the artifact: the file or folder name without
/// suffix; a Hugging Face folder's name for its config.json.
std::string modelName(const std::string &input) {
  fs::path p = fs::path(input).lexically_normal();
  if (p.filename().empty())
    p = p.parent_path();
  if (p.filename() == "config.json" && !p.parent_path().filename().empty())
    p = p.parent_path();
  return p.stem().string();
}

/// --tokenizer, else tokenizer.bin beside the checkpoint (or inside the HF
/// folder), else the HF folder's tokenizer.json, else none: the artifact
/// then runs only from token ids. A tokenizer.bin put in an HF folder is
/// there on purpose, so it goes first.
std::string findTokenizer(const CompileOptions &o) {
  if (!o.tokenizer.empty())
    return o.tokenizer;
  // A GGUF carries its own tokenizer (or none).
  if (frontend::isGgufFile(o.input))
    return o.input;
  fs::path dir = fs::is_directory(o.input) ? fs::path(o.input)
                                           : fs::path(o.input).parent_path();
  std::error_code ec;
  for (const char *name : {"tokenizer.bin", "tokenizer.json"})
    if (fs::is_regular_file(dir / name, ec))
      return (dir / name).string();
  return std::string();
}

/// A Hugging Face tokenizer: a tokenizer.json or a folder holding one.
bool isHFTokenizer(const std::string &path) {
  std::error_code ec;
  return fs::is_directory(path, ec) || fs::path(path).extension() == ".json";
}

} // namespace

Status compile(const CompileOptions &o, llvm::raw_ostream &out,
               const ProgressFn &progress, const NoteFn &note) {
  auto report = [&](const std::string &stage, double fraction) {
    if (progress)
      progress(stage, fraction);
  };
  // cpu, or cuda with the architectures to build for.
  const bool cuda = o.target.rfind("cuda", 0) == 0;
  std::vector<std::string> cudaArchs;
  if (cuda) {
    Expected<std::vector<std::string>> archs = codegen::parseCudaTarget(o.target);
    if (!archs)
      return archs.error();
    cudaArchs = archs.take();
  } else if (o.target != "cpu" && o.target != "hls") {
    return Error("--target=" + o.target + ": expected cpu, cuda, cuda:ARCH[,ARCH...] or hls");
  }
  // hls: a Vitis HLS project folder (codegen/HLS/EmitHlsProject.h), not an
  // artifact; the CPU's kernel plan, float or int8-activation products, an
  // f32 KV cache.
  const bool hls = o.target == "hls";
  if (hls && (o.emit == EmitKind::Cpp || o.emit == EmitKind::Cuda))
    return Error("--emit=cpp and --emit=cuda print the cpu and cuda targets' code; "
                 "--target=hls writes its project into the folder -o names");
  if (hls && o.syntheticWeights)
    return Error("--synthetic-weights makes weights at load, which an HLS project has "
                 "none of: it needs a real checkpoint");
  if (o.hlsUnroll < 1 || o.hlsUnroll > 4096)
    return Error(fmt::format("--hls-unroll={}: expected 1 to 4096 rows at a time", o.hlsUnroll));
  if (o.hlsII < 1 || o.hlsII > 1024)
    return Error(fmt::format("--hls-ii={}: expected an initiation interval of 1 to 1024 cycles",
                             o.hlsII));
  const std::optional<hls::HlsTool> hlsTool = hls::parseHlsTool(o.hlsTool);
  if (!hlsTool)
    return Error("--hls-tool=" + o.hlsTool + ": expected 2023.2 (2022.1 and later) or 2020.2");
  if (!(o.hlsClockMHz > 0.0 && o.hlsClockMHz <= 2000.0))
    return Error(fmt::format("--hls-clock={}: expected a clock in MHz, above 0 and at most 2000",
                             o.hlsClockMHz));
  if (o.emit == EmitKind::Cuda && !cuda)
    return Error("--emit=cuda prints the CUDA target's code: add --target=cuda");
  if (o.emit == EmitKind::Artifact && o.output.empty())
    return Error(hls ? "no project folder: pass -o DIR" : "no output file: pass -o OUT.lathe");
  // Writing over an input would destroy it (the checkpoint, its tokenizer,
  // the calibration text) before or while it is read.
  for (const std::string *in : {&o.input, &o.tokenizer, &o.calib}) {
    std::error_code ec;
    if (o.emit == EmitKind::Artifact && fs::equivalent(*in, o.output, ec))
      return Error("-o " + o.output + " is an input (" + *in + "): write the " +
                   (hls ? "project" : "artifact") + " elsewhere");
  }
  Expected<QuantOptions> quant = parseQuantFlag(o.quant);
  if (!quant)
    return quant.error();
  Expected<KvFlag> kvFlag = parseKvSpec(o.kv);
  if (!kvFlag)
    return kvFlag.error();
  formats::KvFormat *kv = &kvFlag->format;
  if (hls && (kv->compressed() || kv->kivi() || o.kv != "f32"))
    return Error("--kv=" + o.kv + ": the hls target keeps its KV cache in f32");
  // The cuda target's row formats have no window unless asked: bfp4's
  // default window is the cpu target's, and a cache without one takes the
  // GPU's tensor-core attention (a windowed cache, KIVI's included, is read
  // on the CUDA cores: CudaWindowedKv.cuh).
  if (kv->compressed() && !kv->kivi() && kv->window < 0 && cuda)
    kv->window = 0;
  // Checked before the model is read: the runtime's parser, so the
  // compiler takes exactly the shapes lathe-run --speculate does.
  if (o.specTree)
    if (Expected<speculative::TreeShape> tree = speculative::parseTreeShape(*o.specTree); !tree)
      return Error("--spec-tree: " + tree.error().message());
  if (o.prefillGroups && o.groupBytes)
    return Error("--prefill-groups and --group-bytes: give one (a count of groups or a "
                 "budget of weight bytes per group)");
  if (o.prefillGroups && *o.prefillGroups < 1)
    return Error("--prefill-groups=" + std::to_string(*o.prefillGroups) +
                 ": expected at least 1 group");
  if (o.groupBytes && *o.groupBytes < 1)
    return Error("--group-bytes=" + std::to_string(*o.groupBytes) +
                 ": expected a budget of at least 1 byte");
  // Empty: the default below (defaultActivations).
  const std::optional<plan::Activations> asked = plan::parseActivations(o.activations);
  if (!o.activations.empty() && !asked)
    return Error("--activations=" + o.activations + ": expected int8, bf16 or float");
  if (asked == plan::Activations::Bf16 && hls)
    return Error("--activations=bf16: the hls target's products take float or int8 inputs");
  if (asked == plan::Activations::Int8 && !quant->quantizes() && !frontend::isGgufFile(o.input))
    return Error("--activations=int8 needs packed weights: add --quant=FORMAT (the integer "
                 "kernels read INT, BFP, MXINT8 and MXFP4 weights)");
  // Fast by default: a quantized build runs the integer kernels its formats
  // have; --quant=none keeps the reference numerics.
  if (o.context < 0 || (o.context > 0 && endsWith(o.input, ".mlir")))
    return Error("--context=" + std::to_string(o.context) +
                 ": expected a positive length, for a checkpoint (not a .mlir module)");
  // A GGUF with Q8_0/Q4_0 tensors is as packed as a quantized build.
  bool packedInput = false;
  // The hls target's integer products take all but asymmetric INT
  // (codegen::hlsTakesInt8Activations): int8 there when every format --quant
  // packs with is one of them (a GGUF's own formats, or mixed:bits's, keep
  // float unless asked).
  const auto hlsInt8 = [&] {
    const std::optional<formats::FormatSpec> classifier = quant->classifierFormat();
    return quant->format && !quant->mixedBits && !packedInput &&
           codegen::hlsTakesInt8Activations(*quant->format) &&
           (!classifier || codegen::hlsTakesInt8Activations(*classifier));
  };
  // Whether the checkpoint's linear weights are bf16 or f16 (set once it
  // is read): on the cuda target their products take bf16 inputs, as
  // frameworks' bf16 products do, where f32 weights keep the reference
  // numerics.
  bool halfWeights = false;
  // The cuda target rounds a launch's input one way, which mixed:bits's
  // formats of several block sizes do not share: not int8 there unless
  // asked. On the cuda target, products that do not take int8 take bf16
  // in every build but an f32 one (the tensor cores multiply a bf16 input
  // once, a float one in three parts).
  const auto defaultActivations = [&] {
    const bool int8 = (quant->quantizes() || packedInput) && (!hls || hlsInt8()) &&
                      (!cuda || !quant->mixedBits);
    if (int8)
      return plan::Activations::Int8;
    return cuda && (quant->quantizes() || packedInput || halfWeights) ? plan::Activations::Bf16
                                                                      : plan::Activations::Float;
  };
  plan::Activations activations = asked ? *asked : defaultActivations();
  std::error_code ec;
  if (!fs::exists(o.input, ec))
    return Error(o.input + ": no such file or directory");
  // --external-weights from a config.json: the shapes alone, as a speed
  // model's, and lathe-pack packs the weights later.
  const bool configOnly = o.externalWeights && endsWith(o.input, ".json");
  if (o.externalWeights && o.syntheticWeights)
    return Error("--external-weights and --synthetic-weights: give one (a speed model's "
                 "weights are made at load, not kept in a file)");
  if (o.externalWeights && hls)
    return Error("--external-weights: an HLS project holds its weights itself");
  if (std::error_code listed; o.externalWeights && fs::is_directory(o.input, listed)) {
    // A folder is read with its weights; without any, say how to compile
    // from its config alone.
    bool weights = false;
    for (const fs::directory_entry &e : fs::directory_iterator(o.input, listed))
      weights = weights || e.path().extension() == ".safetensors";
    if (!weights && !listed)
      return Error(o.input + " holds no safetensors: to compile from its config alone "
                             "(lathe-pack packs the weights later), pass " +
                   (fs::path(o.input) / "config.json").string());
  }
  if (configOnly && (!o.calib.empty() || quant->needsCalibration()))
    return Error("--external-weights from " + o.input + ": no weights to calibrate with, so "
                 "no --calib, :reorder or mixed:bits (compile the checkpoint's folder to have "
                 "the compiler calibrate and write the parameter file)");
  if (o.syntheticWeights) {
    // A speed model has no weights to calibrate on, nor text to read.
    if (endsWith(o.input, ".mlir") || (!fs::is_directory(o.input) && !endsWith(o.input, ".json")))
      return Error("--synthetic-weights takes a Hugging Face config.json (or its folder), "
                   "not " + o.input);
    if (!o.tokenizer.empty() || !o.calib.empty() || quant->needsCalibration())
      return Error("--synthetic-weights: a speed model has random weights, so no tokenizer, "
                   "calibration, :reorder or mixed:bits (plain formats only)");
  }

  mlir::MLIRContext context;
  context.loadDialect<tfm::TransformerDialect, mlir::func::FuncDialect>();
  // MLIR diagnostics become the one-line error the tool prints: the first
  // error, with its location, is kept; notes and later errors are dropped;
  // warnings go to `note`.
  std::string firstError;
  mlir::ScopedDiagnosticHandler diagnostics(&context, [&](mlir::Diagnostic &d) {
    if (d.getSeverity() == mlir::DiagnosticSeverity::Error && firstError.empty()) {
      llvm::raw_string_ostream os(firstError);
      if (auto loc = llvm::dyn_cast<mlir::FileLineColLoc>(d.getLocation()))
        os << loc.getFilename().getValue() << ":" << loc.getLine() << ":" << loc.getColumn() << ": ";
      os << "error: " << d.str();
    } else if (d.getSeverity() == mlir::DiagnosticSeverity::Warning && note) {
      // A pass that goes on but wants the user to know (a layer above
      // --group-bytes): a note, as the frontend's are.
      note(d.str());
    }
    return mlir::success();
  });
  auto mlirError = [&](const std::string &fallback) {
    return Error(firstError.empty() ? fallback : firstError);
  };
  mlir::OwningOpRef<mlir::ModuleOp> module;
  frontend::LlamaCheckpoint checkpoint; // owns the maps the IR points into

  report("reading " + o.input, 0);
  if (endsWith(o.input, ".mlir")) {
    module = mlir::parseSourceFile<mlir::ModuleOp>(o.input, &context);
    if (!module)
      return mlirError(o.input + ": cannot parse the tfm module");
  } else {
    Expected<frontend::LlamaCheckpoint> ckpt =
        o.syntheticWeights || configOnly ? frontend::readSyntheticCheckpoint(o.input)
        : fs::is_directory(o.input)   ? frontend::readHFCheckpoint(o.input)
        : frontend::isGgufFile(o.input) ? frontend::readGgufCheckpoint(o.input)
                                        : frontend::readLlama2cCheckpoint(o.input);
    if (!ckpt)
      return ckpt.error();
    checkpoint = ckpt.take();
    if (note)
      for (const std::string &line : checkpoint.notes)
        note(line);
    if (o.context > 0)
      checkpoint.config.context = o.context;
    auto packed = [](const frontend::TensorView &v) { return v.packed.has_value(); };
    packedInput = packed(checkpoint.embedding) ||
                  (checkpoint.classifier && packed(*checkpoint.classifier));
    for (const frontend::LlamaLayerWeights &w : checkpoint.layers)
      for (const frontend::TensorView *v : {&w.wq, &w.wk, &w.wv, &w.wo, &w.w1, &w.w2, &w.w3}) {
        packedInput = packedInput || packed(*v);
        halfWeights = halfWeights || (!packed(*v) && (v->type == ElementType::BF16 ||
                                                      v->type == ElementType::F16));
      }
    if (!asked)
      activations = defaultActivations();
    else if (asked == plan::Activations::Int8 && !quant->quantizes() && !packedInput)
      return Error("--activations=int8 needs packed weights: " + o.input +
                   " has no Q8_0 or Q4_0 matrices; add --quant=FORMAT");
    report("importing", 0);
    module = frontend::importLlama(context, checkpoint, modelName(o.input));
  }
  if (mlir::failed(mlir::verify(*module)))
    return mlirError(o.input + ": the tfm module fails verification");
  if (!(*kv == formats::plainKvFormat(ElementType::F32))) {
    // The cache's element type is part of the function's signature; every
    // attention op reads the cache argument, so retyping it is enough.
    auto fn = module->lookupSymbol<mlir::func::FuncOp>("forward");
    if (!fn || fn.getNumArguments() != 3)
      return Error(o.input + ": --kv=" + o.kv + " needs a function @forward with a KV cache");
    auto cache = llvm::dyn_cast<tfm::KVCacheType>(fn.getArgument(2).getType());
    if (!cache)
      return Error(o.input + ": --kv=" + o.kv + " needs a function @forward with a KV cache");
    Expected<formats::KvFormat> resolved = resolveKvFlag(o.kv, *kv, cache.getHeadDim());
    if (!resolved)
      return resolved.error();
    mlir::Type element = kvElementType(context, *resolved);
    auto retyped = tfm::KVCacheType::get(&context, cache.getLayers(), cache.getKvHeads(),
                                         cache.getHeadDim(), cache.getCapacity(), element);
    fn.getArgument(2).setType(retyped);
    llvm::SmallVector<mlir::Type> inputs(fn.getFunctionType().getInputs());
    inputs[2] = retyped;
    fn.setType(mlir::FunctionType::get(&context, inputs, fn.getResultTypes()));
  }
  // The tokenizer: stored in the artifact, and needed to calibrate.
  Vocabulary vocabulary;
  std::optional<HFTokenizerSpec> hfTokenizer;
  std::optional<TextTokenizer> tokenizer;
  if (std::string tokPath = o.syntheticWeights ? "" : findTokenizer(o); !tokPath.empty()) {
    report("reading tokenizer " + tokPath, 0);
    int64_t vocabSize = 0;
    if (auto fn = module->lookupSymbol<mlir::func::FuncOp>("forward"))
      if (fn.getNumResults() == 1)
        if (auto t = llvm::dyn_cast<mlir::RankedTensorType>(fn.getResultTypes()[0]))
          vocabSize = t.getRank() == 2 ? t.getDimSize(1) : 0;
    if (vocabSize <= 0)
      return Error(o.input + ": cannot tell the vocabulary size from @forward's result");
    // Each kind becomes the compiler's TextTokenizer and the artifact's
    // stored form, once its ids are checked against the model's logits.
    auto useVocabulary = [&](Vocabulary vocab) -> Status {
      if (vocab.pieces.size() > static_cast<size_t>(vocabSize))
        return Error(fmt::format("{}: the tokenizer has {} tokens, the model only {} logits",
                                 tokPath, vocab.pieces.size(), vocabSize));
      Expected<Tokenizer> tok = Tokenizer::create(vocab);
      if (!tok)
        return Error(tokPath + ": " + tok.error().message());
      tokenizer.emplace(tok.take());
      vocabulary = std::move(vocab);
      return Status::ok();
    };
    auto useHF = [&](HFTokenizerSpec spec) -> Status {
      Expected<HFTokenizer> tok = HFTokenizer::create(spec, tokPath);
      if (!tok)
        return tok.error();
      if (tok->idCount() > static_cast<size_t>(vocabSize))
        return Error(fmt::format("{}: the tokenizer has ids up to {}, the model only {} logits",
                                 tokPath, tok->idCount() - 1, vocabSize));
      tokenizer.emplace(tok.take());
      hfTokenizer = std::move(spec);
      return Status::ok();
    };
    Status used = Status::ok();
    if (frontend::isGgufFile(tokPath)) {
      Expected<frontend::GgufFile> file = frontend::GgufFile::open(tokPath);
      if (!file)
        return file.error();
      Expected<std::optional<frontend::GgufTokenizer>> gguf = frontend::readGgufTokenizer(*file);
      if (!gguf)
        return gguf.error();
      if (!*gguf && tokPath == o.tokenizer)
        return Error(tokPath + ": the GGUF file holds no tokenizer (no tokenizer.ggml.model)");
      if (*gguf) {
        if (Vocabulary *vocab = std::get_if<Vocabulary>(&**gguf))
          used = useVocabulary(std::move(*vocab));
        else
          used = useHF(std::move(std::get<HFTokenizerSpec>(**gguf)));
      }
    } else if (isHFTokenizer(tokPath)) {
      Expected<HFTokenizerSpec> spec = loadHFTokenizer(tokPath);
      if (!spec)
        return spec.error();
      used = useHF(spec.take());
    } else {
      Expected<Vocabulary> vocab =
          loadLlama2cTokenizer(tokPath, static_cast<uint32_t>(vocabSize));
      if (!vocab)
        return vocab.error();
      used = useVocabulary(vocab.take());
    }
    if (!used)
      return used.error();
  }

  // Reordering and format selection need calibration; plain quantization
  // uses it, when a tokenizer allows, to equalize channels and to report
  // calibrated errors.
  // Key channels are scaled and ordered for a block-compressed cache (a
  // speed model has no weights to scale or order).
  const bool noWeights = o.syntheticWeights || configOnly;
  const bool reorderKeys = kvFlag->reorderKeys && !noWeights;
  const bool equalizeKeys = kvFlag->equalizeKeys && !noWeights;
  if (configOnly && (kvFlag->reorderKeys || kvFlag->equalizeKeys) && note)
    note("no weights at compile time: key channels are neither scaled nor ordered for "
         "the KV cache (compile the checkpoint's folder to have them)");
  const bool calibrates =
      !configOnly && (quant->needsCalibration() ||
                      ((quant->quantizes() || reorderKeys || equalizeKeys) && tokenizer));
  if (calibrates) {
    if (!tokenizer)
      return Error("--quant=" + o.quant + " calibrates the model on text and needs a "
                   "tokenizer (--tokenizer)");
    std::string text(defaultCalibrationText());
    if (!o.calib.empty()) {
      Expected<std::string> file = readTextFile(o.calib);
      if (!file)
        return file.error();
      text = file.take();
    }
    report("calibrating", 0);
    Expected<CalibrationStats> stats = calibrate(*module, *tokenizer, text);
    if (!stats)
      return Error((o.calib.empty() ? std::string("built-in text") : o.calib) + ": " +
                   stats.error().message());
  }
  if ((equalizeKeys || reorderKeys) && !calibrates && note)
    note(std::string("no tokenizer to calibrate with: key channels are ") +
         (equalizeKeys && reorderKeys ? "scaled and ordered"
          : equalizeKeys              ? "scaled"
                                      : "ordered") +
         " by their weights alone (pass --tokenizer to weigh them by calibrated inputs)");
  // Scales first: the order is then chosen for the scaled keys.
  if (equalizeKeys) {
    report("equalizing key channels for the KV cache", 0);
    mlir::PassManager pm(&context);
    pm.addPass(createEqualizeKeyChannels());
    if (mlir::failed(pm.run(*module)))
      return mlirError(o.input + ": equalizing key channels failed");
  }
  if (reorderKeys) {
    report("ordering key channels for the KV cache", 0);
    mlir::PassManager pm(&context);
    pm.addPass(createReorderKeyChannels());
    if (mlir::failed(pm.run(*module)))
      return mlirError(o.input + ": ordering key channels failed");
  }
  if (quant->quantizes()) {
    report("quantizing", 0);
    mlir::PassManager pm(&context);
    // Equalization first: reordering then sorts the equalized columns.
    if (quant->equalize && calibrates) {
      EqualizeChannelsOptions e;
      e.format = formats::formatName(quant->format ? *quant->format : kMixedEqualizeFormat);
      e.activations = plan::activationsName(activations);
      pm.addPass(createEqualizeChannels(e));
    } else if (quant->equalize && note && configOnly) {
      note("no weights at compile time: lathe-pack packs them without channel "
           "equalization (compile the checkpoint's folder to equalize)");
    } else if (quant->equalize && note && !o.syntheticWeights) {
      note("no tokenizer to calibrate with: the weights are packed without channel "
           "equalization (pass --tokenizer to equalize)");
    }
    if (quant->reorder) {
      ReorderChannelsOptions r;
      if (quant->format)
        r.format = formats::formatName(*quant->format);
      r.activations = plan::activationsName(activations);
      pm.addPass(createReorderChannels(r));
    }
    std::optional<formats::FormatSpec> classifier = quant->classifierFormat();
    if (quant->mixedBits) {
      SelectFormatsOptions s;
      s.bits = *quant->mixedBits;
      pm.addPass(createSelectFormats(s));
    }
    if (quant->format || classifier) {
      QuantizeOptions q;
      q.format = formats::formatName(quant->format ? *quant->format : *classifier);
      q.linears = quant->format.has_value();
      q.classifier = classifier.has_value();
      if (classifier)
        q.classifierFormat = formats::formatName(*classifier);
      // No weights here: their formats and sizes, not their values.
      q.shapesOnly = noWeights;
      pm.addPass(createQuantize(q));
    }
    if (mlir::failed(pm.run(*module)))
      return mlirError(o.input + ": quantization failed");
  }
  if (!o.quantReport.empty())
    if (Status s = writeQuantReport(*module, o.quant, plan::activationsName(activations),
                                    o.quantReport);
        !s)
      return s;
  if (o.emit == EmitKind::MLIR) {
    module->print(out);
    out << "\n";
    return Status::ok();
  }

  const std::string target = cuda ? "cuda" : "cpu";
  report("lowering to a " + target + " kernel plan", 0);
  codegen::PlanOptions planOptions;
  planOptions.activations = activations;
  if (cuda) { // products hold an int8 input row in shared memory
    planOptions.maxInt8Width = codegen::cudaMaxInt8Width();
    planOptions.maxBf16Width = codegen::cudaMaxBf16Width();
    // Where int8 cannot be, bf16 (one tensor-core part), as defaultActivations says.
    if (activations == plan::Activations::Int8)
      planOptions.fallback = plan::Activations::Bf16;
  }
  planOptions.specTree = o.specTree.value_or("");
  planOptions.prefillGroups = o.prefillGroups.value_or(0);
  planOptions.groupBytes = o.groupBytes.value_or(0);
  mlir::FailureOr<codegen::LoweredModel> lowered =
      codegen::buildKernelPlan(*module, target, planOptions);
  if (mlir::failed(lowered))
    return mlirError(o.input + ": cannot lower to a kernel plan");
  if (Status s = plan::validateConfig(lowered->config, o.input); !s)
    return s;
  if (o.emit == EmitKind::Plan) {
    codegen::printKernelPlan(*lowered, out);
    return Status::ok();
  }

  if (hls) {
    report("generating the HLS project", 0);
    // The loop and interface attributes the generator lowers last.
    mlir::PassManager schedule(lowered->planModule->getContext());
    HlsScheduleOptions scheduleOptions;
    scheduleOptions.unroll = o.hlsUnroll;
    scheduleOptions.ii = o.hlsII;
    schedule.addNestedPass<mlir::func::FuncOp>(createHlsSchedule(scheduleOptions));
    if (mlir::failed(schedule.run(*lowered->planModule)))
      return mlirError(o.input + ": cannot schedule the step for the hls target");
    codegen::HlsOptions hlsOptions;
    hlsOptions.tool = *hlsTool;
    Expected<codegen::HlsProject> project = codegen::emitHlsProject(*lowered, hlsOptions);
    if (!project)
      return Error(o.input + ": cannot generate the HLS project: " + project.error().message());
    codegen::HlsEstimateOptions estimate;
    estimate.clockMHz = o.hlsClockMHz;
    project->files.emplace_back("estimate.md", codegen::hlsEstimateReport(*project, estimate));
    return codegen::writeHlsProject(*project, o.output);
  }
  if (cuda) {
    // The CUDA target's generated kernels, built with nvcc.
    report("generating and building the model's CUDA code", 0);
    std::vector<plan::TensorInfo> tensors;
    for (const artifact::TensorData &t : lowered->tensors)
      tensors.push_back(t.info);
    Expected<codegen::CudaModelCode> code = codegen::emitCudaModel(lowered->plan, tensors);
    if (!code)
      return Error(o.input + ": cannot generate CUDA code: " + code.error().message());
    if (o.emit == EmitKind::Cuda) {
      out << code->device;
      return Status::ok();
    }
    // Its host side: which kernel each launch runs, on what grid.
    Expected<std::string> schedule = codegen::emitCudaSchedule(lowered->plan, *code);
    if (!schedule)
      return Error(o.input + ": cannot generate the CUDA host schedule: " +
                   schedule.error().message());
    if (o.emit == EmitKind::Cpp) {
      out << *schedule;
      return Status::ok();
    }
    // The schedule first: seconds, where nvcc takes a minute.
    const uint64_t hash = plan::planHash(lowered->plan);
    Expected<plan::NativeCode> host = codegen::buildCudaSchedule(*schedule, hash);
    if (!host)
      return host.error();
    lowered->plan.native = host.take();
    Expected<plan::DeviceCode> device = codegen::buildCudaCode(code->device, cudaArchs, hash);
    if (!device)
      return device.error();
    lowered->plan.device = device.take();
  } else {
    // The CPU target's generated code, built with the system compiler.
    report("generating and building the model's CPU code", 0);
    std::string emitError;
    mlir::FailureOr<std::string> source = codegen::emitCpuModel(*lowered, &emitError);
    if (mlir::failed(source))
      return Error(o.input + ": cannot generate CPU code: " + emitError);
    if (o.emit == EmitKind::Cpp) {
      out << *source;
      return Status::ok();
    }
    Expected<plan::NativeCode> native =
        codegen::buildNativeCode(*source, plan::planHash(lowered->plan));
    if (!native)
      return native.error();
    lowered->plan.native = native.take();
  }

  artifact::ArtifactContents contents;
  contents.config = lowered->config;
  contents.tensors = lowered->tensors;
  contents.schedules.push_back(lowered->plan);
  contents.producer = "lathe-compile 0.1.0";
  // What a GGUF held and what each tensor type became.
  if (!checkpoint.provenance.empty())
    contents.producer += "; " + fs::path(o.input).filename().string() + ": " + checkpoint.provenance;
  contents.syntheticWeights = o.syntheticWeights;
  contents.externalWeights = o.externalWeights;
  // What lathe-pack can make from the checkpoint: each tensor converted or
  // packed, no channel rescaled or moved, no GGUF block kept as read.
  const bool equalized = quant->quantizes() && quant->equalize && calibrates;
  // (a GGUF: lathe-pack reads no GGUF, nor a .mlir module's weights).
  contents.weightsFromCheckpoint = !endsWith(o.input, ".mlir") &&
                                   !frontend::isGgufFile(o.input) && !packedInput &&
                                   !equalized && !quant->reorder && !equalizeKeys &&
                                   !reorderKeys;
  contents.vocabulary = vocabulary;
  contents.hfTokenizer = hfTokenizer;
  auto writeArtifact = [&] {
    return artifact::writeArtifact(contents, o.output, [&](uint64_t done, uint64_t total) {
      report("writing " + o.output, total ? double(done) / double(total) : 1.0);
    });
  };
  if (!o.externalWeights)
    return writeArtifact();
  const std::string parameters = artifact::defaultParameterPath(o.output);
  if (configOnly) {
    if (note)
      note("no weights written: lathe-pack " + o.output + " CHECKPOINT -o " + parameters +
           " packs them from the checkpoint's safetensors");
    return writeArtifact();
  }
  // The weights first: an artifact is never left beside a file that is not
  // its own.
  if (Status s = artifact::writeParameters(contents, parameters,
                                           [&](uint64_t done, uint64_t total) {
                                             report("writing " + parameters,
                                                    total ? double(done) / double(total) : 1.0);
                                           });
      !s)
    return s;
  Status written = writeArtifact();
  if (!written)
    fs::remove(parameters, ec);
  return written;
}

} // namespace lathe::compiler
