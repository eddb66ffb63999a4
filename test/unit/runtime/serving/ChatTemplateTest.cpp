// Chat templates against jinja2 itself: test/data/chat-templates/expected.json
// holds, for real models' templates (Qwen3, Llama 2/3/3.1, Mistral, Zephyr,
// ChatML) and one small template per feature, what jinja2 3.1 renders in
// transformers' environment (make-expected.py is the recipe). Every case must
// match byte for byte, or fail where jinja2 fails. Parse errors, limits and
// the plain template are checked here directly.
#include "runtime/serving/ChatTemplate.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace lathe::serving {
namespace {

const std::string kDataDir = std::string(LATHE_TEST_DATA_DIR) + "/chat-templates/";

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Case {
  std::string name;
  nlohmann::json json;
};

std::vector<Case> loadCases() {
  auto all = nlohmann::json::parse(readFile(kDataDir + "expected.json"), nullptr, false);
  std::vector<Case> cases;
  if (!all.is_array())
    return {{"expected_json_missing_or_invalid", nullptr}};
  for (auto &c : all)
    cases.push_back({c["name"].get<std::string>(), c});
  return cases;
}

void PrintTo(const Case &c, std::ostream *os) { *os << c.name; }

class Jinja2Conformance : public testing::TestWithParam<Case> {};

TEST_P(Jinja2Conformance, RendersAsJinja2) {
  const nlohmann::json &c = GetParam().json;
  ASSERT_TRUE(c.is_object()) << "cannot read " << kDataDir << "expected.json";
  std::string source = c.contains("template") ? c["template"].get<std::string>()
                                              : readFile(kDataDir + c["template_file"].get<std::string>());
  ASSERT_FALSE(source.empty());
  auto tmpl = ChatTemplate::parse(source, GetParam().name);
  ASSERT_TRUE(tmpl) << tmpl.error().message();
  auto out = tmpl->render(c["messages"], c["add_generation_prompt"].get<bool>(), c["variables"]);
  if (c.contains("output")) {
    ASSERT_TRUE(out) << out.error().message();
    EXPECT_EQ(*out, c["output"].get<std::string>());
  } else if (c.contains("raised")) {
    ASSERT_FALSE(out) << "rendered: " << *out;
    EXPECT_EQ(out.error().message(), c["raised"].get<std::string>());
  } else {
    ASSERT_FALSE(out) << "jinja2 fails with " << c["error"] << ", we rendered: " << *out;
    const std::string &msg = out.error().message();
    EXPECT_EQ(msg.rfind(GetParam().name + ": line 1: ", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

INSTANTIATE_TEST_SUITE_P(ChatTemplate, Jinja2Conformance, testing::ValuesIn(loadCases()),
                         [](const testing::TestParamInfo<Case> &info) { return info.param.name; });

/// The error of parsing `source`, or "" when it parses.
std::string parseError(std::string_view source) {
  auto t = ChatTemplate::parse(source, "t.jinja");
  return t ? "" : t.error().message();
}

TEST(ChatTemplate, ParseErrorsNameTheLine) {
  struct {
    const char *source;
    const char *error;
  } cases[] = {
      {"a\n{{ x", "t.jinja: line 2: unexpected end of template, expected end of print statement"},
      {"a\n\n{% if x %}b", "t.jinja: line 3: unexpected end of template, expected 'elif' or 'else' or 'endif'"},
      {"{% for x in y %}\n{% endif %}", "t.jinja: line 2: unknown tag 'endif'"},
      {"x\n{% frobnicate %}", "t.jinja: line 2: unknown tag 'frobnicate'"},
      {"{% macro m() %}{% endmacro %}", "t.jinja: line 1: unsupported tag 'macro'"},
      {"\n\n\n{{ x | nosuchfilter }}", "t.jinja: line 4: no filter named 'nosuchfilter'"},
      {"{% if x is nosuchtest %}{% endif %}", "t.jinja: line 1: no test named 'nosuchtest'"},
      {"{{ 1 + }}", "t.jinja: line 1: unexpected end of print statement"},
      {"{{ (1 }}", "t.jinja: line 1: unexpected end of template, expected end of print statement"},
      {"{{ a b }}", "t.jinja: line 1: expected end of print statement, got 'b'"},
      {"{% set = 1 %}", "t.jinja: line 1: expected a name after 'set', got '='"},
      {"{{ 'abc }}", "t.jinja: line 1: unterminated string"},
      {"a\n{# comment", "t.jinja: line 2: missing end of comment tag"},
      {"{% break %}", "t.jinja: line 1: 'break' outside of a loop"},
      {"{{ x $ y }}", "t.jinja: line 1: unexpected char '$'"},
      {"{% for x in y %}{% endfor %}\n{% endfor %}", "t.jinja: line 2: unknown tag 'endfor'"},
  };
  for (const auto &c : cases)
    EXPECT_EQ(parseError(c.source), c.error) << c.source;
}

TEST(ChatTemplate, DeepNestingIsAnErrorNotACrash) {
  std::string parens = "{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}";
  EXPECT_NE(parseError(parens).find("nested too deeply"), std::string::npos);
  std::string ifs;
  for (int i = 0; i < 10000; ++i)
    ifs += "{% if true %}";
  EXPECT_NE(parseError(ifs).find("nested too deeply"), std::string::npos);
  std::string nots = "{{ " + std::string(50000, 'n') + " }}"; // one long name is fine
  EXPECT_EQ(parseError(nots), "");
}

Expected<std::string> renderSource(std::string_view source, const nlohmann::json &variables = nlohmann::json::object()) {
  auto t = ChatTemplate::parse(source, "t.jinja");
  if (!t)
    return t.error();
  return t->render(nlohmann::json::array(), false, variables);
}

TEST(ChatTemplate, RuntimeErrorsAreOneLineWithTheLine) {
  auto out = renderSource("ok\n{{ x.y }}");
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().message(), "t.jinja: line 2: 'x' is undefined");
  out = renderSource("\n\n{{ 1 + 'a' }}");
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().message(), "t.jinja: line 3: unsupported operand type(s) for +: 'int' and 'str'");
  out = renderSource("{{ {'a': 1}['x\ny'].z }}");
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().message(), "t.jinja: line 2: 'dict object' has no attribute 'x\\ny'");
  out = renderSource("{{ raise_exception('two\nlines') }}");
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().message(), "two lines");
}

TEST(ChatTemplate, HostileTemplatesStop) {
  auto out = renderSource("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message().find("steps"), std::string::npos) << out.error().message();
  out = renderSource("{{ 'abcd' * 100000000 }}");
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message().find("longer than"), std::string::npos) << out.error().message();
  out = renderSource("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}");
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message().find("longer than"), std::string::npos) << out.error().message();
  out = renderSource("{% for i in range(1000000) %}{{ 'x' * 1000 }}{% endfor %}");
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message().find("longer than"), std::string::npos) << out.error().message();
  out = renderSource("{{ 2 ** 1000 }}");
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message().find("overflow"), std::string::npos);
}

TEST(ChatTemplate, VariablesAndMessagesReachTheTemplate) {
  auto t = ChatTemplate::parse("{{ bos_token }}{{ messages | length }}{{ add_generation_prompt }}{{ tools[0].name }}");
  ASSERT_TRUE(t);
  auto out = t->render(nlohmann::json::array({{{"role", "user"}, {"content", "x"}}}), true,
                       {{"bos_token", "<s>"}, {"tools", {{{"name", "f"}}}}});
  ASSERT_TRUE(out) << out.error().message();
  EXPECT_EQ(*out, "<s>1Truef");
  // A template renders many times with no state left from earlier renders.
  auto again = t->render(nlohmann::json::array(), false, {{"tools", {{{"name", "g"}}}}});
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, "0Falseg");
}

TEST(ChatTemplate, PlainTemplateIsDocumentedSource) {
  // make-expected.py renders plain.jinja with jinja2 (cases Plain_*).
  EXPECT_EQ(readFile(kDataDir + "plain.jinja"), std::string(ChatTemplate::kPlainSource));
  nlohmann::json messages = {{{"role", "system"}, {"content", "Be brief."}},
                             {{"role", "user"}, {"content", "Hi"}},
                             {{"role", "assistant"}, {"content", "Hello"}}};
  auto out = ChatTemplate::plain().render(messages, true);
  ASSERT_TRUE(out) << out.error().message();
  EXPECT_EQ(*out, "System: Be brief.\n\nUser: Hi\n\nAssistant: Hello\n\nAssistant:");
  out = ChatTemplate::plain().render(messages, false);
  ASSERT_TRUE(out);
  EXPECT_EQ(*out, "System: Be brief.\n\nUser: Hi\n\nAssistant: Hello\n\n");
}

/// `source` rendered, or its error message.
std::string rendered(std::string_view source) {
  auto out = renderSource(source);
  return out ? *out : "error: " + out.error().message();
}

// tojson is transformers' json.dumps(ensure_ascii=False): control
// characters below 0x20 are escaped, DEL (0x7f) and non-ASCII text are not.
TEST(ChatTemplate, ToJsonEscapesAsPythonJsonDumps) {
  EXPECT_EQ(rendered("{{ 'a\x01" "b\x7f" "c\u00e9' | tojson }}"),
            "\"a\\u0001b\x7f" "c\u00e9\"");
}

// Floor division and modulo round toward minus infinity, so a negative
// divisor gives Python's results (jinja2 3.1 renders each of these).
TEST(ChatTemplate, IntegerDivisionFloorsAsPython) {
  EXPECT_EQ(rendered("{{ 7 // -2 }} {{ 7 % -3 }} {{ -7 // -2 }} {{ -7 % -3 }}"), "-4 -2 3 -1");
}

// A string or list repeated a negative number of times is empty, not an
// error (templates pad with `' ' * (width - n)`).
TEST(ChatTemplate, RepeatingNegativelyGivesNothing) {
  EXPECT_EQ(rendered("[{{ 'ab' * -1 }}] {{ [1] * -2 }}"), "[] []");
}

// <= and >= (and the le / ge tests) hold for equal operands.
TEST(ChatTemplate, OrderComparisonsHoldForEqualValues) {
  EXPECT_EQ(rendered("{{ 2 <= 2 }} {{ 2 >= 2 }} {{ 'a' <= 'a' }} {{ 'b' >= 'b' }} "
                     "{{ 1 is le 1 }} {{ 1 is ge 1 }}"),
            "True True True True True True");
}

// str.count counts occurrences that do not overlap, str.find answers in
// characters (not bytes), and endswith / startswith look only at the ends.
TEST(ChatTemplate, StringMethodsCountFindAndMatchEndsAsPython) {
  EXPECT_EQ(rendered("{{ 'aaaa'.count('aa') }} {{ '\u00e9\u4e16x'.find('x') }} "
                     "{{ 'abc'.endswith('b') }} {{ 'abc'.endswith('bc') }} "
                     "{{ 'abc'.startswith('b') }}"),
            "2 2 False True False");
}

// Filter and test arguments keep their meaning: default(d, true) replaces
// only a falsy value, unique(false) ignores case, and `odd` is the
// remainder 1 (2.5 is not odd).
TEST(ChatTemplate, FilterArgumentsKeepTheirMeaning) {
  EXPECT_EQ(rendered("{{ 'v' | default('d', true) }} {{ 1 | default('d', true) }} "
                     "{{ ['a', 'A', 'b'] | unique(false) | list }} "
                     "{{ ['a', 'A', 'b'] | unique(true) | list }} "
                     "{{ 2.5 is odd }} {{ 3 is odd }} {{ -3 is odd }}"),
            "v 1 ['a', 'b'] ['a', 'A', 'b'] False True True");
}

// A character of four UTF-8 bytes (an emoji) is one character to length,
// subscripts and reverse.
TEST(ChatTemplate, FourByteCharactersCountAsOne) {
  EXPECT_EQ(rendered("{{ '\U0001F600x' | length }} {{ '\U0001F600x'[1] }} "
                     "{{ '\U0001F600x' | reverse }}"),
            "2 x x\U0001F600");
}

// Printed lists quote strings as Python's repr: double quotes only when
// the string has a single quote and no double one.
TEST(ChatTemplate, ReprQuotesAsPython) {
  EXPECT_EQ(rendered(R"({{ ['it\'s "q"', "it's", 'say "hi"'] }})"),
            R"(['it\'s "q"', "it's", 'say "hi"'])");
}

// Slice bounds before the start clamp as Python's slice.indices: with a
// negative step, to before the first item.
TEST(ChatTemplate, NegativeStepSlicesClampBeforeTheStart) {
  EXPECT_EQ(rendered("{{ [1, 2, 3][-10::-1] }} {{ [1, 2, 3][:-10:-1] }} [{{ 'abc'[-10::-1] }}]"),
            "[] [3, 2, 1] []");
}

} // namespace
} // namespace lathe::serving
