#include "runtime/backends/cuda/CudaExecutable.h"

#include "runtime/backends/cuda/CudaWeightLayout.h"
#include "runtime/backends/cuda/kernels/CudaWeightLayouts.h"
#include "runtime/formats/RowCodec.h"

#include <algorithm>
#include <bit>
#include <map>
#include <set>
#include <fmt/format.h>
#include <cstdlib>
#include <new>
#include <string>

namespace lathe::cuda {
namespace {

constexpr CUresult CUDA_ERROR_NO_BINARY_FOR_GPU = 209;

/// Tokens rounded up to whole blocks of `unit` (LATHE_CUDA_TILE_ROUNDED).
int64_t tileRounded(int64_t tokens, int64_t unit) { return LATHE_CUDA_TILE_ROUNDED(tokens, unit); }

/// The tensor map (LATHE_CUDA_TENSOR_MAP_BYTES at `map`) of `rows` bf16 rows
/// of `k` values, `rowBytes` apart from `address` on, that the wgmma tiles
/// load (CudaWgmmaTiles.cuh): boxes of LATHE_CUDA_TMA_BOX_K values by
/// `boxRows` rows in the 128-byte swizzle wgmma reads.
Status encodeRowsMap(const DriverApi &api, uint8_t *map, CUdeviceptr address, int64_t k,
                     int64_t rows, int64_t rowBytes, unsigned boxRows, const std::string &what) {
  const uint64_t dims[2] = {uint64_t(k), uint64_t(rows)};
  const uint64_t strides[1] = {uint64_t(rowBytes)};
  const unsigned box[2] = {LATHE_CUDA_TMA_BOX_K, boxRows};
  const unsigned elementStrides[2] = {1, 1};
  return check(api,
               api.cuTensorMapEncodeTiled(
                   map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2,
                   reinterpret_cast<void *>(uintptr_t(address)), dims, strides, box,
                   elementStrides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                   CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
               what);
}

CUdeviceptr addressOf(const backend::Buffer &buffer) {
  return static_cast<const CudaBuffer &>(buffer).address();
}

/// Copies `addresses` into `table` (allocated on first use, then the same
/// size every time): the weights' and buffers' tables the kernels index.
Status uploadAddresses(CudaDevice &device, const std::vector<CUdeviceptr> &addresses,
                       std::unique_ptr<backend::Buffer> &table, const char *what) {
  const size_t bytes = addresses.size() * sizeof(CUdeviceptr);
  if (!table) {
    Expected<std::unique_ptr<backend::Buffer>> made = device.allocate(bytes);
    if (!made)
      return made.error();
    table = made.take();
  }
  return check(device.api(), device.api().cuMemcpyHtoD(addressOf(*table), addresses.data(), bytes),
               std::string("copying the ") + what + " table to the GPU");
}

} // namespace

Expected<std::shared_ptr<backend::Executable>>
CudaExecutable::load(std::shared_ptr<const artifact::Artifact> artifact,
                     const backend::ExecutionOptions &options) {
  const plan::KernelPlan *plan = artifact->schedule(options.target);
  if (!plan)
    return Error(fmt::format("{}: compiled for no '{}' target", artifact->path(),
                             options.target));
  if (!plan->device)
    return Error(fmt::format("{}: its '{}' schedule holds no GPU code", artifact->path(),
                             options.target));
  // Int8 activations are compiled into the GPU code (lathe-compile
  // --activations): a run may not ask for the other numerics.
  if (options.int8Activations && *options.int8Activations != plan::usesInt8Activations(*plan))
    return Error(fmt::format("{} was compiled with {} activations, built into its GPU code: it "
                             "cannot run with --{}-activations (recompile it with "
                             "--activations={})",
                             artifact->path(), plan::usesInt8Activations(*plan) ? "int8" : "float",
                             *options.int8Activations ? "int8" : "float",
                             *options.int8Activations ? "int8" : "float"));
  if (!options.nativeCode)
    return Error("--no-native-code: the cuda backend always runs the artifact's generated "
                 "kernels (--kernels=reference runs the plan on the CPU instead)");
  if (plan->device->planHash != plan::planHash(*plan))
    return Error(fmt::format("{}: its GPU code was generated for another kernel plan; "
                             "recompile it",
                             artifact->path()));
  if (plan->device->abiVersion != LATHE_CUDA_ABI_VERSION)
    return Error(fmt::format("{}: its GPU code was built for CUDA ABI {}, this runtime "
                             "speaks {}; recompile it with this lathe-compile",
                             artifact->path(), plan->device->abiVersion,
                             LATHE_CUDA_ABI_VERSION));
  Expected<CudaDevice *> device = CudaDevice::instance();
  if (!device)
    return device.error();
  try {
    std::shared_ptr<CudaExecutable> executable(
        new CudaExecutable(std::move(artifact), plan, options, **device));
    if (Status s = executable->initialize(); !s)
      return s.error();
    return std::shared_ptr<backend::Executable>(std::move(executable));
  } catch (const std::bad_alloc &) {
    return Error("cannot allocate memory for the CUDA executable");
  }
}

CudaExecutable::CudaExecutable(std::shared_ptr<const artifact::Artifact> artifact,
                               const plan::KernelPlan *plan,
                               const backend::ExecutionOptions &options, CudaDevice &device)
    : Executable(std::move(artifact)), plan_(plan), options_(options), device_(device),
      api_(device.api()) {
  options_.int8Activations = plan::usesInt8Activations(*plan_);
  options_.threads = 1;
  plan::forEachProduct(*plan_, [&](uint32_t, plan::Activations a) {
    (a == plan::Activations::Int8   ? products_.int8
     : a == plan::Activations::Bf16 ? products_.bf16
                                    : products_.floats) += 1;
  });
}

/// A step run one layer group at a time (executeLayers): the step state it
/// keeps between its groups, swapped into the executable while a group
/// runs (a step of other tokens may run in between on the executable's
/// own), and the cache lengths to restore if a group fails.
struct CudaLayerCarry final : backend::LayerCarry {
  std::vector<std::pair<backend::SequenceId, int64_t>> lengths;
  std::vector<std::unique_ptr<backend::Buffer>> activations;
  std::unique_ptr<backend::Buffer> tokenParts, bufferTable, stepData, frame;
  CUdeviceptr frameAddress = 0;
  int64_t rowCapacity = 0;
  backend::StepLayout layout;
  std::vector<int32_t> stepHost;
  LatheCudaFrame host{};
  int64_t stepSplits = 1;
};

CudaExecutable::~CudaExecutable() {
  if (!device_.bind())
    return;
  for (auto &[key, graph] : graphCache_)
    api_.cuGraphExecDestroy(graph);
  if (stream_)
    api_.cuStreamDestroy(stream_);
  // Buffers free themselves; the module goes last, after its kernels ran.
  activations_.clear();
  spareCarry_.reset();
  if (module_)
    api_.cuModuleUnload(module_);
}

Status CudaExecutable::initialize() {
  if (Status s = device_.bind(); !s)
    return s;
  const plan::DeviceCode &code = *plan_->device;
  if (CUresult r = api_.cuModuleLoadData(&module_, code.image.data()); r != CUDA_SUCCESS) {
    module_ = nullptr;
    if (r == CUDA_ERROR_NO_BINARY_FOR_GPU)
      return Error(fmt::format("{}: its GPU code was built for {}, which {} cannot run; "
                               "recompile with --target=cuda:sm_{}{}",
                               artifact().path(), code.archs, device_.description(),
                               device_.computeCapability(),
                               device_.computeCapability() == 90 ? "a" : ""));
    return Error(fmt::format("{}: the CUDA driver cannot load its GPU code: {}",
                             artifact().path(), describe(api_, r)));
  }
  // The module's own record of what it implements and how to launch it.
  auto global = [&](const char *name, void *out, size_t bytes) -> Status {
    CUdeviceptr address = 0;
    size_t size = 0;
    if (api_.cuModuleGetGlobal(&address, &size, module_, name) != CUDA_SUCCESS || size != bytes)
      return Error(fmt::format("{}: its GPU code lacks {}", artifact().path(), name));
    return check(api_, api_.cuMemcpyDtoH(out, address, bytes), "reading the GPU code's tables");
  };
  uint32_t abi = 0;
  unsigned long long hash = 0;
  int32_t count = 0;
  if (Status s = global("lathe_cuda_abi_version", &abi, sizeof(abi)); !s)
    return s;
  if (Status s = global("lathe_cuda_plan_hash", &hash, sizeof(hash)); !s)
    return s;
  if (abi != LATHE_CUDA_ABI_VERSION || hash != code.planHash)
    return Error(fmt::format("{}: its GPU code reports another ABI or plan than the artifact "
                             "records; recompile it",
                             artifact().path()));
  if (Status s = global("lathe_cuda_launch_count", &count, sizeof(count)); !s)
    return s;
  // Whether the code the driver loaded (of the module's archs) is the one
  // with wgmma and TMA.
  int32_t wgmmaCode = 0;
  if (Status s = global("lathe_cuda_wgmma_code", &wgmmaCode, sizeof(wgmmaCode)); !s)
    return s;
  wgmmaCode_ = wgmmaCode == 1;
  if (count <= 0 || count > 100000)
    return Error(fmt::format("{}: its GPU code has a corrupt launch table", artifact().path()));
  Expected<std::unique_ptr<CudaSchedule>> schedule =
      CudaSchedule::load(*plan_, artifact().path(), count);
  if (!schedule)
    return schedule.error();
  schedule_ = schedule.take();
  launches_.resize(size_t(count));
  if (Status s = global("lathe_cuda_launches", launches_.data(),
                        launches_.size() * sizeof(LatheCudaLaunch));
      !s)
    return s;
  for (int32_t i = 0; i < count; ++i) {
    const LatheCudaLaunch &l = launches_[size_t(i)];
    if (l.grid < LATHE_CUDA_GRID_PER_TOKEN || l.grid > LATHE_CUDA_GRID_PER_TOKENS || l.blocks < 1 ||
        l.sharedBytes < 0 || l.sharedBytes > 48 * 1024 ||
        l.tileBlocks < 0 || l.wideBlocks < 0 || (l.tileBlocks > 0) != (l.wideBlocks > 0) ||
        l.wideMinTokens < 0 || (l.wideBlocks > 0) != (l.wideMinTokens > 0) ||
        l.wgmma < 0 || (l.wgmma > 0 && l.wideBlocks == 0 && l.queryTile == 0) ||
        l.wgmmaArgs < 0 || l.wgmmaPairBlocks < 0 ||
        (l.wgmmaPairBlocks > 0 && (l.wgmma == 0 || l.wgmmaPairBlocks >= l.wideBlocks)) ||
        (l.narrowWritten != 0 &&
         (l.narrowWritten > 2 || l.grid != LATHE_CUDA_GRID_SPLIT || i == 0 || i + 1 >= count ||
          (l.narrowWritten == 2 &&
           (launches_[size_t(i) - 1].wgmma == 0 || launches_[size_t(i) + 1].wgmma == 0 ||
            launches_[size_t(i) - 1].wideMinTokens != launches_[size_t(i) + 1].wideMinTokens)))) ||
        (l.gather != 0 && l.gather != 1) || l.queryTile < 0 ||
        (l.queryTile > 0 && (l.grid != LATHE_CUDA_GRID_PER_HEAD ||
                             (queryTile_ > 0 && l.queryTile != queryTile_))) ||
        l.step < 0 || size_t(l.step) >= plan_->steps.size() ||
        (i > 0 && l.step < launches_[size_t(i) - 1].step))
      return Error(fmt::format("{}: its GPU code has a corrupt launch table", artifact().path()));
    if (l.queryTile > 0) // one tiling of the step serves every attention launch
      queryTile_ = l.queryTile;
    CUfunction fn = nullptr;
    const std::string name = fmt::format("lathe_cuda_kernel_{}", i);
    if (Status s = check(api_, api_.cuModuleGetFunction(&fn, module_, name.c_str()),
                         "finding " + name + " in the GPU code");
        !s)
      return s;
    kernels_.push_back(fn);
    // The launch's tensor-core products or attention, and its wide
    // tiles: functions of their own.
    auto function = [&](const char *kind, bool present, CUfunction &fn, int32_t n) -> Status {
      fn = nullptr;
      if (!present)
        return Status::ok();
      const std::string name = fmt::format("lathe_cuda_{}_{}", kind, n);
      return check(api_, api_.cuModuleGetFunction(&fn, module_, name.c_str()),
                   "finding " + name + " in the GPU code");
    };
    CUfunction tiles = nullptr, wide = nullptr;
    // Attention's query tiles on wgmma: that kernel in place of the tiles'.
    const bool wgmmaAttention = l.queryTile > 0 && l.wgmma > 0;
    if (Status s = wgmmaAttention ? function("wgmma", true, tiles, l.wgmma - 1)
                                  : function("tiles", l.tileBlocks > 0 || l.queryTile > 0, tiles, i);
        !s)
      return s;
    if (Status s = l.wgmma > 0 && !wgmmaAttention ? function("wgmma", true, wide, l.wgmma - 1)
                                                  : function("wide", l.wideBlocks > 0, wide, i);
        !s)
      return s;
    if (l.wgmma > 0 && !wgmmaAttention) {
      // wgmma tiles: their stages in more shared memory than a block gets
      // unasked (the sm_90a code's; other GPUs run the PTX's staged tiles).
      const int shared = wgmmaShared();
      const int most = device_.sharedPerBlock();
      if (most < shared)
        return Error(fmt::format("{}: its long-prompt products need {} KiB of shared memory a "
                                 "block; this GPU gives {} KiB",
                                 artifact().path(), shared / 1024, most / 1024));
      if (Status s = check(api_,
                           api_.cuFuncSetAttribute(
                               wide, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, shared),
                           "giving " + name + "'s wide tiles their shared memory");
          !s)
        return s;
    }
    tileKernels_.push_back(tiles);
    wideKernels_.push_back(wide);
  }
  if (Status s = check(api_, api_.cuModuleGetFunction(&argmax_, module_, "lathe_cuda_argmax"),
                       "finding lathe_cuda_argmax in the GPU code");
      !s)
    return s;
  if (plan_->kvFormat.windowed()) {
    if (Status s = check(api_, api_.cuModuleGetFunction(&kvSeal_, module_, "lathe_cuda_kv_seal"),
                         "finding lathe_cuda_kv_seal in the GPU code");
        !s)
      return s;
    if (Status s = check(api_,
                         api_.cuModuleGetFunction(&kvUnseal_, module_, "lathe_cuda_kv_unseal"),
                         "finding lathe_cuda_kv_unseal in the GPU code");
        !s)
      return s;
  } else if (plan_->kvFormat.compressed()) {
    // Code built before PackedKv kept a block's rows by KV head has none:
    // its rows are whole, and the cache copies them as bytes.
    const CUresult r = api_.cuModuleGetFunction(&kvCopyRow_, module_, "lathe_cuda_kv_copy_row");
    if (r == CUDA_ERROR_NOT_FOUND)
      kvCopyRow_ = nullptr;
    else if (Status s = check(api_, r, "finding lathe_cuda_kv_copy_row in the GPU code"); !s)
      return s;
  }
  if (Status s = check(api_, api_.cuStreamCreate(&stream_, CU_STREAM_NON_BLOCKING),
                       "creating a CUDA stream");
      !s)
    return s;

  // Every tensor, 256-byte aligned in one allocation, in the layout the
  // module's table names (CudaWeightLayout.h), and the table of their
  // addresses that the kernels index.
  const auto &tensors = artifact().tensors();
  int32_t tensorCount = 0;
  if (Status s = global("lathe_cuda_tensor_count", &tensorCount, sizeof(tensorCount)); !s)
    return s;
  if (tensorCount < 0 || size_t(tensorCount) != tensors.size())
    return Error(fmt::format("{}: its GPU code was generated for {} tensors, the artifact holds {}",
                             artifact().path(), tensorCount, tensors.size()));
  std::vector<int32_t> layouts(std::max<size_t>(tensors.size(), 1));
  if (Status s = global("lathe_cuda_weight_layouts", layouts.data(),
                        layouts.size() * sizeof(int32_t));
      !s)
    return s;
  for (size_t t = 0; t < tensors.size(); ++t)
    if (layouts[t] != LATHE_CUDA_LAYOUT_AS_STORED && layouts[t] != gpuWeightLayout(tensors[t]))
      return Error(fmt::format("{}: its GPU code keeps tensor {} in a layout this runtime "
                               "cannot make; recompile it",
                               artifact().path(), tensors[t].name));
  // A tensor's bytes on the GPU: its rows in the layout the table names.
  const auto gpuBytes = [&](size_t t) {
    const size_t stored = artifact().tensorData(t).size();
    return layouts[t] == LATHE_CUDA_LAYOUT_AS_STORED ? stored
                                                      : gpuTensorBytes(tensors[t], stored);
  };
  std::vector<size_t> offsets;
  size_t total = 0;
  for (size_t t = 0; t < tensors.size(); ++t) {
    offsets.push_back(total);
    total += (gpuBytes(t) + 255) / 256 * 256;
  }
  Expected<std::unique_ptr<backend::Buffer>> weights = device_.allocate(total);
  if (!weights)
    return weights.error();
  weights_ = weights.take();
  std::vector<CUdeviceptr> addresses;
  for (size_t t = 0; t < tensors.size(); ++t) {
    std::span<const uint8_t> bytes = artifact().tensorData(t);
    std::vector<uint8_t> rearranged;
    if (layouts[t] != LATHE_CUDA_LAYOUT_AS_STORED) {
      rearranged.resize(gpuBytes(t));
      toGpuLayout(tensors[t], bytes, rearranged);
      bytes = rearranged;
    }
    addresses.push_back(addressOf(*weights_) + offsets[t]);
    if (Status s = check(api_, api_.cuMemcpyHtoD(addresses.back(), bytes.data(), bytes.size()),
                         "copying the weights to the GPU");
        !s)
      return s;
  }
  if (Status s = uploadAddresses(device_, addresses, weightTable_, "weight"); !s)
    return s;
  host_.weights = reinterpret_cast<const uint8_t *const *>(addressOf(*weightTable_));
  std::vector<size_t> tensorBytes;
  for (size_t t = 0; t < tensors.size(); ++t)
    tensorBytes.push_back(gpuBytes(t));
  if (Status s = encodeWeightMaps(addresses, tensorBytes, global); !s)
    return s;
  Expected<std::unique_ptr<backend::Buffer>> frame = device_.allocate(sizeof(LatheCudaFrame));
  if (!frame)
    return frame.error();
  frame_ = frame.take();
  frameAddress_ = addressOf(*frame_);
  const char *graphs = std::getenv("LATHE_CUDA_GRAPHS");
  graphs_ = !(graphs && std::string(graphs) == "0");
  // Programmatic dependent launch needs sm_90 and a CUDA 12 driver;
  // LATHE_CUDA_PDL=0 turns it off (to measure what it gives).
  const char *pdl = std::getenv("LATHE_CUDA_PDL");
  pdl_ = api_.cuLaunchKernelEx && device_.computeCapability() >= 90 &&
         !(pdl && std::string(pdl) == "0");
  // LATHE_CUDA_SPLIT_ATTENTION=0: one block per token and head group
  // whatever the context (to measure what the splits give); =N: at most N
  // splits (a power of two; to measure fewer, longer blocks).
  if (const char *split = std::getenv("LATHE_CUDA_SPLIT_ATTENTION")) {
    const int64_t cap = std::atoll(split);
    maxSplits_ = std::clamp<int64_t>(std::bit_floor(uint64_t(std::max<int64_t>(cap, 1))), 1,
                                     LATHE_CUDA_ATTENTION_MAX_SPLITS);
  }
  // LATHE_CUDA_ATTENTION_SPLIT_ROWS=N: a split per N rows a token sees, not
  // per LATHE_CUDA_ATTENTION_SPLIT_ROWS (at least that: the kernel's
  // fewest; to measure longer splits).
  if (const char *rows = std::getenv("LATHE_CUDA_ATTENTION_SPLIT_ROWS"))
    splitRows_ = std::max<int64_t>(std::atoll(rows), LATHE_CUDA_ATTENTION_SPLIT_ROWS);
  // LATHE_CUDA_WGMMA_SPLITS=N: at most N splits of a wgmma launch's k
  // (1: none; to measure what they give).
  if (const char *split = std::getenv("LATHE_CUDA_WGMMA_SPLITS"))
    maxWgmmaSplits_ = std::clamp<int64_t>(std::atoll(split), 1, LATHE_CUDA_WGMMA_MAX_SPLITS);
  // LATHE_CUDA_SKIP=NAME,...: leaves out every launch of those plan steps
  // (plan::stepName; "attention-prep" is an attention step's RoPE and KV
  // store launch; "split-normed" and "split-plain" the launches that split
  // a product's token rows for its tiles, through the norm fused into it
  // (an rms_norm or add_rms_norm step right before, FusedLaunches' normOf)
  // or not), to measure what they cost a step. The results are wrong.
  skipped_.assign(launches_.size(), false);
  if (const char *skip = std::getenv("LATHE_CUDA_SKIP")) {
    const std::string names = std::string(",") + skip + ",";
    for (size_t i = 0; i < launches_.size(); ++i) {
      const LatheCudaLaunch &l = launches_[i];
      std::string name = plan::stepName(plan_->steps[size_t(l.step)]);
      if (name == "attention" &&
          (l.grid == LATHE_CUDA_GRID_PER_TOKEN || l.grid == LATHE_CUDA_GRID_PER_TOKENS))
        name += "-prep";
      if (l.grid == LATHE_CUDA_GRID_SPLIT) {
        const plan::Step *before = l.step > 0 ? &plan_->steps[size_t(l.step) - 1] : nullptr;
        const bool normed = before && (std::holds_alternative<plan::RmsNormStep>(*before) ||
                                       std::holds_alternative<plan::AddRmsNormStep>(*before));
        name = normed ? "split-normed" : "split-plain";
      }
      skipped_[i] = names.find("," + name + ",") != std::string::npos;
    }
  }
  return reserveRows(1);
}

Status CudaExecutable::encodeWeightMaps(
    const std::vector<CUdeviceptr> &addresses, const std::vector<size_t> &tensorBytes,
    const std::function<Status(const char *, void *, size_t)> &global) {
  host_.weightMaps = nullptr;
  int32_t count = 0;
  if (Status s = global("lathe_cuda_tma_weight_count", &count, sizeof(count)); !s)
    return s;
  if (count < 0 || size_t(count) > addresses.size())
    return Error(fmt::format("{}: its GPU code has a corrupt TMA weight table", artifact().path()));
  int32_t tokenCount = 0;
  if (Status s = global("lathe_cuda_tma_token_count", &tokenCount, sizeof(tokenCount)); !s)
    return s;
  if (tokenCount < 0 || tokenCount > 1024 || (tokenCount > 0) != (count > 0))
    return Error(fmt::format("{}: its GPU code has a corrupt TMA token table", artifact().path()));
  // Only the sm_90a code runs wgmma and TMA (wgmmaCode_); other code runs
  // the staged tiles, which read the weights themselves.
  if (count == 0 || !wgmmaCode_)
    return Status::ok();
  tokenMapEntries_.resize(size_t(tokenCount));
  if (Status s = global("lathe_cuda_tma_tokens", tokenMapEntries_.data(),
                        tokenMapEntries_.size() * sizeof(LatheCudaTmaTokens));
      !s)
    return s;
  const uint64_t widest =
      *std::max_element(plan_->bufferWidths.begin(), plan_->bufferWidths.end());
  for (const LatheCudaTmaTokens &t : tokenMapEntries_)
    if (t.k <= 0 || t.k % LATHE_CUDA_TMA_BOX_K != 0 || uint64_t(t.k) > widest ||
        (t.next != 0 && t.next != 1))
      return Error(fmt::format("{}: its GPU code has a corrupt TMA token table",
                               artifact().path()));
  std::vector<LatheCudaTmaWeight> entries(static_cast<size_t>(count));
  if (Status s = global("lathe_cuda_tma_weights", entries.data(),
                        entries.size() * sizeof(LatheCudaTmaWeight));
      !s)
    return s;
  if (!api_.cuTensorMapEncodeTiled)
    return Error(fmt::format("{}: its long-prompt products load weights by TMA, which this CUDA "
                             "driver (before CUDA 12) lacks; update the driver",
                             artifact().path()));
  std::vector<uint8_t> maps(addresses.size() * LATHE_CUDA_TENSOR_MAP_BYTES);
  for (const LatheCudaTmaWeight &w : entries) {
    // A map reads rows x rowBytes bytes of its tensor: never past it.
    if (w.tensor < 0 || size_t(w.tensor) >= addresses.size() || w.k <= 0 ||
        w.k % LATHE_CUDA_TMA_BOX_K != 0 || w.rows <= 0 || w.rowBytes < 2 * int64_t(w.k) ||
        w.rowBytes % 16 != 0 || int64_t(w.rows) * w.rowBytes > int64_t(tensorBytes[size_t(w.tensor)]))
      return Error(fmt::format("{}: its GPU code has a corrupt TMA weight table",
                               artifact().path()));
    if (Status s = encodeRowsMap(api_, maps.data() + size_t(w.tensor) * LATHE_CUDA_TENSOR_MAP_BYTES,
                                 addresses[size_t(w.tensor)], w.k, w.rows, w.rowBytes,
                                 LATHE_CUDA_TMA_BOX_ROWS,
                                 fmt::format("encoding the tensor map of weight {}", w.tensor));
        !s)
      return s;
  }
  Expected<std::unique_ptr<backend::Buffer>> buffer = device_.allocate(maps.size());
  if (!buffer)
    return buffer.error();
  weightMaps_ = buffer.take();
  if (Status s = check(api_, api_.cuMemcpyHtoD(addressOf(*weightMaps_), maps.data(), maps.size()),
                       "copying the weights' tensor maps to the GPU");
      !s)
    return s;
  host_.weightMaps = reinterpret_cast<const uint8_t *>(addressOf(*weightMaps_));
  return Status::ok();
}

Status CudaExecutable::encodeTokenMaps(CUdeviceptr maps, int64_t rows, CUdeviceptr tokenParts,
                                       CUdeviceptr nextParts) {
  std::vector<uint8_t> encoded(tokenMapEntries_.size() * LATHE_CUDA_TENSOR_MAP_BYTES);
  for (size_t i = 0; i < tokenMapEntries_.size(); ++i) {
    const LatheCudaTmaTokens &t = tokenMapEntries_[i];
    if (Status s = encodeRowsMap(api_, encoded.data() + i * LATHE_CUDA_TENSOR_MAP_BYTES,
                                 t.next ? nextParts : tokenParts, t.k, rows, int64_t(t.k) * 2,
                                 LATHE_CUDA_TMA_BOX_TOKENS,
                                 "encoding the tensor map of the token rows");
        !s)
      return s;
  }
  return check(api_, api_.cuMemcpyHtoD(maps, encoded.data(), encoded.size()),
               "copying the token rows' tensor maps to the GPU");
}

kv::KVLayout CudaExecutable::kvLayout(int64_t blocks) const {
  return backend::kvLayoutOf(*plan_, blocks);
}

Status CudaExecutable::setMatMulObserver(backend::MatMulObserver observer) {
  if (observer)
    return Error("the cuda backend calls no matmul observer (calibration runs on the CPU)");
  return Status::ok();
}

Status CudaExecutable::reserveRows(int64_t rows) {
  if (rows <= rowCapacity_)
    return Status::ok();
  // Grow by doubling, so a long prefill followed by decode reallocates
  // once or twice, not per step.
  const int64_t capacity = std::max(rows, 2 * rowCapacity_);
  std::vector<std::unique_ptr<backend::Buffer>> grown;
  std::vector<CUdeviceptr> addresses;
  for (uint64_t width : plan_->bufferWidths) {
    Expected<std::unique_ptr<backend::Buffer>> b =
        device_.allocate(size_t(capacity) * width * sizeof(float));
    if (!b)
      return Error(fmt::format("cannot allocate activation buffers for {} tokens: {}", rows,
                               b.error().message()));
    addresses.push_back(addressOf(**b));
    grown.push_back(b.take());
  }
  // The tensor-core products' split input: the tokens rounded up to a tile,
  // times the widest buffer, three bf16 parts a value; twice, the second
  // half the frame's nextParts.
  const uint64_t widest =
      *std::max_element(plan_->bufferWidths.begin(), plan_->bufferWidths.end());
  const int64_t partsRows = tileRounded(capacity, LATHE_CUDA_MAX_BLOCK_TOKENS);
  const size_t partsBytes = size_t(partsRows) * widest * 6;
  // After them, the wgmma tiles' tensor maps of the rows (tokenMaps).
  const size_t mapsBytes = tokenMapEntries_.size() * LATHE_CUDA_TENSOR_MAP_BYTES;
  Expected<std::unique_ptr<backend::Buffer>> parts = device_.allocate(2 * partsBytes + mapsBytes);
  if (!parts)
    return Error(fmt::format("cannot allocate activation buffers for {} tokens: {}", rows,
                             parts.error().message()));
  // The maps first: a failure leaves the executable's buffers as they were.
  const CUdeviceptr partsAt = addressOf(**parts);
  if (mapsBytes > 0)
    if (Status s = encodeTokenMaps(partsAt + 2 * partsBytes, partsRows, partsAt,
                                   partsAt + partsBytes);
        !s)
      return s;
  if (Status s = uploadAddresses(device_, addresses, bufferTable_, "buffer"); !s)
    return s;
  activations_ = std::move(grown);
  tokenParts_ = parts.take();
  host_.tokenParts = reinterpret_cast<uint32_t *>(partsAt);
  host_.nextParts = reinterpret_cast<uint32_t *>(partsAt + partsBytes);
  host_.tokenMaps =
      mapsBytes > 0 ? reinterpret_cast<const uint8_t *>(partsAt + 2 * partsBytes) : nullptr;
  rowCapacity_ = capacity;
  host_.buffers = reinterpret_cast<float *const *>(addressOf(*bufferTable_));
  return Status::ok();
}

Status CudaExecutable::uploadStep(const backend::Batch &batch) {
  const int64_t rows = static_cast<int64_t>(batch.size());
  // One int32 array: tokens, positions, store rows, logit tokens, then per
  // token {rows at, prefix, extras at, extras} and the lists those index:
  // each sequence's rows once (its tokens share them: a prefill of n tokens
  // sends n rows, not n^2 / 2), then the tree nodes' extras.
  stepHost_.clear();
  stepHost_.insert(stepHost_.end(), batch.tokens.begin(), batch.tokens.end());
  stepHost_.insert(stepHost_.end(), batch.positions.begin(), batch.positions.end());
  stepHost_.insert(stepHost_.end(), layout_.storeRows.begin(), layout_.storeRows.end());
  const size_t logitsAt = stepHost_.size();
  stepHost_.insert(stepHost_.end(), layout_.logitTokens.begin(), layout_.logitTokens.end());
  const size_t visibleAt = stepHost_.size();
  stepHost_.resize(visibleAt + 4 * size_t(rows));
  const size_t listsAt = stepHost_.size();
  std::map<const int32_t *, size_t> listAt;
  for (const std::vector<int32_t> &list : layout_.sequenceRows()) {
    listAt[list.data()] = stepHost_.size() - listsAt;
    stepHost_.insert(stepHost_.end(), list.begin(), list.end());
  }
  const std::vector<int32_t> &extras = layout_.extras();
  const size_t extrasAt = stepHost_.size() - listsAt;
  stepHost_.insert(stepHost_.end(), extras.begin(), extras.end());
  if (stepHost_.size() - listsAt > size_t(INT32_MAX))
    return Error("the step's visible rows do not fit 32-bit offsets");
  const size_t tilesAt = stepHost_.size();
  if (queryTile_ > 0)
    addQueryTiles(rows);
  int64_t mostRows = 1;
  for (int64_t t = 0; t < rows; ++t) {
    const backend::VisibleRows &v = layout_.visible[size_t(t)];
    mostRows = std::max(mostRows, v.count());
    int32_t *entry = stepHost_.data() + visibleAt + 4 * size_t(t);
    entry[0] = int32_t(listAt.at(v.rows));
    entry[1] = v.prefix;
    entry[2] = int32_t(extrasAt + size_t(v.extra - extras.data()));
    entry[3] = v.extraCount;
  }
  stepSplits_ = contextSplits(mostRows);
  const size_t bytes = stepHost_.size() * sizeof(int32_t);
  if (!stepData_ || stepData_->size() < bytes) {
    Expected<std::unique_ptr<backend::Buffer>> b =
        device_.allocate(std::max(bytes + bytes / 2, size_t(4096)));
    if (!b)
      return b.error();
    stepData_ = b.take();
  }
  const CUdeviceptr base = addressOf(*stepData_);
  if (Status s = check(api_, api_.cuMemcpyHtoDAsync(base, stepHost_.data(), bytes, stream_),
                       "copying the step to the GPU");
      !s)
    return s;
  auto at = [&](size_t index) { return reinterpret_cast<const int32_t *>(base + index * 4); };
  host_.tokens = at(0);
  host_.positions = at(size_t(rows));
  host_.storeRows = at(2 * size_t(rows));
  host_.logitTokens = at(logitsAt);
  host_.visible = at(visibleAt);
  host_.visibleRows = at(listsAt);
  host_.queryTiles = at(tilesAt);
  host_.queryTileCount = int32_t((stepHost_.size() - tilesAt) / 3);
  host_.rows = static_cast<int32_t>(rows);
  host_.logitCount = static_cast<int32_t>(layout_.logitTokens.size());
  return check(api_, api_.cuMemcpyHtoDAsync(frameAddress_, &host_, sizeof(host_), stream_),
               "copying the step's frame to the GPU");
}

void CudaExecutable::addQueryTiles(int64_t rows) {
  // Runs of consecutive tokens with one row list and no extras, at most
  // queryTile_ each; the member seeing the most rows lists them for all.
  for (int64_t t = 0; t < rows;) {
    const backend::VisibleRows &start = layout_.visible[size_t(t)];
    int64_t end = t + 1, leader = t;
    if (start.extraCount == 0)
      for (; end < rows && end - t < queryTile_; ++end) {
        const backend::VisibleRows &v = layout_.visible[size_t(end)];
        if (v.rows != start.rows || v.extraCount != 0)
          break;
        if (v.prefix > layout_.visible[size_t(leader)].prefix)
          leader = end;
      }
    stepHost_.insert(stepHost_.end(), {int32_t(t), int32_t(end - t), int32_t(leader)});
    t = end;
  }
}

int64_t CudaExecutable::contextSplits(int64_t most) const {
  // A power of two at least the splits the most rows can use (one per
  // splitRows_ rows; the kernel takes no more than a token needs), so that
  // a few graphs cover every context: a short context launches no blocks
  // that would return at once.
  int64_t splits = 1;
  while (splits < maxSplits_ && splits * splitRows_ < most)
    splits *= 2;
  return splits;
}

int CudaExecutable::wgmmaShared() const { return LATHE_CUDA_WGMMA_SHARED_FOR(wgmmaCode_); }

bool CudaExecutable::flashAttention(int64_t rows) const {
  return LATHE_CUDA_USE_FLASH(queryTile_, host_.queryTileCount, rows);
}

Status CudaExecutable::launchAll(int64_t rows, bool graphed, size_t first, size_t end) {
  // The schedule (generated with the GPU code, CudaScheduleAbi.h) decides
  // each launch's kernel and grid; this queues them.
  LatheCudaStepFacts facts{};
  facts.rows = rows;
  facts.logitTokens = int64_t(layout_.logitTokens.size());
  facts.queryTiles = host_.queryTileCount;
  facts.attentionSplits = stepSplits_;
  facts.wgmmaSplits = maxWgmmaSplits_;
  facts.multiprocessors = std::max(1, device_.multiprocessors());
  facts.wgmmaCode = wgmmaCode_ ? 1 : 0;
  facts.graphed = graphed ? 1 : 0;
  facts.first = int32_t(std::min(first, launches_.size()));
  facts.end = int32_t(std::min(end, launches_.size()));
  struct Context {
    CudaExecutable *self;
    size_t first;
    Status status = Status::ok();
  } context{this, size_t(facts.first)};
  LatheCudaLauncher launcher{&context, nullptr, 0};
  launcher.launch = [](void *opaque, const LatheCudaLaunchCall *call) -> int {
    Context &c = *static_cast<Context *>(opaque);
    c.status = c.self->launchOne(*call, size_t(call->launch) > c.first);
    return c.status ? 0 : 1;
  };
  schedule_->run(facts, launcher);
  return context.status;
}

Status CudaExecutable::launchOne(const LatheCudaLaunchCall &call, bool dependent) {
  const size_t i = size_t(call.launch);
  if (call.launch < 0 || i >= launches_.size() || call.kernel < LATHE_CUDA_KERNEL_STEP ||
      call.kernel > LATHE_CUDA_KERNEL_WIDE)
    return Error(fmt::format("{}: its CUDA host schedule asked for a launch its GPU code "
                             "lacks",
                             artifact().path()));
  if (skipped_[i])
    return Status::ok();
  CUfunction fn = call.kernel == LATHE_CUDA_KERNEL_STEP    ? kernels_[i]
                  : call.kernel == LATHE_CUDA_KERNEL_TILES ? tileKernels_[i]
                                                           : wideKernels_[i];
  if (!fn)
    return Error(fmt::format("{}: its CUDA host schedule asked for a kernel of launch {} its "
                             "GPU code lacks",
                             artifact().path(), i));
  int32_t args = call.args;
  void *frameParams[] = {&frameAddress_};
  void *argParams[] = {&frameAddress_, &args};
  void **params = call.args >= 0 ? argParams : frameParams;
  CUresult r;
  if (pdl_ && dependent) {
    // Programmatic dependent launch: this kernel's blocks may start as
    // the one before finishes (CudaCommon.cuh's waitForPrevious).
    CUlaunchAttribute attribute{};
    attribute.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    attribute.value.programmaticStreamSerializationAllowed = 1;
    CUlaunchConfig config{call.grid[0], call.grid[1], call.grid[2], call.threads, 1, 1,
                          call.sharedBytes, stream_, &attribute, 1};
    r = api_.cuLaunchKernelEx(&config, fn, params, nullptr);
  } else {
    r = api_.cuLaunchKernel(fn, call.grid[0], call.grid[1], call.grid[2], call.threads, 1, 1,
                            call.sharedBytes, stream_, params, nullptr);
  }
  return check(api_, r, fmt::format("launching GPU kernel {}", i));
}

Status CudaExecutable::run(int64_t rows) {
  // Graphs pay where launches dominate: decode steps of up to
  // kGraphRows tokens (one per sequence), one graph per size. Longer steps
  // (prefills of any length) launch directly.
  constexpr int64_t kGraphRows = 64;
  if (!graphs_ || rows > kGraphRows)
    return launchAll(rows, false);
  // A graph fixes each launch's grid and function: the classifier's
  // depends on how many tokens return logits too (its tiles or its rows),
  // the attention's on the tiling and on the splits of the rows the
  // context allows, so all are in the key.
  const GraphKey key{rows, LATHE_CUDA_USE_TILES(1, int64_t(layout_.logitTokens.size())),
                     flashAttention(rows), stepSplits_};
  auto found = graphCache_.find(key);
  if (found == graphCache_.end()) {
    if (Status s = check(api_,
                         api_.cuStreamBeginCapture(stream_, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL),
                         "capturing the step in a CUDA graph");
        !s)
      return s;
    Status launched = launchAll(rows, true);
    CUgraph graph = nullptr;
    Status ended = check(api_, api_.cuStreamEndCapture(stream_, &graph),
                         "capturing the step in a CUDA graph");
    if (!launched || !ended) {
      if (graph)
        api_.cuGraphDestroy(graph);
      return launched ? ended : launched;
    }
    CUgraphExec exec = nullptr;
    Status made = check(api_, api_.cuGraphInstantiateWithFlags(&exec, graph, 0),
                        "instantiating the step's CUDA graph");
    api_.cuGraphDestroy(graph);
    if (!made)
      return made;
    found = graphCache_.emplace(key, exec).first;
  }
  return check(api_, api_.cuGraphLaunch(found->second, stream_), "launching the step's graph");
}

Status CudaExecutable::beginStep(const backend::Batch &batch, kv::PagedKVCache &kv,
                                 std::vector<std::pair<backend::SequenceId, int64_t>> &lengths) {
  const plan::ModelConfig &c = config();
  if (Status s = backend::validateBatch(batch, c.vocab, c.context, kv); !s)
    return s;
  if (!backend::fitsPlan(kv.layout(), *plan_) || !dynamic_cast<CudaBuffer *>(&kv.buffer()))
    return Error("the KV cache does not have this model's layout on the GPU");
  if (Status s = device_.takeError(); !s)
    return s;
  if (Status s = device_.bind(); !s)
    return s;
  const int64_t rows = static_cast<int64_t>(batch.size());
  if (Status s = reserveRows(rows); !s)
    return s;
  // Each sequence's length before the step: a failure after the cache grew
  // shrinks it back to these.
  lengths.clear();
  for (backend::SequenceId sequence :
       std::set<backend::SequenceId>(batch.sequences.begin(), batch.sequences.end()))
    lengths.emplace_back(sequence, kv.length(sequence));
  try {
    stepHost_.reserve(5 * batch.size() + 64);
  } catch (const std::bad_alloc &) {
    return Error(fmt::format("cannot allocate host memory for a step of {} tokens", rows));
  }
  if (Status s = layout_.prepare(batch, kv); !s)
    return s;
  // From here a failure must leave the cache as it was (rollBack).
  auto fail = [&](const Error &error) -> Status {
    rollBack(kv, lengths);
    return error;
  };
  if (Status s = device_.takeError(); !s) // a copy on write inside prepare
    return fail(s.error());
  host_.kv = reinterpret_cast<uint8_t *>(addressOf(kv.buffer()));
  host_.kvRows = kv.layout().rows();
  try {
    if (Status s = uploadStep(batch); !s)
      return fail(s.error());
  } catch (const std::bad_alloc &) {
    return fail(Error(fmt::format("cannot allocate host memory for a step of {} tokens", rows)));
  }
  return Status::ok();
}

void CudaExecutable::rollBack(kv::PagedKVCache &kv,
                              std::span<const std::pair<backend::SequenceId, int64_t>> lengths) {
  // Wait for what was queued (it may still write the new rows), then shrink
  // every sequence back. A block copied on write stays copied, as
  // StepLayout allows.
  api_.cuStreamSynchronize(stream_);
  for (const auto &[sequence, length] : lengths)
    kv.truncate(sequence, length);
}

namespace {

/// A compressed cache's codec on the GPU: its executable's kernels.
class CudaKvDeviceCodec final : public kv::KvDeviceCodec {
public:
  explicit CudaKvDeviceCodec(std::shared_ptr<CudaExecutable> executable)
      : executable_(std::move(executable)) {}
  void seal(backend::Buffer &cache, const kv::KVLayout &layout, int32_t window,
            int32_t sealed) override {
    executable_->sealKvBlock(cache, layout, window, sealed);
  }
  void unseal(backend::Buffer &cache, const kv::KVLayout &layout, int32_t from, int32_t to,
              int64_t rows) override {
    executable_->unsealKvBlock(cache, layout, from, to, rows);
  }
  void copyRows(backend::Buffer &cache, const kv::KVLayout &layout,
                std::span<const kv::RowMove> moves) override {
    executable_->copyKvRows(cache, layout, moves);
  }

private:
  std::shared_ptr<CudaExecutable> executable_;
};

} // namespace

std::shared_ptr<kv::KvDeviceCodec> CudaExecutable::kvDeviceCodec() {
  if (!kvSeal_ && !kvCopyRow_)
    return nullptr;
  return std::make_shared<CudaKvDeviceCodec>(shared_from_this());
}

void CudaExecutable::runOnCache(CUfunction kernel, const kv::KVLayout &layout, void **params,
                                const char *what, bool wait) {
  Status s = kernel ? device_.bind()
                    : Status(Error(fmt::format("{}: this artifact's GPU code has no kernel for it", what)));
  if (s)
    s = check(api_,
              api_.cuLaunchKernel(kernel, unsigned(layout.layers), 2, 1, LATHE_CUDA_THREADS, 1, 1,
                                  0, stream_, params, nullptr),
              what);
  // The next step, or a copy on write (a device copy, not on this
  // stream), may read what it wrote at once.
  if (s && wait)
    s = check(api_, api_.cuStreamSynchronize(stream_), what);
  if (!s)
    device_.keepError(s.error());
}

void CudaExecutable::sealKvBlock(backend::Buffer &cache, const kv::KVLayout &layout,
                                 int32_t window, int32_t sealed) {
  CUdeviceptr kv = addressOf(cache);
  int64_t rows = layout.rows(), blockSize = layout.blockSize;
  void *params[] = {&kv, &rows, &blockSize, &window, &sealed};
  runOnCache(kvSeal_, layout, params, "sealing a block of the KV cache's window");
}

void CudaExecutable::unsealKvBlock(backend::Buffer &cache, const kv::KVLayout &layout,
                                   int32_t from, int32_t to, int64_t count) {
  CUdeviceptr kv = addressOf(cache);
  int64_t rows = layout.rows(), blockSize = layout.blockSize;
  void *params[] = {&kv, &rows, &blockSize, &from, &to, &count};
  runOnCache(kvUnseal_, layout, params, "decoding a sealed block of the KV cache");
}

void CudaExecutable::copyKvRows(backend::Buffer &cache, const kv::KVLayout &layout,
                                std::span<const kv::RowMove> moves) {
  // One launch a row, in order on the stream (a move may read a row an
  // earlier one wrote), and one wait after the last.
  CUdeviceptr kv = addressOf(cache);
  int64_t rows = layout.rows();
  for (size_t i = 0; i < moves.size(); ++i) {
    int64_t to = moves[i].to, from = moves[i].from;
    void *params[] = {&kv, &rows, &to, &from};
    runOnCache(kvCopyRow_, layout, params, "copying a row of the KV cache", i + 1 == moves.size());
  }
}

Expected<float *> CudaExecutable::logitsMemory(size_t count) {
  // Page-locked up to kPinnedLogitBytes (decode steps, whose readback is
  // on every token's path); a larger readback (a prompt's logits at every
  // position: 1 GB for 2048 tokens of a 128k vocabulary) goes to pageable
  // memory rather than lock that much of the host's.
  constexpr size_t kPinnedLogitBytes = size_t(64) << 20;
  const size_t bytes = count * sizeof(float);
  if (bytes <= kPinnedLogitBytes) {
    if (!pinnedLogits_ || pinnedLogits_->size() < bytes) {
      pinnedLogits_.reset(); // freed before the larger one is taken
      Expected<std::unique_ptr<PinnedHostBuffer>> b = device_.allocateHost(std::max<size_t>(bytes, 4));
      if (!b)
        return b.error();
      pinnedLogits_ = b.take();
    }
    return static_cast<float *>(pinnedLogits_->data());
  }
  try {
    largeLogits_.resize(count);
  } catch (const std::bad_alloc &) {
    return Error(fmt::format("cannot allocate host memory for {} logits", count));
  }
  return largeLogits_.data();
}

Expected<std::span<const float>> CudaExecutable::finishStep(float *logits) {
  const size_t count = layout_.logitTokens.size() * size_t(config().vocab);
  if (count)
    if (Status s = check(api_,
                         api_.cuMemcpyDtoHAsync(logits,
                                                addressOf(*activations_[plan_->logits]),
                                                count * sizeof(float), stream_),
                         "copying the logits from the GPU");
        !s)
      return s.error();
  if (Status s = check(api_, api_.cuStreamSynchronize(stream_), "running the step on the GPU");
      !s)
    return s.error();
  return std::span<const float>(logits, count);
}

template <class Finish>
auto CudaExecutable::runStep(const backend::Batch &batch, kv::PagedKVCache &kv, Finish &&finish)
    -> decltype(finish()) {
  std::vector<std::pair<backend::SequenceId, int64_t>> lengths;
  if (Status s = beginStep(batch, kv, lengths); !s)
    return s.error();
  decltype(finish()) result = Error("");
  if (Status s = run(static_cast<int64_t>(batch.size())); !s)
    result = s.error();
  else
    result = finish();
  if (!result)
    rollBack(kv, lengths);
  return result;
}

Expected<std::span<const float>> CudaExecutable::execute(const backend::Batch &batch,
                                                         kv::PagedKVCache &kv) {
  std::lock_guard<std::mutex> lock(step_);
  // Host memory for the logits before the cache grows.
  Expected<float *> logits =
      logitsMemory(size_t(batch.logitRows()) * size_t(config().vocab));
  if (!logits)
    return logits.error();
  return runStep(batch, kv, [&] { return finishStep(*logits); });
}

Expected<std::vector<int32_t>> CudaExecutable::finishGreedy(size_t rows, int32_t *ids) {
  if (rows > 0) {
    CUdeviceptr device = addressOf(*greedyIds_);
    void *params[] = {&frameAddress_, &device};
    if (Status s = check(api_,
                         api_.cuLaunchKernel(argmax_, unsigned(rows),
                                             unsigned(LATHE_CUDA_ARGMAX_PARTS(int64_t(rows))), 1,
                                             LATHE_CUDA_THREADS,
                                             1, 1, 0, stream_, params, nullptr),
                         "picking the greedy tokens on the GPU");
        !s)
      return s.error();
    if (Status s = check(api_,
                         api_.cuMemcpyDtoHAsync(ids, device, rows * sizeof(int32_t), stream_),
                         "copying the greedy tokens from the GPU");
        !s)
      return s.error();
  }
  if (Status s = check(api_, api_.cuStreamSynchronize(stream_), "running the step on the GPU");
      !s)
    return s.error();
  return std::vector<int32_t>(ids, ids + rows);
}

Expected<std::vector<int32_t>> CudaExecutable::executeGreedy(const backend::Batch &batch,
                                                             kv::PagedKVCache &kv) {
  std::lock_guard<std::mutex> lock(step_);
  const size_t rows = size_t(batch.logitRows());
  // The ids come back through the page-locked logits memory (its first
  // rows words), taken before the cache grows.
  Expected<float *> host = logitsMemory(std::max<size_t>(rows, 1));
  if (!host)
    return host.error();
  if (rows > greedyIdRows_) {
    Expected<std::unique_ptr<backend::Buffer>> ids = device_.allocate(rows * sizeof(int32_t));
    if (!ids)
      return ids.error();
    greedyIds_ = ids.take();
    greedyIdRows_ = rows;
  }
  return runStep(batch, kv,
                 [&] { return finishGreedy(rows, reinterpret_cast<int32_t *>(*host)); });
}

void CudaExecutable::swapStep(CudaLayerCarry &c) {
  std::swap(activations_, c.activations);
  std::swap(tokenParts_, c.tokenParts);
  std::swap(bufferTable_, c.bufferTable);
  std::swap(stepData_, c.stepData);
  std::swap(frame_, c.frame);
  std::swap(frameAddress_, c.frameAddress);
  std::swap(rowCapacity_, c.rowCapacity);
  std::swap(layout_, c.layout);
  std::swap(stepHost_, c.stepHost);
  std::swap(host_, c.host);
  std::swap(stepSplits_, c.stepSplits);
}

std::pair<size_t, size_t> CudaExecutable::groupLaunches(size_t group) const {
  const auto [firstStep, endStep] = plan::layerGroupSteps(*plan_, group);
  auto at = [&](size_t step) {
    return size_t(std::find_if(launches_.begin(), launches_.end(),
                               [&](const LatheCudaLaunch &l) { return size_t(l.step) >= step; }) -
                  launches_.begin());
  };
  return {at(firstStep), at(endStep)};
}

Expected<std::span<const float>>
CudaExecutable::executeLayers(const backend::Batch &batch, kv::PagedKVCache &kv, size_t group,
                              std::unique_ptr<backend::LayerCarry> &carry) {
  if (Status s = checkLayerGroup(batch, kv, group, carry.get()); !s)
    return s.error();
  const size_t count = std::max<size_t>(1, plan_->layerGroups.size());
  if (count == 1) { // one group: the whole step
    carry.reset();
    return execute(batch, kv);
  }
  std::lock_guard<std::mutex> lock(step_);
  CudaLayerCarry *state = nullptr;
  if (group == 0) {
    // The last layered prompt's buffers, frame and step data when it left
    // them (a prompt as long reallocates nothing: no allocation on the
    // first group's path, no free, which waits for the device, on the
    // last's); else fresh ones.
    std::unique_ptr<CudaLayerCarry> fresh = std::move(spareCarry_);
    if (!fresh) {
      fresh = std::make_unique<CudaLayerCarry>();
      fresh->host.weights = host_.weights;
      fresh->host.weightMaps = host_.weightMaps;
      Expected<std::unique_ptr<backend::Buffer>> frame =
          device_.allocate(sizeof(LatheCudaFrame));
      if (!frame)
        return frame.error();
      fresh->frameAddress = addressOf(**frame);
      fresh->frame = frame.take();
    }
    fresh->batch = &batch;
    fresh->kv = &kv;
    fresh->next = 0;
    swapStep(*fresh);
    Status begun = beginStep(batch, kv, fresh->lengths);
    swapStep(*fresh);
    if (!begun)
      return begun.error();
    state = fresh.get();
    carry = std::move(fresh);
  } else if (!(state = dynamic_cast<CudaLayerCarry *>(carry.get()))) {
    return Error("the layer carry is another backend's");
  }
  const bool last = group + 1 == count;
  // The executable's logits memory, taken before the state is swapped: the
  // last group's logits live as long as execute's do.
  float *logits = nullptr;
  if (last) {
    Expected<float *> memory =
        logitsMemory(state->layout.logitTokens.size() * size_t(config().vocab));
    if (!memory)
      return memory.error();
    logits = *memory;
  }
  const auto [first, end] = groupLaunches(group);
  swapStep(*state);
  Expected<std::span<const float>> result = std::span<const float>();
  if (Status s = launchAll(static_cast<int64_t>(batch.size()), false, first, end); !s)
    result = s.error();
  else if (last)
    result = finishStep(logits);
  swapStep(*state);
  if (!result) { // the prompt's rows leave the cache; the carry is dropped
    rollBack(kv, state->lengths);
    carry.reset();
    return result.error();
  }
  if (last) {
    // The stream is done with the carry (finishStep waited for it): its
    // buffers wait for the next layered prompt.
    state->batch = nullptr;
    state->kv = nullptr;
    spareCarry_.reset(static_cast<CudaLayerCarry *>(carry.release()));
  } else {
    state->next = group + 1;
  }
  return result;
}

} // namespace lathe::cuda
