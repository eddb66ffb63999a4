// The CPU backend's executable: an artifact's CPU kernel plan, run either by
// the model's generated code (runtime/backends/cpu/native) or by an
// interpreter of the plan, on the SIMD micro-kernels (kernels/) split over
// the process's thread pool, or on the scalar reference kernels.
#pragma once

#include "runtime/backend/Executable.h"
#include "runtime/backends/cpu/ThreadPool.h"
#include "runtime/backends/cpu/kernels/Int8Matmul.h"
#include "runtime/backends/cpu/kernels/PanelMatmul.h"
#include "runtime/backends/cpu/native/NativeModel.h"

#include <memory>
#include <mutex>
#include <vector>

#include "runtime/backends/cpu/ScreenedArgmax.h"

namespace lathe::cpu {

class CpuExecutable final : public backend::Executable {
public:
  static Expected<std::shared_ptr<backend::Executable>>
  load(std::shared_ptr<const artifact::Artifact> artifact, const backend::ExecutionOptions &options);

  backend::Device &device() override;
  kv::KVLayout kvLayout(int64_t blocks) const override;
  Expected<std::span<const float>> execute(const backend::Batch &batch,
                                           kv::PagedKVCache &kv) override;
  /// With a float32 classifier and at most kScreenedRows logits rows, the
  /// ids come from ScreenedArgmax (exactly execute()'s argmax, without
  /// computing every logit); else execute() and its argmax.
  /// LATHE_CPU_SCREENED_ARGMAX=0 in the environment turns it off, for
  /// comparison.
  Expected<std::vector<int32_t>> executeGreedy(const backend::Batch &batch,
                                               kv::PagedKVCache &kv) override;
  /// The same ids, with the screening's estimates of the logits as scores
  /// where it screened (else execute()'s logits).
  Expected<GreedyScores> executeGreedyScored(const backend::Batch &batch,
                                             kv::PagedKVCache &kv) override;
  std::optional<int64_t> greedyWeightBytes(uint32_t tensor) const override;
  /// Logits rows a step screens at most: the full classifier sums up to 16
  /// in the one-token order (its streamed products: a row's logit the same
  /// float as alone, which ScreenedArgmax reproduces). The screening of
  /// 9-16 rows costs about half the full classifier's pass in real steps
  /// (stories15M FP32, 2 threads, a speculative run's 9-token steps: 3.1
  /// against 5.6 ms); its worst case (every token unscreened) is that one
  /// pass plus the int8 product. lathe-bench --tree over an uncomputed
  /// cache (zero keys and values: hundreds of candidates a token) showed
  /// no gain past 8, which is where this stood before.
  static constexpr int64_t kScreenedRows = 16;
  /// A group runs the plan's steps of that group through the interpreter,
  /// also where generated code runs whole steps (it is one function over
  /// all of them): its logits are the interpreter's to the bit, and the
  /// generated code's to the rounding of its element-wise loops.
  Expected<std::span<const float>> executeLayers(const backend::Batch &batch,
                                                 kv::PagedKVCache &kv, size_t group,
                                                 std::unique_ptr<backend::LayerCarry> &carry)
      override;
  int threads() const override { return pool_->size(); }
  bool usesNativeCode() const override { return native_ != nullptr; }
  const backend::ExecutionOptions &options() const override { return options_; }
  Status setMatMulObserver(backend::MatMulObserver observer) override;
  ProductCounts lastStepProducts() const override { return products_; }

  /// Which kernel a product of weight `tensor` ran on in the last step:
  /// the int8 panel kernel, the int8 row kernel or a float kernel.
  enum class MatmulKernel { Panels, Int8Rows, Float };

private:
  CpuExecutable(std::shared_ptr<const artifact::Artifact> artifact, const plan::KernelPlan *plan,
                const backend::ExecutionOptions &options);
  /// What execute and a step's first layer group do before any kernel:
  /// check the batch, size `buffers` for its tokens and the attention
  /// scratch, and lay out `layout` (growing the sequences in `kv`). On
  /// failure the cache is unchanged.
  Status beginStep(const backend::Batch &batch, kv::PagedKVCache &kv,
                   std::vector<std::vector<float>> &buffers, backend::StepLayout &layout);
  void run(size_t index, const plan::Step &step, int64_t rows);
  /// executeGreedy's and executeGreedyScored's step.
  Expected<GreedyScores> greedyStep(const backend::Batch &batch, kv::PagedKVCache &kv);
  /// execute()'s step, the step mutex held.
  Expected<std::span<const float>> step(const backend::Batch &batch, kv::PagedKVCache &kv);
  /// The screening of classifier `tensor` (nullptr where there is none).
  ScreenedArgmax *screened(uint32_t tensor);
  /// At load: the screening of a float32 classifier (about 40 ms for
  /// stories15M's on 2 threads), unless the reference kernels run or
  /// LATHE_CPU_SCREENED_ARGMAX=0.
  void makeScreening();
  /// y = x * W^T for `rows` rows, on the chosen kernel path.
  void matmul(const float *x, int64_t rows, uint32_t weight, float *y);
  /// Several products of the same input (q/k/v, gate/up) as one parallel
  /// job: the threads meet once instead of once per weight.
  void matmuls(const float *x, int64_t rows, uint32_t count, const uint32_t *weights,
               float *const *outputs);
  /// The classifier for the step's tokens that want logits.
  void logits(const float *x, uint32_t classifier, float *y);
  void attention(const float *q, const float *k, const float *v, uint32_t layer,
                 uint32_t heads, uint32_t kvHeads, uint32_t headDim, float *out);

  /// One product prepared for the SIMD path (activations quantized where
  /// needed), split into units of work: one panel or kRowsPerUnit rows.
  static constexpr int64_t kRowsPerUnit = 16;
  struct MatmulJob {
    MatmulKernel kind;
    uint32_t weight;
    const float *x;
    int64_t rows;
    float *y;
    const kernels::simd::Int8Activations *quantized;
    int64_t units;
  };
  /// The reference kernels' numerics of an int8 product: rounded_ = x as
  /// the integer kernels round it (x~ = scale * code per block of the
  /// weight's format, quantizeActivations), for an exact product after.
  /// False, leaving x as it is, where the format has no such rounding.
  bool roundForInt8(const float *x, int64_t rows, const plan::TensorInfo &info);
  /// A bf16 product's input (#plan.activations<bf16>): bf16Rounded_ = x with
  /// each value rounded to bfloat16 (nearest, ties to even), as floats.
  const float *roundForBf16(const float *x, int64_t rows, int64_t width);
  MatmulJob prepareMatmul(const float *x, int64_t rows, uint32_t weight, float *y,
                          kernels::simd::Int8Activations &quantized);
  void runMatmul(const MatmulJob &job, int64_t u0, int64_t u1);
  /// Repacks every matmul weight the panel kernel takes; false when memory
  /// runs out.
  bool packPanels();
  /// Fills vectors_ (for native code); false when memory runs out.
  bool decodeVectors();

  const plan::KernelPlan *plan_;
  backend::ExecutionOptions options_;
  /// Only the classifier touches the logits buffer (sized for the rows
  /// that return logits, not for every token of a step).
  bool logitRowsOnly_ = false;
  std::shared_ptr<threading::ThreadPool> pool_;
  std::shared_ptr<native::NativeModel> native_;
  backend::MatMulObserver observer_;
  /// With int8 activations on an AVX-512 VNNI machine: the packed weights
  /// repacked into row panels for the decode kernel, by tensor index (null
  /// for tensors the panel kernel does not take); shared by every
  /// executable of the artifact.
  std::vector<std::shared_ptr<const kernels::simd::PanelWeights>> panels_;
  /// With native code: every vector tensor (norm gains, biases) as floats,
  /// by tensor index (empty for matrices), which the generated code asks
  /// for (lathe_vector); shared by every executable of the artifact.
  using VectorTable = std::vector<std::vector<float>>;
  std::shared_ptr<const VectorTable> vectors_;
  /// By tensor: whether products with this weight run int8 activations,
  /// and whether they round their input to bf16.
  std::vector<bool> int8Weights_, bf16Weights_;
  /// By layer: whether its attention rounds the queries to bf16
  /// (AttentionStep::activations).
  std::vector<bool> bf16Queries_;
  // Each rope step's pair frequencies (by plan step; empty for the others),
  // computed once: the interpreter took headDim / 2 pow calls and an
  // allocation for each rope step of each step.
  std::vector<std::vector<double>> ropeFrequencies_;
  // executeGreedy's screening of the classifier (made at load); while a
  // greedy step runs, where logits() appends the ids, and whether it did.
  std::unique_ptr<ScreenedArgmax> screened_;
  uint32_t screenedTensor_ = 0;
  std::vector<int32_t> *greedyIds_ = nullptr;
  bool greedyScreened_ = false;

  // One step at a time: the state below belongs to the step in progress.
  std::mutex step_;
  const backend::Batch *batch_ = nullptr;
  kv::PagedKVCache *kv_ = nullptr;
  backend::StepLayout layout_;
  std::vector<std::vector<float>> buffers_;
  /// The buffers of the last layered prompt (executeLayers), kept for the
  /// next one: one more set of activation buffers, as large as the longest
  /// prompt prefilled one group at a time.
  std::vector<std::vector<float>> spareBuffers_;
  std::vector<float *> bufferPointers_;
  std::vector<float> scratch_, gathered_;
  /// The reference kernels' input of an int8 product (roundForInt8).
  std::vector<float> rounded_, bf16Rounded_;
  std::vector<float *> outputPointers_;
  ProductCounts products_;
  std::vector<kernels::simd::Int8Activations> quantizedInputs_; // one per product of a group
  std::vector<MatmulJob> jobs_;

  friend struct NativeKernels;
};

} // namespace lathe::cpu
