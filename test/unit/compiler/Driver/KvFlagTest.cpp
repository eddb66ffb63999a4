// lathe-compile's --kv flag: the three element types by name, anything else
// refused with the text quoted.
#include "compiler/Driver/KvFlag.h"

#include <gtest/gtest.h>

namespace lathe::compiler {
namespace {

TEST(KvFlagTest, ElementTypes) {
  for (ElementType t : {ElementType::F32, ElementType::F16, ElementType::BF16}) {
    Expected<ElementType> kv = parseKvFlag(elementTypeName(t));
    ASSERT_TRUE(kv) << kv.error().message();
    EXPECT_EQ(*kv, t);
  }
}

TEST(KvFlagTest, Refused) {
  using namespace std::string_view_literals;
  for (std::string_view text : {""sv, "f8"sv, "F16"sv, "bf16 "sv, "f32:block=32"sv, "f16\0"sv}) {
    Expected<ElementType> kv = parseKvFlag(text);
    ASSERT_FALSE(kv) << text;
    EXPECT_EQ(kv.error().message(), "--kv=" + std::string(text) + ": expected f32, f16 or bf16");
  }
}

} // namespace
} // namespace lathe::compiler
