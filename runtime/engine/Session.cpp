#include "runtime/engine/Session.h"

#include <fmt/format.h>

namespace lathe {

Status checkTokenIds(const plan::ModelConfig &config, std::span<const int32_t> tokens) {
  for (int32_t t : tokens)
    if (t < 0 || t >= config.vocab)
      return Error(fmt::format("token id {} is outside the vocabulary (0..{})", t,
                               config.vocab - 1));
  return Status::ok();
}

Expected<Session> Session::create(std::shared_ptr<const artifact::Artifact> artifact,
                                  const SessionOptions &options) {
  auto executable = backend::load(std::move(artifact), options);
  if (!executable)
    return executable.error();
  return create(executable.take());
}

Expected<Session> Session::create(std::shared_ptr<backend::Executable> executable) {
  auto kv = executable->createKVCache(executable->config().context);
  if (!kv)
    return kv.error();
  return Session(std::move(executable), std::shared_ptr<kv::PagedKVCache>(kv.take()));
}

Session::Session(std::shared_ptr<backend::Executable> executable,
                 std::shared_ptr<kv::PagedKVCache> kv)
    : executable_(std::move(executable)), kv_(std::move(kv)) {
  sequence_ = kv_->addSequence();
}

Status Session::prepare(std::span<const int32_t> tokens, backend::Batch::Logits logits) {
  if (tokens.empty())
    return Error("forward: no tokens to run");
  // Token ids and the context are checked by execute (validateBatch).
  batch_.clear();
  batch_.addChain(sequence_, tokens, static_cast<int32_t>(position()), logits);
  return Status::ok();
}

Expected<std::span<const float>> Session::forward(std::span<const int32_t> tokens,
                                                  bool allLogits) {
  if (Status s = prepare(tokens, allLogits ? backend::Batch::Logits::All
                                           : backend::Batch::Logits::Last);
      !s)
    return s.error();
  return executable_->execute(batch_, *kv_);
}

Expected<int32_t> Session::forwardGreedy(std::span<const int32_t> tokens) {
  if (Status s = prepare(tokens, backend::Batch::Logits::Last); !s)
    return s.error();
  Expected<std::vector<int32_t>> ids = executable_->executeGreedy(batch_, *kv_);
  if (!ids)
    return ids.error();
  return ids->front();
}

} // namespace lathe
