// The lint of one parsed file (codegen/HLS/HlsLint.h): every rule of
// docs/hls.md's table over its AST and its `#pragma HLS` lines. The rules
// live by group: the declaration and call rules in FileLinter.cpp
// (dynamic-memory, stl-container, virtual-function, function-pointer),
// Recursion.cpp, Loops.cpp (unbounded-loop), Pragmas.cpp (pragma-keyword,
// pragma-option, interface-pragma).
#pragma once

#include "codegen/HLS/HlsLint.h"
#include "codegen/HLS/HlsPragmas.h"
#include "codegen/HLS/Lint/Cursors.h"

#include <clang-c/Index.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace lathe::hls::lint {

/// A `#pragma HLS ...` line, as far as the rules need it.
struct HlsPragma {
  unsigned offset = 0;
  std::string keyword;            // upper case
  std::vector<std::string> ports; // INTERFACE port=...
};

class FileLinter {
public:
  FileLinter(CXTranslationUnit tu, std::string path, std::vector<LintFinding> &findings)
      : tu_(tu), path_(std::move(path)), findings_(findings) {}

  /// `tops`: names from --top (empty: extern "C"); `definedTops` collects
  /// the ones this file defines. False if libclang cannot name the file it parsed (no finding could
  /// be placed in it, so the file would pass unchecked).
  bool run(const std::vector<std::string> &tops, std::set<std::string> &definedTops);

private:
  CXTranslationUnit tu_;
  std::string path_;
  std::vector<LintFinding> &findings_;
  CXFile file_ = nullptr;
  std::vector<HlsPragma> pragmas_;
  std::vector<CXCursor> definitions_;

  struct CallEdge {
    std::string caller, callee, calleeName;
    Position at;
  };
  std::vector<CallEdge> calls_;
  std::map<std::string, std::string> functionNames_; // USR -> name

  void report(Position at, const char *rule, std::string reason);
  void report(CXCursor c, const char *rule, std::string reason);
  /// Where the cursor is expanded: a `new` from a macro counts where the
  /// macro is used (clang_Location_isFromMainFile would say no).
  bool inMainFile(CXCursor c);

  // The AST rules (FileLinter.cpp): one cursor; false skips its children.
  bool visit(CXCursor c);
  /// `subject`: "'x' has type" or "function 'f' returns".
  void checkDeclType(CXCursor c, CXType type, const std::string &subject);
  static std::string stlAdvice(const std::string &stl);
  void checkCall(CXCursor call);

  // Recursion (Recursion.cpp).
  void collectCalls(CXCursor function);
  void checkRecursion();

  // Loops (Loops.cpp).
  /// The variable `expr` names (under casts and parentheses), or "".
  std::string variableOf(CXCursor expr);
  /// Whether `expr` is a compile-time integer.
  bool isStatic(CXCursor expr, int depth = 0);
  /// The variables `expr` steps by a constant; nullopt if it does anything else.
  std::optional<std::set<std::string>> constantSteps(CXCursor expr);
  /// The file's text from `begin` to `end` on one line.
  std::string sourceText(unsigned begin, unsigned end);
  void checkFor(CXCursor loop);
  void checkRangeFor(CXCursor loop);

  // Pragmas and top functions (Pragmas.cpp).
  struct Token {
    std::string text;
    CXTokenKind kind;
    Position at;
  };
  void readPragmas();
  static bool isWord(const Token &t);
  void checkPragma(const Token &hls, const std::vector<Token> &words);
  void reportOption(const PragmaSpec &spec, const Token &word, std::string reason);
  static bool isExternC(CXCursor function);
  void checkInterfaces(CXCursor function);
};

} // namespace lathe::hls::lint
