// A session is a thin handle: one sequence over a loaded executable (any
// backend, runtime/backend/Executable.h) and a KV cache. forward() runs a
// step over any number of new tokens of the sequence (a prefill is one step
// over the whole prompt, a decode step one token) and returns their logits.
// Several sequences share one executable and one cache through the batch
// form directly (runtime/engine/Generation.h, generateMany).
#pragma once

#include "runtime/backend/Executable.h"
#include "runtime/support/Expected.h"

#include <cstdint>
#include <memory>
#include <span>

namespace lathe {

using backend::KernelPath;
using SessionOptions = backend::ExecutionOptions;

/// Token ids must index the vocabulary: the one check of every id that
/// reaches the kernels (the embedding lookup trusts it).
Status checkTokenIds(const plan::ModelConfig &config, std::span<const int32_t> tokens);

class Session {
public:
  /// Loads the artifact's plan for `options.target` and gives the session a
  /// KV cache for one full context. Fails when the artifact holds no plan
  /// for the target or the cache cannot be allocated.
  static Expected<Session> create(std::shared_ptr<const artifact::Artifact> artifact,
                                  const SessionOptions &options = {});
  /// A session over an executable already loaded (shared with others).
  static Expected<Session> create(std::shared_ptr<backend::Executable> executable);

  /// Appends `tokens` to the sequence and runs them. With `allLogits` the
  /// result holds one row of vocab scores per token, otherwise only the last
  /// token's row. Fails, leaving the session unchanged, when a token id lies
  /// outside the vocabulary or the sequence would outgrow the context.
  Expected<std::span<const float>> forward(std::span<const int32_t> tokens,
                                           bool allLogits = false);
  /// forward() of the last token's row, returning only its argmax (the
  /// lowest id on ties; Executable::executeGreedy): greedy decoding, whose
  /// logits a GPU then keeps.
  Expected<int32_t> forwardGreedy(std::span<const int32_t> tokens);

  /// Calibration's hook (backend::MatMulObserver); fails where the
  /// executable cannot call it.
  Status setMatMulObserver(backend::MatMulObserver observer) {
    return executable_->setMatMulObserver(std::move(observer));
  }

  /// Tokens processed so far (the position of the next token).
  int64_t position() const { return kv_->length(sequence_); }
  /// Forgets the sequence; the next forward() starts at position 0.
  void reset() { kv_->truncate(sequence_, 0); }

  const artifact::Artifact &artifact() const { return executable_->artifact(); }
  const plan::ModelConfig &config() const { return executable_->config(); }
  backend::Executable &executable() { return *executable_; }
  kv::PagedKVCache &kvCache() { return *kv_; }
  backend::SequenceId sequence() const { return sequence_; }
  int threads() const { return executable_->threads(); }
  /// Whether the artifact's generated code runs the steps.
  bool usesNativeCode() const { return executable_->usesNativeCode(); }

private:
  Session(std::shared_ptr<backend::Executable> executable,
          std::shared_ptr<kv::PagedKVCache> kv);
  std::shared_ptr<backend::Executable> executable_;
  std::shared_ptr<kv::PagedKVCache> kv_;
  backend::SequenceId sequence_ = 0;
  backend::Batch batch_;
  /// batch_ = `tokens` appended to the sequence, with `logits`; fails on
  /// no tokens.
  Status prepare(std::span<const int32_t> tokens, backend::Batch::Logits logits);
};

} // namespace lathe
