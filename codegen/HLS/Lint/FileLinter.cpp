// The lint of one file, and its declaration and call rules:
// dynamic-memory, stl-container, virtual-function, function-pointer.
#include "codegen/HLS/Lint/FileLinter.h"

#include "codegen/HLS/Lint/Types.h"

#include <algorithm>

namespace lathe::hls::lint {

bool FileLinter::run(const std::vector<std::string> &tops,
                     std::set<std::string> &definedTops) {
  file_ = clang_getFile(tu_, path_.c_str());
  if (!file_)
    return false;
  readPragmas();
  CXCursor root = clang_getTranslationUnitCursor(tu_);
  walk(root, [&](CXCursor c) { return visit(c); });
  checkRecursion();
  for (CXCursor function : definitions_) {
    std::string name = spelling(function);
    bool top = tops.empty() ? isExternC(function)
                            : std::find(tops.begin(), tops.end(), name) != tops.end();
    if (!top || clang_getCursorKind(function) != CXCursor_FunctionDecl)
      continue;
    definedTops.insert(name);
    checkInterfaces(function);
  }
  return true;
}

void FileLinter::report(Position at, const char *rule, std::string reason) {
  findings_.push_back({path_, at.line, at.column, rule, std::move(reason)});
}

void FileLinter::report(CXCursor c, const char *rule, std::string reason) {
  report(position(clang_getCursorLocation(c)), rule, std::move(reason));
}

bool FileLinter::inMainFile(CXCursor c) {
  CXFile file = nullptr;
  clang_getExpansionLocation(clang_getCursorLocation(c), &file, nullptr, nullptr, nullptr);
  return file && file_ && clang_File_isEqual(file, file_);
}

bool FileLinter::visit(CXCursor c) {
  if (!inMainFile(c))
    return false;
  CXCursorKind kind = clang_getCursorKind(c);
  switch (kind) {
  case CXCursor_CXXNewExpr:
    report(c, "dynamic-memory", "'new' allocates memory at run time");
    break;
  case CXCursor_CXXDeleteExpr:
    report(c, "dynamic-memory", "'delete' frees memory allocated at run time");
    break;
  case CXCursor_CallExpr:
    checkCall(c);
    break;
  case CXCursor_WhileStmt:
    report(c, "unbounded-loop",
           "while loop has no static trip count (write a for loop with a constant bound)");
    break;
  case CXCursor_DoStmt:
    report(c, "unbounded-loop",
           "do-while loop has no static trip count (write a for loop with a constant bound)");
    break;
  case CXCursor_ForStmt:
    checkFor(c);
    break;
  case CXCursor_CXXForRangeStmt:
    checkRangeFor(c);
    break;
  case CXCursor_VarDecl:
  case CXCursor_ParmDecl:
  case CXCursor_FieldDecl:
    checkDeclType(c, clang_getCursorType(c), "'" + spelling(c) + "' has type");
    break;
  default:
    break;
  }
  if (isFunctionKind(kind) || kind == CXCursor_FunctionTemplate) {
    if (kind == CXCursor_FunctionDecl || kind == CXCursor_CXXMethod ||
        kind == CXCursor_FunctionTemplate || kind == CXCursor_ConversionFunction)
      checkDeclType(c, clang_getResultType(clang_getCursorType(c)),
                    "function '" + spelling(c) + "' returns");
    if ((kind == CXCursor_CXXMethod || kind == CXCursor_Destructor) &&
        clang_CXXMethod_isVirtual(c) && clang_equalCursors(c, clang_getCanonicalCursor(c)))
      report(c, "virtual-function",
             "virtual function '" + spelling(c) + "' (Vitis HLS has no run-time dispatch)");
    if (isFunctionKind(kind) && clang_isCursorDefinition(c))
      collectCalls(c);
  }
  return true;
}

void FileLinter::checkDeclType(CXCursor c, CXType type, const std::string &subject) {
  std::string stl = stlTypeIn(type);
  if (!stl.empty())
    report(c, "stl-container",
           subject + " '" + typeSpelling(type) + "': " + stl + " " + stlAdvice(stl));
  else if (holdsFunctionPointer(type))
    report(c, "function-pointer",
           subject + " '" + typeSpelling(type) +
               "', a function pointer (Vitis HLS calls functions only directly)");
}

std::string FileLinter::stlAdvice(const std::string &stl) {
  if (stl == "std::function")
    return "calls through a pointer and allocates (call the function directly)";
  if (stl == "std::unique_ptr" || stl == "std::shared_ptr" || stl == "std::weak_ptr")
    return "owns memory allocated at run time (use a plain object or array)";
  return "allocates memory at run time (use a fixed-size array)";
}

void FileLinter::checkCall(CXCursor call) {
  CXCursor callee = clang_getCursorReferenced(call);
  CXCursorKind calleeKind = clang_getCursorKind(callee);
  if (calleeKind == CXCursor_Constructor)
    return; // a construction: its children are arguments, not a callee
  if (calleeKind == CXCursor_FunctionDecl) {
    static const std::set<std::string, std::less<>> kAllocators = {
        "malloc", "calloc", "realloc", "free", "aligned_alloc", "alloca"};
    std::string name = spelling(callee);
    if (kAllocators.count(name)) {
      report(call, "dynamic-memory",
             "call to '" + name + "' " +
                 (name == "free" ? "frees memory allocated" : "allocates memory") +
                 " at run time");
      return;
    }
  }
  if (clang_Cursor_isDynamicCall(call)) {
    report(call, "virtual-function",
           "virtual call to '" + spelling(callee) + "' is dispatched at run time");
    return;
  }
  std::vector<CXCursor> kids = children(call);
  if (kids.empty())
    return;
  CXCursor target = strip(kids[0]);
  CXCursorKind targetKind = clang_getCursorKind(target);
  if ((targetKind == CXCursor_DeclRefExpr || targetKind == CXCursor_MemberRefExpr) &&
      isCallableDeclKind(clang_getCursorKind(clang_getCursorReferenced(target))))
    return;
  bool throughPointer = false;
  if (calleeKind == CXCursor_VarDecl || calleeKind == CXCursor_ParmDecl ||
      calleeKind == CXCursor_FieldDecl) {
    throughPointer = holdsFunctionPointer(clang_getCursorType(callee));
  } else if (clang_Cursor_isNull(callee) || calleeKind == CXCursor_InvalidFile ||
             clang_isInvalid(calleeKind)) {
    CXType type = clang_getCanonicalType(clang_getCursorType(kids[0]));
    if (type.kind == CXType_Pointer || type.kind == CXType_MemberPointer) {
      CXType pointee = clang_getCanonicalType(clang_getPointeeType(type));
      throughPointer =
          pointee.kind == CXType_FunctionProto || pointee.kind == CXType_FunctionNoProto;
    }
    if (targetKind == CXCursor_BinaryOperator) {
      CXBinaryOperatorKind op = clang_getCursorBinaryOperatorKind(target);
      throughPointer |= op == CXBinaryOperator_PtrMemD || op == CXBinaryOperator_PtrMemI;
    }
  }
  if (throughPointer)
    report(call, "function-pointer",
           clang_Cursor_isNull(callee) || clang_isInvalid(calleeKind)
               ? std::string("call through a function pointer")
               : "call through function pointer '" + spelling(callee) + "'");
}

} // namespace lathe::hls::lint
