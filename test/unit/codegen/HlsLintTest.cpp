// The HLS lint library (codegen/HLS/HlsLint.h, HlsPragmas.h) on small
// snippets: what passes, what each rule finds and where. The lit tests
// (test/lit/tools/hls-lint*.test) cover the tool and its files.
#include "codegen/HLS/HlsLint.h"
#include "codegen/HLS/HlsPragmas.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

namespace lathe::hls {
namespace {

class HlsLintTest : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("lathe-hls-lint-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  /// Lints `source` as one file; "LINE:COL RULE" per finding.
  std::vector<std::string> lint(const std::string &source, std::vector<std::string> tops = {}) {
    std::string path = (dir_ / "input.cpp").string();
    std::ofstream(path) << source;
    Expected<std::vector<LintFinding>> findings = lintFiles({{path}, tops, {}});
    EXPECT_TRUE(findings) << (findings ? "" : findings.error().message());
    std::vector<std::string> result;
    if (findings)
      for (const LintFinding &f : *findings)
        result.push_back(std::to_string(f.line) + ":" + std::to_string(f.column) + " " + f.rule);
    return result;
  }

  std::filesystem::path dir_;
};

using Findings = std::vector<std::string>;

TEST(HlsPragmasTest, TableHoldsUG1399PragmasOnceInOrder) {
  for (const char *keyword : {"PIPELINE",
                              "UNROLL",
                              "ARRAY_PARTITION",
                              "ARRAY_RESHAPE",
                              "DATAFLOW",
                              "INTERFACE",
                              "INLINE",
                              "LOOP_TRIPCOUNT",
                              "LOOP_FLATTEN",
                              "LOOP_MERGE",
                              "BIND_STORAGE",
                              "BIND_OP",
                              "STREAM",
                              "DEPENDENCE",
                              "STABLE",
                              "LATENCY",
                              "ALLOCATION",
                              "AGGREGATE",
                              "DISAGGREGATE",
                              "EXPRESSION_BALANCE",
                              "FUNCTION_INSTANTIATE",
                              "OCCURRENCE",
                              "PROTOCOL",
                              "RESET",
                              "TOP",
                              "ALIAS",
                              "CACHE",
                              "PERFORMANCE",
                              "SHARED"})
    EXPECT_NE(findPragma(keyword), nullptr) << keyword;
  std::span<const PragmaSpec> table = pragmaTable();
  for (size_t i = 1; i < table.size(); ++i)
    EXPECT_LT(table[i - 1].keyword, table[i].keyword);
  // Removed from Vitis HLS (RESOURCE became BIND_OP/BIND_STORAGE).
  EXPECT_EQ(findPragma("RESOURCE"), nullptr);
  EXPECT_EQ(findPragma("DATA_PACK"), nullptr);
}

TEST(HlsPragmasTest, LookupIgnoresCaseAndSuggests) {
  const PragmaSpec *pipeline = findPragma("pipeline");
  ASSERT_NE(pipeline, nullptr);
  EXPECT_EQ(pipeline->keyword, "PIPELINE");
  EXPECT_TRUE(takesOption(*pipeline, "ii"));
  EXPECT_TRUE(takesFlag(*pipeline, "OFF"));
  EXPECT_FALSE(takesOption(*pipeline, "IL"));
  EXPECT_EQ(closestKeyword("PIPEPLINE"), "PIPELINE");
  EXPECT_EQ(closestKeyword("FROBNICATE"), "");
  EXPECT_EQ(closestOption(*pipeline, "IL"), "II");
}

// The generator's spellings (codegen/HLS/EmitHlsProject.cpp) of the
// schedule's pragmas for each release: ARRAY_PARTITION with the kind as
// `type=` (2022.1 on) or the bare word after `variable=` (2020.2),
// DATAFLOW, INTERFACE's mode first in 2020.2.
TEST(HlsPragmasTest, SpellsTheSchedulesPragmasPerRelease) {
  using Options = std::vector<std::pair<std::string_view, std::string>>;
  const Options complete{{"variable", "rows"}, {"type", "complete"}, {"dim", "1"}};
  const Options cyclic{{"variable", "codes"}, {"type", "cyclic"}, {"factor", "32"}, {"dim", "1"}};
  const Options master{{"mode", "m_axi"}, {"port", "v1"}, {"bundle", "gmem0"}};
  EXPECT_EQ(spellPragma("ARRAY_PARTITION", complete, HlsTool::Vitis2023_2),
            "#pragma HLS ARRAY_PARTITION variable=rows type=complete dim=1");
  EXPECT_EQ(spellPragma("ARRAY_PARTITION", complete, HlsTool::Vitis2020_2),
            "#pragma HLS ARRAY_PARTITION variable=rows complete dim=1");
  EXPECT_EQ(spellPragma("ARRAY_PARTITION", cyclic, HlsTool::Vitis2023_2),
            "#pragma HLS ARRAY_PARTITION variable=codes type=cyclic factor=32 dim=1");
  EXPECT_EQ(spellPragma("ARRAY_PARTITION", cyclic, HlsTool::Vitis2020_2),
            "#pragma HLS ARRAY_PARTITION variable=codes cyclic factor=32 dim=1");
  EXPECT_EQ(spellPragma("DATAFLOW", {}, HlsTool::Vitis2020_2), "#pragma HLS DATAFLOW");
  EXPECT_EQ(spellPragma("DATAFLOW", {}, HlsTool::Vitis2023_2), "#pragma HLS DATAFLOW");
  EXPECT_EQ(spellPragma("INTERFACE", master, HlsTool::Vitis2020_2),
            "#pragma HLS INTERFACE m_axi port=v1 bundle=gmem0");
  EXPECT_EQ(spellPragma("INTERFACE", master, HlsTool::Vitis2023_2),
            "#pragma HLS INTERFACE mode=m_axi port=v1 bundle=gmem0");
  // What the table does not have is no spelling: the generator reports it.
  EXPECT_EQ(spellPragma("ARRAY_PARTITION", Options{{"type", "diagonal"}}), "");
  EXPECT_EQ(spellPragma("DATAFLOWS", {}), "");
}

// Every spelling above passes the lint; a misspelled keyword, option or
// kind is reported.
TEST_F(HlsLintTest, TheSchedulesPragmasPassAndTheirMisspellingsFail) {
  EXPECT_EQ(lint("void f(const float x[8], float out[8]) {\n"
                 "  for (int g = 0; g < 2; g += 1) {\n"
                 "#pragma HLS DATAFLOW\n"
                 "    float rows[4][8];\n"
                 "#pragma HLS ARRAY_PARTITION variable=rows type=complete dim=1\n"
                 "#pragma HLS ARRAY_PARTITION variable=rows complete dim=1\n"
                 "#pragma HLS ARRAY_PARTITION variable=rows type=cyclic factor=2 dim=1\n"
                 "#pragma HLS ARRAY_PARTITION variable=rows block factor=2 dim=1\n"
                 "    out[g] = x[g] + rows[0][0];\n"
                 "  }\n"
                 "}\n"),
            Findings{});
  EXPECT_EQ(lint("void f(const float x[8], float out[8]) {\n"
                 "  for (int g = 0; g < 2; g += 1) {\n"
                 "#pragma HLS DATAFLW\n"
                 "    float rows[4][8];\n"
                 "#pragma HLS ARRAY_PARTITON variable=rows type=complete dim=1\n"
                 "#pragma HLS ARRAY_PARTITION variable=rows type=complet dim=1\n"
                 "#pragma HLS ARRAY_PARTITION variable=rows cylic factor=2 dim=1\n"
                 "#pragma HLS ARRAY_PARTITION variabel=rows type=block factor=2 dim=1\n"
                 "#pragma HLS DATAFLOW disable_start_propagaton\n"
                 "    out[g] = x[g] + rows[0][0];\n"
                 "  }\n"
                 "}\n"),
            (Findings{"3:13 pragma-keyword", "5:13 pragma-keyword", "6:48 pragma-option",
                      "7:43 pragma-option", "8:29 pragma-option", "9:22 pragma-option"}));
}

TEST_F(HlsLintTest, StaticLoopsInTemplatesAndMacrosPass) {
  EXPECT_EQ(lint(R"(#define LEN 10
template <int N> int sum(const int (&a)[N]) {
  int t = 0;
  for (int i = 0; i < N / 2 - 1; i += 2) t += a[i];
  for (int i = N; i > 0; --i) t += a[i - 1];
  return t;
}
int f(int a[LEN]) {
  const int n = 8;
  int s = 0;
  for (int i = 0; i < LEN; i++) s += a[i];
  for (int i = 0; n > i; i = 1 + i) s += a[i];
  for (unsigned i = 0; i < sizeof(int) * 2; i++) s += a[i];
  int b[4] = {};
  for (int v : b) s += v;
  return s + sum<4>(b);
}
)"),
            Findings{});
}

TEST_F(HlsLintTest, LoopBoundFromAVariableFails) {
  EXPECT_EQ(lint("int f(int n) { int s = 0; int m = 4;\n"
                 "for (int i = 0; i < m; ++i) s++;\n"
                 "for (int i = 0; i < 4; i += n) s++;\n"
                 "return s; }\n"),
            (Findings{"2:17 unbounded-loop", "3:24 unbounded-loop"}));
}

TEST_F(HlsLintTest, PragmasInCommentsAndSkippedCodeAreIgnored) {
  EXPECT_EQ(lint("void f() {\n"
                 "// #pragma HLS PIPEPLINE\n"
                 "/* #pragma HLS PIPEPLINE */\n"
                 "#ifdef NOT_DEFINED\n"
                 "#pragma HLS PIPEPLINE\n"
                 "#endif\n"
                 "#pragma HLS PIPELINE II=1 // a comment after it\n"
                 "#pragma HLS INLINE \\\n"
                 "  off\n"
                 "#pragma HLS INLINE \\\n"
                 "  offf\n"
                 "}\n"),
            Findings{"11:3 pragma-option"});
}

TEST_F(HlsLintTest, PragmaValuesMayBeExpressions) {
  EXPECT_EQ(lint("void f(int a[8]) {\n"
                 "#pragma HLS ARRAY_PARTITION variable = a type = cyclic factor = (2 * 2) dim=1\n"
                 "#pragma HLS ALIAS ports=a,b,c distance=-4\n"
                 "#pragma HLS DEPENDENCE variable=a inter RAW false\n"
                 "#pragma HLS INTERFACE s_axilite port=return bundle=control\n"
                 "}\n"),
            Findings{});
}

TEST_F(HlsLintTest, TopFunctionsComeFromExternCOrTheTopList) {
  std::string source = "extern \"C\" void k(int *a, int b[4], int n) {\n"
                       "#pragma HLS INTERFACE m_axi port=a\n"
                       "}\n"
                       "void h(int *p) {}\n"
                       "extern \"C\" { void g(int *q) {} }\n";
  EXPECT_EQ(lint(source), (Findings{"1:31 interface-pragma", "5:26 interface-pragma"}));
  EXPECT_EQ(lint(source, {"h"}), Findings{"4:13 interface-pragma"});
}

TEST_F(HlsLintTest, IndirectCallsAndDirectCalls) {
  EXPECT_EQ(lint("struct S { int (*cb)(int); int m(int x) { return x; } };\n"
                 "int inc(int x) { return x + 1; }\n"
                 "int f(S &s) {\n"
                 "  auto add = [](int x) { return x + 2; };\n"
                 "  return inc(1) + s.m(2) + add(3) + s.cb(4) + (s.*(&S::m))(5);\n"
                 "}\n"),
            (Findings{"1:18 function-pointer", "5:37 function-pointer", "5:47 function-pointer"}));
}

TEST_F(HlsLintTest, MacroConstructsCountWhereTheMacroIsUsed) {
  EXPECT_EQ(lint("#define ALLOC(n) new int[n]\n"
                 "#define SPIN while (1) {}\n"
                 "int *f() { SPIN; return ALLOC(4); }\n"),
            (Findings{"3:12 unbounded-loop", "3:25 dynamic-memory"}));
}

TEST_F(HlsLintTest, OptionWithoutItsValueFails) {
  EXPECT_EQ(lint("void f() {\n"
                 "  for (int i = 0; i < 4; ++i) {\n"
                 "#pragma HLS PIPELINE II\n"
                 "#pragma HLS PIPELINE style=FRP II=1\n"
                 "  }\n"
                 "}\n"),
            Findings{"3:22 pragma-option"});
}

TEST_F(HlsLintTest, HeadersAreNotLinted) {
  std::ofstream(dir_ / "helper.h") << "inline int *leak() { return new int[4]; }\n";
  EXPECT_EQ(lint("#include \"helper.h\"\nint f() { return leak()[0]; }\n"), Findings{});
}

TEST_F(HlsLintTest, MissingFileIsAnError) {
  Expected<std::vector<LintFinding>> findings =
      lintFiles({{(dir_ / "missing.cpp").string()}, {}, {}});
  ASSERT_FALSE(findings);
  EXPECT_NE(findings.error().message().find("missing.cpp: No such file or directory"),
            std::string::npos);
}

} // namespace
} // namespace lathe::hls
