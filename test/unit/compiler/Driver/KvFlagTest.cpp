// lathe-compile's --kv flag: every format by name, blocks given or left to
// the model's head_dim, and malformed specs refused with the text quoted and
// the bad part named, in one line.
#include "compiler/Driver/KvFlag.h"

#include <gtest/gtest.h>

namespace lathe::compiler {
namespace {

using formats::KvFormat;
using formats::KvKind;

// Parsed compressed kinds leave the window -1 (not given) until resolved.
TEST(KvFlagTest, Formats) {
  const std::pair<std::string_view, KvFormat> cases[] = {
      {"f32", {KvKind::F32, 0}},
      {"f16", {KvKind::F16, 0}},
      {"bf16", {KvKind::BF16, 0}},
      {"int8", {KvKind::Int8, 0, 0, -1}},
      {"bfp8", {KvKind::Bfp8, 0, 0, -1}},
      {"bfp4", {KvKind::Bfp4, 0, 0, -1}},
      {"bfp4:block=16", {KvKind::Bfp4, 16, 0, -1}},
      {"bfp8:block=48", {KvKind::Bfp8, 48, 0, -1}},
      {"int8:window=4", {KvKind::Int8, 0, 0, 4}},
      {"bfp4:window=0", {KvKind::Bfp4, 0, 0, 0}},
      {"bfp8:window=16:block=8", {KvKind::Bfp8, 8, 0, 16}},
  };
  for (const auto &[text, format] : cases) {
    Expected<KvFormat> kv = parseKvFlag(text);
    ASSERT_TRUE(kv) << kv.error().message();
    EXPECT_EQ(*kv, format) << text;
  }
}

// The default block follows head_dim; int8's is always head_dim. bfp4's
// default window is kBfp4DefaultWindow, int8's and bfp8's none.
TEST(KvFlagTest, ResolvedAgainstHeadDim) {
  constexpr int32_t w = formats::kBfp4DefaultWindow;
  const std::tuple<std::string_view, int64_t, KvFormat> cases[] = {
      {"bfp4", 64, {KvKind::Bfp4, 32, 0, w}},
      {"bfp4", 48, {KvKind::Bfp4, 16, 0, w}},
      {"bfp8", 16, {KvKind::Bfp8, 16}},
      {"int8", 48, {KvKind::Int8, 48}},
      {"int8", 128, {KvKind::Int8, 128}},
      {"bfp4:block=48", 48, {KvKind::Bfp4, 48, 0, w}},
      {"bfp4:window=0", 48, {KvKind::Bfp4, 16, 0, 0}},
      {"bfp4:window=32", 48, {KvKind::Bfp4, 16, 0, 32}},
      {"int8:window=8", 48, {KvKind::Int8, 48, 0, 8}},
      {"bfp8:block=8:window=1", 48, {KvKind::Bfp8, 8, 0, 1}},
      {"f16", 48, {KvKind::F16, 0}},
  };
  for (const auto &[text, headDim, format] : cases) {
    Expected<KvFormat> kv = resolveKvFlag(text, *parseKvFlag(text), headDim);
    ASSERT_TRUE(kv) << kv.error().message();
    EXPECT_EQ(*kv, format) << text << " head_dim " << headDim;
  }
}

TEST(KvFlagTest, Refused) {
  using namespace std::string_view_literals;
  const std::pair<std::string_view, std::string_view> cases[] = {
      {""sv, "unknown KV format '' (expected f32, f16, bf16, int8, bfp8, bfp4, int4 or int2)"},
      {"f8"sv, "unknown KV format 'f8' (expected f32, f16, bf16, int8, bfp8, bfp4, int4 or int2)"},
      {"F16"sv, "unknown KV format 'F16' (expected f32, f16, bf16, int8, bfp8, bfp4, int4 or int2)"},
      {"bf16 "sv, "unknown KV format 'bf16 ' (expected f32, f16, bf16, int8, bfp8, bfp4, int4 or int2)"},
      {"f16\0"sv, "unknown KV format 'f16\0' (expected f32, f16, bf16, int8, bfp8, bfp4, int4 or int2)"sv},
      {"int3"sv, "unknown KV format 'int3' (expected f32, f16, bf16, int8, bfp8, bfp4, int4 or int2)"},
      {"f32:block=32"sv, "f32 takes no options"},
      {"f16:window=8"sv, "f16 takes no options"},
      {"int8:block=32"sv, "unknown option 'block=32' (int8 takes window=R; its block is "
                          "head_dim, one scale per token row and KV head)"},
      {"int8:"sv, "unknown option '' (int8 takes window=R; its block is head_dim, one scale "
                  "per token row and KV head)"},
      {"int8:window=-1"sv, "window=-1: expected a whole number from 0 to 1048576"},
      {"int8:window=1048577"sv, "window=1048577: expected a whole number from 0 to 1048576"},
      {"bfp4:window=x"sv, "window=x: expected a whole number from 0 to 1048576"},
      {"bfp4:window="sv, "window=: expected a whole number from 0 to 1048576"},
      {"bfp8:window=4:window=4"sv, "option 'window' repeats"},
      {"bfp4:group=8:window=8"sv, "unknown option 'group=8' (bfp4 takes block=N and "
                                  "window=R)"},
      {"bfp4:block=0"sv, "block=0: expected a positive whole number"},
      {"bfp4:block=-16"sv, "block=-16: expected a positive whole number"},
      {"bfp4:block="sv, "block=: expected a positive whole number"},
      {"bfp4:block=16x"sv, "block=16x: expected a positive whole number"},
      {"bfp4:block=99999999999"sv, "block=99999999999: expected a positive whole number"},
      {"bfp8:"sv, "unknown option '' (bfp8 takes block=N and window=R)"},
      {"bfp8:group=32"sv, "unknown option 'group=32' (bfp8 takes block=N and window=R)"},
      {"bfp4:block=16:"sv, "unknown option '' (bfp4 takes block=N and window=R)"},
      {"bfp4:block=16:block=16"sv, "option 'block' repeats"},
  };
  for (const auto &[text, message] : cases) {
    Expected<KvFormat> kv = parseKvFlag(text);
    ASSERT_FALSE(kv) << text;
    EXPECT_EQ(kv.error().message(), "--kv=" + std::string(text) + ": " + std::string(message));
    EXPECT_EQ(kv.error().message().find('\n'), std::string::npos);
  }
}

TEST(KvFlagTest, RefusedForTheModel) {
  const std::tuple<std::string_view, int64_t, std::string_view> cases[] = {
      {"bfp4:block=32", 48, "block=32 does not divide head_dim 48"},
      {"bfp8:block=64", 48, "block=64 does not divide head_dim 48"},
      {"bfp4:block=5", 10, "block=5: bfp4 needs an even block (two 4-bit mantissas a byte)"},
  };
  for (const auto &[text, headDim, message] : cases) {
    Expected<KvFormat> kv = resolveKvFlag(text, *parseKvFlag(text), headDim);
    ASSERT_FALSE(kv) << text;
    EXPECT_EQ(kv.error().message(), "--kv=" + std::string(text) + ": " + std::string(message));
  }
}

// Key-channel reordering (lathe-reorder-key-channels) is on for the bfp
// kinds unless :no-reorder says otherwise, wherever the option stands; it
// is not part of the stored format. Other kinds refuse it in one line.
TEST(KvFlagTest, ReorderOption) {
  const std::tuple<std::string_view, KvFormat, bool> cases[] = {
      {"bfp4", {KvKind::Bfp4, 0, 0, -1}, true},
      {"bfp4:reorder", {KvKind::Bfp4, 0, 0, -1}, true},
      {"bfp4:no-reorder", {KvKind::Bfp4, 0, 0, -1}, false},
      {"bfp8:block=8:no-reorder", {KvKind::Bfp8, 8, 0, -1}, false},
      {"bfp4:no-reorder:block=8", {KvKind::Bfp4, 8, 0, -1}, false},
      {"bfp4:window=4:no-reorder", {KvKind::Bfp4, 0, 0, 4}, false},
      {"int8", {KvKind::Int8, 0, 0, -1}, false},
      {"f16", {KvKind::F16, 0}, false},
  };
  for (const auto &[text, format, reorder] : cases) {
    Expected<KvFlag> kv = parseKvSpec(text);
    ASSERT_TRUE(kv) << text << ": " << kv.error().message();
    EXPECT_EQ(kv->format, format) << text;
    EXPECT_EQ(kv->reorderKeys, reorder) << text;
  }
  const std::pair<std::string_view, std::string_view> refused[] = {
      {"int8:reorder", "reorder applies to bfp8 and bfp4 (the kinds whose key channels share "
                       "exponents)"},
      {"f32:no-reorder", "no-reorder applies to bfp8 and bfp4 (the kinds whose key channels "
                         "share exponents)"},
      {"bfp4:reorder:no-reorder", "reorder given twice"},
      {"reorder", "unknown KV format 'reorder'"},
      {"bfp4:reorder:", "unknown option '' (bfp4 takes block=N and window=R)"},
  };
  for (const auto &[text, message] : refused) {
    Expected<KvFlag> kv = parseKvSpec(text);
    ASSERT_FALSE(kv) << text;
    EXPECT_EQ(kv.error().message().rfind("--kv=" + std::string(text) + ": " + std::string(message), 0), 0u)
        << kv.error().message();
  }
}

// Key-channel equalization (lathe-equalize-key-channels) is on for int8
// and the bfp kinds (one scale, or exponents, over channels of a head)
// unless :no-equalize, independent of :no-reorder, refused by the others.
TEST(KvFlagTest, EqualizeOption) {
  const std::tuple<std::string_view, KvFormat, bool, bool> cases[] = {
      {"bfp4", {KvKind::Bfp4, 0, 0, -1}, true, true},
      {"bfp4:equalize", {KvKind::Bfp4, 0, 0, -1}, true, true},
      {"bfp4:no-equalize", {KvKind::Bfp4, 0, 0, -1}, true, false},
      {"bfp4:no-reorder", {KvKind::Bfp4, 0, 0, -1}, false, true},
      {"bfp8:no-equalize:block=8:no-reorder", {KvKind::Bfp8, 8, 0, -1}, false, false},
      {"int8", {KvKind::Int8, 0, 0, -1}, false, true},
      {"int8:no-equalize", {KvKind::Int8, 0, 0, -1}, false, false},
      {"f16", {KvKind::F16, 0}, false, false},
  };
  for (const auto &[text, format, reorder, equalize] : cases) {
    Expected<KvFlag> kv = parseKvSpec(text);
    ASSERT_TRUE(kv) << text << ": " << kv.error().message();
    EXPECT_EQ(kv->format, format) << text;
    EXPECT_EQ(kv->reorderKeys, reorder) << text;
    EXPECT_EQ(kv->equalizeKeys, equalize) << text;
  }
  const std::pair<std::string_view, std::string_view> refused[] = {
      {"f16:equalize", "equalize applies to int8, bfp8 and bfp4 (the kinds whose key channels "
                       "share a scale or an exponent)"},
      {"int4:no-equalize", "no-equalize applies to int8, bfp8 and bfp4 (the kinds whose key "
                           "channels share a scale or an exponent)"},
      {"bfp4:no-equalize:equalize", "equalize given twice"},
      {"bfp4:no-equalise", "unknown option 'no-equalise' (bfp4 takes block=N and window=R)"},
  };
  for (const auto &[text, message] : refused) {
    Expected<KvFlag> kv = parseKvSpec(text);
    ASSERT_FALSE(kv) << text;
    EXPECT_EQ(kv.error().message().rfind("--kv=" + std::string(text) + ": " + std::string(message), 0), 0u)
        << kv.error().message();
  }
}

} // namespace
} // namespace lathe::compiler
