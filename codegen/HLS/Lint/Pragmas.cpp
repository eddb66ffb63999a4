// The pragma rules: pragma-keyword and pragma-option, checked against the
// pragma table (codegen/HLS/HlsPragmas.h), and interface-pragma, the top
// functions' memory ports named by INTERFACE pragmas.
#include "codegen/HLS/Lint/FileLinter.h"

#include "codegen/HLS/Lint/Types.h"

#include <algorithm>
#include <functional>
#include <span>

namespace lathe::hls::lint {

void FileLinter::readPragmas() {
  size_t size = 0;
  const char *text = clang_getFileContents(tu_, file_, &size);
  if (!text)
    return;
  // Logical line of each offset: a line ending in a backslash continues.
  std::vector<unsigned> logicalLine(size + 1, 0);
  unsigned line = 0;
  for (size_t i = 0; i < size; ++i) {
    logicalLine[i] = line;
    if (text[i] == '\n') {
      size_t j = i;
      while (j > 0 && (text[j - 1] == ' ' || text[j - 1] == '\t' || text[j - 1] == '\r'))
        --j;
      if (!(j > 0 && text[j - 1] == '\\'))
        ++line;
    }
  }
  logicalLine[size] = line;

  CXSourceRange whole = clang_getRange(clang_getLocationForOffset(tu_, file_, 0),
                                       clang_getLocationForOffset(tu_, file_, size));
  CXToken *raw = nullptr;
  unsigned count = 0;
  clang_tokenize(tu_, whole, &raw, &count);
  std::vector<Token> tokens;
  tokens.reserve(count);
  for (unsigned i = 0; i < count; ++i)
    tokens.push_back({take(clang_getTokenSpelling(tu_, raw[i])), clang_getTokenKind(raw[i]),
                      position(clang_getTokenLocation(tu_, raw[i]))});
  if (raw)
    clang_disposeTokens(tu_, raw, count);

  // Lines the preprocessor skipped (#if 0 ...) hold no pragmas.
  std::vector<std::pair<unsigned, unsigned>> skipped;
  if (CXSourceRangeList *ranges = clang_getSkippedRanges(tu_, file_)) {
    for (unsigned i = 0; i < ranges->count; ++i)
      skipped.emplace_back(position(clang_getRangeStart(ranges->ranges[i])).offset,
                           position(clang_getRangeEnd(ranges->ranges[i])).offset);
    clang_disposeSourceRangeList(ranges);
  }
  auto isSkipped = [&](unsigned offset) {
    return std::any_of(skipped.begin(), skipped.end(),
                       [&](auto r) { return offset >= r.first && offset < r.second; });
  };

  auto lineOf = [&](const Token &t) { return logicalLine[std::min<size_t>(t.at.offset, size)]; };
  for (size_t i = 0; i + 2 < tokens.size(); ++i) {
    if (tokens[i].text != "#" || (i > 0 && lineOf(tokens[i - 1]) == lineOf(tokens[i])))
      continue;
    unsigned directive = lineOf(tokens[i]);
    if (tokens[i + 1].text != "pragma" || lineOf(tokens[i + 1]) != directive ||
        !equalsIgnoringCase(tokens[i + 2].text, "HLS") || lineOf(tokens[i + 2]) != directive ||
        isSkipped(tokens[i].at.offset))
      continue;
    size_t end = i + 3;
    while (end < tokens.size() && lineOf(tokens[end]) == directive)
      ++end;
    checkPragma(tokens[i + 2], std::vector<Token>(tokens.begin() + i + 3, tokens.begin() + end));
    i = end - 1;
  }
}

bool FileLinter::isWord(const Token &t) {
  return t.kind == CXToken_Identifier || t.kind == CXToken_Keyword;
}

void FileLinter::checkPragma(const Token &hls, const std::vector<Token> &words) {
  if (words.empty() || !isWord(words[0])) {
    report(hls.at, "pragma-keyword", "'#pragma HLS' names no pragma");
    return;
  }
  const PragmaSpec *spec = findPragma(words[0].text);
  if (!spec) {
    std::string guess = closestKeyword(words[0].text);
    report(words[0].at, "pragma-keyword",
           "unknown HLS pragma '" + words[0].text + "'" +
               (guess.empty() ? std::string(" (not a Vitis HLS pragma)")
                              : " (did you mean '" + guess + "'?)"));
    return;
  }
  HlsPragma pragma{hls.at.offset, std::string(spec->keyword), {}};
  std::string name(spec->keyword);
  for (size_t i = 1; i < words.size();) {
    const Token &word = words[i];
    if (!isWord(word)) {
      ++i; // a stray value token, e.g. after `factor=N *`
      continue;
    }
    bool hasValue = i + 1 < words.size() && words[i + 1].text == "=";
    if (!hasValue) {
      if (!takesFlag(*spec, word.text))
        reportOption(*spec, word,
                     takesOption(*spec, word.text) ? "option '" + word.text + "' of HLS " + name +
                                                         " needs a value (" + word.text + "=...)"
                                                   : "");
      ++i;
      continue;
    }
    if (!takesOption(*spec, word.text))
      reportOption(*spec, word, "");
    // The value: one operand, or a parenthesized group, then more operands
    // joined by operators or commas (`ports=a,b`, `factor=N*2`).
    size_t j = i + 2;
    std::function<void()> operand = [&]() {
      if (j >= words.size())
        return;
      if (words[j].text == "(") {
        for (int depth = 0; j < words.size(); ++j) {
          depth += words[j].text == "(" ? 1 : words[j].text == ")" ? -1 : 0;
          if (depth == 0) {
            ++j;
            return;
          }
        }
        return;
      }
      bool prefix = words[j].kind == CXToken_Punctuation; // `-1`
      ++j;
      if (prefix)
        operand();
    };
    size_t valueStart = j;
    operand();
    while (j < words.size() && words[j].kind == CXToken_Punctuation && words[j].text != "=") {
      ++j;
      operand();
    }
    std::span<const std::string_view> allowed = optionValues(*spec, word.text);
    if (!allowed.empty() && j == valueStart + 1 && isWord(words[valueStart]) &&
        std::none_of(allowed.begin(), allowed.end(), [&](std::string_view v) {
          return equalsIgnoringCase(v, words[valueStart].text);
        })) {
      std::string list, guess = closestWord(allowed, words[valueStart].text);
      for (std::string_view v : allowed)
        list += (list.empty() ? "" : ", ") + std::string(v);
      report(
          words[valueStart].at, "pragma-option",
          "unknown value '" + words[valueStart].text + "' for option '" + word.text +
              "' of HLS " + name +
              (guess.empty() ? " (it takes " + list + ")" : " (did you mean '" + guess + "'?)"));
    }
    if (equalsIgnoringCase(word.text, "port") && valueStart < words.size())
      pragma.ports.push_back(words[valueStart].text);
    i = j;
  }
  pragmas_.push_back(std::move(pragma));
}

void FileLinter::reportOption(const PragmaSpec &spec, const Token &word,
                              std::string reason) {
  std::string name(spec.keyword);
  if (reason.empty()) {
    std::string guess = closestOption(spec, word.text);
    reason = "HLS " + name + " has no option '" + word.text + "'" +
             (guess.empty() ? std::string() : " (did you mean '" + guess + "'?)");
  }
  report(word.at, "pragma-option", std::move(reason));
}

bool FileLinter::isExternC(CXCursor function) {
  std::string name = spelling(function);
  std::string mangled = take(clang_Cursor_getMangling(function));
  return name != "main" && !mangled.empty() && mangled.rfind("_Z", 0) != 0;
}

void FileLinter::checkInterfaces(CXCursor function) {
  CXSourceRange extent = clang_getCursorExtent(function);
  unsigned begin = position(clang_getRangeStart(extent)).offset;
  unsigned end = position(clang_getRangeEnd(extent)).offset;
  std::set<std::string> ports;
  for (const HlsPragma &pragma : pragmas_)
    if (pragma.offset >= begin && pragma.offset < end && pragma.keyword == "INTERFACE")
      ports.insert(pragma.ports.begin(), pragma.ports.end());
  std::string name = spelling(function);
  int count = clang_Cursor_getNumArguments(function);
  for (int i = 0; i < count; ++i) {
    CXCursor parameter = clang_Cursor_getArgument(function, i);
    CXType type = clang_getCursorType(parameter);
    if (!isPointerOrArray(type))
      continue;
    std::string parameterName = spelling(parameter);
    if (parameterName.empty()) {
      report(parameter, "interface-pragma",
             "parameter " + std::to_string(i + 1) + " of top function '" + name +
                 "' is a pointer or array without a name, so no INTERFACE pragma can name it");
      continue;
    }
    if (!ports.count(parameterName))
      report(parameter, "interface-pragma",
             "pointer/array parameter '" + parameterName + "' of top function '" + name +
                 "' has no '#pragma HLS INTERFACE ... port=" + parameterName +
                 "' in the function body");
  }
}

} // namespace lathe::hls::lint
