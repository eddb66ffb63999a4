#include "runtime/tokenizer/HFTokenizerJson.h"

#include "runtime/support/MappedFile.h"

#include <cctype>
#include <filesystem>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unordered_map>

namespace lathe {
namespace {

using nlohmann::json;

// The runtime builds without exceptions: every access below checks the
// type first and never calls a throwing accessor on the wrong kind.
class Reader {
public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  Error fail(std::string_view what) const { return Error(fmt::format("{}: {}", source_, what)); }

  static const json *field(const json &j, const char *key) {
    if (!j.is_object())
      return nullptr;
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  static std::string str(const json &j, const char *key, std::string fallback = "") {
    const json *f = field(j, key);
    return f && f->is_string() ? f->get_ref<const std::string &>() : fallback;
  }
  static bool flag(const json &j, const char *key, bool fallback = false) {
    const json *f = field(j, key);
    return f && f->is_boolean() ? f->get<bool>() : fallback;
  }
  static int64_t integer(const json &j, const char *key, int64_t fallback) {
    const json *f = field(j, key);
    return f && f->is_number_integer() ? f->get<int64_t>() : fallback;
  }
  // A Replace/Split pattern: {"String": s} or {"Regex": r}.
  static bool pattern(const json &j, std::string &text, bool &isRegex) {
    const json *p = field(j, "pattern");
    if (!p)
      return false;
    if (const json *s = field(*p, "String"); s && s->is_string()) {
      text = s->get<std::string>(), isRegex = false;
      return true;
    }
    if (const json *r = field(*p, "Regex"); r && r->is_string()) {
      text = r->get<std::string>(), isRegex = true;
      return true;
    }
    return false;
  }
  // A literal string as a regex that matches exactly it.
  static std::string escapeRegex(const std::string &s) {
    std::string out;
    for (char c : s) {
      if (std::ispunct(static_cast<unsigned char>(c)))
        out += '\\';
      out += c;
    }
    return out;
  }

  // Flattens nested Sequence stages of one pipeline.
  template <typename F>
  Status each(const json &j, const char *listKey, const F &visit) const {
    if (!j.is_object())
      return fail("a pipeline stage is not an object");
    if (str(j, "type") == "Sequence") {
      const json *list = field(j, listKey);
      if (!list || !list->is_array())
        return fail(fmt::format("Sequence without '{}'", listKey));
      for (const json &item : *list)
        if (Status s = each(item, listKey, visit); !s)
          return s;
      return Status::ok();
    }
    return visit(j);
  }

  Status normalizer(const json &j, std::vector<TokenizerStage> &out) const {
    std::string type = str(j, "type");
    if (type == "Prepend" && field(j, "prepend") && field(j, "prepend")->is_string()) {
      out.push_back({type, {str(j, "prepend")}, {}});
    } else if (type == "Replace") {
      std::string text;
      bool isRegex;
      if (!pattern(j, text, isRegex) || isRegex || !field(j, "content"))
        return fail("normalizer Replace: only a String pattern with a content is supported");
      out.push_back({type, {text, str(j, "content")}, {}});
    } else if (type == "NFC") {
      out.push_back({type, {}, {}});
    } else {
      return fail(fmt::format("unsupported normalizer '{}' (supported: Prepend, Replace, NFC)", type));
    }
    return Status::ok();
  }

  static std::string prependScheme(const json &j) {
    if (std::string s = str(j, "prepend_scheme"); !s.empty())
      return s;
    // Older files say add_prefix_space instead.
    return flag(j, "add_prefix_space", true) ? "always" : "never";
  }

  Status preTokenizer(const json &j, std::vector<TokenizerStage> &out) const {
    std::string type = str(j, "type");
    if (type == "Split") {
      std::string text;
      bool isRegex;
      if (!pattern(j, text, isRegex))
        return fail("pre-tokenizer Split without a pattern");
      if (str(j, "behavior") != "Isolated" || flag(j, "invert"))
        return fail(fmt::format("pre-tokenizer Split with behavior '{}'{}: only Isolated is supported",
                                str(j, "behavior"), flag(j, "invert") ? " inverted" : ""));
      out.push_back({type, {isRegex ? text : escapeRegex(text)}, {}});
    } else if (type == "ByteLevel") {
      out.push_back({type, {}, {flag(j, "add_prefix_space"), flag(j, "use_regex", true)}});
    } else if (type == "Metaspace") {
      out.push_back({type, {str(j, "replacement", "\u2581"), prependScheme(j)},
                     {flag(j, "split", true)}});
    } else {
      return fail(fmt::format("unsupported pre-tokenizer '{}' (supported: Split, ByteLevel, "
                              "Metaspace)", type));
    }
    return Status::ok();
  }

  Status decoder(const json &j, std::vector<TokenizerStage> &out) const {
    std::string type = str(j, "type");
    if (type == "ByteLevel" || type == "ByteFallback" || type == "Fuse") {
      out.push_back({type, {}, {}});
    } else if (type == "Replace") {
      std::string text;
      bool isRegex;
      if (!pattern(j, text, isRegex) || isRegex)
        return fail("decoder Replace: only a String pattern is supported");
      out.push_back({type, {text, str(j, "content")}, {}});
    } else if (type == "Strip") {
      out.push_back({type, {str(j, "content", " ")},
                     {integer(j, "start", 0), integer(j, "stop", 0)}});
    } else if (type == "Metaspace") {
      out.push_back({type, {str(j, "replacement", "\u2581"), prependScheme(j)}, {}});
    } else {
      return fail(fmt::format("unsupported decoder '{}' (supported: ByteLevel, ByteFallback, "
                              "Fuse, Replace, Strip, Metaspace)", type));
    }
    return Status::ok();
  }

  // The post-processor's single-sequence template: special tokens before
  // and after the sequence.
  Status postProcessor(const json &j, HFTokenizerSpec &spec, bool &hasTemplate) const {
    std::string type = str(j, "type");
    if (type == "ByteLevel")
      return Status::ok(); // only moves offsets
    if (type != "TemplateProcessing")
      return fail(fmt::format("unsupported post-processor '{}' (supported: TemplateProcessing, "
                              "ByteLevel)", type));
    hasTemplate = true;
    const json *single = field(j, "single");
    const json *specials = field(j, "special_tokens");
    if (!single || !single->is_array())
      return fail("TemplateProcessing without a 'single' template");
    bool afterSequence = false;
    for (const json &item : *single) {
      if (field(item, "Sequence")) {
        afterSequence = true;
        continue;
      }
      const json *special = field(item, "SpecialToken");
      std::string name = special ? str(*special, "id") : "";
      const json *entry = specials ? field(*specials, name.c_str()) : nullptr;
      const json *ids = entry ? field(*entry, "ids") : nullptr;
      if (!ids || !ids->is_array())
        return fail(fmt::format("TemplateProcessing names special token '{}' without ids", name));
      for (const json &id : *ids) {
        if (!id.is_number_integer())
          return fail(fmt::format("special token '{}' has a non-integer id", name));
        (afterSequence ? spec.suffixIds : spec.prefixIds).push_back(id.get<int32_t>());
      }
    }
    return Status::ok();
  }

  Status model(const json &m, HFTokenizerSpec &spec) const {
    if (str(m, "type") != "BPE")
      return fail(fmt::format("unsupported model type '{}' (Lathe reads BPE tokenizers)",
                              str(m, "type", "?")));
    if (field(m, "dropout"))
      return fail("BPE dropout is not supported");
    if (!str(m, "continuing_subword_prefix").empty() || !str(m, "end_of_word_suffix").empty())
      return fail("BPE continuing_subword_prefix / end_of_word_suffix are not supported");
    const json *vocab = field(m, "vocab");
    if (!vocab || !vocab->is_object())
      return fail("model has no vocab");
    for (auto it = vocab->begin(); it != vocab->end(); ++it) {
      if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
          it.value().get<int64_t>() >= (1 << 24))
        return fail(fmt::format("vocab entry '{}' has no valid id", it.key()));
      size_t id = it.value().get<size_t>();
      if (spec.vocab.size() <= id)
        spec.vocab.resize(id + 1);
      if (it.key().empty())
        return fail(fmt::format("vocab id {} is the empty string", id));
      spec.vocab[id] = it.key();
    }
    std::unordered_map<std::string_view, int32_t> index;
    for (size_t i = 0; i < spec.vocab.size(); ++i)
      if (!spec.vocab[i].empty())
        index.emplace(spec.vocab[i], static_cast<int32_t>(i));
    const json *merges = field(m, "merges");
    if (merges && !merges->is_array())
      return fail("model merges is not a list");
    for (size_t rank = 0; merges && rank < merges->size(); ++rank) {
      const json &entry = (*merges)[rank];
      std::string a, b;
      if (entry.is_string()) { // "a b"
        const std::string &s = entry.get_ref<const std::string &>();
        size_t space = s.find(' ');
        if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
          return fail(fmt::format("merge {} '{}' is not two tokens", rank, s));
        a = s.substr(0, space), b = s.substr(space + 1);
      } else if (entry.is_array() && entry.size() == 2 && entry[0].is_string() &&
                 entry[1].is_string()) { // ["a", "b"]
        a = entry[0].get<std::string>(), b = entry[1].get<std::string>();
      } else {
        return fail(fmt::format("merge {} is neither \"a b\" nor [\"a\", \"b\"]", rank));
      }
      auto ia = index.find(a), ib = index.find(b);
      if (ia == index.end() || ib == index.end())
        return fail(fmt::format("merge {} ('{}' '{}') uses a token not in the vocabulary", rank, a, b));
      spec.merges.emplace_back(ia->second, ib->second);
    }
    spec.byteFallback = flag(m, "byte_fallback");
    spec.fuseUnk = flag(m, "fuse_unk");
    spec.ignoreMerges = flag(m, "ignore_merges");
    if (std::string unk = str(m, "unk_token"); !unk.empty()) {
      auto it = index.find(unk);
      if (it == index.end())
        return fail(fmt::format("unk_token '{}' is not in the vocabulary", unk));
      spec.unk = it->second;
    }
    return Status::ok();
  }

  Status addedTokens(const json &list, HFTokenizerSpec &spec) const {
    if (!list.is_array())
      return fail("added_tokens is not a list");
    for (const json &t : list) {
      AddedToken a;
      int64_t id = integer(t, "id", -1);
      a.content = str(t, "content");
      if (id < 0 || id >= (1 << 24) || a.content.empty())
        return fail("an added token without a valid id and content");
      a.id = static_cast<int32_t>(id);
      a.special = flag(t, "special");
      a.lstrip = flag(t, "lstrip");
      a.rstrip = flag(t, "rstrip");
      a.singleWord = flag(t, "single_word");
      // A normalized added token is matched in the normalized text; without
      // a normalizer that is the raw text, which is all Lathe matches on.
      if (flag(t, "normalized") && !spec.normalizers.empty())
        return fail(fmt::format("added token '{}' is matched after normalization, which is "
                                "not supported", a.content));
      spec.addedTokens.push_back(std::move(a));
    }
    return Status::ok();
  }

  // bos_token / eos_token of tokenizer_config.json: a string or {"content": ...}.
  int32_t specialId(const json &config, const char *key, const HFTokenizerSpec &spec) const {
    const json *f = field(config, key);
    std::string name = !f ? "" : f->is_string() ? f->get<std::string>() : str(*f, "content");
    if (name.empty())
      return -1;
    for (const AddedToken &a : spec.addedTokens)
      if (a.content == name)
        return a.id;
    for (size_t i = 0; i < spec.vocab.size(); ++i)
      if (spec.vocab[i] == name)
        return static_cast<int32_t>(i);
    return -1;
  }

  // chat_template: a Jinja string, or a list of {"name", "template"} of
  // which the one named "default" is the chat template.
  Expected<std::string> chatTemplate(const json &config) const {
    const json *f = field(config, "chat_template");
    if (!f || f->is_null())
      return std::string();
    if (f->is_string())
      return f->get<std::string>();
    if (f->is_array())
      for (const json &t : *f)
        if (t.is_object() && str(t, "name") == "default" && t.contains("template") &&
            t["template"].is_string())
          return t["template"].get<std::string>();
    return fail("tokenizer_config.json: chat_template is neither a string nor a list "
                "with a template named \"default\"");
  }

private:
  std::string source_;
};

} // namespace

Expected<HFTokenizerSpec> parseHFTokenizer(std::string_view tokenizerJson,
                                           std::string_view configJson,
                                           const std::string &source) {
  Reader r(source);
  json j = json::parse(tokenizerJson.begin(), tokenizerJson.end(), nullptr,
                       /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return r.fail("not a JSON object (a Hugging Face tokenizer.json)");
  const json *model = Reader::field(j, "model");
  if (!model)
    return r.fail("no 'model' (a Hugging Face tokenizer.json has one)");
  HFTokenizerSpec spec;
  if (Status s = r.model(*model, spec); !s)
    return s.error();
  if (const json *n = Reader::field(j, "normalizer"))
    if (Status s = r.each(*n, "normalizers", [&](const json &x) { return r.normalizer(x, spec.normalizers); }); !s)
      return s.error();
  if (const json *p = Reader::field(j, "pre_tokenizer"))
    if (Status s = r.each(*p, "pretokenizers", [&](const json &x) { return r.preTokenizer(x, spec.preTokenizers); }); !s)
      return s.error();
  if (const json *d = Reader::field(j, "decoder"))
    if (Status s = r.each(*d, "decoders", [&](const json &x) { return r.decoder(x, spec.decoders); }); !s)
      return s.error();
  if (const json *a = Reader::field(j, "added_tokens"))
    if (Status s = r.addedTokens(*a, spec); !s)
      return s.error();
  bool hasTemplate = false;
  if (const json *p = Reader::field(j, "post_processor"))
    if (Status s = r.each(*p, "processors", [&](const json &x) { return r.postProcessor(x, spec, hasTemplate); }); !s)
      return s.error();

  json config = json::object();
  if (!configJson.empty()) {
    config = json::parse(configJson.begin(), configJson.end(), nullptr, false);
    if (config.is_discarded() || !config.is_object())
      return r.fail("tokenizer_config.json is not a JSON object");
  }
  spec.bos = r.specialId(config, "bos_token", spec);
  spec.eos = r.specialId(config, "eos_token", spec);
  if (Expected<std::string> t = r.chatTemplate(config); t)
    spec.chatTemplate = t.take();
  else
    return t.error();
  // Without a template, tokenizer_config.json says whether BOS/EOS go
  // around the text (what transformers' slow Llama tokenizer does).
  if (!hasTemplate) {
    if (Reader::flag(config, "add_bos_token") && spec.bos >= 0)
      spec.prefixIds = {spec.bos};
    if (Reader::flag(config, "add_eos_token") && spec.eos >= 0)
      spec.suffixIds = {spec.eos};
  }
  return spec;
}

Expected<HFTokenizerSpec> loadHFTokenizer(const std::string &path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path file = fs::is_directory(path, ec) ? fs::path(path) / "tokenizer.json" : fs::path(path);
  auto read = [](const fs::path &p) -> Expected<std::string> {
    Expected<std::shared_ptr<MappedFile>> f = MappedFile::open(p.string());
    if (!f)
      return f.error();
    auto bytes = (*f)->bytes();
    return std::string(reinterpret_cast<const char *>(bytes.data()), bytes.size());
  };
  Expected<std::string> text = read(file);
  if (!text)
    return text.error();
  std::string config;
  fs::path configPath = file.parent_path() / "tokenizer_config.json";
  if (fs::exists(configPath, ec)) {
    Expected<std::string> c = read(configPath);
    if (!c)
      return c.error();
    config = c.take();
  }
  return parseHFTokenizer(*text, config, file.string());
}

} // namespace lathe
