// The --quant flag's grammar: formats, :reorder, :no-equalize, mixed:bits=B,
// and the errors that name what is wrong.
#include "compiler/Driver/QuantFlag.h"

#include <gtest/gtest.h>

namespace lathe::compiler {
namespace {

std::string errorOf(std::string_view text) {
  auto q = parseQuantFlag(text);
  EXPECT_FALSE(q) << text;
  return q ? "" : q.error().message();
}

TEST(QuantFlagTest, Formats) {
  auto none = parseQuantFlag("none");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->quantizes());
  auto bfp = parseQuantFlag("bfp4:block=32");
  ASSERT_TRUE(bfp);
  EXPECT_EQ(formats::formatName(*bfp->format), "bfp4:block=32");
  EXPECT_FALSE(bfp->reorder);
  EXPECT_FALSE(bfp->needsCalibration());
  auto mx = parseQuantFlag("mxfp4");
  ASSERT_TRUE(mx);
  EXPECT_EQ(formats::formatName(*mx->format), "mxfp4_e2m1");
}

TEST(QuantFlagTest, Reorder) {
  for (const char *text : {"bfp4:block=32:reorder", "bfp4:reorder:block=32"}) {
    auto q = parseQuantFlag(text);
    ASSERT_TRUE(q) << text;
    EXPECT_TRUE(q->reorder);
    EXPECT_TRUE(q->needsCalibration());
    EXPECT_EQ(formats::formatName(*q->format), "bfp4:block=32");
  }
  EXPECT_NE(errorOf("bfp4:reorder:reorder").find("twice"), std::string::npos);
  EXPECT_NE(errorOf("reorder").find("unknown format 'reorder'"), std::string::npos);
}

// Equalization is on unless :no-equalize says otherwise, for every kind of
// build; a misspelling is named with the flags it could have meant.
TEST(QuantFlagTest, NoEqualize) {
  for (const char *text : {"bfp4:block=32", "int4:group=32:reorder", "mxfp4", "mixed:bits=4.5"}) {
    auto q = parseQuantFlag(text);
    ASSERT_TRUE(q) << text;
    EXPECT_TRUE(q->equalize) << text;
  }
  for (const char *text : {"int4:group=32:no-equalize", "int4:no-equalize:group=32",
                           "bfp4:no-equalize:reorder", "mixed:bits=4.5:no-equalize"}) {
    auto q = parseQuantFlag(text);
    ASSERT_TRUE(q) << text;
    EXPECT_FALSE(q->equalize) << text;
    EXPECT_TRUE(q->quantizes()) << text;
  }
  auto both = parseQuantFlag("bfp4:no-equalize:reorder");
  ASSERT_TRUE(both);
  EXPECT_TRUE(both->reorder);
  EXPECT_EQ(formats::formatName(*both->format), "bfp4:block=32");
  EXPECT_EQ(formats::formatName(*parseQuantFlag("int4:no-equalize:group=32")->format),
            "int4:group=32");
  EXPECT_NE(errorOf("int4:no-equalize:no-equalize").find("'no-equalize' is given twice"),
            std::string::npos);
  EXPECT_NE(errorOf("no-equalize").find("unknown format 'no-equalize'"), std::string::npos);
  std::string misspelt = errorOf("int4:group=32:no-equalise");
  EXPECT_NE(misspelt.find("unknown option 'no-equalise'"), std::string::npos) << misspelt;
  EXPECT_NE(misspelt.find(":no-equalize"), std::string::npos) << misspelt;
}

TEST(QuantFlagTest, Classifier) {
  auto q = parseQuantFlag("int8:group=32:classifier");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->classifier, ClassifierChoice::SameFormat);
  EXPECT_FALSE(q->reorder);
  EXPECT_EQ(formats::formatName(*q->format), "int8:group=32");
  EXPECT_EQ(formats::formatName(*q->classifierFormat()), "int8:group=32");
  auto both = parseQuantFlag("mxfp4:reorder:classifier");
  ASSERT_TRUE(both);
  EXPECT_TRUE(both->classifier == ClassifierChoice::SameFormat && both->reorder);
  auto fp = parseQuantFlag("int4:group=32:float-classifier");
  ASSERT_TRUE(fp);
  EXPECT_EQ(fp->classifier, ClassifierChoice::Float);
  EXPECT_FALSE(fp->classifierFormat());
  EXPECT_NE(errorOf("int8:classifier:classifier").find("once"), std::string::npos);
  EXPECT_NE(errorOf("int8:classifier:float-classifier").find("once"), std::string::npos);
  EXPECT_NE(errorOf("mixed:bits=4.5:classifier").find("single format"), std::string::npos);
  auto mixedFloat = parseQuantFlag("mixed:bits=4.5:float-classifier");
  ASSERT_TRUE(mixedFloat);
  EXPECT_FALSE(mixedFloat->classifierFormat());
  EXPECT_FALSE(parseQuantFlag("none")->classifierFormat());
}

// By default the classifier is packed at 8 bits of the weights' family.
TEST(QuantFlagTest, DefaultClassifierFormat) {
  const std::pair<const char *, const char *> cases[] = {
      {"int4:group=32", "int8:group=32"},
      {"int4:group=64:asym", "int8:group=64:asym"},
      {"int8:group=128", "int8:group=128"},
      {"bfp4:block=16", "bfp8:block=16"},
      {"bfp6:block=32", "bfp8:block=32"},
      {"mxfp4", "mxint8"},
      {"mxfp6_e3m2", "mxint8"},
      {"mxfp8_e4m3", "mxfp8_e4m3"},
      {"mxint8", "mxint8"},
      {"fp6_4p2", "mxint8"},
      {"mixed:bits=4.5", "int8:group=32"},
  };
  for (auto [flag, want] : cases) {
    auto q = parseQuantFlag(flag);
    ASSERT_TRUE(q) << flag;
    EXPECT_EQ(q->classifier, ClassifierChoice::Default);
    ASSERT_TRUE(q->classifierFormat()) << flag;
    EXPECT_EQ(formats::formatName(*q->classifierFormat()), want) << flag;
  }
}

TEST(QuantFlagTest, Mixed) {
  auto q = parseQuantFlag("mixed:bits=4.5");
  ASSERT_TRUE(q);
  EXPECT_DOUBLE_EQ(*q->mixedBits, 4.5);
  EXPECT_TRUE(q->needsCalibration());
  EXPECT_FALSE(q->reorder);
  auto r = parseQuantFlag("mixed:bits=5:reorder");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->reorder);
  EXPECT_NE(errorOf("mixed").find("expected mixed:bits=B"), std::string::npos);
  EXPECT_NE(errorOf("mixed:bits=").find("positive number"), std::string::npos);
  EXPECT_NE(errorOf("mixed:bits=abc").find("positive number, got 'abc'"), std::string::npos);
  EXPECT_NE(errorOf("mixed:bits=-1").find("positive number"), std::string::npos);
  EXPECT_NE(errorOf("mixed:bits=4.5x").find("positive number"), std::string::npos);
}

TEST(QuantFlagTest, BadFormats) {
  EXPECT_NE(errorOf("").find("--quant is empty"), std::string::npos);
  EXPECT_NE(errorOf("bfp5").find("unknown format 'bfp5'"), std::string::npos);
  EXPECT_NE(errorOf("int4:group=48").find("group=48"), std::string::npos);
}

} // namespace
} // namespace lathe::compiler
