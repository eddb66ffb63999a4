#include "runtime/tokenizer/OpenTokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace lathe {
namespace {

namespace fs = std::filesystem;

std::string writeTemp(const std::string &name, const std::string &bytes) {
  fs::path p = fs::temp_directory_path() / ("lathe-open-tokenizer-" + name);
  std::ofstream(p, std::ios::binary) << bytes;
  return p.string();
}

// GGUF metadata is the compiler's readers' (compiler/Frontend/GgufTokenizer.h).
TEST(OpenTokenizer, LeavesGgufToTheReaders) {
  Expected<TextTokenizer> t = openTokenizer(writeTemp("model.gguf", std::string("GGUF\3\0\0\0", 8)));
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message().find("frontend::openGgufTokenizer"), std::string::npos);
}

TEST(OpenTokenizer, RefusesGarbageWithOneLine) {
  Expected<TextTokenizer> t = openTokenizer(writeTemp("garbage", std::string("\x05\0\0\0\x01\x02", 6)));
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message().find("not a llama2.c tokenizer.bin"), std::string::npos);
  EXPECT_EQ(t.error().message().find('\n'), std::string::npos);
}

TEST(OpenTokenizer, RefusesAFolderWithoutATokenizer) {
  fs::path dir = fs::temp_directory_path() / "lathe-open-tokenizer-empty-dir";
  fs::create_directories(dir);
  Expected<TextTokenizer> t = openTokenizer(dir.string());
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message().find("a folder without tokenizer.json or tokenizer.bin"),
            std::string::npos);
}

TEST(OpenTokenizer, CountsTokenizerBinRecords) {
  // max_token_length 2, then two records (score, length, bytes).
  std::string bytes("\2\0\0\0" "\0\0\0\0" "\1\0\0\0" "a" "\0\0\0\0" "\2\0\0\0" "bc", 4 + 9 + 10);
  Expected<uint32_t> n = countLlama2cTokens(
      {reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size()}, "t.bin");
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(*n, 2u);
  bytes.pop_back();
  EXPECT_FALSE(countLlama2cTokens(
      {reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size()}, "t.bin"));
}

TEST(OpenTokenizer, ReadsTheStoriesTokenizerBinLikeRunC) {
  const char *path = std::getenv("LATHE_TOKENIZER");
  if (!path || !fs::exists(path))
    GTEST_SKIP() << "no stories15M tokenizer.bin (LATHE_TOKENIZER)";
  Expected<TextTokenizer> t = openTokenizer(path);
  ASSERT_TRUE(t) << t.error().message();
  EXPECT_EQ(t->idCount(), 32000u);
  // The prompt ids of test/data/stories15M_reference.json.
  EXPECT_EQ(*t->encode("Once upon a time", true), (std::vector<int32_t>{1, 9038, 2501, 263, 931}));
  EXPECT_STREQ(t->kindName(), "llama2c");
}

} // namespace
} // namespace lathe
