#include "codegen/CUDA/EmitCudaModel.h"

#include "codegen/CUDA/CudaCodeHeaders.h"
#include "codegen/CUDA/FusedLaunches.h"
#include "runtime/backends/cuda/CudaWeightLayout.h"
#include "runtime/backends/cuda/kernels/CudaFrame.h"
#include "runtime/backends/cuda/kernels/CudaWeightLayouts.h"
#include "runtime/formats/RowCodec.h"
#include "runtime/kernels/ElementwiseKernels.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <type_traits>
#include <variant>

namespace lathe::codegen {
namespace {

/// How the kernels read one tensor: the format's template and the bytes of
/// one row.
struct WeightCode {
  std::string type;
  int64_t rowBytes = 0;
  /// Rows stream at memory speed (plain formats, the lane layouts): the
  /// product launch then takes about as many blocks as the GPU keeps
  /// resident. The formats whose value-by-value decode is the bound (BFP,
  /// MX and FP6 in the artifact's layout) keep a block per 8 rows, for the
  /// warps that hide it (FP6 4+2 decode of the Llama-3.2-1B shape in that
  /// layout: 529 tokens/s so, 342 with two blocks an SM; in the FP6 lane
  /// layout, streamed, 1119-1140).
  bool streamed = true;
};

/// The layout a tensor takes on the GPU: the one the runtime chooses
/// (cuda::gpuWeightLayout), or with LATHE_CUDA_LAYOUT=stored in the
/// environment the artifact's (for comparisons).
int chosenLayout(const plan::TensorInfo &info) {
  static const bool stored = [] {
    const char *v = std::getenv("LATHE_CUDA_LAYOUT");
    return v && std::string(v) == "stored";
  }();
  return stored ? LATHE_CUDA_LAYOUT_AS_STORED : cuda::gpuWeightLayout(info);
}

Expected<WeightCode> weightCode(const plan::TensorInfo &info) {
  const int64_t cols = info.shape.back();
  if (!info.quant) {
    const char *type = info.type == ElementType::F32   ? "lathe_cuda::F32"
                       : info.type == ElementType::F16 ? "lathe_cuda::F16"
                                                       : "lathe_cuda::BF16";
    return WeightCode{type, cols * int64_t(elementSize(info.type))};
  }
  const formats::FormatSpec &spec = *info.quant;
  // Symmetric INT groups and MXINT8, BFP8/BFP4 and MXFP4 blocks of rows of
  // whole spans: the GPU's lane layout (CudaWeightLayouts.h), which the
  // runtime makes.
  const int layout = chosenLayout(info);
  if (layout == LATHE_CUDA_LAYOUT_INT_LANES)
    return WeightCode{fmt::format("lathe_cuda::IntLanes<{}, {}{}>", cuda::laneBits(info),
                                  spec.blockSize,
                                  cuda::laneCodesAreE2M1(info) ? ", true" : ""),
                      cuda::gpuRowBytes(info)};
  // FP6 4+2 rows of whole spans: the GPU's FP6 lane layout.
  if (layout == LATHE_CUDA_LAYOUT_FP6_LANES)
    return WeightCode{fmt::format("lathe_cuda::Fp6Lanes<{}>", cuda::fp6LaneGroup(info)),
                      cuda::gpuRowBytes(info)};
  const int64_t rowBytes = int64_t(formats::packedRowBytes(spec, cols));
  using formats::FormatKind;
  switch (spec.kind) {
  case FormatKind::INT8:
  case FormatKind::INT4:
    return WeightCode{fmt::format("lathe_cuda::IntGroup<{}, {}, {}>",
                                  spec.kind == FormatKind::INT8 ? 8 : 4, spec.blockSize,
                                  spec.symmetric ? "true" : "false"),
                      rowBytes, spec.symmetric};
  case FormatKind::BFP:
    return WeightCode{fmt::format("lathe_cuda::Bfp<{}, {}>", spec.mantissaBits, spec.blockSize),
                      rowBytes, false};
  case FormatKind::FP6_4P2:
    // Per channel: the whole row is one group (formats::rowBlockValues).
    return WeightCode{fmt::format("lathe_cuda::Fp6Split<{}>",
                                  formats::rowBlockValues(spec, cols)),
                      rowBytes, false};
  default: {
    const char *element = spec.kind == FormatKind::MXINT8       ? "INT8"
                          : spec.kind == FormatKind::MXFP8_E4M3 ? "FP8_E4M3"
                          : spec.kind == FormatKind::MXFP8_E5M2 ? "FP8_E5M2"
                          : spec.kind == FormatKind::MXFP6_E3M2 ? "FP6_E3M2"
                          : spec.kind == FormatKind::MXFP6_E2M3 ? "FP6_E2M3"
                                                                : "FP4_E2M1";
    return WeightCode{fmt::format("lathe_cuda::Mx<lathe_cuda::MxElement::{}, {}>", element,
                                  spec.blockSize),
                      rowBytes, false};
  }
  }
}

const char *cacheType(ElementType element) {
  return element == ElementType::F32   ? "float"
         : element == ElementType::F16 ? "__half"
                                       : "__nv_bfloat16";
}

/// A float as a C++ literal that reads back as the same float.
std::string floatLiteral(float v) { return fmt::format("{:.8e}f", v); }

/// A product's rows object in the generated code (PlainRows, GatedRows,
/// RopeRows, ...): its type and its brace initializer, kept apart so that
/// a wrapper can take the one as a template argument and the other as its
/// first member.
struct Rows {
  std::string type, init;
  std::string text() const { return type + init; }
};

class Emitter {
public:
  Emitter(const plan::KernelPlan &plan, const std::vector<plan::TensorInfo> &tensors)
      : plan_(plan), tensors_(tensors), fused_(fuseLaunches(plan, tensors, normRowsFit)) {}

  Expected<CudaModelCode> emit() {
    for (size_t i = 0; i < plan_.steps.size(); ++i) {
      if (fused_.absorbed[i])
        continue;
      step_ = i;
      Status s = std::visit([&](const auto &step) { return emitStep(step); }, plan_.steps[i]);
      if (!s)
        return Error(fmt::format("step {} ({}): {}", i, plan::stepName(plan_.steps[i]),
                                 s.error().message()));
      // An attention step's output rows wait for the step after it, which
      // settles them if it takes them (emitProducts).
      if (!std::holds_alternative<plan::AttentionStep>(plan_.steps[i]))
        settleAttentionRows(0);
    }
    std::string out;
    out += "// Generated by lathe-compile --target=cuda from the model's kernel plan.\n";
    out += "#include \"runtime/backends/cuda/kernels/LatheCudaKernels.cuh\"\n\n";
    out += fmt::format("extern \"C\" __device__ unsigned int lathe_cuda_abi_version = {}u;\n",
                       LATHE_CUDA_ABI_VERSION);
    out += fmt::format(
        "extern \"C\" __device__ unsigned long long lathe_cuda_plan_hash = 0x{:016x}ull;\n",
        plan::planHash(plan_));
    out += fmt::format("extern \"C\" __device__ int lathe_cuda_launch_count = {};\n",
                       launches_.size());
    out += "extern \"C\" __device__ int lathe_cuda_wgmma_code = LATHE_CUDA_WGMMA_CODE;\n";
    out += fmt::format("extern \"C\" __device__ LatheCudaLaunch lathe_cuda_launches[{}] = {{\n",
                       launches_.size());
    for (const LatheCudaLaunch &l : launches_)
      out += fmt::format("    {{{}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}}},\n", l.grid,
                         l.blocks, l.sharedBytes, l.tileBlocks, l.wideBlocks, l.gather,
                         l.queryTile, l.step, l.wideMinTokens, l.wgmma, l.wgmmaArgs,
                         l.wgmmaPairBlocks, l.narrowWritten);
    out += "};\n\n";
    // The layout of each tensor on the GPU, which the runtime applies as
    // it copies the artifact's bytes there.
    out += fmt::format("extern \"C\" __device__ int lathe_cuda_tensor_count = {};\n",
                       tensors_.size());
    out += fmt::format("extern \"C\" __device__ int lathe_cuda_weight_layouts[{}] = {{",
                       std::max<size_t>(tensors_.size(), 1));
    for (size_t t = 0; t < tensors_.size(); ++t)
      out += fmt::format("{}{}", t == 0 ? "" : t % 16 == 0 ? ",\n    " : ", ",
                         chosenLayout(tensors_[t]));
    out += tensors_.empty() ? "0};\n\n" : "};\n\n";
    // The weights the wgmma tiles load by TMA, whose tensor maps the
    // runtime encodes.
    out += fmt::format("extern \"C\" __device__ int lathe_cuda_tma_weight_count = {};\n",
                       tmaWeights_.size());
    out += fmt::format("extern \"C\" __device__ LatheCudaTmaWeight lathe_cuda_tma_weights[{}] = {{",
                       std::max<size_t>(tmaWeights_.size(), 1));
    for (const auto &[tensor, w] : tmaWeights_)
      out += fmt::format("\n    {{{}, {}, {}, {}}},", w.tensor, w.k, w.rows, w.rowBytes);
    out += tmaWeights_.empty() ? "{0, 0, 0, 0}};\n\n" : "\n};\n\n";
    // ... and the token rows they load so, a map by K and buffer.
    std::vector<std::pair<int32_t, int32_t>> tokenMaps(tmaTokens_.size());
    for (const auto &[key, index] : tmaTokens_)
      tokenMaps[size_t(index)] = key;
    out += fmt::format("extern \"C\" __device__ int lathe_cuda_tma_token_count = {};\n",
                       tokenMaps.size());
    out += fmt::format("extern \"C\" __device__ LatheCudaTmaTokens lathe_cuda_tma_tokens[{}] = {{",
                       std::max<size_t>(tokenMaps.size(), 1));
    for (const auto &[k, next] : tokenMaps)
      out += fmt::format("\n    {{{}, {}}},", k, next);
    out += tokenMaps.empty() ? "{0, 0}};\n\n" : "\n};\n\n";
    if (attentionScratchFloats_ > 0)
      out += fmt::format("// Attention over splits of the visible rows: each split's partial sums,\n"
                         "// and per token and head group the splits that have finished.\n"
                         "__device__ float lathe_cuda_attention_partials[{}];\n"
                         "__device__ unsigned lathe_cuda_attention_arrivals[{}];\n\n",
                         attentionScratchFloats_, LATHE_CUDA_ATTENTION_TARGET_BLOCKS);
    out += tables_;
    // Each launch's indices (bodyCall), the distinct bodies, then the
    // launches' kernels.
    out += fmt::format("__device__ const int lathe_cuda_args[{}] = {{",
                       std::max<size_t>(args_.size(), 1));
    for (size_t i = 0; i < args_.size(); ++i)
      out += fmt::format("{}{}", i == 0 ? "" : i % 16 == 0 ? ",\n    " : ", ", args_[i]);
    out += args_.empty() ? "0};\n\n" : "};\n\n";
    out += functions_;
    out += kernels_;
    // Greedy decoding's pick, on the logits where they are
    // (Executable::executeGreedy): a block a logits row.
    out += fmt::format("// the argmax of each logits row, for greedy decoding\n"
                       "extern \"C\" __global__ void __launch_bounds__({}) lathe_cuda_argmax("
                       "const LatheCudaFrame *frame, int *ids) {{\n"
                       "  lathe_cuda::argmaxRows<{}>(frame->buffers[{}], ids);\n}}\n",
                       LATHE_CUDA_THREADS, plan_.bufferWidths[plan_.logits], plan_.logits);
    // A windowed cache's blocks sealed as they leave its f32 window, and
    // unsealed where a sequence writes into a sealed one (the paged
    // cache's KvDeviceCodec, CudaExecutable.cpp): a block a layer and
    // keys or values.
    const int64_t kvWidth = int64_t(plan_.kvWidth);
    int64_t headDim = kvWidth;
    for (const plan::Step &step : plan_.steps)
      if (const auto *a = std::get_if<plan::AttentionStep>(&step))
        headDim = a->headDim;
    if (plan_.kvFormat.windowed()) {
      out += fmt::format(
          "// the {0} cache's window blocks, quantized and back\n"
          "extern \"C\" __global__ void __launch_bounds__({1}) lathe_cuda_kv_seal("
          "uint8_t *kv, int64_t kvRows, int64_t blockSize, int window, int sealed) {{\n"
          "  lathe_cuda::Sealer<{2}>::seal<{3}, {4}, {5}>(kv, kvRows, blockSize, window, sealed);\n}}\n"
          "extern \"C\" __global__ void __launch_bounds__({1}) lathe_cuda_kv_unseal("
          "uint8_t *kv, int64_t kvRows, int64_t blockSize, int from, int to, int64_t rows) {{\n"
          "  lathe_cuda::unsealKvBlock<{2}, {3}, {4}, {5}>(kv, kvRows, blockSize, from, to, rows);\n"
          "}}\n",
          formats::kvFormatName(plan_.kvFormat), LATHE_CUDA_THREADS, quantizedCodec(),
          plan_.kvLayers, kvWidth, headDim);
    } else if (plan_.kvFormat.compressed()) {
      // A compressed cache's single rows (a tree's accepted path moving
      // down, kv::KvDeviceCodec::copyRow): PackedKv keeps a block of rows
      // by KV head, so a row is not one run of bytes.
      out += fmt::format(
          "// a row of the {0} cache copied, every layer: a block a layer and keys or values\n"
          "extern \"C\" __global__ void __launch_bounds__({1}) lathe_cuda_kv_copy_row("
          "uint8_t *kv, int64_t kvRows, int64_t to, int64_t from) {{\n"
          "  lathe_cuda::copyKvRow<{2}, {3}, {4}>(kv, kvRows, to, from);\n}}\n",
          formats::kvFormatName(plan_.kvFormat), LATHE_CUDA_THREADS, packedCodec(), kvWidth,
          headDim);
    }
    return CudaModelCode{std::move(out), launches_, kStages_};
  }

private:
  void launch(LatheCudaGrid grid, int32_t blocks, int32_t sharedBytes, const std::string &comment,
              const std::string &body, const std::string &tileBody = "", int32_t tileBlocks = 0,
              int32_t wideBlocks = 0, bool gather = false, int32_t queryTile = 0,
              const std::string &wideBody = "", int32_t minBlocks = 0,
              int32_t wideMinTokens = 0, bool wgmma = false) {
    // minBlocks: blocks an SM the kernel must fit (streamed products: two,
    // kRowBlockSlots, so at most 128 registers a thread).
    const size_t i = launches_.size();
    kernels_ += kernel("kernel", i, minBlocks, bodyCall(body, comment));
    // The same launch's products (or attention) on the tensor cores. At
    // least one block an SM (not the default's two): ptxas then keeps a
    // round's loads in flight at once (about 120 registers) instead of 48
    // registers and one load at a time.
    if (!tileBody.empty())
      kernels_ += kernel("tiles", i, 1, bodyCall(tileBody, comment + ", on the tensor cores"));
    // wgmma tiles: a kernel per distinct body (bodyKernel), named by the
    // launch table; other wide tiles a kernel of the launch's own.
    std::pair<int32_t, int32_t> wgmmaKernel{-1, 0};
    if (!wideBody.empty() && wgmma && queryTile > 0)
      wgmmaKernel = bodyKernel(wideBody, comment + ", on the tensor cores by wgmma",
                               "LATHE_CUDA_WGMMA_ATTENTION_BLOCKS");
    else if (!wideBody.empty() && wgmma)
      wgmmaKernel = bodyKernel(wideBody, comment + ", on the tensor cores in wgmma tiles", "1",
                               LATHE_CUDA_WGMMA_THREADS);
    else if (!wideBody.empty())
      kernels_ += kernel("wide", i, 1,
                         bodyCall(wideBody, comment + ", on the tensor cores in wide tiles"));
    launches_.push_back({grid, blocks, sharedBytes, tileBlocks, wideBlocks, gather, queryTile,
                         int32_t(step_), wideMinTokens, wgmmaKernel.first + 1,
                         wgmmaKernel.second});
    kStages_.push_back(0);
  }
  /// The fewest tokens that take a staged launch's wide tiles: `fallback`
  /// (LATHE_CUDA_WGMMA_MIN_TOKENS or LATHE_CUDA_STAGED_MIN_TOKENS), or for
  /// experiments the environment's LATHE_CUDA_STAGED_MIN_TOKENS (a positive
  /// count), which overrides both.
  static int32_t stagedMinTokens(int32_t fallback) {
    if (const char *v = std::getenv("LATHE_CUDA_STAGED_MIN_TOKENS"); v && std::atoi(v) > 0)
      return std::atoi(v);
    return fallback;
  }
  /// Whether gate and up's tiles may write the down projection's token
  /// rows; the environment's LATHE_CUDA_DOWN_PARTS=0 keeps its split
  /// launch, for comparison.
  static bool downPartsWanted() {
    const char *v = std::getenv("LATHE_CUDA_DOWN_PARTS");
    return !(v && std::string(v) == "0");
  }
  /// Whether prompts' attention may take wgmma; the environment's
  /// LATHE_CUDA_WGMMA_ATTENTION=0 keeps the mma.sync kernel, for comparison.
  static bool wgmmaAttention() {
    const char *v = std::getenv("LATHE_CUDA_WGMMA_ATTENTION");
    return !(v && std::string(v) == "0");
  }
  /// A launch's kernel: its body with its arguments.
  static std::string kernel(const char *kind, size_t i, int32_t minBlocks,
                            const std::string &call) {
    return fmt::format("extern \"C\" __global__ void __launch_bounds__({}{}) "
                       "lathe_cuda_{}_{}(const LatheCudaFrame *frame) {{\n"
                       "  const LatheCudaFrame &f = *frame;\n  {};\n}}\n\n",
                       LATHE_CUDA_THREADS, minBlocks > 0 ? fmt::format(", {}", minBlocks) : "",
                       kind, i, call);
  }
  /// A runtime argument of a body: the tensor and buffer indices and the
  /// layer, which are all that differ between the layers' launches. Marked
  /// here, they become reads of the launch's arguments (bodyCall), so that
  /// every layer's launch of one kind shares one function: nvcc compiles a
  /// Llama layer's kinds once, not once per layer.
  static std::string A(int64_t value) { return fmt::format("$A{}$", value); }
  /// A body's text with its arguments (marked by A) read from `a`, and
  /// where they start in the module's table (lathe_cuda_args), to which
  /// they go.
  std::pair<std::string, size_t> bodyText(const std::string &marked) {
    static const std::regex mark("\\$A(-?[0-9]+)\\$");
    std::string text;
    const size_t offset = args_.size();
    auto last = marked.cbegin();
    for (std::sregex_iterator m(marked.begin(), marked.end(), mark), end; m != end; ++m) {
      text.append(last, marked.cbegin() + m->position());
      text += fmt::format("a[{}]", args_.size() - offset);
      args_.push_back(int32_t(std::stoll((*m)[1].str())));
      last = marked.cbegin() + m->position() + m->length();
    }
    text.append(last, marked.cend());
    return {text, offset};
  }
  /// The call of the body `marked` with this launch's arguments: the body
  /// a function of its own, one per distinct body.
  std::string bodyCall(const std::string &marked, const std::string &comment) {
    auto [text, offset] = bodyText(marked);
    auto [it, added] = bodies_.try_emplace(text, bodies_.size());
    if (added)
      functions_ += fmt::format("// {}\nstatic __device__ __noinline__ void lathe_cuda_body_{}("
                                "const LatheCudaFrame &f, const int *a) {{\n{}}}\n\n",
                                comment, it->second, text);
    return fmt::format("lathe_cuda_body_{}(f, lathe_cuda_args + {})", it->second, offset);
  }
  /// The body `marked` as a kernel of its own, one per distinct body, that
  /// takes its arguments' offset in lathe_cuda_args as a second argument:
  /// the kernel's number and this launch's offset. For bodies that must not
  /// be called (ptxas serializes wgmma in a function other than the
  /// kernel) yet recur in every layer.
  std::pair<int32_t, int32_t> bodyKernel(const std::string &marked, const std::string &comment,
                                         const std::string &minBlocks = "1",
                                         int threads = LATHE_CUDA_THREADS) {
    auto [text, offset] = bodyText(marked);
    auto [it, added] = argKernels_.try_emplace(text, int32_t(argKernels_.size()));
    if (added)
      kernels_ += fmt::format("// {}\nextern \"C\" __global__ void __launch_bounds__({}, {}) "
                              "lathe_cuda_wgmma_{}(const LatheCudaFrame *frame, int args) {{\n"
                              "  const LatheCudaFrame &f = *frame;\n"
                              "  const int *a = lathe_cuda_args + args;\n{}}}\n\n",
                              comment, threads, minBlocks, it->second, text);
    return {it->second, int32_t(offset)};
  }
  /// A kernel over each token's row: `width` elements spread over blocks
  /// of `perThread` elements per thread (0: one block, a row-wide
  /// reduction).
  void perToken(const std::string &comment, const std::string &call, int64_t width = 0,
                int64_t perThread = 4, LatheCudaGrid grid = LATHE_CUDA_GRID_PER_TOKEN) {
    const int64_t perBlock = perThread * LATHE_CUDA_THREADS;
    const int32_t blocks = width > 0 ? int32_t((width + perBlock - 1) / perBlock) : 1;
    launch(grid, blocks, 0, comment, "  " + call + ";\n");
  }
  int64_t width(uint32_t buffer) const { return int64_t(plan_.bufferWidths[buffer]); }
  /// Blocks a product launch of one warp per weight row aims to have when
  /// its weights stream (WeightCode::streamed): two
  /// 8-warp blocks on each of the 132 SMs of an H100/H200 (SXM), all
  /// resident at once (__launch_bounds__ of 2 blocks). A launch of more
  /// rows gives each warp several, so that a block's start-up (its fused
  /// norm above all) is paid once for several rows, and no second wave of
  /// blocks waits on the first. H200, Llama-3.2-1B shape, bf16 batch-1
  /// decode: 760 tokens/s with a block per 8 rows, 891 with this; 818 with
  /// three blocks an SM, 700 with one.
  static constexpr int64_t kRowBlockSlots = 2 * 132;
  /// Output rows a warp walks in a launch of `rows` rows in all.
  static int64_t rowsPerWarp(int64_t rows) {
    const int64_t perPass = kRowBlockSlots * LATHE_CUDA_ROWS_PER_BLOCK;
    return std::max<int64_t>(1, (rows + perPass - 1) / perPass);
  }
  static bool normRowsFit(uint64_t width) { return LATHE_CUDA_NORM_TOKENS(width) > 0; }

  /// One product of a launch, as the generated code calls it.
  struct Product {
    uint32_t input, weight, output;
    bool gather = false;
  };

  /// One launch of `products` (of one input), the blocks shared out in
  /// order, with the norm before them and the add after them that the
  /// fusions give the current step; int8Block > 0: the input rounded for
  /// int8 activations in blocks of that many values; bf16: each input value
  /// rounded to bf16.
  Status emitProducts(const char *comment, const std::vector<Product> &products, int int8Block,
                      bool bf16) {
    std::string input = "lathe_cuda::PlainInput{}";
    int32_t sharedBytes = 0;
    uint32_t in = products.front().input;
    const std::optional<FusedNorm> &norm = fused_.normOf[step_];
    if (norm) {
      Expected<WeightCode> g = weightCode(tensors_[norm->gain]);
      if (!g)
        return g.error();
      in = norm->input;
      input = fmt::format("lathe_cuda::NormedInput<{}>{{{}, {}}}", g->type, A(norm->gain),
                          floatLiteral(norm->epsilon));
      const int64_t width = this->width(in);
      sharedBytes = int32_t(LATHE_CUDA_NORM_TOKENS(width) * width * int64_t(sizeof(float)));
    }
    // A rounded input wraps the plain or normed one: Wrapper<..., Inner>{init}.
    const std::string innerType = input.substr(0, input.find('{'));
    const std::string innerInit = norm ? input.substr(input.find('{')) : "";
    if (int8Block > 0) {
      // Shared memory: the rounded rows of a few tokens (as many as a norm
      // holds), or one token's normed row and its int8 chunks.
      const int64_t width = this->width(in);
      const int64_t rows = LATHE_CUDA_NORM_TOKENS(width);
      const int64_t single = (norm ? 4 * width : 0) + 2 * width;
      const int64_t bytes = std::max<int64_t>(rows * width * 4, single);
      if (width % 8 != 0 || width > LATHE_CUDA_INT8_MAX_WIDTH || bytes > 48 * 1024)
        return Error(fmt::format("int8 activations of rows of {} values: the cuda target "
                                 "takes multiples of 8 up to {} (compile with "
                                 "--activations=float)",
                                 width, LATHE_CUDA_INT8_MAX_WIDTH));
      sharedBytes = int32_t(bytes);
      input = fmt::format("lathe_cuda::Int8Input<{}, {}>{{{}}}", int8Block, innerType, innerInit);
    } else if (bf16) {
      // Shared memory: the rounded rows of a few tokens (as many as a norm
      // holds), a single token's row among them.
      const int64_t width = this->width(in);
      if (width % 4 != 0 || width > LATHE_CUDA_BF16_MAX_WIDTH)
        return Error(fmt::format("bf16 activations of rows of {} values: the cuda target "
                                 "takes multiples of 4 up to {} (compile with "
                                 "--activations=float)",
                                 width, LATHE_CUDA_BF16_MAX_WIDTH));
      sharedBytes = int32_t(LATHE_CUDA_NORM_TOKENS(width) * width * int64_t(sizeof(float)));
      input = fmt::format("lathe_cuda::Bf16Input<{}>{{{}}}", innerType, innerInit);
    }
    const char *codes = int8Block > 0 ? "lathe_cuda::TokenCodes::Int8"
                        : bf16        ? "lathe_cuda::TokenCodes::Bf16"
                                      : "lathe_cuda::TokenCodes::Float";
    // An add after a single matmul: it writes `sum = other + W x`.
    const std::optional<FusedAdd> &add = fused_.residualOf[step_];
    // Each product's rows and shape, then the launch's two dispatches: the
    // tensor-core tiles for steps of many tokens, one warp per weight row
    // for the others.
    struct Call {
      Rows rows;
      int64_t k, n;
      Rows single; // the rows of a single token's product, if other
      bool staged; // long prompts take the staged tiles (CudaStagedTiles.cuh)
      bool gated;  // GatedRows: gate and up
      std::vector<uint32_t> weights; // the product's tensors (gate and up)
      int64_t rowBytes;             // their rows' bytes
      bool gather;                  // the classifier's gathered tokens
    };
    std::vector<Call> calls;
    const bool gather = products.front().gather;
    bool streamed = true; // every weight of the launch (WeightCode::streamed)
    // The staged tiles take bf16 rows of whole 32-value stages, with bf16
    // activations (one token part); the wgmma ones stages of 64.
    auto stages = [&](const WeightCode &w, int64_t k) { return bf16 && stagedRows(w, k); };
    auto call = [&](const Rows &rows, int64_t k, int64_t n, bool staged, bool gated,
                    std::vector<uint32_t> weights, int64_t rowBytes) {
      calls.push_back({rows, k, n, rows, staged, gated, std::move(weights), rowBytes, gather});
    };
    if (const std::optional<size_t> silu = fused_.gatedOf[step_]) {
      const plan::TensorInfo &gate = tensors_[products[0].weight];
      const plan::TensorInfo &up = tensors_[products[1].weight];
      Expected<WeightCode> g = weightCode(gate), u = weightCode(up);
      if (!g)
        return g.error();
      if (!u)
        return u.error();
      streamed = g->streamed && u->streamed;
      const uint32_t output = std::get<plan::SiluMulStep>(plan_.steps[*silu]).output;
      const std::string init = fmt::format("{{f.weights[{}], f.weights[{}], f.buffers[{}]",
                                           A(products[0].weight), A(products[1].weight),
                                           A(output));
      call(Rows{fmt::format("lathe_cuda::GatedRows<{}, {}, {}, {}, {}, {}>", g->type, u->type,
                            gate.shape[1], gate.shape[0], g->rowBytes, u->rowBytes),
                init + "}"},
           gate.shape[1], gate.shape[0],
           stages(*g, gate.shape[1]) && stages(*u, gate.shape[1]) && g->rowBytes == u->rowBytes,
           true, {products[0].weight, products[1].weight}, g->rowBytes);
      // With bf16 activations the narrow tiles write the down projection's
      // token rows as they finish (GatedRows::downParts); the row kernel,
      // for steps of fewer tokens, does not.
      // Where the down projection takes wgmma tiles whenever these do,
      // their wgmma tiles write its rows too, row-major (downRows).
      if (bf16 && int8Block == 0 && gate.shape[1] % 16 == 0 && gate.shape[0] % 16 == 0 &&
          downPartsWanted()) {
        const bool rows = calls.back().staged && wgmmaStages(gate.shape[1]) &&
                          downTakesWgmma(*silu, output, gate.shape[0]);
        calls.back().rows.init = init + (rows ? ", f.tokenParts, true}" : ", f.tokenParts}");
        downParts_ = DownParts{output, launches_.size(), rows};
      }
    } else {
      for (const Product &p : products) {
        const plan::TensorInfo &info = tensors_[p.weight];
        Expected<WeightCode> w = weightCode(info);
        if (!w)
          return w.error();
        streamed = streamed && w->streamed;
        call(Rows{fmt::format("lathe_cuda::PlainRows<{}, {}, {}, {}, {}>", w->type,
                              info.shape[1], info.shape[0], w->rowBytes, add ? "true" : "false"),
                  fmt::format("{{f.weights[{}], f.buffers[{}], {}}}", A(p.weight),
                              A(add ? add->sum : p.output),
                              add ? fmt::format("f.buffers[{}]", A(add->other)) : "nullptr")},
             info.shape[1], info.shape[0], stages(*w, info.shape[1]), false, {p.weight},
             w->rowBytes);
      }
      if (const std::optional<size_t> att = fused_.ropeProductOf[step_])
        ropeProduct(*att, calls[0].single, calls[1].single, calls[2].single);
    }
    std::string body, tileBody, wideBody;
    int32_t tileBlocks = 0, wideBlocks = 0, pairBlocks = 0;
    // Staged wide tiles keep the GPU busy from fewer tokens on.
    const bool allStaged =
        std::all_of(calls.begin(), calls.end(), [](const Call &c) { return c.staged; });
    const int64_t k = calls.front().k; // the launch's products share their input
    // Staged products of whole 64-value stages take the wgmma tiles
    // (CudaWgmmaTiles.cuh), if all of the launch's do: its blocks' tokens
    // are the launch's. A block: 128 rows of gate and up, 256 of others.
    const bool wgmma = std::all_of(calls.begin(), calls.end(),
                                   [](const Call &c) { return c.staged && wgmmaStages(c.k); });
    const int32_t wideMinTokens = !allStaged ? LATHE_CUDA_WIDE_MIN_TOKENS
                                  : wgmma    ? stagedMinTokens(LATHE_CUDA_WGMMA_MIN_TOKENS)
                                             : stagedMinTokens(LATHE_CUDA_STAGED_MIN_TOKENS);
    // The launch before (gate and up) wrote this one's token rows already.
    const bool partsWritten = downParts_ && downParts_->first + 2 == launches_.size() &&
                              k % 16 == 0 &&
                              downParts_->buffer == in && bf16 && int8Block == 0 && !norm;
    const bool rowsWritten = partsWritten && downParts_->rows;
    if (downParts_ && downParts_->rows && downParts_->buffer == in && !rowsWritten)
      return Error("the down projection does not read the rows gate and up's wgmma tiles "
                   "write for it (an emitter fault)");
    const bool writesParts = downParts_ && downParts_->first == launches_.size();
    if (!writesParts)
      downParts_.reset();
    bool attentionRows = false; // attention writes the tiles' token rows
    if (k % 16 == 0) {
      // Long prompts take the wide blocks (128 rows by 64 tokens, or the
      // wgmma ones), others the narrow ones (16 by 16): a kernel each.
      for (const Call &c : calls) {
        const int64_t rows = wgmma ? LATHE_CUDA_WGMMA_ROWS(c.gated) : LATHE_CUDA_WIDE_ROWS;
        const int64_t wideTiles = (c.n + rows - 1) / rows;
        dispatch(wideBody, "  ", wideBlocks, int32_t(wideTiles), [&](int32_t first) {
          if (wgmma)
            return wgmmaCall(c, 1, first, writesParts);
          if (c.staged)
            return fmt::format("lathe_cuda::stagedProduct<{}, {}>(f, {}, blockIdx.x - {})", c.k,
                               gather ? "true" : "false", c.rows.text(), first);
          return fmt::format("lathe_cuda::tiledProduct<{}, {}, true, {}>(f, {}, blockIdx.x - {})",
                             c.k, gather ? "true" : "false", codes, c.rows.text(), first);
        }, wgmma ? "block.x" : "blockIdx.x");
        const int64_t tiles = (c.n + LATHE_CUDA_TILE_ROWS - 1) / LATHE_CUDA_TILE_ROWS;
        dispatch(tileBody, "  ", tileBlocks, int32_t(tiles), [&](int32_t first) {
          return fmt::format("lathe_cuda::tiledProduct<{}, {}, false, {}>(f, {}, blockIdx.x - {})",
                             c.k, gather ? "true" : "false", codes, c.rows.text(), first);
        });
      }
      // Launches without gate and up may take their wgmma blocks in pairs
      // of 128-row tiles (LATHE_CUDA_WGMMA_PAIRED), which the kernel knows
      // by its grid; all take the order wgmmaBlockIndex picks (token-major
      // where the weight tiles outnumber the token blocks).
      if (wgmma) {
        std::string pairBody;
        if (std::none_of(calls.begin(), calls.end(), [](const Call &c) { return c.gated; }))
          for (const Call &c : calls)
            dispatch(pairBody, "    ", pairBlocks, int32_t((c.n + 255) / 256),
                     [&](int32_t first) { return wgmmaCall(c, 2, first, writesParts); },
                     "block.x");
        if (pairBlocks == wideBlocks) // no fewer blocks (and no telling them apart)
          pairBody.clear(), pairBlocks = 0;
        wideBody = "  const lathe_cuda::WgmmaBlockIndex block = lathe_cuda::wgmmaBlockIndex();\n" +
                   (pairBody.empty()
                        ? std::string()
                        : fmt::format("  if (gridDim.x != {}) {{ // pairs of tiles\n{}    "
                                      "return;\n  }}\n",
                                      wideBlocks, pairBody)) +
                   wideBody;
      }
      // Attention, the launch before, writes this launch's bf16 token rows
      // as its tiles read them (CudaAttention.cuh's OutputRows) where the
      // launch's wide tiles are wgmma's: then there is no split launch, a
      // launch less in every step of several tokens (a tree of speculated
      // tokens, a prompt, several sequences).
      attentionRows = attentionRows_ && attentionRows_->launch + 1 == launches_.size() &&
                      attentionRows_->output == in && attentionRows_->width == k && wgmma &&
                      wideBlocks > 0 && bf16 && int8Block == 0 && !norm && !gather &&
                      !writesParts && !partsWritten;
      if (attentionRows)
        settleAttentionRows(wideMinTokens);
    }
    if (k % 16 == 0 && !attentionRows) {
      // Steps that take the tiles split the input rows first, once for
      // every block (at f.nextParts where this launch's narrow tiles write
      // the next one's; only for wide tiles where the launch before's
      // narrow ones wrote them).
      // A block per 1024 values of a token's row (4 per thread); a row
      // through RMSNorm in one block, which then reads the row for its
      // squares once (each block of a token sums them all).
      launch(LATHE_CUDA_GRID_SPLIT,
             fused_.normOf[step_]
                 ? 1
                 : int32_t((k + 4 * LATHE_CUDA_THREADS - 1) / (4 * LATHE_CUDA_THREADS)),
             0,
             fmt::format("the token rows of the next launch's tiles, {}split",
                         fused_.normOf[step_] ? "normalized and " : ""),
             // Row-major rows for wgmma tiles (from RowsFrom tokens on).
             fmt::format("  lathe_cuda::splitTokens<{}, {}, {}{}>(f, {}, {});\n", k,
                         gather ? "true" : "false", writesParts ? "true" : "false",
                         wgmma && wideBlocks > 0 ? fmt::format(", {}", wideMinTokens) : "",
                         A(in), input),
             "", 0, 0, gather);
      if (rowsWritten && !wgmma)
        return Error("the down projection does not take the wgmma tiles that gate and up's "
                     "write its rows for (an emitter fault)");
      launches_.back().narrowWritten = rowsWritten ? 2 : partsWritten ? 1 : 0;
    }
    int64_t launchRows = 0;
    for (const Call &c : calls)
      launchRows += c.n;
    const int64_t perBlock =
        (streamed ? rowsPerWarp(launchRows) : 1) * LATHE_CUDA_ROWS_PER_BLOCK;
    int32_t first = 0;
    for (const Call &c : calls) {
      const int32_t blocks = int32_t((c.n + perBlock - 1) / perBlock);
      dispatch(body, "  ", first, blocks, [&](int32_t from) {
        return fmt::format("lathe_cuda::product<{}, {}>(f, {}, {},\n      {},\n      "
                           "blockIdx.x - {}, {})",
                           c.k, gather ? "true" : "false", A(in), input, c.single.text(), from,
                           blocks);
      });
    }
    launch(LATHE_CUDA_GRID_PRODUCT, first, sharedBytes,
           fmt::format("{}{}{}", fused_.normOf[step_] ? "rms_norm, then " : "", comment,
                       add ? ", then add_rms_norm's add" : ""),
           body, tileBody, tileBlocks, wideBlocks, gather, 0, wideBody, streamed ? 2 : 0,
           wideBlocks == 0 ? 0 : wideMinTokens,
           wgmma && wideBlocks > 0);
    launches_.back().wgmmaPairBlocks = pairBlocks;
    if (wgmma && wideBlocks > 0)
      kStages_.back() = int32_t(std::max<int64_t>(k / LATHE_CUDA_TMA_BOX_K, 1));
    return Status::ok();
  }
  /// Wraps the q, k and v products' rows (PlainRows) of a launch that, for
  /// a single token, also does the rope steps and KV store of attention
  /// step `att` (FusedLaunches::ropeProductOf): RopeRows and CachedRows.
  void ropeProduct(size_t att, Rows &q, Rows &k, Rows &v) {
    const auto &a = std::get<plan::AttentionStep>(plan_.steps[att]);
    const auto &rq = std::get<plan::RopeStep>(plan_.steps[att - 2]);
    const auto &rk = std::get<plan::RopeStep>(plan_.steps[att - 1]);
    const char *element = cacheType(plan_.kvElement);
    const int64_t kvWidth = int64_t(a.kvHeads) * a.headDim;
    const auto rope = [&](const plan::RopeStep &r, const Rows &plain, const char *cache) {
      return Rows{fmt::format("lathe_cuda::RopeRows<{}, {}, {}, {}, {}, {}>", plain.type,
                              r.headDim,
                              r.layout == plan::RopeLayout::Interleaved ? "true" : "false",
                              headsPerTable(r), cache, kvWidth),
                  fmt::format("{{{}, f.buffers[{}], {}, &f, {}}}", plain.init, A(r.output),
                              ropeFrequencies(r), A(a.layer))};
    };
    q = rope(rq, q, "void");
    k = rope(rk, k, element);
    v = Rows{fmt::format("lathe_cuda::CachedRows<{}, {}, {}>", v.type, element, kvWidth),
             fmt::format("{{{}, &f, {}}}", v.init, A(a.layer))};
  }
  /// A wgmma call of a launch's product `c` by blocks of `tiles` 128-row
  /// weight tiles from block `first` of the dispatch on: its weights load
  /// by TMA, a tensor map each (lathe_cuda_tma_weights), a plain weight's
  /// once a tile, and its token rows (at f.nextParts if `next`) by the
  /// tensor map of their K (lathe_cuda_tma_tokens).
  template <class Call>
  std::string wgmmaCall(const Call &c, int tiles, int32_t first, bool next) {
    std::string maps;
    for (int t = 0; t < (c.gated ? 1 : tiles); ++t)
      for (uint32_t w : c.weights) {
        maps += fmt::format("lathe_cuda::tensorMap(f, {}), ", A(w));
        tmaWeights_.try_emplace(w, LatheCudaTmaWeight{int32_t(w), int32_t(c.k), int32_t(c.n),
                                                      int32_t(c.rowBytes)});
      }
    const auto [at, added] =
        tmaTokens_.try_emplace(std::pair(int32_t(c.k), int32_t(next)), int32_t(tmaTokens_.size()));
    return fmt::format("lathe_cuda::wgmmaProduct<{}, {}{}>(f, {}, {{{{{}}}, "
                       "lathe_cuda::tokenMap(f, {})}}, block.x - {}, block.y)",
                       c.k, c.gather ? "true" : "false", tiles > 1 ? ", 2" : "", c.rows.text(),
                       maps.substr(0, maps.size() - 2), at->second, first);
  }
  /// Appends to `out` the branch of a launch's dispatch that hands blocks
  /// [first, first + blocks) to the call `call(first)` writes, and advances
  /// `first` past them.
  template <class Call>
  static void dispatch(std::string &out, const char *indent, int32_t &first, int32_t blocks,
                       Call &&call, const char *block = "blockIdx.x") {
    out += fmt::format("{0}if ({3} < {1}) {{\n{0}  {2};\n{0}  return;\n{0}}}\n", indent,
                       first + blocks, call(first), block);
    first += blocks;
  }

  /// The block int8 activations round a launch's input by
  /// (CudaProductInputs.cuh): the block of its weights' formats, which
  /// they must share; 0 for float activations.
  Expected<int> int8Block(plan::Activations activations, const std::vector<uint32_t> &weights) {
    if (activations != plan::Activations::Int8)
      return 0;
    int block = 0;
    for (uint32_t w : weights) {
      const std::optional<formats::FormatSpec> &quant = tensors_[w].quant;
      if (!quant || !formats::hasIntegerCodes(*quant))
        return Error(fmt::format("int8 activations: weight {} has no integer codes", w));
      if (block != 0 && quant->blockSize != block)
        return Error(fmt::format("int8 activations: the products of one input take blocks of {} "
                                 "and {} values; the cuda target rounds an input one way "
                                 "(compile with --activations=float)",
                                 block, quant->blockSize));
      block = quant->blockSize;
    }
    if (!std::has_single_bit(unsigned(block)) || block < 8 || block > 128)
      return Error(fmt::format("int8 activations in blocks of {} values: the cuda target "
                               "takes 8 to 128 (compile with --activations=float)",
                               block));
    return block;
  }

  Status emitStep(const plan::EmbeddingStep &s) {
    Expected<WeightCode> w = weightCode(tensors_[s.table]);
    if (!w)
      return w.error();
    perToken("embedding",
             fmt::format("lathe_cuda::embedding<{}, {}, {}>(f, {}, {})", w->type,
                         width(s.output), w->rowBytes, A(s.table), A(s.output)),
             width(s.output));
    return Status::ok();
  }
  Status emitStep(const plan::RmsNormStep &s) {
    Expected<WeightCode> g = weightCode(tensors_[s.gain]);
    if (!g)
      return g.error();
    const int64_t slice = tensors_[s.gain].shape[0];
    if (slice != width(s.input)) { // a block per gain-wide slice of the row
      launch(LATHE_CUDA_GRID_PER_TOKEN, int32_t(width(s.input) / slice), 0,
             "rms_norm of each slice of a row",
             fmt::format("  lathe_cuda::rmsNormSlices<{}, {}, {}>(f, {}, {}, {}, {});\n", g->type,
                         width(s.input), slice, A(s.input), A(s.gain), floatLiteral(s.epsilon),
                         A(s.output)));
      return Status::ok();
    }
    perToken("rms_norm", fmt::format("lathe_cuda::rmsNorm<{}, {}>(f, {}, {}, {}, {})", g->type,
                                     width(s.input), A(s.input), A(s.gain),
                                     floatLiteral(s.epsilon), A(s.output)));
    return Status::ok();
  }
  Status emitStep(const plan::BiasAddStep &s) {
    Expected<WeightCode> b = weightCode(tensors_[s.bias]);
    if (!b)
      return b.error();
    perToken("bias_add",
             fmt::format("lathe_cuda::biasAdd<{}, {}>(f, {}, {}, {})", b->type, width(s.input),
                         A(s.input), A(s.bias), A(s.output)),
             width(s.input));
    return Status::ok();
  }
  Status emitStep(const plan::AddRmsNormStep &s) {
    Expected<WeightCode> g = weightCode(tensors_[s.gain]);
    if (!g)
      return g.error();
    if (fused_.addDone[step_]) { // the matmul before wrote the sum
      perToken("rms_norm (the add went into the matmul before)",
               fmt::format("lathe_cuda::rmsNorm<{}, {}>(f, {}, {}, {}, {})", g->type,
                           width(s.sum), A(s.sum), A(s.gain), floatLiteral(s.epsilon),
                           A(s.output)));
      return Status::ok();
    }
    perToken("add_rms_norm",
             fmt::format("lathe_cuda::addRmsNorm<{}, {}>(f, {}, {}, {}, {}, {}, {})", g->type,
                         width(s.lhs), A(s.lhs), A(s.rhs), A(s.gain), A(s.sum),
                         floatLiteral(s.epsilon), A(s.output)));
    return Status::ok();
  }
  Status emitStep(const plan::MatMulStep &s) {
    Expected<int> block = int8Block(s.activations, {s.weight});
    if (!block)
      return block.error();
    return emitProducts("matmul", {{s.input, s.weight, s.output}}, *block,
                        s.activations == plan::Activations::Bf16);
  }
  Status emitStep(const plan::MatMulsStep &s) {
    Expected<int> block = int8Block(s.activations, s.weights);
    if (!block)
      return block.error();
    std::vector<Product> products;
    for (size_t i = 0; i < s.weights.size(); ++i)
      products.push_back({s.input, s.weights[i], s.outputs[i]});
    return emitProducts(fused_.gatedOf[step_] ? "matmuls: gate and up, then silu_mul" : "matmuls",
                        products, *block, s.activations == plan::Activations::Bf16);
  }
  Status emitStep(const plan::LogitsStep &s) {
    Expected<int> block = int8Block(s.activations, {s.classifier});
    if (!block)
      return block.error();
    return emitProducts("logits", {{s.input, s.classifier, s.output, /*gather=*/true}}, *block,
                        s.activations == plan::Activations::Bf16);
  }
  Status emitStep(const plan::RopeStep &s) {
    perToken("rope",
             fmt::format("lathe_cuda::rope<{}, {}, {}, {}>(f, {}, {}, {})", width(s.input),
                         s.headDim, s.layout == plan::RopeLayout::Interleaved ? "true" : "false",
                         headsPerTable(s), A(s.input), A(s.output), ropeFrequencies(s)),
             width(s.input) / 2, /*perThread=*/1); // angles in double: spread them
    return Status::ok();
  }
  Status emitStep(const plan::AttentionStep &s) {
    const char *element = cacheType(plan_.kvElement);
    const int64_t kvWidth = int64_t(s.kvHeads) * s.headDim;
    if (const std::optional<size_t> rope = fused_.ropeOf[step_]) {
      const auto &q = std::get<plan::RopeStep>(plan_.steps[*rope]);
      const auto &k = std::get<plan::RopeStep>(plan_.steps[*rope + 1]);
      perToken("attention: RoPE of the queries and keys, the keys and values stored",
               fmt::format("lathe_cuda::ropeStoreKV<{}, {}, {}, {}, {}, {}, {}>(f, {}, {}, {}, "
                           "{}, {}, {}, {})",
                           element, width(q.input), kvWidth, s.headDim,
                           q.layout == plan::RopeLayout::Interleaved ? "true" : "false",
                           headsPerTable(q), headsPerTable(k), A(q.input),
                           A(q.output), A(k.input), A(k.output), A(s.values), A(s.layer),
                           ropeFrequencies(q)),
               width(q.input) / 2 + kvWidth / 2 + kvWidth, /*perThread=*/1,
               productRotates(step_) ? LATHE_CUDA_GRID_PER_TOKENS : LATHE_CUDA_GRID_PER_TOKEN);
    } else if (plan_.kvFormat.windowed()) {
      perToken("attention: store the step's keys and values in the f32 window of its " +
                   formats::kvFormatName(plan_.kvFormat) + " cache",
               fmt::format("lathe_cuda::storeKVWindow<{}, {}, {}>(f, {}, {}, {})", quantizedCodec(),
                           plan_.kvLayers, kvWidth, A(s.keys), A(s.values), A(s.layer)),
               kvWidth);
    } else if (plan_.kvFormat.compressed()) {
      const formats::KvFormat &kv = plan_.kvFormat;
      perToken("attention: store the step's keys and values, " + formats::kvFormatName(kv),
               fmt::format("lathe_cuda::storeKVPacked<{}, {}, {}>(f, {}, {}, {})", packedCodec(),
                           kvWidth, s.headDim, A(s.keys), A(s.values), A(s.layer)),
               // A warp a format block.
               2 * kvWidth / kv.block * 32, /*perThread=*/1);
    } else {
      perToken("attention: store the step's keys and values",
               fmt::format("lathe_cuda::storeKV<{}, {}>(f, {}, {}, {})", element, kvWidth,
                           A(s.keys), A(s.values), A(s.layer)),
               kvWidth);
    }
    // A block per token and group of up to 8 query heads sharing a KV head
    // (the largest such group that divides the heads per KV head).
    const int64_t perKv = int64_t(s.heads) / s.kvHeads;
    int64_t together = std::min<int64_t>(perKv, 8);
    while (perKv % together != 0)
      --together;
    // The queries rounded to bf16 first, or not (the step's activations).
    const bool bf16Queries = s.activations == plan::Activations::Bf16;
    const auto args = [&](const std::string &cache, const std::string &more) {
      return fmt::format("<{}, {}, {}, {}, {}, {}>(f, {}, {}, {}{});\n", cache, s.heads,
                         s.kvHeads, s.headDim, together, bf16Queries ? "true" : "false",
                         A(s.queries), A(s.output), A(s.layer), more);
    };
    // The one-token kernel's scratch for splits of the visible rows
    // (LATHE_CUDA_ATTENTION_SPLITS): fewer than twice the target blocks,
    // each a group's sums, maxima and totals.
    attentionScratchFloats_ =
        std::max(attentionScratchFloats_,
                 int64_t(2) * LATHE_CUDA_ATTENTION_TARGET_BLOCKS * together * (s.headDim + 2));
    // Prompts on the tensor cores where the shapes allow. Parts: the bf16
    // parts a cached value splits into (CudaFlashAttention.cuh).
    const int64_t parts = plan_.kvElement == ElementType::F32   ? 3
                          : plan_.kvElement == ElementType::F16 ? 2
                                                                : 1;
    // A compressed cache takes the one-token kernel for prompts too.
    const bool flash =
        !plan_.kvFormat.compressed() && LATHE_CUDA_FLASH_FITS(parts, s.headDim, together);
    // Those of a bf16 cache, bf16 queries and heads of 64 on wgmma
    // (CudaWgmmaAttention.cuh), a kernel of its own (bodyKernel) as the
    // wgmma tiles'.
    const bool wgmma = flash && plan_.kvElement == ElementType::BF16 && bf16Queries &&
                       s.headDim == LATHE_CUDA_WGMMA_ATTENTION_HEAD_DIM && wgmmaAttention();
    // Each body's last argument: from how many tokens on the output
    // product's wgmma tiles read the token rows attention writes for it
    // (OutputRows; 0: none), which that product's launch settles.
    settleAttentionRows(0);
    const size_t argsBefore = args_.size();
    const std::string rows = ", " + A(kRowsPending);
    launch(LATHE_CUDA_GRID_PER_HEAD, int32_t(s.heads / together), 0, "attention",
           "  lathe_cuda::attention" +
               args(cacheCodec(),
                    ", lathe_cuda_attention_partials, lathe_cuda_attention_arrivals" + rows),
           flash && !wgmma ? "  lathe_cuda::flashAttention" + args(element, rows) : "", 0, 0,
           false, flash ? int32_t(LATHE_CUDA_FLASH_QUERY_TILE(together)) : 0,
           wgmma ? "  lathe_cuda::wgmmaAttention" + args(element, rows) : "", 0, 0, wgmma);
    for (size_t i = argsBefore; i < args_.size(); ++i)
      if (args_[i] == kRowsPending)
        pendingRows_.push_back(i);
    attentionRows_ = AttentionRows{launches_.size() - 1, s.output, int64_t(s.heads) * s.headDim};
    return Status::ok();
  }
  Status emitStep(const plan::SiluMulStep &s) {
    perToken("silu_mul",
             fmt::format("lathe_cuda::siluMul<{}>(f, {}, {}, {})", width(s.gate), A(s.gate),
                         A(s.up), A(s.output)),
             width(s.gate));
    return Status::ok();
  }
  Status emitStep(const plan::AddStep &s) {
    perToken("add",
             fmt::format("lathe_cuda::add<{}>(f, {}, {}, {})", width(s.lhs), A(s.lhs),
                         A(s.rhs), A(s.output)),
             width(s.lhs));
    return Status::ok();
  }

  const plan::KernelPlan &plan_;
  const std::vector<plan::TensorInfo> &tensors_;
  /// Whether the product before attention step `att`'s ropes does them
  /// for a single token (FusedLaunches::ropeProductOf).
  bool productRotates(size_t att) const {
    return att >= 3 && fused_.ropeProductOf[att - 3] == att;
  }
  /// How attention reads the cache (CudaAttention.cuh): plain elements or
  /// compressed blocks.
  std::string cacheCodec() const {
    const formats::KvFormat &kv = plan_.kvFormat;
    if (!kv.compressed())
      return fmt::format("lathe_cuda::PlainKv<{}>", cacheType(plan_.kvElement));
    if (kv.windowed())
      return fmt::format("lathe_cuda::WindowedKv<{}, {}>", quantizedCodec(), plan_.kvLayers);
    return "lathe_cuda::PackedKv<" + packedCodec() + ">";
  }
  /// A compressed cache's quantized rows (CudaWindowedKv.cuh): KIVI's, or
  /// a row format's PackedKv.
  std::string quantizedCodec() const {
    const formats::KvFormat &kv = plan_.kvFormat;
    if (kv.kivi())
      return fmt::format("lathe_cuda::KiviKv<{}, {}, {}>", formats::kvCodeBits(kv.kind), kv.block,
                         kv.keyGroup);
    return "lathe_cuda::PackedKv<" + packedCodec() + ">";
  }
  /// A compressed cache's codec as template arguments (PackedKv,
  /// storeKVPacked): int8 or BFP, bits a code, values a block.
  std::string packedCodec() const {
    const formats::KvFormat &kv = plan_.kvFormat;
    return fmt::format("{}, {}, {}", kv.kind == formats::KvKind::Int8 ? "true" : "false",
                       formats::kvCodeBits(kv.kind), kv.block);
  }
  /// Consecutive heads of a rope's row that share a table of frequencies
  /// (all of them, or a group of a pair order).
  int64_t headsPerTable(const plan::RopeStep &s) {
    return width(s.input) / s.headDim / plan::ropeTableGroups(s.pairOrder.size(), s.headDim);
  }
  /// The name of a table of a rope step's frequencies (one per distinct
  /// table), emitted on first use.
  std::string ropeFrequencies(const plan::RopeStep &s) {
    const std::vector<double> freq = s.frequencies();
    auto [it, added] = ropeTables_.try_emplace(
        freq, fmt::format("lathe_cuda_rope_frequencies_{}", ropeTables_.size()));
    if (added) {
      tables_ += fmt::format("// The RoPE frequencies of theta = {}, head_dim {}{} "
                             "(plan::ropeFrequencies).\n__device__ const double {}[{}] = {{",
                             s.theta, s.headDim,
                             s.scaling().enabled() ? ", Llama 3 scaling" : "", it->second,
                             freq.size());
      for (size_t i = 0; i < freq.size(); ++i)
        tables_ += fmt::format("{}{:a}", i ? ", " : "", freq[i]);
      tables_ += "};\n\n";
    }
    return it->second;
  }

  FusedLaunches fused_;
  std::map<std::vector<double>, std::string> ropeTables_;
  std::string tables_;
  int64_t attentionScratchFloats_ = 0; // the largest attention launch's
  size_t step_ = 0; // the step being emitted
  std::vector<LatheCudaLaunch> launches_;
  std::vector<int32_t> kStages_; // CudaModelCode::kStages
  /// Where gate and up's narrow tiles write the down projection's token
  /// rows: the SwiGLU output buffer they round, and the first of gate and
  /// up's two launches (their split, then their products), which the down
  /// projection's split launch follows (then run only for wide tiles).
  struct DownParts {
    uint32_t buffer;
    size_t first;
    bool rows; // their wgmma tiles write them too (GatedRows::downRows)
  };
  /// Whether the staged tiles take rows of weight `w`, `k` values long,
  /// with bf16 activations: bf16 rows of whole 32-value stages.
  static bool stagedRows(const WeightCode &w, int64_t k) {
    return w.type == "lathe_cuda::BF16" && w.rowBytes % 16 == 0 && k % 32 == 0;
  }
  /// Whether staged rows `k` values long are whole stages of the wgmma
  /// tiles (64 values).
  static bool wgmmaStages(int64_t k) { return k % 64 == 0; }
  /// Whether the product after SwiGLU step `silu` (of `output`, `k` wide)
  /// is the down projection alone on `output`, unnormalized, of bf16
  /// activations and weights of whole 64-value stages: a launch that takes
  /// wgmma tiles from the same token count as gate and up's.
  bool downTakesWgmma(size_t silu, uint32_t output, int64_t k) const {
    for (size_t i = silu + 1; i < plan_.steps.size(); ++i) {
      const auto *m = std::get_if<plan::MatMulStep>(&plan_.steps[i]);
      if (!m)
        return false;
      if (m->input != output)
        continue;
      Expected<WeightCode> w = weightCode(tensors_[m->weight]);
      return w && m->activations == plan::Activations::Bf16 && !fused_.normOf[i] &&
             stagedRows(*w, k) && wgmmaStages(k);
    }
    return false;
  }
  std::optional<DownParts> downParts_;
  /// The last attention launch, its output buffer and width, and where its
  /// bodies' rowsFrom arguments (kRowsPending until settled) are in args_.
  struct AttentionRows {
    size_t launch;
    uint32_t output;
    int64_t width;
  };
  std::optional<AttentionRows> attentionRows_;
  static constexpr int32_t kRowsPending = std::numeric_limits<int32_t>::min();
  std::vector<size_t> pendingRows_;
  /// Gives the last attention launch's rowsFrom arguments their value:
  /// the output product's wideMinTokens where attention writes its rows,
  /// else 0.
  void settleAttentionRows(int32_t rowsFrom) {
    for (size_t i : pendingRows_)
      args_[i] = rowsFrom;
    pendingRows_.clear();
  }
  std::string kernels_;
  /// bodyCall's arguments of every launch, its functions by body text and
  /// their definitions.
  std::vector<int32_t> args_;
  std::map<std::string, size_t> bodies_;
  std::string functions_;
  /// bodyKernel's kernels by body text.
  std::map<std::string, int32_t> argKernels_;
  /// The weights the wgmma tiles load by TMA, by tensor index.
  std::map<uint32_t, LatheCudaTmaWeight> tmaWeights_;
  /// Their token rows' tensor maps, by {K, next}: the map's index.
  std::map<std::pair<int32_t, int32_t>, int32_t> tmaTokens_;
};

} // namespace

Expected<CudaModelCode> emitCudaModel(const plan::KernelPlan &plan,
                                      const std::vector<plan::TensorInfo> &tensors) {
  return Emitter(plan, tensors).emit();
}

std::span<const HeaderText> cudaCodeHeaders() { return kCudaCodeHeaders; }

int64_t cudaMaxInt8Width() { return LATHE_CUDA_INT8_MAX_WIDTH; }
int64_t cudaMaxBf16Width() { return LATHE_CUDA_BF16_MAX_WIDTH; }

} // namespace lathe::codegen
