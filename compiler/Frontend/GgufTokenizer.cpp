#include "compiler/Frontend/GgufTokenizer.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

namespace lathe::frontend {

namespace {

// llama.cpp's token types (llama_token_type in GGUF's token_type array).
constexpr int kControl = 3, kUserDefined = 4;

// The Split regexes of Hugging Face's tokenizer.json for each family, as
// llama.cpp's llama-vocab.cpp quotes them ("original regex from
// tokenizer.json"); Lathe's matcher runs them as they are.
constexpr const char *kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char *kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

class Reader {
public:
  explicit Reader(const GgufFile &file) : file_(file) {}

  Error fail(const std::string &what) const { return Error(file_.path() + ": " + what); }

  Expected<const std::vector<std::string> *> strings(const char *key, bool required) const {
    const GgufValue *v = file_.find(key);
    if (!v) {
      if (required)
        return fail(std::string("metadata '") + key + "' is missing");
      return static_cast<const std::vector<std::string> *>(nullptr);
    }
    if (!v->isStringArray())
      return fail(std::string("metadata '") + key + "' is " + v->typeName() +
                  ", expected an array of strings");
    return &v->strings;
  }

  /// A number array of `size` entries (or null when absent and optional).
  Expected<const std::vector<double> *> numbers(const char *key, size_t size,
                                                bool required) const {
    const GgufValue *v = file_.find(key);
    if (!v) {
      if (required)
        return fail(std::string("metadata '") + key + "' is missing");
      return static_cast<const std::vector<double> *>(nullptr);
    }
    if (!v->isNumberArray())
      return fail(std::string("metadata '") + key + "' is " + v->typeName() +
                  ", expected an array of numbers");
    if (v->numbers.size() != size)
      return fail(std::string("metadata '") + key + "' has " +
                  std::to_string(v->numbers.size()) + " entries for " + std::to_string(size) +
                  " tokens");
    return &v->numbers;
  }

  /// A token id of the metadata, -1 when absent; an id outside the
  /// vocabulary is an error.
  Expected<int32_t> tokenId(const char *key, size_t vocab) const {
    Expected<std::optional<int64_t>> v = file_.integer(key);
    if (!v)
      return v.error();
    if (!*v)
      return -1;
    if (**v < 0 || static_cast<uint64_t>(**v) >= vocab)
      return fail(std::string("metadata '") + key + "' is " + std::to_string(**v) +
                  ", outside the vocabulary of " + std::to_string(vocab) + " tokens");
    return static_cast<int32_t>(**v);
  }

  Expected<bool> flag(const char *key, bool fallback) const {
    Expected<std::optional<bool>> v = file_.boolean(key);
    if (!v)
      return v.error();
    return v->value_or(fallback);
  }

  Expected<GgufTokenizer> sentencePiece(const std::vector<std::string> &tokens) const {
    Expected<const std::vector<double> *> scores =
        numbers("tokenizer.ggml.scores", tokens.size(), true);
    if (!scores)
      return scores.error();
    Expected<int32_t> bos = tokenId("tokenizer.ggml.bos_token_id", tokens.size());
    Expected<int32_t> eos = tokenId("tokenizer.ggml.eos_token_id", tokens.size());
    if (!bos || !eos)
      return bos ? eos.error() : bos.error();
    if ((*bos >= 0 && *bos != Tokenizer::kBos) || (*eos >= 0 && *eos != Tokenizer::kEos))
      return fail("SentencePiece BOS/EOS ids " + std::to_string(*bos) + "/" +
                  std::to_string(*eos) + ": Lathe's SentencePiece tokenizer has BOS 1 and EOS 2");
    Expected<bool> addBos = flag("tokenizer.ggml.add_bos_token", true);
    Expected<bool> addEos = flag("tokenizer.ggml.add_eos_token", false);
    Expected<bool> addSpace = flag("tokenizer.ggml.add_space_prefix", true);
    if (!addBos || !addEos || !addSpace)
      return !addBos ? addBos.error() : !addEos ? addEos.error() : addSpace.error();
    if (!*addBos || *addEos || !*addSpace)
      return fail("a SentencePiece tokenizer that does not add BOS, adds EOS or adds no "
                  "dummy space is not supported (Lathe's adds BOS and a space, never EOS)");
    Vocabulary vocab;
    vocab.pieces.reserve(tokens.size());
    for (size_t id = 0; id < tokens.size(); ++id) {
      std::string piece = tokens[id];
      // SentencePiece writes a space as U+2581; llama2.c's pieces hold spaces.
      for (size_t at = piece.find("\u2581"); at != std::string::npos; at = piece.find("\u2581", at))
        piece.replace(at, 3, " "), at += 1;
      if (id == size_t(Tokenizer::kBos) || id == size_t(Tokenizer::kEos))
        piece = "\n" + piece + "\n";
      vocab.maxTokenLength = std::max<uint32_t>(vocab.maxTokenLength, uint32_t(piece.size()));
      vocab.pieces.push_back(std::move(piece));
    }
    for (double s : **scores)
      vocab.scores.push_back(static_cast<float>(s));
    // Tokenizer::create checks the rest (byte tokens at 3..258, scores).
    if (Expected<Tokenizer> t = Tokenizer::create(vocab); !t)
      return fail(t.error().message());
    return GgufTokenizer(std::move(vocab));
  }

  Expected<GgufTokenizer> bytePairs(const std::vector<std::string> &tokens) const {
    HFTokenizerSpec spec;
    Expected<const std::vector<std::string> *> merges = strings("tokenizer.ggml.merges", true);
    if (!merges)
      return merges.error();
    Expected<const std::vector<double> *> types =
        numbers("tokenizer.ggml.token_type", tokens.size(), false);
    if (!types)
      return types.error();
    Expected<std::optional<std::string>> preName = file_.string("tokenizer.ggml.pre");
    if (!preName)
      return preName.error();
    const std::string pre = preName->value_or("default");

    bool addBosDefault = false;
    TokenizerStage byteLevel{"ByteLevel", {}, {0, 0}};
    if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") {
      spec.preTokenizers = {{"Split", {kLlama3Regex}, {}}, byteLevel};
      spec.ignoreMerges = true;
      addBosDefault = true;
    } else if (pre == "qwen2") {
      spec.normalizers = {{"NFC", {}, {}}};
      spec.preTokenizers = {{"Split", {kQwen2Regex}, {}}, byteLevel};
    } else if (pre == "gpt2" || pre == "gpt-2" || pre == "default") {
      spec.preTokenizers = {{"ByteLevel", {}, {0, 1}}};
    } else {
      return fail("pre-tokenizer '" + printableName(pre) + "' is not supported (Lathe knows llama-bpe, "
                  "llama3, qwen2, gpt2 and default)");
    }
    spec.decoders = {{"ByteLevel", {}, {}}};

    // Control and user-defined tokens are matched in the raw text before
    // BPE, as tokenizer.json's added_tokens are; like there, they are not
    // part of the BPE vocabulary.
    spec.vocab = tokens;
    for (size_t id = 0; types && id < tokens.size(); ++id) {
      const int type = static_cast<int>((**types)[id]);
      if (type != kControl && type != kUserDefined)
        continue;
      if (tokens[id].empty())
        return fail("token " + std::to_string(id) + " is an empty " +
                    (type == kControl ? "control" : "user-defined") + " token");
      AddedToken added;
      added.id = static_cast<int32_t>(id);
      added.content = tokens[id];
      added.special = type == kControl;
      spec.addedTokens.push_back(std::move(added));
      spec.vocab[id].clear();
    }
    std::unordered_map<std::string_view, int32_t> index;
    for (size_t id = 0; id < spec.vocab.size(); ++id)
      if (!spec.vocab[id].empty())
        index.emplace(spec.vocab[id], static_cast<int32_t>(id));
    spec.merges.reserve((*merges)->size());
    for (size_t rank = 0; rank < (*merges)->size(); ++rank) {
      const std::string &m = (**merges)[rank];
      // llama.cpp splits at the first space after the first character.
      const size_t space = m.find(' ', 1);
      auto a = space == std::string::npos ? index.end() : index.find(std::string_view(m).substr(0, space));
      auto b = space == std::string::npos ? index.end() : index.find(std::string_view(m).substr(space + 1));
      if (a == index.end() || b == index.end())
        return fail("merge " + std::to_string(rank) + " '" + printableName(m) +
                    "' is not two tokens of the vocabulary");
      spec.merges.emplace_back(a->second, b->second);
    }
    Expected<int32_t> bos = tokenId("tokenizer.ggml.bos_token_id", tokens.size());
    Expected<int32_t> eos = tokenId("tokenizer.ggml.eos_token_id", tokens.size());
    Expected<int32_t> unk = tokenId("tokenizer.ggml.unknown_token_id", tokens.size());
    if (!bos || !eos || !unk)
      return !bos ? bos.error() : !eos ? eos.error() : unk.error();
    spec.bos = *bos, spec.eos = *eos, spec.unk = *unk;
    Expected<bool> addBos = flag("tokenizer.ggml.add_bos_token", addBosDefault);
    Expected<bool> addEos = flag("tokenizer.ggml.add_eos_token", false);
    if (!addBos || !addEos)
      return addBos ? addEos.error() : addBos.error();
    if (*addBos && spec.bos >= 0)
      spec.prefixIds = {spec.bos};
    if (*addEos && spec.eos >= 0)
      spec.suffixIds = {spec.eos};
    Expected<std::optional<std::string>> chatTemplate = file_.string("tokenizer.chat_template");
    if (!chatTemplate)
      return chatTemplate.error();
    spec.chatTemplate = chatTemplate->value_or("");
    return GgufTokenizer(std::move(spec));
  }

private:
  const GgufFile &file_;
};

} // namespace

Expected<std::optional<GgufTokenizer>> readGgufTokenizer(const GgufFile &file) {
  Expected<std::optional<std::string>> model = file.string("tokenizer.ggml.model");
  if (!model)
    return model.error();
  if (!*model)
    return std::optional<GgufTokenizer>();
  Reader r(file);
  Expected<const std::vector<std::string> *> tokens = r.strings("tokenizer.ggml.tokens", true);
  if (!tokens)
    return tokens.error();
  if ((*tokens)->empty() || (*tokens)->size() > size_t(INT32_MAX))
    return r.fail("tokenizer.ggml.tokens holds " + std::to_string((*tokens)->size()) + " tokens");
  Expected<GgufTokenizer> t = **model == "llama" ? r.sentencePiece(**tokens)
                              : **model == "gpt2"
                                  ? r.bytePairs(**tokens)
                                  : Expected<GgufTokenizer>(r.fail(
                                        "tokenizer model '" + printableName(**model) +
                                        "' is not supported (Lathe reads 'llama', "
                                        "SentencePiece, and 'gpt2', byte-level BPE)"));
  if (!t)
    return t.error();
  return std::optional<GgufTokenizer>(t.take());
}

Expected<TextTokenizer> openGgufTokenizer(const std::string &path) {
  Expected<GgufFile> file = GgufFile::open(path);
  if (!file)
    return file.error();
  Expected<std::optional<GgufTokenizer>> t = readGgufTokenizer(*file);
  if (!t)
    return t.error();
  if (!*t)
    return Error(path + ": the GGUF file holds no tokenizer (no tokenizer.ggml.model)");
  if (Vocabulary *vocab = std::get_if<Vocabulary>(&**t)) {
    Expected<Tokenizer> tok = Tokenizer::create(std::move(*vocab));
    if (!tok)
      return Error(path + ": " + tok.error().message());
    return TextTokenizer(tok.take());
  }
  Expected<HFTokenizer> tok = HFTokenizer::create(std::get<HFTokenizerSpec>(**t), path);
  if (!tok)
    return tok.error();
  return TextTokenizer(tok.take());
}

} // namespace lathe::frontend
