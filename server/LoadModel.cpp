#include "server/LoadModel.h"

#include "runtime/speculative/SpeculativeGeneration.h"
#include "runtime/speculative/SuffixIndex.h"
#include "runtime/support/MappedFile.h"
#include "runtime/tokenizer/OpenTokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fmt/format.h>

namespace lathe::server {

Expected<std::unique_ptr<ServedModel>> loadServedModel(const LoadOptions &options,
                                                       Metrics &metrics) {
  const std::string &path = options.artifactPath;
  artifact::LoadOptions load;
  load.memory = options.memory;
  load.parameters = options.parameters;
  auto artifact = artifact::Artifact::load(path, load);
  if (!artifact)
    return artifact.error();
  auto executable = backend::load(*artifact, options.execution(**artifact));
  if (!executable)
    return executable.error();
  // The scheduler runs such an artifact's prompts whole; a server asked for
  // layered prefill says it cannot rather than serve another policy.
  if (options.scheduler.prefill == serving::PrefillPolicy::Layered &&
      (*executable)->layerGroups().size() <= 1)
    return Error(serving::noLayerGroupsMessage(path, "--prefill"));
  auto carried = artifactTokenizer(**artifact, path);
  if (!carried)
    return carried.error();
  if (!carried->has_value())
    return Error(path + ": compiled without a tokenizer, which a server of text needs; "
                        "recompile with --tokenizer");
  TextTokenizer tokenizer = std::move(**carried);

  // The chat template: a file given, the artifact's, or the plain one.
  std::string source, sourceName;
  if (!options.chatTemplatePath.empty()) {
    auto file = readTextFile(options.chatTemplatePath);
    if (!file)
      return file.error();
    source = file.take();
    sourceName = options.chatTemplatePath;
  } else if (const HFTokenizer *hf = tokenizer.hf(); hf && !hf->spec().chatTemplate.empty()) {
    source = hf->spec().chatTemplate;
    sourceName = path + ": chat template";
  }
  std::shared_ptr<const serving::ChatTemplate> chat;
  if (!source.empty()) {
    auto parsed = serving::ChatTemplate::parse(source, sourceName);
    if (!parsed)
      return parsed.error();
    chat = std::make_shared<const serving::ChatTemplate>(parsed.take());
  }

  serving::SchedulerOptions scheduling = options.scheduler;
  std::shared_ptr<speculative::TreeDrafter> drafter;
  if (options.speculate) {
    auto shape = speculative::resolveTreeShape(**executable, *options.speculate);
    if (!shape)
      return Error("--speculate: " + shape.error().message());
    scheduling.speculate = shape.take();
    if (options.draftFiles.any()) {
      auto opened = speculative::openDrafter((*executable)->config().vocab, *scheduling.speculate,
                                             scheduling.drafting, options.draftFiles);
      if (!opened)
        return opened.error();
      drafter = opened.take();
      scheduling.drafter = drafter;
    }
  }
  auto scheduler = serving::Scheduler::create(*executable, scheduling);
  if (!scheduler)
    return scheduler.error();
  std::string name = options.name;
  if (name.empty())
    name = (*artifact)->config().name;
  if (name.empty())
    name = std::filesystem::path(path).stem().string();
  const plan::ModelConfig config = (*executable)->config();
  auto tokenText = [&](int32_t id) {
    const std::vector<int32_t> one{id};
    return id < 0 ? std::string() : tokenizer.decode(one);
  };
  nlohmann::json variables = {{"bos_token", tokenText(tokenizer.bos())},
                              {"eos_token", tokenText(tokenizer.eos())}};
  const bool own = chat != nullptr;
  if (!own) // the plain template lives as long as the program: nothing to free
    chat = std::shared_ptr<const serving::ChatTemplate>(&serving::ChatTemplate::plain(),
                                                        [](const serving::ChatTemplate *) {});
  const int64_t textsAtLoad = drafter ? drafter->history().added() : 0;
  auto model = std::unique_ptr<ServedModel>(
      new ServedModel{name, config, std::move(tokenizer), std::move(chat), own,
                      std::move(variables),
                      std::make_unique<Engine>(scheduler.take(), options.maxWaiting, metrics),
                      std::move(drafter), textsAtLoad});
  return model;
}

Expected<int64_t> saveDrafter(ServedModel &model, const LoadOptions &options) {
  // The engine's thread drafts with the drafter until it stops.
  model.engine.reset();
  if (!model.drafter)
    return int64_t{0};
  const speculative::SuffixIndex &history = model.drafter->history();
  // The texts finished since the load that the index still holds (past
  // its capacity it drops the oldest).
  const int64_t fresh = std::min<int64_t>(history.added() - model.textsAtLoad,
                                          static_cast<int64_t>(history.texts()));
  const auto held = history.contents();
  std::vector<std::vector<int32_t>> texts;
  for (size_t i = held.size() - static_cast<size_t>(fresh); i < held.size(); ++i)
    texts.emplace_back(held[i].begin(), held[i].end());
  if (Status s = speculative::keepDrafter(*model.drafter, options.draftFiles, texts); !s)
    return s.error();
  return options.draftFiles.history.empty() ? int64_t{0} : fresh;
}

} // namespace lathe::server
