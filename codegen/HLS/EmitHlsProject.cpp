//===- EmitHlsProject.cpp - A Vitis HLS project from the kernel plan ------===//
//
// The plan IR (dialects/KernelPlan) is lowered to MLIR's EmitC dialect and
// printed by the upstream C++ translation, as the CPU target is: one call
// per kernel, here to the templates of codegen/HLS/kernels/LatheHlsKernels.h
// with every size and weight format a template argument, so that each loop
// of the design has a static trip count, and to a product function
// generated per product shape, format and schedule. The top function runs
// one decode step (one token at one position). The schedule
// lathe-hls-schedule put on the plan is lowered last: each kernel's II
// into its template arguments, the products' array partitions, dataflow
// and the top function's interfaces into pragmas, as emitc.verbatim
// spelled from the pragma table for the chosen Vitis HLS release.
//
// The weights go into weights.bin in the packed formats the quantization
// passes chose (each tensor at a 64-byte aligned offset, a template or call
// argument), the norm gains and biases into constant arrays, and the
// rotary embedding's cos and sin into rope_tables.bin: computed here in
// double from the plan's frequencies, exactly as the CPU computes them at
// run time, so that the C simulation reproduces the CPU's reference
// kernels bit for bit.
//
//===----------------------------------------------------------------------===//
#include "codegen/HLS/EmitHlsProject.h"

#include "codegen/HLS/HlsPragmas.h"
#include "codegen/HLS/HlsProjectFiles.h"
#include "codegen/Support/EmitCCall.h"
#include "codegen/Support/PlainVector.h"
#include "dialects/KernelPlan/KernelPlanDialect.h"
#include "runtime/formats/ElementType.h"
#include "runtime/formats/RowCodec.h"
#include "runtime/plan/RopeFrequencies.h"

#include "mlir/Dialect/EmitC/IR/EmitC.h"
#include "mlir/IR/Builders.h"
#include "mlir/Target/Cpp/CppEmitter.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <optional>
#include <variant>

namespace lathe::codegen {
namespace {

using namespace mlir;

/// The top function's parameters, in order. The C++ translation names a
/// function's arguments v1, v2, ... in order, which the interface pragmas
/// name as their ports (lathe-hls-lint checks that every pointer has one).
enum TopArgument { kWeights, kTables, kCache, kToken, kPosition, kLogits, kTopArguments };

/// How a kernel template reads one weight tensor: its format and sizes.
struct WeightLayout {
  std::string kind; // lathe_hls::kF32, ...
  int p1 = 0, p2 = 0;
  int64_t block = 1, blockBytes = 4, rowBytes = 0, rows = 0, cols = 0;
};

Expected<WeightLayout> weightLayout(const plan::TensorInfo &info) {
  WeightLayout l;
  if (info.shape.size() != 2)
    return Error(fmt::format("tensor '{}' is not a matrix", info.name));
  l.rows = info.shape[0];
  l.cols = info.shape[1];
  if (!info.quant) {
    switch (info.type) {
    case ElementType::F32: l.kind = "lathe_hls::kF32"; break;
    case ElementType::F16: l.kind = "lathe_hls::kF16"; break;
    case ElementType::BF16: l.kind = "lathe_hls::kBF16"; break;
    }
    l.blockBytes = static_cast<int64_t>(elementSize(info.type));
    l.rowBytes = l.cols * l.blockBytes;
    return l;
  }
  const formats::FormatSpec &f = *info.quant;
  l.block = static_cast<int64_t>(formats::rowBlockValues(f, l.cols));
  l.blockBytes = static_cast<int64_t>(formats::rowBlockBytes(f, l.cols));
  l.rowBytes = static_cast<int64_t>(formats::packedRowBytes(f, l.cols));
  switch (f.kind) {
  case formats::FormatKind::INT8:
  case formats::FormatKind::INT4:
    l.kind = "lathe_hls::kInt";
    l.p1 = f.kind == formats::FormatKind::INT8 ? 8 : 4;
    l.p2 = f.symmetric ? 1 : 0;
    break;
  case formats::FormatKind::BFP:
    l.kind = "lathe_hls::kBfp";
    l.p1 = f.mantissaBits;
    break;
  case formats::FormatKind::FP6_4P2: l.kind = "lathe_hls::kFp6"; break;
  case formats::FormatKind::MXINT8: l.kind = "lathe_hls::kMx", l.p1 = 0; break;
  case formats::FormatKind::MXFP8_E4M3: l.kind = "lathe_hls::kMx", l.p1 = 1; break;
  case formats::FormatKind::MXFP8_E5M2: l.kind = "lathe_hls::kMx", l.p1 = 2; break;
  case formats::FormatKind::MXFP6_E3M2: l.kind = "lathe_hls::kMx", l.p1 = 3; break;
  case formats::FormatKind::MXFP6_E2M3: l.kind = "lathe_hls::kMx", l.p1 = 4; break;
  case formats::FormatKind::MXFP4_E2M1: l.kind = "lathe_hls::kMx", l.p1 = 5; break;
  }
  if (l.block == 0 || l.rowBytes == 0)
    return Error(fmt::format("tensor '{}' has no valid {} layout", info.name,
                             formats::formatName(f)));
  return l;
}

class HlsEmitter {
public:
  HlsEmitter(const LoweredModel &m, const HlsOptions &options, MLIRContext *context)
      : m_(m), options_(options), ctx_(context), b_(context) {
    ctx_->loadDialect<emitc::EmitCDialect>();
    module_ = ModuleOp::create(UnknownLoc::get(ctx_));
    b_.setInsertionPointToEnd(module_->getBody());
  }

  Expected<HlsProject> run() {
    Location loc = b_.getUnknownLoc();
    emitc::VerbatimOp::create(
        b_, loc,
        fmt::format("// Generated by lathe-compile --target=hls: the decode step of '{}' for "
                    "Vitis HLS,\n// {} kernels over {} buffers, from its kernel plan. Do not "
                    "edit.",
                    m_.config.name, m_.plan.steps.size(), m_.plan.bufferWidths.size()));
    emitc::IncludeOp::create(b_, loc, "lathe_model.h", /*is_standard_include=*/false);
    if (Status s = emitTables(); !s)
      return s.error();
    for (uint64_t w : m_.plan.bufferWidths) {
      project_.bufferBytes += 4 * w;
      project_.arrayBytes.push_back(4 * w);
    }
    project_.config = m_.config;
    project_.cacheFloats = cacheFloats();
    for (size_t i = 0; i < m_.plan.bufferWidths.size(); ++i)
      emitc::GlobalOp::create(
          b_, loc, bufferName(i),
          emitc::ArrayType::get({int64_t(m_.plan.bufferWidths[i])}, b_.getF32Type()),
          Attribute(), /*extern=*/false, /*static=*/true, /*const=*/false);
    if (Status s = emitStep(); !s)
      return s.error();
    std::string text;
    llvm::raw_string_ostream os(text);
    if (failed(emitc::translateToCpp(*module_, os)))
      return Error("the C++ translation of the plan failed");
    project_.files.emplace_back("lathe_model.cpp", std::move(text));
    project_.files.emplace_back("lathe_model.h", modelHeader());
    for (const HeaderText &file : kHlsProjectFiles) {
      std::string text = file.text;
      // The Tcl script's C simulation: 20 tokens after BOS, or what the
      // context holds.
      const std::string placeholder = "@CSIM_TOKENS@";
      if (size_t at = text.find(placeholder); at != std::string::npos)
        text.replace(at, placeholder.size(),
                     std::to_string(std::min<int64_t>(20, m_.config.context)));
      project_.files.emplace_back(file.path, std::move(text));
    }
    return std::move(project_);
  }

private:
  static std::string bufferName(size_t i) { return fmt::format("lathe_buffer{}", i); }
  Type opaque(StringRef spelling) { return emitc::OpaqueType::get(ctx_, spelling); }
  Attribute literal(StringRef text) { return emitc::OpaqueAttr::get(ctx_, text); }
  Attribute i32(int64_t v) { return b_.getI32IntegerAttr(static_cast<int32_t>(v)); }
  Attribute u64(uint64_t v) { return literal(fmt::format("{}ull", v)); }

  /// Gains and biases as constant arrays, weights into the blob, rotary
  /// tables into theirs.
  Status emitTables() {
    Status status = Status::ok();
    m_.forward().walk([&](Operation *op) {
      if (!status)
        return WalkResult::interrupt();
      if (Value vector = vectorOperand(op))
        status = emitVector(m_.tensorIndex.lookup(vector));
      if (auto r = dyn_cast<kplan::RopeOp>(op))
        ropeTable(r);
      return WalkResult::advance();
    });
    return status;
  }

  Status emitVector(uint32_t index) {
    if (vectors_.count(index))
      return Status::ok();
    const artifact::TensorData &t = m_.tensors[index];
    if (t.info.quant)
      return Error("tensor '" + t.info.name +
                   "' is packed; the HLS kernels read plain gains and biases");
    const std::vector<float> values = plainVector(t);
    vectors_[index] = fmt::format("lathe_vector{}", index);
    project_.constantBytes += 4 * values.size();
    project_.arrayBytes.push_back(4 * values.size());
    auto tensor = RankedTensorType::get({int64_t(values.size())}, b_.getF32Type());
    emitc::GlobalOp::create(b_, b_.getUnknownLoc(), vectors_[index],
                            emitc::ArrayType::get({int64_t(values.size())}, b_.getF32Type()),
                            DenseElementsAttr::get(tensor, ArrayRef<float>(values)),
                            /*extern=*/false, /*static=*/true, /*const=*/true);
    return Status::ok();
  }

  /// The byte offset of a weight in weights.bin, added on first use.
  uint64_t weightOffset(uint32_t index) {
    auto found = offsets_.find(index);
    if (found != offsets_.end())
      return found->second;
    std::vector<uint8_t> &blob = project_.weights;
    blob.resize((blob.size() + 63) / 64 * 64, 0);
    const uint64_t offset = blob.size();
    const std::span<const uint8_t> bytes = m_.tensors[index].bytes;
    blob.insert(blob.end(), bytes.begin(), bytes.end());
    offsets_[index] = offset;
    return offset;
  }

  /// The offset (in doubles) of a rope's cos and sin tables: for every
  /// position of the context, cos and sin of position * frequency, in the
  /// order lathe_rope computes them.
  uint64_t ropeTable(kplan::RopeOp r) {
    const std::vector<double> freq = plan::orderedFrequencies(
        plan::ropeFrequencies(r.getTheta().convertToFloat(), r.getHeadDim(), r.getScaling()),
        r.getPairOrderVector());
    auto found = ropeOffsets_.find(freq);
    if (found != ropeOffsets_.end())
      return found->second;
    std::vector<double> &tables = project_.ropeTables;
    const uint64_t offset = tables.size();
    const int64_t context = m_.config.context;
    for (int part = 0; part < 2; ++part)
      for (int64_t pos = 0; pos < context; ++pos)
        for (double f : freq) {
          const double angle = static_cast<double>(static_cast<int32_t>(pos)) * f;
          tables.push_back(part == 0 ? std::cos(angle) : std::sin(angle));
        }
    ropeOffsets_[freq] = offset;
    return offset;
  }

  /// The weight-format template arguments of a product or embedding.
  Expected<SmallVector<Attribute>> formatArguments(uint32_t index) {
    Expected<WeightLayout> l = weightLayout(m_.tensors[index].info);
    if (!l)
      return l.error();
    return SmallVector<Attribute>{literal(l->kind), i32(l->p1),         i32(l->p2),
                                  i32(l->block),    i32(l->blockBytes), i32(l->rowBytes)};
  }

  /// callee<templateArgs>(args): a Value is passed as an operand, an
  /// Attribute printed as a literal.
  /// Returns the instance's name, callee<template args>, for the report.
  std::string call(StringRef callee, ArrayRef<Attribute> templateArgs,
                   ArrayRef<CallArgument> args) {
    emitOpaqueCall(b_, callee, args, templateArgs);
    std::string instance = callee.str() + "<";
    for (size_t i = 0; i < templateArgs.size(); ++i) {
      if (i)
        instance += ", ";
      if (auto n = dyn_cast<IntegerAttr>(templateArgs[i]))
        instance += std::to_string(n.getInt());
      else if (auto o = dyn_cast<emitc::OpaqueAttr>(templateArgs[i]))
        instance += o.getValue().str();
    }
    return instance + ">";
  }

  /// Records a call for the estimate report.
  void record(HlsKernelCall::Kind kind, std::string instance, int64_t rows, int64_t cols,
              uint64_t weightBytes = 0, std::string format = "", int64_t heads = 0,
              int64_t kvHeads = 0, int64_t headDim = 0) {
    HlsKernelCall c;
    c.kind = kind;
    c.instance = std::move(instance);
    c.rows = rows;
    c.cols = cols;
    c.weightBytes = weightBytes;
    c.format = std::move(format);
    c.heads = heads;
    c.kvHeads = kvHeads;
    c.headDim = headDim;
    project_.calls.push_back(std::move(c));
  }

  Value global(StringRef name, int64_t size) {
    return emitc::GetGlobalOp::create(b_, b_.getUnknownLoc(),
                                      emitc::ArrayType::get({size}, b_.getF32Type()), name);
  }
  Value buffer(Value planBuffer) {
    const uint32_t index = m_.bufferIndex.lookup(planBuffer);
    return global(bufferName(index), int64_t(m_.plan.bufferWidths[index]));
  }
  static int64_t width(Value planBuffer) {
    return cast<kplan::BufferType>(planBuffer.getType()).getWidth();
  }

  /// lathe_hls_step(weights, tables, cache, token, position, logits).
  Status emitStep() {
    OpBuilder::InsertionGuard guard(b_);
    Location loc = b_.getUnknownLoc();
    SmallVector<Type> types(kTopArguments);
    types[kWeights] = emitc::PointerType::get(opaque("const uint8_t"));
    types[kTables] = emitc::PointerType::get(opaque("const double"));
    types[kCache] = emitc::PointerType::get(b_.getF32Type());
    types[kToken] = b_.getI32Type();
    types[kPosition] = b_.getI32Type();
    types[kLogits] = emitc::PointerType::get(b_.getF32Type());
    auto fn = emitc::FuncOp::create(b_, loc, "lathe_hls_step", b_.getFunctionType(types, {}));
    step_ = fn;
    Block *entry = fn.addEntryBlock();
    b_.setInsertionPointToStart(entry);
    for (int a = 0; a < kTopArguments; ++a)
      args_[a] = entry->getArgument(a);
    // Filled in once the kernels have placed every weight (the depths).
    auto pragmas = emitc::VerbatimOp::create(b_, loc, "");
    for (Operation &op : m_.forward().getBody().front())
      if (Status s = emitKernel(op); !s)
        return s;
    Expected<std::string> interfaces = interfacePragmas();
    if (!interfaces)
      return interfaces.error();
    pragmas.setValue(*interfaces);
    emitc::ReturnOp::create(b_, loc, Value());
    return Status::ok();
  }

  /// The memory interfaces (one AXI master bundle each, with the depth C
  /// simulation and co-simulation need) and the scalar arguments and
  /// control on AXI-Lite. Ports by the translation's argument names.
  Expected<std::string> interfacePragmas() const {
    auto port = [](TopArgument a) { return fmt::format("v{}", int(a) + 1); };
    using Options = std::vector<std::pair<std::string_view, std::string>>;
    auto master = [&](TopArgument a, const std::string &bundle, uint64_t depth) {
      return Options{{"mode", "m_axi"},
                     {"port", port(a)},
                     {"bundle", bundle},
                     {"offset", "slave"},
                     {"depth", std::to_string(std::max<uint64_t>(depth, 1))}};
    };
    // Each memory argument's bundle and depth: the plan's
    // #plan.hls_interface (lathe-hls-schedule), else its own bundle and
    // the depth the design needs; a plan's depth below that is an error.
    struct Memory {
      const char *name;
      TopArgument argument;
      uint64_t needed;
    };
    const Memory memories[] = {{"weights", kWeights, project_.weights.size()},
                               {"tables", kTables, project_.ropeTables.size()},
                               {"cache", kCache, cacheFloats()},
                               {"logits", kLogits, uint64_t(m_.config.vocab)}};
    auto planned = m_.forward()->getAttrOfType<ArrayAttr>(
        kplan::PlanDialect::getHlsInterfacesAttrName());
    std::vector<Options> lines;
    for (size_t i = 0; i < std::size(memories); ++i) {
      const Memory &m = memories[i];
      std::string bundle = fmt::format("gmem{}", i);
      uint64_t depth = m.needed;
      for (Attribute a : planned ? planned.getValue() : ArrayRef<Attribute>())
        if (auto interface = cast<kplan::HlsInterfaceAttr>(a); interface.getPort() == m.name) {
          if (uint64_t(interface.getDepth()) < m.needed)
            return Error(fmt::format("the plan's interface '{}' has depth {}, below the {} "
                                     "the design uses",
                                     m.name, interface.getDepth(), m.needed));
          bundle = interface.getBundle().str();
          depth = uint64_t(interface.getDepth());
        }
      lines.push_back(master(m.argument, bundle, depth));
    }
    lines.push_back({{"mode", "s_axilite"}, {"port", port(kToken)}});
    lines.push_back({{"mode", "s_axilite"}, {"port", port(kPosition)}});
    lines.push_back({{"mode", "s_axilite"}, {"port", "return"}});
    std::string out;
    for (const Options &options : lines) {
      const std::string line = hls::spellPragma("INTERFACE", options, options_.tool);
      if (line.empty())
        return Error("the pragma table has no INTERFACE spelling for the generated ports");
      out += (out.empty() ? "" : "\n") + line;
    }
    return out;
  }

  uint64_t cacheFloats() const {
    return uint64_t(m_.plan.kvLayers) * 2 * uint64_t(m_.config.context) * m_.plan.kvWidth;
  }

  /// A kernel's target II: its #plan.hls_loop's, 1 without one.
  static int64_t loopIi(Operation &op) {
    auto loop = op.getAttrOfType<kplan::HlsLoopAttr>(kplan::PlanDialect::getHlsLoopAttrName());
    return loop ? loop.getIi() : 1;
  }

  Status emitKernel(Operation &op) {
    const int64_t context = m_.config.context;
    const Attribute ii = i32(loopIi(op));
    const size_t recorded = project_.calls.size();
    const Status status = llvm::TypeSwitch<Operation *, Status>(&op)
        .Case<tfm::WeightOp, kplan::BufferOp, func::ReturnOp>(
            [](auto) { return Status::ok(); })
        .Case([&](kplan::EmbeddingOp e) -> Status {
          const uint32_t t = m_.tensorIndex.lookup(e.getTable());
          Expected<SmallVector<Attribute>> format = formatArguments(t);
          if (!format)
            return format.error();
          SmallVector<Attribute> targs{i32(width(e.getOut()))};
          targs.append(format->begin(), format->end());
          targs.push_back(ii);
          const std::string instance = call(
              "lathe_hls::embedding", targs,
              {args_[kWeights], u64(weightOffset(t)), args_[kToken], buffer(e.getOut())});
          const plan::TensorInfo &info = m_.tensors[t].info;
          record(HlsKernelCall::Kind::Embedding, instance, 1, width(e.getOut()),
                 info.storageBytes() / uint64_t(info.shape[0]), info.formatName());
          return Status::ok();
        })
        .Case([&](kplan::RMSNormOp n) {
          const uint32_t g = m_.tensorIndex.lookup(n.getGain());
          const int64_t slice = m_.tensors[g].info.shape[0];
          record(HlsKernelCall::Kind::RmsNorm,
                 call("lathe_hls::rmsNorm", {i32(width(n.getInput())), i32(slice), ii},
                      {buffer(n.getInput()), global(vectors_.at(g), slice),
                       n.getEpsilonAttr(), buffer(n.getOut())}),
                 width(n.getInput()) / slice, slice);
          return Status::ok();
        })
        .Case([&](kplan::AddRMSNormOp n) {
          const uint32_t g = m_.tensorIndex.lookup(n.getGain());
          record(HlsKernelCall::Kind::AddRmsNorm,
                 call("lathe_hls::addRmsNorm", {i32(width(n.getLhs())), ii},
                      {buffer(n.getLhs()), buffer(n.getRhs()),
                       global(vectors_.at(g), width(n.getLhs())), n.getEpsilonAttr(),
                       buffer(n.getSum()), buffer(n.getOut())}),
                 1, width(n.getLhs()));
          return Status::ok();
        })
        .Case([&](kplan::MatmulOp m) {
          return product(m, m.getWeight(), m.getInput(), buffer(m.getOut()));
        })
        .Case([&](kplan::MatmulsOp m) -> Status {
          for (auto [w, out] : llvm::zip(m.getWeights(), m.getOuts()))
            if (Status s = product(m, w, m.getInput(), buffer(out)); !s)
              return s;
          return Status::ok();
        })
        .Case([&](kplan::RopeOp r) {
          const int64_t groups = plan::ropeTableGroups(r.getPairOrder().size(), r.getHeadDim());
          const bool interleaved =
              tfm::toPlanLayout(r.getLayout()) == plan::RopeLayout::Interleaved;
          record(HlsKernelCall::Kind::Rope,
                 call("lathe_hls::rope",
                      {i32(width(r.getInput())), i32(r.getHeadDim()), i32(groups),
                       i32(interleaved), i32(context), ii},
                      {args_[kTables], u64(ropeTable(r)), args_[kPosition],
                       buffer(r.getInput()), buffer(r.getOut())}),
                 1, width(r.getInput()), 0, "", groups, 0, r.getHeadDim());
          return Status::ok();
        })
        .Case([&](kplan::AttentionOp a) {
          record(HlsKernelCall::Kind::Attention,
                 call("lathe_hls::attention",
                      {i32(a.getLayer()), i32(a.getHeads()), i32(a.getKvHeads()),
                       i32(a.getHeadDim()), i32(context), ii},
                      {args_[kCache], args_[kPosition], buffer(a.getQueries()),
                       buffer(a.getKeys()), buffer(a.getValues()), buffer(a.getOut())}),
                 1, int64_t(a.getHeads()) * a.getHeadDim(), 0, "", a.getHeads(), a.getKvHeads(),
                 a.getHeadDim());
          return Status::ok();
        })
        .Case([&](kplan::SiluMulOp s) {
          record(HlsKernelCall::Kind::SiluMul,
                 call("lathe_hls::siluMul", {i32(width(s.getLhs())), ii},
                      {buffer(s.getLhs()), buffer(s.getRhs()), buffer(s.getOut())}),
                 1, width(s.getLhs()));
          return Status::ok();
        })
        .Case([&](kplan::BiasAddOp s) {
          const uint32_t v = m_.tensorIndex.lookup(s.getBias());
          record(HlsKernelCall::Kind::BiasAdd,
                 call("lathe_hls::biasAdd", {i32(width(s.getInput())), ii},
                      {buffer(s.getInput()), global(vectors_.at(v), width(s.getInput())),
                       buffer(s.getOut())}),
                 1, width(s.getInput()));
          return Status::ok();
        })
        .Case([&](kplan::AddOp s) {
          record(HlsKernelCall::Kind::Add,
                 call("lathe_hls::add", {i32(width(s.getLhs())), ii},
                      {buffer(s.getLhs()), buffer(s.getRhs()), buffer(s.getOut())}),
                 1, width(s.getLhs()));
          return Status::ok();
        })
        .Case([&](kplan::LogitsOp l) {
          return product(l, l.getClassifier(), l.getInput(), args_[kLogits]);
        })
        .Default([&](Operation *other) -> Status {
          return Error("the hls target has no kernel for " +
                       other->getName().getStringRef().str());
        });
    // Every call the kernel recorded runs at its #plan.hls_loop's II.
    for (size_t i = recorded; i < project_.calls.size(); ++i)
      project_.calls[i].ii = loopIi(op);
    return status;
  }

  /// out = input x weight^T (one token): a call of the product function
  /// generated for this weight shape and format and the product's
  /// schedule (productFunction), float or int8 activations as the
  /// product's #plan.activations says.
  Status product(Operation *op, Value weight, Value input, Value out) {
    const uint32_t t = m_.tensorIndex.lookup(weight);
    Expected<SmallVector<Attribute>> format = formatArguments(t);
    if (!format)
      return format.error();
    const plan::TensorInfo &info = m_.tensors[t].info;
    // Int8 activations where the plan asked for them (lathe-plan-activations):
    // the CPU's integer numerics.
    auto activations = op->getAttrOfType<kplan::ActivationsAttr>("activations");
    const bool int8 = activations && activations.getValue() == kplan::Activations::int8;
    if (int8 && !(info.quant && hlsTakesInt8Activations(*info.quant)))
      return Error(fmt::format(
          "tensor '{}' ({}): the hls target's int8-activation products take symmetric INT, "
          "BFP, MXINT8 and MXFP4 weights; use --activations=float",
          info.name, info.formatName()));
    Expected<ProductSchedule> schedule = productSchedule(op, int8, info, *format);
    if (!schedule)
      return schedule.error();
    Expected<std::string> function = productFunction(int8, info, *format, *schedule);
    if (!function)
      return function.error();
    emitOpaqueCall(b_, *function, {args_[kWeights], u64(weightOffset(t)), buffer(input), out});
    record(int8 ? HlsKernelCall::Kind::MatVecInt8 : HlsKernelCall::Kind::MatVec, *function,
           info.shape[0], info.shape[1], info.storageBytes(), info.formatName());
    HlsKernelCall &c = project_.calls.back();
    c.unroll = schedule->unroll;
    c.block = cast<IntegerAttr>((*format)[3]).getInt();
    c.banks = schedule->banks;
    c.dataflow = schedule->dataflow;
    return Status::ok();
  }

  /// A product's schedule: its #plan.hls_loop (II 1, a row at a time
  /// without one), the partition of the local array its parallel loops
  /// read (#plan.hls_array_partition: "rows" of a float product, "codes"
  /// of an int8 one), and its #plan.hls_dataflow.
  struct ProductSchedule {
    int64_t ii = 1, unroll = 1;
    std::optional<kplan::HlsArrayPartitionAttr> partition;
    /// Banks of that array along its partitioned dimension (1 unsplit).
    int64_t banks = 1;
    bool dataflow = false;
  };

  Expected<ProductSchedule> productSchedule(Operation *op, bool int8, const plan::TensorInfo &info,
                                            ArrayRef<Attribute> format) const {
    ProductSchedule s;
    if (auto loop = op->getAttrOfType<kplan::HlsLoopAttr>(kplan::PlanDialect::getHlsLoopAttrName()))
      s.ii = loop.getIi(), s.unroll = loop.getUnroll();
    if (auto partitions =
            op->getAttrOfType<ArrayAttr>(kplan::PlanDialect::getHlsPartitionsAttrName()))
      for (Attribute a : partitions) {
        auto p = cast<kplan::HlsArrayPartitionAttr>(a);
        if (p.getArray() != (int8 ? "codes" : "rows"))
          return Error(fmt::format("tensor '{}': the plan partitions '{}', which its {} product "
                                   "does not have",
                                   info.name, p.getArray().str(), int8 ? "int8" : "float"));
        s.partition = p;
      }
    if (s.partition) {
      // float: the banks the rows at once write and read (each its own row
      // along dimension 1); int8: the banks one weight block's codes lie in.
      const int64_t block = cast<IntegerAttr>(format[3]).getInt();
      const int64_t length = int8 ? (info.shape[1] + block - 1) / block * block : s.unroll;
      const int64_t span = int8 ? block : s.unroll;
      const int64_t factor = s.partition->getFactor();
      switch (s.partition->getKind()) {
      case kplan::HlsPartitionKind::complete: s.banks = span; break;
      case kplan::HlsPartitionKind::cyclic: s.banks = std::min(factor, span); break;
      case kplan::HlsPartitionKind::block: {
        const int64_t run = (length + factor - 1) / factor; // elements per bank
        s.banks = std::max<int64_t>(1, std::min(span, span / std::max<int64_t>(run, 1)));
        break;
      }
      }
    }
    s.dataflow = op->hasAttr(kplan::PlanDialect::getHlsDataflowAttrName());
    if (s.dataflow && int8)
      return Error(fmt::format("tensor '{}': the plan asks for dataflow in an int8-activation "
                               "product, which has no decode stage",
                               info.name));
    return s;
  }

  /// The function that computes products of this weight shape and format
  /// with `schedule`, generated on first use before the step function:
  /// `static void lathe_product<N>(weights, offset, x, out)`, its local
  /// arrays and their ARRAY_PARTITION pragmas, its loop over row groups
  /// with the DATAFLOW pragma, spelled from the pragma table:
  ///
  ///   float: for each row group { [DATAFLOW] float rows[U][COLS];
  ///          [ARRAY_PARTITION rows] decodeRows(...); dotRows(...); }
  ///   int8:  int8_t codes[...]; [ARRAY_PARTITION codes] float scales[...];
  ///          quantizeActivations(...); productsInt8(...);
  Expected<std::string> productFunction(bool int8, const plan::TensorInfo &info,
                                        ArrayRef<Attribute> format,
                                        const ProductSchedule &schedule) {
    const int64_t rows = info.shape[0], cols = info.shape[1];
    const int64_t block = cast<IntegerAttr>(format[3]).getInt();
    // What the function's text depends on: the activations, the shape, the
    // format's template arguments and the schedule.
    std::string key;
    llvm::raw_string_ostream os(key);
    os << int8 << " " << rows << "x" << cols << " " << schedule.ii << " " << schedule.unroll
       << " " << schedule.dataflow;
    for (Attribute a : format)
      os << " " << a;
    if (schedule.partition)
      os << " " << *schedule.partition;
    if (auto found = productFunctions_.find(key); found != productFunctions_.end())
      return found->second;
    const std::string name = fmt::format("lathe_product{}", productFunctions_.size());
    // The pragmas first: a release whose table lacks one is an error.
    const std::string dataflow = spellPragma("DATAFLOW", {});
    const std::string partition = schedule.partition ? partitionPragma(*schedule.partition) : "";
    if (dataflow.empty() || (schedule.partition && partition.empty()))
      return Error("the pragma table has no DATAFLOW or ARRAY_PARTITION spelling for the "
                   "generated products");
    productFunctions_[key] = name;

    OpBuilder::InsertionGuard guard(b_);
    b_.setInsertionPoint(step_);
    Location loc = b_.getUnknownLoc();
    SmallVector<Type> types{emitc::PointerType::get(opaque("const uint8_t")),
                            b_.getIntegerType(64, /*isSigned=*/false),
                            emitc::PointerType::get(opaque("const float")),
                            emitc::PointerType::get(b_.getF32Type())};
    auto fn = emitc::FuncOp::create(b_, loc, name, b_.getFunctionType(types, {}));
    fn.setSpecifiersAttr(b_.getStrArrayAttr({"static"}));
    Block *entry = fn.addEntryBlock();
    b_.setInsertionPointToStart(entry);
    Value weights = entry->getArgument(0), offset = entry->getArgument(1),
          x = entry->getArgument(2), out = entry->getArgument(3);
    // A local array, with the pragma that partitions it where the plan does.
    auto array = [&](ArrayRef<int64_t> shape, Type element, bool partitioned) -> Value {
      Value v = emitc::VariableOp::create(b_, loc, emitc::ArrayType::get(shape, element),
                                          emitc::OpaqueAttr::get(ctx_, ""));
      if (partitioned)
        emitc::VerbatimOp::create(b_, loc, b_.getStringAttr(partition), ValueRange{v});
      return v;
    };
    SmallVector<Attribute> weightArgs(format.begin(), format.end());
    if (!int8) {
      // decodeRows<U, COLS, KIND, P1, P2, BLOCK, BLOCK_BYTES, ROW_BYTES, II>,
      // dotRows<U, COLS, II>, a row group per iteration.
      Type i32Type = b_.getI32Type();
      auto bound = [&](int64_t v) {
        return emitc::LiteralOp::create(b_, loc, i32Type, std::to_string(v)).getResult();
      };
      auto loop = emitc::ForOp::create(b_, loc, bound(0), bound(rows / schedule.unroll), bound(1));
      b_.setInsertionPointToStart(loop.getBody());
      Value group = loop.getInductionVar();
      if (schedule.dataflow)
        emitc::VerbatimOp::create(b_, loc, dataflow);
      Value decoded =
          array({schedule.unroll, cols}, b_.getF32Type(), schedule.partition.has_value());
      SmallVector<Attribute> decodeArgs{i32(schedule.unroll), i32(cols)};
      decodeArgs.append(weightArgs.begin(), weightArgs.end());
      decodeArgs.push_back(i32(schedule.ii));
      emitOpaqueCall(b_, "lathe_hls::decodeRows", {weights, offset, group, decoded}, decodeArgs);
      emitOpaqueCall(b_, "lathe_hls::dotRows", {decoded, x, group, out},
                     {i32(schedule.unroll), i32(cols), i32(schedule.ii)});
    } else {
      const int64_t blocks = (cols + block - 1) / block;
      Value codes = array({blocks * block}, b_.getIntegerType(8), schedule.partition.has_value());
      Value scales = array({blocks}, b_.getF32Type(), false);
      emitOpaqueCall(b_, "lathe_hls::quantizeActivations", {x, codes, scales},
                     {i32(cols), i32(block), i32(schedule.ii)});
      SmallVector<Attribute> productArgs{i32(rows), i32(cols)};
      productArgs.append(weightArgs.begin(), weightArgs.end());
      productArgs.append({i32(schedule.ii), i32(schedule.unroll)});
      emitOpaqueCall(b_, "lathe_hls::productsInt8", {weights, offset, codes, scales, out},
                     productArgs);
    }
    b_.setInsertionPointToEnd(entry);
    emitc::ReturnOp::create(b_, loc, Value());
    return name;
  }

  /// `#pragma HLS KEYWORD ...` for the project's Vitis HLS release, "{}"
  /// standing for a verbatim's argument; empty if the table lacks it.
  std::string spellPragma(std::string_view keyword,
                          std::vector<std::pair<std::string_view, std::string>> options) const {
    return hls::spellPragma(keyword, options, options_.tool);
  }

  /// ARRAY_PARTITION of the verbatim's argument as `p` says.
  std::string partitionPragma(kplan::HlsArrayPartitionAttr p) const {
    std::vector<std::pair<std::string_view, std::string>> options{
        {"variable", "{}"}, {"type", kplan::stringifyHlsPartitionKind(p.getKind()).str()}};
    if (p.getKind() != kplan::HlsPartitionKind::complete)
      options.emplace_back("factor", std::to_string(p.getFactor()));
    options.emplace_back("dim", std::to_string(p.getDim()));
    return spellPragma("ARRAY_PARTITION", options);
  }

  /// lathe_model.h: the sizes the testbench and the host program need, and
  /// the top function's declaration.
  std::string modelHeader() const {
    return fmt::format(
        "// Generated by lathe-compile --target=hls: the sizes of '{0}' and its top\n"
        "// function (lathe_model.cpp). Do not edit.\n"
        "#ifndef LATHE_MODEL_H\n#define LATHE_MODEL_H\n\n"
        "#include \"LatheHlsKernels.h\"\n\n"
        "#define LATHE_HLS_VOCAB {1}\n"
        "#define LATHE_HLS_CONTEXT {2}\n"
        "#define LATHE_HLS_WEIGHT_BYTES {3}ull\n"
        "#define LATHE_HLS_TABLE_DOUBLES {4}ull\n"
        "#define LATHE_HLS_CACHE_FLOATS {5}ull\n\n"
        "// One decode step: the token at `position` (the cache holds the rows of\n"
        "// the positions before it), its logits out.\n"
        "void lathe_hls_step(const uint8_t *weights, const double *tables, float *cache,\n"
        "                    int32_t token, int32_t position, float *logits);\n\n"
        "#endif\n",
        m_.config.name, m_.config.vocab, m_.config.context, project_.weights.size(),
        project_.ropeTables.size(), cacheFloats());
  }

  const LoweredModel &m_;
  HlsOptions options_;
  MLIRContext *ctx_;
  OpBuilder b_;
  OwningOpRef<ModuleOp> module_;
  HlsProject project_;
  Value args_[kTopArguments];
  emitc::FuncOp step_;
  /// The generated product functions, by what makes them differ.
  std::map<std::string, std::string> productFunctions_;
  std::map<uint32_t, std::string> vectors_;
  std::map<uint32_t, uint64_t> offsets_;
  std::map<std::vector<double>, uint64_t> ropeOffsets_;
};

} // namespace

bool hlsTakesInt8Activations(const formats::FormatSpec &spec) {
  const bool integerGroups =
      spec.kind == formats::FormatKind::INT8 || spec.kind == formats::FormatKind::INT4;
  return formats::hasIntegerCodes(spec) && (!integerGroups || spec.symmetric);
}

Expected<HlsProject> emitHlsProject(const LoweredModel &model, const HlsOptions &options) {
  if (!model.forward())
    return Error("no plan IR to generate code from");
  if (model.plan.kvFormat.compressed() || model.plan.kvElement != ElementType::F32)
    return Error("the hls target keeps its KV cache in f32 (--kv=f32)");
  return HlsEmitter(model, options, model.forward()->getContext()).run();
}

Status writeHlsProject(const HlsProject &project, const std::string &dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    return Error(fmt::format("cannot create the project folder {}: {}", dir,
                             ec ? ec.message() : "a file is in the way"));
  auto write = [&](const std::string &name, const char *data, size_t size) -> Status {
    const fs::path path = fs::path(dir) / name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out || !out.write(data, static_cast<std::streamsize>(size)) || !out.flush())
      return Error(fmt::format("cannot write {}", path.string()));
    return Status::ok();
  };
  for (const auto &[name, text] : project.files)
    if (Status s = write(name, text.data(), text.size()); !s)
      return s;
  if (Status s = write("weights.bin", reinterpret_cast<const char *>(project.weights.data()),
                       project.weights.size());
      !s)
    return s;
  // Doubles in the host's byte order: the C simulation and the XRT host
  // program read them on the same machine (x86 and Arm hosts are both
  // little-endian, as the FPGA's AXI masters are).
  return write("rope_tables.bin", reinterpret_cast<const char *>(project.ropeTables.data()),
               project.ropeTables.size() * sizeof(double));
}

} // namespace lathe::codegen
