// libclang cursors, types and source positions as the lint's rules read
// them (codegen/HLS/HlsLint.h): the stable C API's strings, children and
// walks, with the expansion position of a cursor.
#pragma once

#include <clang-c/Index.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace lathe::hls::lint {

/// A CXString's text; the string is disposed.
std::string take(CXString s);
std::string spelling(CXCursor c);
std::string typeSpelling(CXType t);
bool equalsIgnoringCase(std::string_view a, std::string_view b);

/// Where a cursor or token is expanded (a macro's construct: where the
/// macro is used).
struct Position {
  unsigned line = 0, column = 0, offset = 0;
};
Position position(CXSourceLocation location);

std::vector<CXCursor> children(CXCursor c);

/// Visits `root`'s subtree; `visit` returns false to skip a cursor's children.
void walk(CXCursor root, const std::function<bool(CXCursor)> &visit);

/// The expression under implicit casts and parentheses.
CXCursor strip(CXCursor c);

bool isFunctionKind(CXCursorKind kind);
/// A function, a function template or an overload set.
bool isCallableDeclKind(CXCursorKind kind);

/// Whether `decl` sits directly in namespace std (or an inline namespace of it).
bool isInStd(CXCursor decl);

} // namespace lathe::hls::lint
