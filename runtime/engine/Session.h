// One sequence being decoded on the CPU: the artifact's kernel plan, its
// activation buffers and its KV cache. forward() runs a step over any number
// of new tokens (a prefill is one step over the whole prompt, a decode step
// one token) and returns their logits.
#pragma once

#include "runtime/artifact/Artifact.h"
#include "runtime/support/Expected.h"
#include "runtime/kernels/simd/Int8Matmul.h"
#include "runtime/kernels/simd/PanelMatmul.h"
#include "runtime/native/NativeModel.h"
#include "runtime/threading/ThreadPool.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace lathe {

/// Token ids must index the vocabulary: the one check of every id that
/// reaches the kernels (the embedding lookup trusts it).
Status checkTokenIds(const plan::ModelConfig &config, std::span<const int32_t> tokens);

/// Which kernels run the plan: the SIMD micro-kernels (runtime dispatch of
/// AVX-512/AVX2/NEON, split across threads) or the scalar float64-accumulating
/// reference kernels every faster kernel is tested against.
enum class KernelPath { Simd, Reference };

struct SessionOptions {
  std::string target = "cpu";
  /// Threads for the kernels, the caller included; 0 = every core. More
  /// than the cores this process may use are clamped to that count
  /// (Session::threads() tells).
  int threads = 0;
  KernelPath kernels = KernelPath::Simd;
  /// Run the artifact's generated CPU code when it has some (SIMD path only);
  /// false interprets the plan instead.
  bool nativeCode = true;
  /// Matmuls with packed weights of the formats that allow it (INT8, INT4,
  /// BFP8, BFP4, MXINT8, MXFP4) round their input to int8 per block and use
  /// integer dot products (VNNI), in prefill and decode alike. Faster, and
  /// no longer the reference numerics: off by default.
  bool int8Activations = false;
};

class Session {
public:
  /// Fails when the artifact holds no plan for the target, or when the KV
  /// cache cannot be allocated.
  static Expected<Session> create(std::shared_ptr<const artifact::Artifact> artifact,
                                  const SessionOptions &options = {});

  /// Appends `tokens` to the sequence and runs them. With `allLogits` the
  /// result holds one row of vocab scores per token, otherwise only the last
  /// token's row. Fails, leaving the session unchanged, when a token id lies
  /// outside the vocabulary or the sequence would outgrow the context.
  Expected<std::span<const float>> forward(std::span<const int32_t> tokens,
                                           bool allLogits = false);

  /// Called before every matmul step with the step's index in the plan and
  /// its input rows (rows x width floats): calibration collects activation
  /// statistics through it. Empty by default.
  using MatMulObserver = std::function<void(size_t step, const float *input,
                                            int64_t rows, int64_t width)>;
  void setMatMulObserver(MatMulObserver observer) { observer_ = std::move(observer); }

  /// Tokens processed so far (the position of the next token).
  int64_t position() const { return position_; }
  /// Forgets the sequence; the next forward() starts at position 0.
  void reset() { position_ = 0; }

  const artifact::Artifact &artifact() const { return *artifact_; }
  int threads() const;
  /// Whether the artifact's generated CPU code runs the steps.
  bool usesNativeCode() const { return native_ != nullptr; }
  const plan::ModelConfig &config() const { return artifact_->config(); }

private:
  Session(std::shared_ptr<const artifact::Artifact> artifact, const plan::KernelPlan *plan,
          const SessionOptions &options);
  void run(size_t index, const plan::Step &step, int64_t rows, bool allLogits);
  /// y = x * W^T for `rows` rows, on the chosen kernel path.
  void matmul(const float *x, int64_t rows, uint32_t weight, float *y);
  /// Several products of the same input (q/k/v, gate/up) as one parallel
  /// job: the threads meet once instead of once per weight.
  void matmuls(const float *x, int64_t rows, uint32_t count, const uint32_t *weights,
               float *const *outputs);
  /// One product prepared for the SIMD path (activations quantized where
  /// needed), split into units of work: one panel or kRowsPerUnit rows.
  static constexpr int64_t kRowsPerUnit = 16;
  struct MatmulJob {
    enum class Kind { Panels, Int8Rows, Float } kind;
    uint32_t weight;
    const float *x;
    int64_t rows;
    float *y;
    const kernels::simd::Int8Activations *quantized;
    int64_t units;
  };
  MatmulJob prepareMatmul(const float *x, int64_t rows, uint32_t weight, float *y,
                          kernels::simd::Int8Activations &quantized);
  /// Runs units [u0, u1) of a prepared product.
  void runMatmul(const MatmulJob &job, int64_t u0, int64_t u1);
  void attention(const plan::AttentionStep &s, int64_t rows);
  void attention(const float *q, const float *k, const float *v, uint32_t layer,
                 uint32_t heads, uint32_t kvHeads, uint32_t headDim, float *out);

  std::shared_ptr<const artifact::Artifact> artifact_;
  const plan::KernelPlan *plan_;
  std::vector<std::vector<float>> buffers_;
  std::vector<float> keys_, values_;   // [layers, context, kvWidth]
  std::vector<float> scratch_;
  std::vector<int32_t> tokens_, positions_;
  int64_t position_ = 0;
  MatMulObserver observer_;
  KernelPath kernels_;
  std::shared_ptr<threading::ThreadPool> pool_;
  std::shared_ptr<native::NativeModel> native_;
  std::vector<float *> bufferPointers_;
  bool int8Activations_ = false;
  std::vector<kernels::simd::Int8Activations> quantizedInputs_; // one per product of a group
  std::vector<MatmulJob> jobs_;
  /// With int8 activations on an AVX-512 VNNI machine: the packed weights
  /// repacked into row panels for the decode kernel, by tensor index (null
  /// for tensors the panel kernel does not take); shared by every session
  /// of the artifact.
  std::vector<std::shared_ptr<const kernels::simd::PanelWeights>> panels_;
  /// Repacks every matmul weight the panel kernel takes; false when memory
  /// runs out.
  bool packPanels();

  friend struct NativeKernels;
};

} // namespace lathe
