// What lathe-serve serves: a loaded artifact's engine, its tokenizer and chat
// template, and the name clients call it by.
#pragma once

#include "runtime/serving/ChatTemplate.h"
#include "runtime/speculative/TreeDrafter.h"
#include "runtime/tokenizer/TextTokenizer.h"
#include "server/Engine.h"

#include <memory>
#include <string>

namespace lathe::server {

struct ServedModel {
  std::string name;
  plan::ModelConfig config;
  TextTokenizer tokenizer;
  /// The model's own template (tokenizer_config.json's, carried in the
  /// artifact), or ChatTemplate::plain() when it has none.
  std::shared_ptr<const serving::ChatTemplate> chatTemplate;
  bool ownTemplate = false;
  /// The template's variables besides the messages: bos_token and
  /// eos_token, the tokenizer's texts of its BOS and EOS ("" where none).
  nlohmann::json templateVariables;
  std::unique_ptr<Engine> engine;
  /// Speculating with files to keep (LoadOptions::draftHistory,
  /// draftState): the drafter the engine's scheduler drafts with, and its
  /// count of texts added when the files were read.
  std::shared_ptr<speculative::TreeDrafter> drafter;
  int64_t textsAtLoad = 0;
};

} // namespace lathe::server
