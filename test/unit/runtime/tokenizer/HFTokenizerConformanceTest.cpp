// Lathe's Hugging Face tokenizer against HF's own: every text of
// test/data/tokenizers/texts.json, encoded with and without special tokens
// and decoded again, must give exactly the ids and text that the
// `tokenizers` library gave (test/data/tokenizers/expected.json, written by
// make-expected.py; provenance in test/data/README.md). The tokenizer files
// are fetched by scripts/fetch-tokenizers.sh into LATHE_TOKENIZER_DIR; the
// test skips without them.
#include "runtime/tokenizer/OpenTokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace lathe {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

const json &expected() {
  static const json data = [] {
    std::ifstream in(std::string(LATHE_TEST_DATA_DIR) + "/tokenizers/expected.json");
    return in ? json::parse(in, nullptr, false) : json();
  }();
  return data;
}

fs::path tokenizerDir(const std::string &name) {
  const char *dir = std::getenv("LATHE_TOKENIZER_DIR");
  return fs::path(dir ? dir : "") / name;
}

// One family's tokenizer against its expected cases; `name` is the folder
// make-expected.py was given (llama2: SentencePiece-style BPE with byte
// fallback, qwen3: byte-level BPE with NFC and the Qwen2 regex).
void checkFamily(const std::string &name) {
  if (expected().is_null() || expected().is_discarded())
    GTEST_SKIP() << "test/data/tokenizers/expected.json not there yet";
  fs::path dir = tokenizerDir(name);
  if (!fs::exists(dir / "tokenizer.json"))
    GTEST_SKIP() << dir << " missing: run scripts/fetch-tokenizers.sh";
  const json &family = expected()["tokenizers"][name];
  ASSERT_TRUE(family.is_object()) << "expected.json has no '" << name << "'";
  Expected<TextTokenizer> tokenizer = openTokenizer(dir.string());
  ASSERT_TRUE(tokenizer) << tokenizer.error().message();
  const HFTokenizer *hf = tokenizer->hf();
  ASSERT_NE(hf, nullptr);

  size_t cases = 0, matched = 0;
  for (const json &c : family["tokenizers"]) {
    std::string text = c["text"].get<std::string>();
    auto ids = c["ids"].get<std::vector<int32_t>>();
    auto plain = c["ids_no_special"].get<std::vector<int32_t>>();
    std::vector<int32_t> got = *hf->encode(text, true), gotPlain = *hf->encode(text, false);
    std::string decoded = hf->decode(ids), decodedSkip = hf->decode(ids, true),
                decodedPlain = hf->decode(plain);
    bool ok = got == ids && gotPlain == plain &&
              decoded == c["decoded"].get<std::string>() &&
              decodedSkip == c["decoded_skip_special"].get<std::string>() &&
              decodedPlain == c["decoded_no_special"].get<std::string>();
    ++cases;
    matched += ok;
    EXPECT_EQ(got, ids) << name << " encode: " << json(text).dump();
    EXPECT_EQ(gotPlain, plain) << name << " encode without special tokens: " << json(text).dump();
    EXPECT_EQ(decoded, c["decoded"].get<std::string>()) << name << " decode: " << json(text).dump();
    EXPECT_EQ(decodedSkip, c["decoded_skip_special"].get<std::string>())
        << name << " decode skipping special tokens: " << json(text).dump();
    EXPECT_EQ(decodedPlain, c["decoded_no_special"].get<std::string>())
        << name << " decode of the ids without special tokens: " << json(text).dump();
  }
  EXPECT_GT(cases, 0u);
  std::printf("%s: %zu of %zu texts match HF tokenizers %s in every field\n", name.c_str(),
              matched, cases,
              expected()["provenance"]["versions"]["tokenizers"].dump().c_str());
}

TEST(HFTokenizerConformance, Llama2SentencePieceBpe) { checkFamily("llama2"); }
TEST(HFTokenizerConformance, Qwen3ByteLevelBpe) { checkFamily("qwen3"); }

} // namespace
} // namespace lathe
