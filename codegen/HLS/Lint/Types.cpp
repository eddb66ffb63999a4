#include "codegen/HLS/Lint/Types.h"

#include "codegen/HLS/Lint/Cursors.h"

#include <map>

namespace lathe::hls::lint {
namespace {

const std::map<std::string, std::string, std::less<>> kStlTypes = {
    {"vector", "std::vector"},
    {"map", "std::map"},
    {"multimap", "std::multimap"},
    {"unordered_map", "std::unordered_map"},
    {"unordered_multimap", "std::unordered_multimap"},
    {"set", "std::set"},
    {"multiset", "std::multiset"},
    {"unordered_set", "std::unordered_set"},
    {"unordered_multiset", "std::unordered_multiset"},
    {"list", "std::list"},
    {"forward_list", "std::forward_list"},
    {"deque", "std::deque"},
    {"queue", "std::queue"},
    {"stack", "std::stack"},
    {"priority_queue", "std::priority_queue"},
    {"basic_string", "std::string"},
    {"function", "std::function"},
    {"shared_ptr", "std::shared_ptr"},
    {"unique_ptr", "std::unique_ptr"},
    {"weak_ptr", "std::weak_ptr"},
};


} // namespace

std::string stlTypeIn(CXType type, int depth) {
  if (depth > 8 || type.kind == CXType_Invalid)
    return "";
  for (CXType t : {type, clang_getCanonicalType(type)}) {
    CXCursor decl = clang_getTypeDeclaration(t);
    if (!clang_Cursor_isNull(decl) && clang_getCursorKind(decl) != CXCursor_NoDeclFound) {
      // A specialization's template: std::vector<int> -> vector.
      CXCursor pattern = clang_getSpecializedCursorTemplate(decl);
      CXCursor named = clang_Cursor_isNull(pattern) ? decl : pattern;
      auto it = kStlTypes.find(spelling(named));
      if (it != kStlTypes.end() && isInStd(named))
        return it->second;
    }
  }
  CXType canonical = clang_getCanonicalType(type);
  CXType pointee = clang_getPointeeType(canonical);
  if (pointee.kind != CXType_Invalid)
    return stlTypeIn(pointee, depth + 1);
  CXType element = clang_getArrayElementType(canonical);
  if (element.kind != CXType_Invalid)
    return stlTypeIn(element, depth + 1);
  for (CXType t : {type, canonical}) {
    int count = clang_Type_getNumTemplateArguments(t);
    for (int i = 0; i < count; ++i) {
      std::string found = stlTypeIn(clang_Type_getTemplateArgumentAsType(t, i), depth + 1);
      if (!found.empty())
        return found;
    }
  }
  return "";
}

bool holdsFunctionPointer(CXType type, int depth) {
  if (depth > 8 || type.kind == CXType_Invalid)
    return false;
  CXType canonical = clang_getCanonicalType(type);
  if (canonical.kind == CXType_Pointer || canonical.kind == CXType_MemberPointer ||
      canonical.kind == CXType_LValueReference || canonical.kind == CXType_RValueReference) {
    CXType pointee = clang_getCanonicalType(clang_getPointeeType(canonical));
    if (pointee.kind == CXType_FunctionProto || pointee.kind == CXType_FunctionNoProto)
      return true;
    return holdsFunctionPointer(pointee, depth + 1);
  }
  CXType element = clang_getArrayElementType(canonical);
  if (element.kind != CXType_Invalid)
    return holdsFunctionPointer(element, depth + 1);
  int count = clang_Type_getNumTemplateArguments(canonical);
  for (int i = 0; i < count; ++i)
    if (holdsFunctionPointer(clang_Type_getTemplateArgumentAsType(canonical, i), depth + 1))
      return true;
  return false;
}

bool isPointerOrArray(CXType type) {
  CXType t = clang_getCanonicalType(type);
  if (t.kind == CXType_LValueReference || t.kind == CXType_RValueReference)
    t = clang_getCanonicalType(clang_getPointeeType(t));
  switch (t.kind) {
  case CXType_Pointer: {
    // A function pointer is no memory port; the function-pointer rule has it.
    CXType pointee = clang_getCanonicalType(clang_getPointeeType(t));
    return pointee.kind != CXType_FunctionProto && pointee.kind != CXType_FunctionNoProto;
  }
  case CXType_ConstantArray:
  case CXType_IncompleteArray:
  case CXType_VariableArray:
  case CXType_DependentSizedArray:
    return true;
  default:
    return false;
  }
}

} // namespace lathe::hls::lint
