#include "runtime/formats/FormatSpec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lathe::formats {
namespace {

FormatSpec parseOk(const std::string &text) {
  Expected<FormatSpec> spec = parseFormatSpec(text);
  EXPECT_TRUE(spec) << text << ": " << spec.error().message();
  return spec ? *spec : FormatSpec{};
}

// Every spec the library supports.
std::vector<FormatSpec> allValidSpecs() {
  std::vector<FormatSpec> specs;
  for (int m : {8, 6, 4})
    for (int block : {16, 32, 64})
      specs.push_back({FormatKind::BFP, m, block});
  for (FormatKind kind : {FormatKind::MXINT8, FormatKind::MXFP8_E4M3,
                          FormatKind::MXFP8_E5M2, FormatKind::MXFP6_E3M2,
                          FormatKind::MXFP6_E2M3, FormatKind::MXFP4_E2M1})
    specs.push_back({kind});
  specs.push_back({FormatKind::FP6_4P2, 0, 0, true, true});
  for (int group : {32, 64, 128}) {
    specs.push_back({FormatKind::FP6_4P2, 0, group});
    for (FormatKind kind : {FormatKind::INT8, FormatKind::INT4})
      for (bool symmetric : {true, false})
        specs.push_back({kind, 0, group, symmetric});
  }
  return specs;
}

TEST(FormatSpec, ParsesEveryFormat) {
  FormatSpec s = parseOk("bfp4:block=32");
  EXPECT_EQ(s.kind, FormatKind::BFP);
  EXPECT_EQ(s.mantissaBits, 4);
  EXPECT_EQ(s.blockSize, 32);
  s = parseOk("bfp8:block=16");
  EXPECT_EQ(s.mantissaBits, 8);
  EXPECT_EQ(s.blockSize, 16);
  EXPECT_EQ(parseOk("bfp6").blockSize, 32); // default block
  EXPECT_EQ(parseOk("mxint8").kind, FormatKind::MXINT8);
  EXPECT_EQ(parseOk("mxfp8_e4m3").kind, FormatKind::MXFP8_E4M3);
  EXPECT_EQ(parseOk("mxfp8_e5m2").kind, FormatKind::MXFP8_E5M2);
  EXPECT_EQ(parseOk("mxfp6_e3m2").kind, FormatKind::MXFP6_E3M2);
  EXPECT_EQ(parseOk("mxfp6_e2m3").kind, FormatKind::MXFP6_E2M3);
  EXPECT_EQ(parseOk("mxfp4_e2m1").kind, FormatKind::MXFP4_E2M1);
  EXPECT_EQ(parseOk("mxfp4_e2m1:block=32").blockSize, 32);
  // MX has one FP4 element format, so the short name is unambiguous.
  EXPECT_EQ(parseOk("mxfp4"), parseOk("mxfp4_e2m1"));
  EXPECT_EQ(formatName(parseOk("mxfp4")), "mxfp4_e2m1");
  s = parseOk("fp6_4p2");
  EXPECT_EQ(s.kind, FormatKind::FP6_4P2);
  EXPECT_TRUE(s.perChannel);
  s = parseOk("fp6_4p2:group=128");
  EXPECT_FALSE(s.perChannel);
  EXPECT_EQ(s.blockSize, 128);
  s = parseOk("int4:group=32:asym");
  EXPECT_EQ(s.kind, FormatKind::INT4);
  EXPECT_EQ(s.blockSize, 32);
  EXPECT_FALSE(s.symmetric);
  s = parseOk("int8:group=64");
  EXPECT_EQ(s.kind, FormatKind::INT8);
  EXPECT_TRUE(s.symmetric);
  EXPECT_EQ(parseOk("int8").blockSize, 128); // default group
}

TEST(FormatSpec, AliasesMeanTheSameSpec) {
  EXPECT_EQ(parseOk("mx:fp6_e3m2"), parseOk("mxfp6_e3m2"));
  EXPECT_EQ(parseOk("mx:int8"), parseOk("mxint8"));
  EXPECT_EQ(parseOk("mx:fp4_e2m1:block=32"), parseOk("mxfp4_e2m1"));
  EXPECT_EQ(parseOk("int4:sym:group=32"), parseOk("int4:group=32"));
  EXPECT_EQ(parseOk("bfp4"), parseOk("bfp4:block=32"));
}

TEST(FormatSpec, NamesRoundTrip) {
  for (const FormatSpec &spec : allValidSpecs()) {
    const std::string name = formatName(spec);
    ASSERT_TRUE(validateFormatSpec(spec)) << name;
    EXPECT_EQ(parseOk(name), spec) << name;
  }
  EXPECT_EQ(formatName(parseOk("bfp4")), "bfp4:block=32");
  EXPECT_EQ(formatName(parseOk("mx:fp6_e3m2")), "mxfp6_e3m2");
  EXPECT_EQ(formatName(parseOk("fp6_4p2")), "fp6_4p2");
  EXPECT_EQ(formatName(parseOk("fp6_4p2:group=64")), "fp6_4p2:group=64");
  EXPECT_EQ(formatName(parseOk("int4:group=32:asym")), "int4:group=32:asym");
  EXPECT_EQ(formatName(parseOk("int8:sym")), "int8:group=128");
}

TEST(FormatSpec, EqualityIgnoresFieldsTheKindDoesNotUse) {
  FormatSpec a{FormatKind::MXFP4_E2M1};
  FormatSpec b = a;
  b.mantissaBits = 4;
  b.symmetric = false;
  EXPECT_EQ(a, b);
  FormatSpec perRow{FormatKind::FP6_4P2, 0, 32, true, true};
  FormatSpec perRowOther = perRow;
  perRowOther.blockSize = 0;
  EXPECT_EQ(perRow, perRowOther);
  EXPECT_FALSE(parseOk("int4:group=32") == parseOk("int4:group=32:asym"));
  EXPECT_FALSE(parseOk("bfp4") == parseOk("bfp6"));
}

struct BadText {
  const char *text;
  std::vector<const char *> mentions; // parts the message must name
};

TEST(FormatSpec, ErrorsNameTheBadPart) {
  const BadText cases[] = {
      {"", {"empty format name", "bfp4"}},
      {"bfp5", {"'bfp5'", "unknown format", "bfp8, bfp6, bfp4"}},
      {"BFP4", {"'BFP4'", "unknown format"}},
      {"mxfp6", {"'mxfp6'", "unknown format"}},
      {"bfp4:block=48", {"format 'bfp4:block=48'", "block=48", "16, 32 or 64"}},
      {"bfp4:block=", {"'block='", "positive integer"}},
      {"bfp4:block=abc", {"'block=abc'", "positive integer"}},
      {"bfp4:block=-32", {"'block=-32'", "positive integer"}},
      {"bfp4:block=32x", {"'block=32x'", "positive integer"}},
      {"bfp4:block", {"'block'", "needs a value"}},
      {"bfp4:blok=32", {"'blok=32'", "unknown option"}},
      {"bfp4:group=32", {"'group=32'", "does not apply to bfp4", "block=N"}},
      {"bfp4:block=32:block=64", {"'block=64'", "twice"}},
      {"mxfp4_e2m1:block=16", {"block=16", "32"}},
      {"mxfp4_e2m1:asym", {"'asym'", "does not apply to mxfp4_e2m1"}},
      {"mx", {"'mx' needs an element"}},
      {"mx:fp7_e3m3", {"'fp7_e3m3'", "unknown MX element"}},
      {"fp6_4p2:group=0", {"'group=0'", "positive integer"}},
      {"fp6_4p2:group=48", {"group=48", "32, 64 or 128"}},
      {"fp6_4p2:block=32", {"'block=32'", "group=N"}},
      {"int4:group=16", {"group=16", "int4", "32, 64 or 128"}},
      {"int8:group=64:group=32", {"'group=32'", "twice"}},
      {"int4:group=32:asym:sym", {"'sym'", "contradicts"}},
      {"int4:asym=1", {"'asym=1'", "takes no value"}},
      {"int4::asym", {"empty part"}},
      {"int4:", {"empty part"}},
  };
  for (const BadText &c : cases) {
    Expected<FormatSpec> spec = parseFormatSpec(c.text);
    ASSERT_FALSE(spec) << "'" << c.text << "' should not parse";
    for (const char *part : c.mentions)
      EXPECT_NE(spec.error().message().find(part), std::string::npos)
          << "error for '" << c.text << "' is '" << spec.error().message()
          << "', which does not mention '" << part << "'";
  }
}

TEST(FormatSpec, ValidateRejectsSpecsBuiltInCode) {
  const struct {
    FormatSpec spec;
    const char *mention;
  } cases[] = {
      {{FormatKind::BFP, 5, 32}, "mantissa bits must be 8, 6 or 4, got 5"},
      {{FormatKind::BFP, 0, 32}, "got 0"},
      {{FormatKind::BFP, 4, 48}, "block size must be 16, 32 or 64, got 48"},
      {{FormatKind::MXFP6_E3M2, 0, 64}, "MX blocks hold 32 values, got 64"},
      {{FormatKind::FP6_4P2, 0, 100}, "fp6_4p2: group size"},
      {{FormatKind::INT4, 0, 256}, "int4: group size must be 32, 64 or 128, got 256"},
      {{static_cast<FormatKind>(99)}, "unknown format kind 99"},
  };
  for (const auto &c : cases) {
    Status s = validateFormatSpec(c.spec);
    ASSERT_FALSE(s) << c.mention;
    EXPECT_NE(s.error().message().find(c.mention), std::string::npos)
        << s.error().message();
  }
}

TEST(FormatSpec, MicroscalingKinds) {
  EXPECT_TRUE(isMicroscaling(FormatKind::MXINT8));
  EXPECT_TRUE(isMicroscaling(FormatKind::MXFP4_E2M1));
  EXPECT_FALSE(isMicroscaling(FormatKind::BFP));
  EXPECT_FALSE(isMicroscaling(FormatKind::FP6_4P2));
  EXPECT_FALSE(isMicroscaling(FormatKind::INT4));
  EXPECT_EQ(mxElementOf(FormatKind::MXFP6_E2M3), MxElement::FP6_E2M3);
  EXPECT_EQ(mxElementOf(FormatKind::MXINT8), MxElement::INT8);
}

} // namespace
} // namespace lathe::formats
