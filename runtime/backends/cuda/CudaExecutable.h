// The CUDA backend's executable: an artifact's cuda kernel plan with its
// generated kernels (nvcc's fatbin, compiled by lathe-compile --target=cuda)
// loaded on the GPU through the driver API. The weights are copied to the
// device once; a step uploads its tokens, positions and cache rows, then
// launches the generated kernels as the generated host schedule decides
// them (schedule/CudaScheduleAbi.h: one call per launch of the module's
// launch table, kernels/CudaFrame.h) on one stream, and reads back the
// logits rows. The
// launches of a step are captured once per number of tokens in a CUDA graph
// and replayed (every kernel reads the step through the frame in device
// memory, so the same launches serve every step of that size).
#pragma once

#include "runtime/backend/Executable.h"
#include "runtime/backends/cuda/CudaDevice.h"
#include "runtime/backends/cuda/schedule/CudaSchedule.h"
#include "runtime/backends/cuda/kernels/CudaFrame.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <tuple>
#include <utility>
#include <vector>

namespace lathe::cuda {

struct CudaLayerCarry;

class CudaExecutable final : public backend::Executable,
                             public std::enable_shared_from_this<CudaExecutable> {
public:
  static Expected<std::shared_ptr<backend::Executable>>
  load(std::shared_ptr<const artifact::Artifact> artifact,
       const backend::ExecutionOptions &options);
  ~CudaExecutable() override;

  backend::Device &device() override { return device_; }
  kv::KVLayout kvLayout(int64_t blocks) const override;
  Expected<std::span<const float>> execute(const backend::Batch &batch,
                                           kv::PagedKVCache &kv) override;
  /// The step, then the module's lathe_cuda_argmax on its logits: only the
  /// ids come back.
  Expected<std::vector<int32_t>> executeGreedy(const backend::Batch &batch,
                                               kv::PagedKVCache &kv) override;
  /// A step one layer group at a time: the group's run of the launch table
  /// (LatheCudaLaunch::step), on buffers, step data and a frame of the
  /// carry's own, so that other steps may run between the groups.
  Expected<std::span<const float>> executeLayers(const backend::Batch &batch,
                                                 kv::PagedKVCache &kv, size_t group,
                                                 std::unique_ptr<backend::LayerCarry> &carry) override;
  int threads() const override { return 1; }
  bool usesNativeCode() const override { return true; }
  const backend::ExecutionOptions &options() const override { return options_; }
  ProductCounts lastStepProducts() const override { return products_; }
  Status setMatMulObserver(backend::MatMulObserver observer) override;
  /// Windowed caches (KIVI's, row formats with a window): the module's
  /// lathe_cuda_kv_seal and lathe_cuda_kv_unseal; compressed caches
  /// without a window: its lathe_cuda_kv_copy_row (PackedKv keeps a block's
  /// rows by KV head); on this executable's stream, which the codec keeps
  /// alive. Null for float caches.
  std::shared_ptr<kv::KvDeviceCodec> kvDeviceCodec() override;
  /// Seals window block `window` into `sealed` (or unseals `rows` rows of
  /// quantized block `from` into window block `to`; or copies each move's
  /// row, in order) in `cache`, waiting for it; a failure is kept for the
  /// next step (CudaDevice::keepError).
  void sealKvBlock(backend::Buffer &cache, const kv::KVLayout &layout, int32_t window,
                   int32_t sealed);
  void unsealKvBlock(backend::Buffer &cache, const kv::KVLayout &layout, int32_t from, int32_t to,
                     int64_t rows);
  void copyKvRows(backend::Buffer &cache, const kv::KVLayout &layout,
                  std::span<const kv::RowMove> moves);

private:
  CudaExecutable(std::shared_ptr<const artifact::Artifact> artifact, const plan::KernelPlan *plan,
                 const backend::ExecutionOptions &options, CudaDevice &device);
  /// Loads the module, reads and checks its launch table, uploads the weights.
  Status initialize();
  /// Activation buffers for at least `rows` tokens.
  Status reserveRows(int64_t rows);
  /// Uploads the step's tokens, positions and cache rows, and the frame.
  Status uploadStep(const backend::Batch &batch);
  /// Appends the step's query tiles to stepHost_ (LatheCudaFrame::queryTiles).
  void addQueryTiles(int64_t rows);
  /// Whether the step's attention runs on the tensor cores.
  bool flashAttention(int64_t rows) const;
  /// The dynamic shared memory of a block of wgmma tiles on this GPU
  /// (LatheCudaLaunch::wgmma).
  int wgmmaShared() const;
  /// Encodes the tensor maps of the weights the wgmma tiles load by TMA
  /// (the module's lathe_cuda_tma_weights) into weightMaps_, at each
  /// tensor's index, where the sm_90a code runs; `global` reads a module
  /// table.
  /// Encodes the tensor maps of the wgmma tiles' token rows
  /// (tokenMapEntries_) at `tokenParts` and `nextParts` (LatheCudaFrame's),
  /// `rows` rows each, into `maps` on the device.
  Status encodeTokenMaps(CUdeviceptr maps, int64_t rows, CUdeviceptr tokenParts,
                         CUdeviceptr nextParts);
  Status encodeWeightMaps(const std::vector<CUdeviceptr> &addresses,
                          const std::vector<size_t> &tensorBytes,
                          const std::function<Status(const char *, void *, size_t)> &global);
  /// The splits of a token's visible rows the one-token attention launches
  /// at most (grid z, with LATHE_CUDA_ATTENTION_SPLITS) in a step whose
  /// longest row list has `most` rows: 1 when splitting is off
  /// (LATHE_CUDA_SPLIT_ATTENTION=0) or no token sees more than a block's
  /// threads' rows, at most maxSplits_.
  int64_t contextSplits(int64_t most) const;
  /// Launches the table's kernels [first, end) (all by default) for a step
  /// of `rows` tokens on stream_ (for a graph: grids that serve any step of
  /// as many tokens), as the schedule decides them.
  Status launchAll(int64_t rows, bool graphed, size_t first = 0, size_t end = SIZE_MAX);
  /// Queues one launch the schedule decided on stream_; `dependent`: may
  /// overlap the end of the one before (programmatic dependent launch).
  Status launchOne(const LatheCudaLaunchCall &call, bool dependent);
  /// What execute and a layered step's first group share: checks the batch
  /// and the cache, makes room for its rows, grows the cache, and uploads
  /// the step. `lengths` receives each sequence's length before, to shrink
  /// back to on failure (which this does itself when it fails).
  Status beginStep(const backend::Batch &batch, kv::PagedKVCache &kv,
                   std::vector<std::pair<backend::SequenceId, int64_t>> &lengths);
  /// Leaves the cache as it was before a step that failed after it grew:
  /// each sequence back to its length in `lengths`.
  void rollBack(kv::PagedKVCache &kv,
                std::span<const std::pair<backend::SequenceId, int64_t>> lengths);
  /// Host memory for `count` floats of logits: page-locked up to 64 MB.
  Expected<float *> logitsMemory(size_t count);
  /// Queues the step's logits' copy to `logits`, then waits for the stream.
  Expected<std::span<const float>> finishStep(float *logits);
  /// Queues the argmax of each of the step's `rows` logits rows and their
  /// copy to `ids`, then waits for the stream (executeGreedy).
  Expected<std::vector<int32_t>> finishGreedy(size_t rows, int32_t *ids);
  /// One step of execute or executeGreedy: beginStep, run, then `finish`
  /// (the results to the host); the cache rolled back if any fails.
  template <class Finish>
  auto runStep(const backend::Batch &batch, kv::PagedKVCache &kv, Finish &&finish)
      -> decltype(finish());
  /// Exchanges the step state (buffers, step data, frame, layout) with a
  /// layered step's carry.
  void swapStep(CudaLayerCarry &carry);
  /// The launches of layer group `group`: [first, end) of the table.
  std::pair<size_t, size_t> groupLaunches(size_t group) const;
  /// Runs the step's launches: through the graph captured for `rows`
  /// tokens (captured on first use), or launch by launch.
  Status run(int64_t rows);

  const plan::KernelPlan *plan_;
  backend::ExecutionOptions options_;
  CudaDevice &device_;
  const DriverApi &api_;
  CUmodule module_ = nullptr;
  CUstream stream_ = nullptr;
  std::vector<LatheCudaLaunch> launches_;
  std::vector<CUfunction> kernels_;
  /// Each product launch's tensor-core kernel (null where it has none):
  /// a function apart, so that its registers do not cost the row path's
  /// occupancy.
  std::vector<CUfunction> tileKernels_;
  /// Each product launch's wide tiles (LatheCudaLaunch::wideBlocks).
  std::vector<CUfunction> wideKernels_;
  /// The host schedule generated with the GPU code (CudaScheduleAbi.h).
  std::unique_ptr<CudaSchedule> schedule_;
  /// The argmax of each logits row (executeGreedy), and the device ids it
  /// writes (grown to the most logits rows a step has had).
  CUfunction argmax_ = nullptr;
  /// A windowed cache's sealing and unsealing kernels, a compressed
  /// cache's row copy (null for others).
  CUfunction kvSeal_ = nullptr, kvUnseal_ = nullptr, kvCopyRow_ = nullptr;
  /// Runs one of them (a block a layer and keys or values) with `params`
  /// on this executable's stream, waiting for it unless `wait` is false; a
  /// failure (`what` failed) is kept for the next step.
  void runOnCache(CUfunction kernel, const kv::KVLayout &layout, void **params, const char *what,
                  bool wait = true);
  std::unique_ptr<backend::Buffer> greedyIds_;
  size_t greedyIdRows_ = 0;
  std::unique_ptr<backend::Buffer> weights_, weightTable_, bufferTable_, stepData_, frame_;
  std::unique_ptr<backend::Buffer> weightMaps_; // LatheCudaFrame::weightMaps
  /// The module's lathe_cuda_tma_tokens where wgmma runs, else empty.
  std::vector<LatheCudaTmaTokens> tokenMapEntries_;
  /// Whether the loaded code runs wgmma and TMA (lathe_cuda_wgmma_code).
  bool wgmmaCode_ = false;
  CUdeviceptr frameAddress_ = 0;
  bool pdl_ = false;
  bool graphs_ = true;
  /// The most splits of a token's rows over blocks the one-token attention
  /// takes (LATHE_CUDA_ATTENTION_SPLITS; LATHE_CUDA_SPLIT_ATTENTION=N).
  int64_t maxSplits_ = LATHE_CUDA_ATTENTION_MAX_SPLITS;
  /// A token's rows per split of the one-token attention
  /// (LATHE_CUDA_ATTENTION_SPLIT_ROWS; the environment's, if more).
  int64_t splitRows_ = LATHE_CUDA_ATTENTION_SPLIT_ROWS;
  /// The most splits of a wgmma launch's k (LATHE_CUDA_WGMMA_SPLITS;
  /// the environment's LATHE_CUDA_WGMMA_SPLITS=N).
  int64_t maxWgmmaSplits_ = LATHE_CUDA_WGMMA_MAX_SPLITS;
  /// Per launch: left out of every step (LATHE_CUDA_SKIP, a measuring aid
  /// whose results are wrong: what a kind of launch costs a step).
  std::vector<bool> skipped_;
  /// Tokens per query tile of the tensor-core attention (0: none).
  int32_t queryTile_ = 0;
  /// By tokens per step, whether the classifier takes its tiles, and
  /// whether attention does.
  using GraphKey = std::tuple<int64_t, bool, bool, int64_t>;
  std::map<GraphKey, CUgraphExec> graphCache_;
  std::vector<std::unique_ptr<backend::Buffer>> activations_;
  std::unique_ptr<backend::Buffer> tokenParts_; // LatheCudaFrame::tokenParts
  int64_t rowCapacity_ = 0;
  ProductCounts products_;

  // One step at a time: the state below belongs to the step in progress.
  std::mutex step_;
  backend::StepLayout layout_;
  std::vector<int32_t> stepHost_;
  LatheCudaFrame host_{};
  /// contextSplits of the step in progress (uploadStep).
  int64_t stepSplits_ = 1;
  /// The logits read back: page-locked (at link speed) for steps of up to
  /// 64 MB of them, pageable beyond (execute()).
  std::unique_ptr<PinnedHostBuffer> pinnedLogits_;
  std::vector<float> largeLogits_;
  /// The carry of the last layered step that ran to its end, kept for the
  /// next one's buffers (executeLayers).
  std::unique_ptr<CudaLayerCarry> spareCarry_;
};

} // namespace lathe::cuda
