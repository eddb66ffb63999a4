// The backend interface: an executable is an artifact's kernel plan loaded
// onto a device, and execute(batch, kv) runs one step of the batch form
// (backend/Batch.h) over a paged KV cache (kv/PagedKVCache.h). Sessions,
// generation, the schedulers and the tools reach a backend only through
// this header; each backend lives in its own folder under runtime/backends/.
#pragma once

#include "runtime/artifact/Artifact.h"
#include "runtime/backend/Batch.h"
#include "runtime/backend/Device.h"
#include "runtime/kv/PagedKVCache.h"
#include "runtime/support/Expected.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace lathe::backend {

/// Which kernels run the plan: the backend's fast kernels, or the scalar
/// float64-accumulating reference kernels every faster kernel is tested
/// against (one thread).
enum class KernelPath { Fast, Reference };

struct ExecutionOptions {
  /// The artifact's target to run ("cpu").
  std::string target = "cpu";
  /// Threads for the kernels, the caller included; 0 = every core this
  /// process may use, more are clamped to that.
  int threads = 0;
  KernelPath kernels = KernelPath::Fast;
  /// Run the artifact's generated code when it has some (fast path only);
  /// false interprets the plan instead.
  bool nativeCode = true;
  /// Whether matmuls with packed weights of the formats that allow it round
  /// their input to int8 per block and use integer dot products (faster, not
  /// the reference numerics). Unset: what the artifact's plan chose at
  /// compile time (plan::Activations); the reference kernels round int8
  /// inputs as the integer kernels do and then multiply exactly. Products
  /// the plan gives bf16 activations round their input to bf16 whatever
  /// this says.
  std::optional<bool> int8Activations;
};

/// Called before every matmul step with the step's index in the plan and
/// its input rows (rows x width floats): calibration collects activation
/// statistics through it.
using MatMulObserver = std::function<void(size_t step, const float *input, int64_t rows,
                                          int64_t width)>;

/// What a step run one layer group at a time carries from one group to the
/// next (its hidden state and where its tokens' keys and values go): the
/// backend's own, kept by the caller between executeLayers calls.
class LayerCarry {
public:
  virtual ~LayerCarry() = default;
  /// What every backend's carry records (Executable::checkLayerGroup): the
  /// step it belongs to and the group it runs next.
  const Batch *batch = nullptr;
  const kv::PagedKVCache *kv = nullptr;
  size_t next = 0;
};

/// The argmax (sampling's: the lowest id on ties, NaN never winning) of
/// each row of `vocab` logits.
std::vector<int32_t> argmaxRows(std::span<const float> logits, int64_t vocab);

class Executable {
public:
  virtual ~Executable() = default;

  const artifact::Artifact &artifact() const { return *artifact_; }
  const std::shared_ptr<const artifact::Artifact> &sharedArtifact() const { return artifact_; }
  const plan::ModelConfig &config() const { return artifact_->config(); }
  virtual Device &device() = 0;

  /// The layout of a KV cache of `blocks` blocks that this executable's
  /// steps read and write (element format, rows, block size).
  virtual kv::KVLayout kvLayout(int64_t blocks) const = 0;
  /// A KV cache on this executable's device with room for `tokens` slots
  /// (rounded up to whole blocks), sequences at most the model's context.
  Expected<std::unique_ptr<kv::PagedKVCache>> createKVCache(int64_t tokens);
  /// Who seals the blocks of a windowed cache (KVLayout::windowed), and
  /// copies the rows of a compressed one, on this executable's device where
  /// the host cannot reach them (kv::KvDeviceCodec); null: the cache does
  /// it itself, in host memory, rows whole.
  virtual std::shared_ptr<kv::KvDeviceCodec> kvDeviceCodec() { return nullptr; }

  /// Runs one step: checks the batch (validateBatch), grows its sequences
  /// in `kv` by their tokens, stores their keys and values and returns the
  /// logits of the tokens that want them, one row of vocab scores each, in
  /// batch order. The rows live in the executable and stay valid until the
  /// next execute: calls from several threads are serialized, but a caller
  /// must be done with the rows before anyone runs the next step (one
  /// scheduler per executable). On failure nothing has changed.
  virtual Expected<std::span<const float>> execute(const Batch &batch,
                                                   kv::PagedKVCache &kv) = 0;

  /// The step of execute(), returning only each logits row's argmax (the
  /// lowest id on ties, NaN never winning unless every value is NaN, then
  /// 0: sampling's argmax), in batch order: greedy decoding. A backend that
  /// can pick them where the logits are (the GPU) returns the ids alone,
  /// without the logits' trip to the host (16 sequences of a 128k
  /// vocabulary: 8 MB a step); the default runs execute() and picks them.
  virtual Expected<std::vector<int32_t>> executeGreedy(const Batch &batch, kv::PagedKVCache &kv);

  /// What a greedy verification step of speculative decoding needs: each
  /// logits row's argmax (exactly executeGreedy's), and a row of scores
  /// for each, for the drafter's heuristics (Token Recycling's top k):
  /// execute()'s logits, or where the backend screens its classifier (the
  /// CPU's ScreenedArgmax) the screening's estimates of them, each within
  /// a bound of the logit. The scores live in the executable until the
  /// next step. The default runs execute() and picks the ids.
  struct GreedyScores {
    std::vector<int32_t> ids;
    std::span<const float> scores; // ids.size() rows of vocab
  };
  virtual Expected<GreedyScores> executeGreedyScored(const Batch &batch, kv::PagedKVCache &kv);
  /// Bytes a greedy step reads for product weight `tensor` where the
  /// backend reads other than the whole tensor (the CPU's screened
  /// classifier: its int8 copy and bounds); else nothing (the tensor's
  /// own bytes).
  virtual std::optional<int64_t> greedyWeightBytes(uint32_t /*tensor*/) const { return std::nullopt; }

  /// The layer groups of the plan this executable runs (lathe-compile
  /// --prefill-groups, --group-bytes), in order; empty: none compiled in,
  /// and a step is one group.
  const std::vector<plan::LayerGroup> &layerGroups() const;

  /// Runs one layer group of a step (layered prefill: a prompt advances a
  /// group per iteration while other sequences decode). Group 0 does what
  /// execute does first (checks the batch, grows its sequences in `kv`) and
  /// runs the embedding and the first group's layers; group g continues
  /// from `carry`, which group g - 1 of the same batch and cache left; the
  /// last group runs the final norm and the classifier and returns the
  /// logits as execute does (the others an empty span) and empties `carry`.
  /// The groups in order give the logits and cache of one execute of the
  /// batch. Between groups other steps may run on this executable and
  /// cache, for sequences sharing no KV blocks with the batch's; `batch`
  /// must stay alive and unchanged until the last group. With no layer
  /// groups compiled in, group 0 is execute. A backend that cannot run a
  /// group alone says so (the default).
  virtual Expected<std::span<const float>> executeLayers(const Batch &batch,
                                                         kv::PagedKVCache &kv, size_t group,
                                                         std::unique_ptr<LayerCarry> &carry);

  /// Threads the kernels run on.
  virtual int threads() const = 0;
  /// Whether generated code (rather than an interpreter) runs the steps.
  virtual bool usesNativeCode() const = 0;
  /// The options in effect after loading: int8Activations is always set
  /// (the plan's choice where the options left it open).
  virtual const ExecutionOptions &options() const = 0;
  /// Which kernels the last step's matrix products ran on: how many rounded
  /// their input to int8 (integer dot products), how many to bf16, and how
  /// many took it as float. Tests and tools assert the path they asked for
  /// really ran.
  struct ProductCounts {
    int64_t int8 = 0, floats = 0, bf16 = 0;
  };
  virtual ProductCounts lastStepProducts() const = 0;

  /// Sets the calibration hook; a backend that cannot call it says so.
  virtual Status setMatMulObserver(MatMulObserver observer) = 0;

protected:
  explicit Executable(std::shared_ptr<const artifact::Artifact> artifact)
      : artifact_(std::move(artifact)) {}

  /// executeLayers' checks, one for every backend: `group` is one of the
  /// plan's, and past group 0 `carry` is what group - 1 of the same batch
  /// and cache left.
  Status checkLayerGroup(const Batch &batch, const kv::PagedKVCache &kv, size_t group,
                         const LayerCarry *carry) const;

private:
  std::shared_ptr<const artifact::Artifact> artifact_;
};

/// The KV cache layout a plan's steps read and write (its layers, row width
/// and element type) for a cache of `blocks` blocks of 16 rows: what every
/// backend's kvLayout() returns.
kv::KVLayout kvLayoutOf(const plan::KernelPlan &plan, int64_t blocks);
/// Whether a cache laid out as `layout` (any number of blocks) is one a
/// plan's steps can use.
bool fitsPlan(const kv::KVLayout &layout, const plan::KernelPlan &plan);

/// Loads `artifact` for `options.target` on the backend that runs it.
/// Fails with one line when the artifact holds no plan for the target, the
/// target has no backend here, or the options do not fit.
Expected<std::shared_ptr<Executable>> load(std::shared_ptr<const artifact::Artifact> artifact,
                                           const ExecutionOptions &options = {});

} // namespace lathe::backend
