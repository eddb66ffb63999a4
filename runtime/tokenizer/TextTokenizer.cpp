#include "runtime/tokenizer/TextTokenizer.h"

namespace lathe {

Expected<std::vector<int32_t>> TextTokenizer::encode(std::string_view text,
                                                     bool addSpecialTokens) const {
  if (const HFTokenizer *t = hf())
    return t->encode(text, addSpecialTokens);
  return llama2c()->encode(text, addSpecialTokens);
}

std::string TextTokenizer::decode(std::span<const int32_t> ids) const {
  if (const HFTokenizer *t = hf())
    return t->decode(ids);
  return llama2c()->decode(ids);
}

std::string TextTokenizer::decodeSequence(std::span<const int32_t> prompt,
                                          std::span<const int32_t> generated) const {
  if (const HFTokenizer *t = hf()) {
    std::vector<int32_t> all(prompt.begin(), prompt.end());
    all.insert(all.end(), generated.begin(), generated.end());
    return t->decode(all, /*skipSpecialTokens=*/true);
  }
  std::string text = llama2c()->decode(prompt);
  int32_t prev = prompt.empty() ? -1 : prompt.back();
  for (int32_t token : generated) {
    text += llama2c()->decodePiece(prev, token);
    prev = token;
  }
  return text;
}

TextTokenizer::Stream::Stream(const TextTokenizer &tokenizer, std::span<const int32_t> prompt)
    : tokenizer_(tokenizer), ids_(prompt.begin(), prompt.end()) {
  if (const HFTokenizer *t = tokenizer_.hf())
    printed_ = t->decode(ids_, /*skipSpecialTokens=*/true).size();
}

std::string TextTokenizer::Stream::next(int32_t token) {
  if (const Tokenizer *t = tokenizer_.llama2c()) {
    std::string piece = t->decodePiece(ids_.empty() ? -1 : ids_.back(), token);
    ids_.push_back(token);
    return piece;
  }
  ids_.push_back(token);
  std::string text = tokenizer_.hf()->decode(ids_, /*skipSpecialTokens=*/true);
  if (text.ends_with("\xEF\xBF\xBD")) // U+FFFD: wait for the rest of the character
    return "";
  if (text.size() < printed_)
    return "";
  std::string piece = text.substr(printed_);
  printed_ = text.size();
  return piece;
}

std::vector<int32_t> TextTokenizer::stopTokens() const {
  std::vector<int32_t> stop;
  for (int32_t id : {eos(), bos()})
    if (id >= 0)
      stop.push_back(id);
  return stop;
}

int32_t TextTokenizer::bos() const { return hf() ? hf()->spec().bos : Tokenizer::kBos; }
int32_t TextTokenizer::eos() const { return hf() ? hf()->spec().eos : Tokenizer::kEos; }

size_t TextTokenizer::idCount() const {
  return hf() ? hf()->idCount() : llama2c()->vocabSize();
}

} // namespace lathe
