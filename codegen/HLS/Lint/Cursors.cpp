#include "codegen/HLS/Lint/Cursors.h"

#include <algorithm>
#include <cctype>

namespace lathe::hls::lint {

std::string take(CXString s) {
  const char *text = clang_getCString(s);
  std::string result = text ? text : "";
  clang_disposeString(s);
  return result;
}

std::string spelling(CXCursor c) { return take(clang_getCursorSpelling(c)); }
std::string typeSpelling(CXType t) { return take(clang_getTypeSpelling(t)); }

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

Position position(CXSourceLocation location) {
  Position p;
  CXFile file;
  clang_getExpansionLocation(location, &file, &p.line, &p.column, &p.offset);
  return p;
}

std::vector<CXCursor> children(CXCursor c) {
  std::vector<CXCursor> result;
  clang_visitChildren(
      c,
      [](CXCursor child, CXCursor, CXClientData data) {
        static_cast<std::vector<CXCursor> *>(data)->push_back(child);
        return CXChildVisit_Continue;
      },
      &result);
  return result;
}

void walk(CXCursor root, const std::function<bool(CXCursor)> &visit) {
  clang_visitChildren(
      root,
      [](CXCursor child, CXCursor, CXClientData data) {
        const auto &f = *static_cast<const std::function<bool(CXCursor)> *>(data);
        return f(child) ? CXChildVisit_Recurse : CXChildVisit_Continue;
      },
      const_cast<std::function<bool(CXCursor)> *>(&visit));
}

CXCursor strip(CXCursor c) {
  while (clang_getCursorKind(c) == CXCursor_UnexposedExpr ||
         clang_getCursorKind(c) == CXCursor_ParenExpr) {
    std::vector<CXCursor> kids = children(c);
    if (kids.size() != 1)
      break;
    c = kids[0];
  }
  return c;
}

bool isFunctionKind(CXCursorKind kind) {
  return kind == CXCursor_FunctionDecl || kind == CXCursor_CXXMethod ||
         kind == CXCursor_Constructor || kind == CXCursor_Destructor ||
         kind == CXCursor_ConversionFunction;
}

bool isCallableDeclKind(CXCursorKind kind) {
  return isFunctionKind(kind) || kind == CXCursor_FunctionTemplate ||
         kind == CXCursor_OverloadedDeclRef;
}

// Containers and wrappers that allocate at run time, by the name of their

bool isInStd(CXCursor decl) {
  CXCursor parent = clang_getCursorSemanticParent(decl);
  while (clang_getCursorKind(parent) == CXCursor_Namespace) {
    if (!clang_Cursor_isInlineNamespace(parent))
      return spelling(parent) == "std" &&
             clang_getCursorKind(clang_getCursorSemanticParent(parent)) == CXCursor_TranslationUnit;
    parent = clang_getCursorSemanticParent(parent);
  }
  return false;
}

} // namespace lathe::hls::lint
