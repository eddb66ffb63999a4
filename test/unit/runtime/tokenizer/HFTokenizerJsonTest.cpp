#include "runtime/tokenizer/HFTokenizerJson.h"

#include <gtest/gtest.h>

namespace lathe {
namespace {

// A small tokenizer.json in the shape of Llama 2's, with {MODEL},
// {NORMALIZER} and {POST} to vary.
std::string llamaLike(std::string model = "", std::string normalizer = "", std::string post = "") {
  if (model.empty())
    model = R"({"type": "BPE", "dropout": null, "unk_token": "<unk>", "byte_fallback": true,
               "fuse_unk": true, "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "a": 3, "b": 4, "ab": 5},
               "merges": ["a b"]})";
  if (normalizer.empty())
    normalizer = R"({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                    {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]})";
  if (post.empty())
    post = R"({"type": "TemplateProcessing",
               "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                          {"Sequence": {"id": "A", "type_id": 0}},
                          {"SpecialToken": {"id": "</s>", "type_id": 0}}],
               "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                                  "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}})";
  return R"({"version": "1.0", "added_tokens": [
      {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false,
       "normalized": false, "special": true}],
    "normalizer": )" + normalizer + R"(, "pre_tokenizer": null, "post_processor": )" + post +
         R"(, "decoder": {"type": "Sequence", "decoders": [{"type": "Fuse"},
              {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": )" + model + "}";
}

std::string error(std::string_view json, std::string_view config = "") {
  Expected<HFTokenizerSpec> spec = parseHFTokenizer(json, config, "tok.json");
  return spec ? std::string() : spec.error().message();
}

TEST(HFTokenizerJson, ReadsModelStagesAndTemplate) {
  Expected<HFTokenizerSpec> spec = parseHFTokenizer(
      llamaLike(), R"({"bos_token": "<s>", "eos_token": {"content": "</s>"}})", "tok.json");
  ASSERT_TRUE(spec) << spec.error().message();
  EXPECT_EQ(spec->vocab, (std::vector<std::string>{"<unk>", "<s>", "</s>", "a", "b", "ab"}));
  EXPECT_EQ(spec->merges, (std::vector<std::pair<int32_t, int32_t>>{{3, 4}}));
  EXPECT_TRUE(spec->byteFallback);
  EXPECT_TRUE(spec->fuseUnk);
  EXPECT_EQ(spec->unk, 0);
  ASSERT_EQ(spec->normalizers.size(), 2u);
  EXPECT_EQ(spec->normalizers[1], (TokenizerStage{"Replace", {" ", "\u2581"}, {}}));
  EXPECT_EQ(spec->decoders[1], (TokenizerStage{"Strip", {" "}, {1, 0}}));
  EXPECT_EQ(spec->prefixIds, (std::vector<int32_t>{1}));
  EXPECT_EQ(spec->suffixIds, (std::vector<int32_t>{2}));
  EXPECT_EQ(spec->bos, 1);
  EXPECT_EQ(spec->eos, 2);
  ASSERT_EQ(spec->addedTokens.size(), 1u);
  EXPECT_TRUE(spec->addedTokens[0].special);
}

TEST(HFTokenizerJson, ConfigAddsBosWhereThereIsNoTemplate) {
  std::string json = llamaLike("", "", R"({"type": "ByteLevel", "trim_offsets": false})");
  Expected<HFTokenizerSpec> spec =
      parseHFTokenizer(json, R"({"add_bos_token": true, "bos_token": "<s>"})", "tok.json");
  ASSERT_TRUE(spec) << spec.error().message();
  EXPECT_EQ(spec->prefixIds, (std::vector<int32_t>{1}));
  EXPECT_TRUE(spec->suffixIds.empty());
}

TEST(HFTokenizerJson, ReadsByteLevelMergesAsPairs) {
  std::string model = R"({"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
                          "merges": [["a", "b"]], "ignore_merges": true})";
  std::string json = R"({"model": )" + model + R"(, "pre_tokenizer": {"type": "Sequence",
      "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\p{L}+"}, "behavior": "Isolated",
                         "invert": false},
                        {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]},
      "normalizer": {"type": "NFC"}})";
  Expected<HFTokenizerSpec> spec = parseHFTokenizer(json, "", "tok.json");
  ASSERT_TRUE(spec) << spec.error().message();
  EXPECT_EQ(spec->merges, (std::vector<std::pair<int32_t, int32_t>>{{0, 1}}));
  EXPECT_TRUE(spec->ignoreMerges);
  EXPECT_EQ(spec->preTokenizers[0], (TokenizerStage{"Split", {"\\p{L}+"}, {}}));
  EXPECT_EQ(spec->preTokenizers[1], (TokenizerStage{"ByteLevel", {}, {0, 0}}));
  EXPECT_EQ(spec->normalizers[0].type, "NFC");
  EXPECT_EQ(spec->bos, -1);
}

TEST(HFTokenizerJson, RefusesWhatItCannotRunWithOneLine) {
  EXPECT_EQ(error("not json"), "tok.json: not a JSON object (a Hugging Face tokenizer.json)");
  EXPECT_EQ(error("{}"), "tok.json: no 'model' (a Hugging Face tokenizer.json has one)");
  EXPECT_EQ(error(llamaLike(R"({"type": "Unigram", "vocab": []})")),
            "tok.json: unsupported model type 'Unigram' (Lathe reads BPE tokenizers)");
  EXPECT_EQ(error(llamaLike("", R"({"type": "Lowercase"})")),
            "tok.json: unsupported normalizer 'Lowercase' (supported: Prepend, Replace, NFC)");
  EXPECT_EQ(error(llamaLike(R"({"type": "BPE", "vocab": {"a": 0}, "merges": ["a c"]})")),
            "tok.json: merge 0 ('a' 'c') uses a token not in the vocabulary");
  EXPECT_EQ(error(llamaLike(R"({"type": "BPE", "vocab": {"a": 0}, "merges": ["abc"]})")),
            "tok.json: merge 0 'abc' is not two tokens");
  EXPECT_EQ(error(llamaLike("", "", R"({"type": "RobertaProcessing"})")),
            "tok.json: unsupported post-processor 'RobertaProcessing' (supported: "
            "TemplateProcessing, ByteLevel)");
  EXPECT_EQ(error(llamaLike(R"({"type": "BPE", "vocab": {"a": -1}})")),
            "tok.json: vocab entry 'a' has no valid id");
  EXPECT_EQ(error(llamaLike(), "[1]"), "tok.json: tokenizer_config.json is not a JSON object");
  std::string split = R"({"model": {"type": "BPE", "vocab": {}}, "pre_tokenizer":
      {"type": "Split", "pattern": {"Regex": "x"}, "behavior": "Removed", "invert": false}})";
  EXPECT_EQ(error(split),
            "tok.json: pre-tokenizer Split with behavior 'Removed': only Isolated is supported");
}

TEST(HFTokenizerJson, ReadsTheChatTemplate) {
  auto chatTemplate = [](std::string_view config) {
    Expected<HFTokenizerSpec> spec = parseHFTokenizer(llamaLike(), config, "tok.json");
    EXPECT_TRUE(spec) << spec.error().message();
    return spec ? spec->chatTemplate : std::string("(error)");
  };
  EXPECT_EQ(chatTemplate(""), "");
  EXPECT_EQ(chatTemplate(R"({"chat_template": null})"), "");
  EXPECT_EQ(chatTemplate(R"({"chat_template": "{{ messages[0].content }}"})"),
            "{{ messages[0].content }}");
  // Several named templates: the one named "default".
  EXPECT_EQ(chatTemplate(R"({"chat_template": [{"name": "tool_use", "template": "T"},
                                              {"name": "default", "template": "D"}]})"),
            "D");
  EXPECT_EQ(error(llamaLike(), R"({"chat_template": [{"name": "rag", "template": "R"}]})"),
            "tok.json: tokenizer_config.json: chat_template is neither a string nor a list with "
            "a template named \"default\"");
  EXPECT_EQ(error(llamaLike(), R"({"chat_template": 3})"),
            "tok.json: tokenizer_config.json: chat_template is neither a string nor a list with "
            "a template named \"default\"");
}

TEST(HFTokenizerJson, LoadFailsOnAMissingFile) {
  Expected<HFTokenizerSpec> spec = loadHFTokenizer("/nonexistent/tokenizer.json");
  ASSERT_FALSE(spec);
  EXPECT_NE(spec.error().message().find("/nonexistent/tokenizer.json"), std::string::npos);
}

} // namespace
} // namespace lathe
