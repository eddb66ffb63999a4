#include "runtime/backend/Executable.h"

#include "runtime/backends/Backends.h"
#include "runtime/sampling/Sampler.h"

#include <fmt/format.h>

namespace lathe::backend {

Expected<std::unique_ptr<kv::PagedKVCache>> Executable::createKVCache(int64_t tokens) {
  const kv::KVLayout probe = kvLayout(1);
  const int64_t blocks = std::max<int64_t>(1, (tokens + probe.blockSize - 1) / probe.blockSize);
  return kv::PagedKVCache::create(device(), kvLayout(blocks), config().context, kvDeviceCodec());
}

std::vector<int32_t> argmaxRows(std::span<const float> logits, int64_t vocab) {
  std::vector<int32_t> ids;
  for (size_t at = 0; at + size_t(vocab) <= logits.size(); at += size_t(vocab))
    ids.push_back(argmax(logits.subspan(at, size_t(vocab))));
  return ids;
}

Expected<std::vector<int32_t>> Executable::executeGreedy(const Batch &batch,
                                                         kv::PagedKVCache &kv) {
  Expected<std::span<const float>> logits = execute(batch, kv);
  if (!logits)
    return logits.error();
  return argmaxRows(*logits, config().vocab);
}

Expected<Executable::GreedyScores> Executable::executeGreedyScored(const Batch &batch,
                                                                   kv::PagedKVCache &kv) {
  Expected<std::span<const float>> logits = execute(batch, kv);
  if (!logits)
    return logits.error();
  return GreedyScores{argmaxRows(*logits, config().vocab), *logits};
}

const std::vector<plan::LayerGroup> &Executable::layerGroups() const {
  return artifact().schedule(options().target)->layerGroups;
}

Status Executable::checkLayerGroup(const Batch &batch, const kv::PagedKVCache &kv,
                                   size_t group, const LayerCarry *carry) const {
  const size_t groups = std::max<size_t>(1, layerGroups().size());
  if (group >= groups)
    return Error(fmt::format("no layer group {}: the plan has {}", group, groups));
  if (group > 0 && (!carry || carry->batch != &batch || carry->kv != &kv || carry->next != group))
    return Error(fmt::format("layer group {} runs after group {} of the same batch and KV cache",
                             group, group - 1));
  return Status::ok();
}

Expected<std::span<const float>> Executable::executeLayers(const Batch &batch,
                                                           kv::PagedKVCache &kv, size_t group,
                                                           std::unique_ptr<LayerCarry> &carry) {
  if (Status s = checkLayerGroup(batch, kv, group, carry.get()); !s)
    return s.error();
  if (layerGroups().empty()) {
    carry.reset();
    return execute(batch, kv);
  }
  return Error(fmt::format("the {} backend cannot run a step one layer group at a time",
                           options().target));
}

kv::KVLayout kvLayoutOf(const plan::KernelPlan &plan, int64_t blocks) {
  kv::KVLayout layout;
  layout.layers = plan.kvLayers;
  layout.width = static_cast<int64_t>(plan.kvWidth);
  layout.format = plan.kvFormat;
  // A KIVI key group is one block: it is quantized once complete.
  layout.blockSize = layout.format.kivi() ? layout.format.keyGroup : 16;
  layout.blocks = blocks;
  return layout;
}

bool fitsPlan(const kv::KVLayout &layout, const plan::KernelPlan &plan) {
  const kv::KVLayout expected = kvLayoutOf(plan, layout.blocks);
  return layout.layers == expected.layers && layout.width == expected.width &&
         layout.blockSize == expected.blockSize && layout.format == expected.format;
}

Expected<std::shared_ptr<Executable>> load(std::shared_ptr<const artifact::Artifact> artifact,
                                           const ExecutionOptions &options) {
  const std::string &target = options.target;
  if (!artifact->schedule(target))
    return Error(fmt::format("{}: compiled for no '{}' target; recompile with "
                             "lathe-compile --target={}",
                             artifact->path(), target, target));
  if (options.threads < 0 || options.threads > 1024)
    return Error(fmt::format("--threads must be between 1 and 1024 (0: every core), got {}",
                             options.threads));
  return backends::loadExecutable(std::move(artifact), options);
}

} // namespace lathe::backend
