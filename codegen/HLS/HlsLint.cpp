#include "codegen/HLS/HlsLint.h"

#include "codegen/HLS/HlsPragmas.h"

#include <clang-c/Index.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <sys/stat.h>

namespace lathe::hls {

std::string LintFinding::format() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": error: " + reason +
         " [" + rule + "]";
}

namespace {

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

struct Position {
  unsigned line = 0, column = 0, offset = 0;
};

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

/// Visits `root`'s subtree; `visit` returns false to skip a cursor's children.
void walk(CXCursor root, const std::function<bool(CXCursor)> &visit) {
  clang_visitChildren(
      root,
      [](CXCursor child, CXCursor, CXClientData data) {
        const auto &f = *static_cast<const std::function<bool(CXCursor)> *>(data);
        return f(child) ? CXChildVisit_Recurse : CXChildVisit_Continue;
      },
      const_cast<std::function<bool(CXCursor)> *>(&visit));
}

/// The expression under implicit casts and parentheses.
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
// template in namespace std (inline namespaces such as __cxx11 skipped).
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

/// Whether `decl` sits directly in namespace std (or an inline namespace of it).
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

/// The forbidden std type `type` is or holds (through pointers, references,
/// arrays and template arguments), e.g. "std::vector"; "" if none.
std::string stlTypeIn(CXType type, int depth = 0) {
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

/// Whether `type` is or holds a pointer to a function or member function.
bool holdsFunctionPointer(CXType type, int depth = 0) {
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
  bool run(const std::vector<std::string> &tops, std::set<std::string> &definedTops) {
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

  void report(Position at, const char *rule, std::string reason) {
    findings_.push_back({path_, at.line, at.column, rule, std::move(reason)});
  }
  void report(CXCursor c, const char *rule, std::string reason) {
    report(position(clang_getCursorLocation(c)), rule, std::move(reason));
  }

  /// Where the cursor is expanded: a `new` from a macro counts where the
  /// macro is used (clang_Location_isFromMainFile would say no).
  bool inMainFile(CXCursor c) {
    CXFile file = nullptr;
    clang_getExpansionLocation(clang_getCursorLocation(c), &file, nullptr, nullptr, nullptr);
    return file && file_ && clang_File_isEqual(file, file_);
  }

  // --- the AST rules -------------------------------------------------------

  bool visit(CXCursor c) {
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

  /// `subject`: "'x' has type" or "function 'f' returns".
  void checkDeclType(CXCursor c, CXType type, const std::string &subject) {
    std::string stl = stlTypeIn(type);
    if (!stl.empty())
      report(c, "stl-container",
             subject + " '" + typeSpelling(type) + "': " + stl + " " + stlAdvice(stl));
    else if (holdsFunctionPointer(type))
      report(c, "function-pointer",
             subject + " '" + typeSpelling(type) +
                 "', a function pointer (Vitis HLS calls functions only directly)");
  }

  static std::string stlAdvice(const std::string &stl) {
    if (stl == "std::function")
      return "calls through a pointer and allocates (call the function directly)";
    if (stl == "std::unique_ptr" || stl == "std::shared_ptr" || stl == "std::weak_ptr")
      return "owns memory allocated at run time (use a plain object or array)";
    return "allocates memory at run time (use a fixed-size array)";
  }

  void checkCall(CXCursor call) {
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

  // --- recursion -------------------------------------------------------------

  void collectCalls(CXCursor function) {
    std::string caller = take(clang_getCursorUSR(function));
    functionNames_[caller] = spelling(function);
    definitions_.push_back(function);
    walk(function, [&](CXCursor c) {
      if (clang_getCursorKind(c) == CXCursor_CallExpr) {
        CXCursor callee = clang_getCursorReferenced(c);
        if (isFunctionKind(clang_getCursorKind(callee))) {
          std::string usr = take(clang_getCursorUSR(callee));
          if (!usr.empty())
            calls_.push_back({caller, usr, spelling(callee), position(clang_getCursorLocation(c))});
        }
      }
      return true;
    });
  }

  void checkRecursion() {
    std::map<std::string, std::set<std::string>> graph;
    for (const CallEdge &edge : calls_)
      graph[edge.caller].insert(edge.callee);
    // The shortest chain of calls from `from` back to `to`, or empty.
    auto chain = [&](const std::string &from, const std::string &to) {
      std::map<std::string, std::string> previous{{from, ""}};
      std::vector<std::string> queue{from};
      for (size_t i = 0; i < queue.size(); ++i) {
        std::string node = queue[i];
        if (node == to) {
          std::vector<std::string> path;
          for (std::string at = to; !at.empty(); at = previous[at])
            path.push_back(at);
          std::reverse(path.begin(), path.end());
          return path;
        }
        for (const std::string &next : graph[node])
          if (previous.emplace(next, node).second)
            queue.push_back(next);
      }
      return std::vector<std::string>{};
    };
    for (const CallEdge &edge : calls_) {
      if (edge.caller == edge.callee) {
        report(edge.at, "recursion", "'" + edge.calleeName + "' calls itself");
        continue;
      }
      std::vector<std::string> back = chain(edge.callee, edge.caller);
      if (back.empty())
        continue;
      std::string cycle = functionNames_[edge.caller];
      for (const std::string &usr : back)
        cycle += " -> " + (functionNames_.count(usr) ? functionNames_[usr] : usr);
      report(edge.at, "recursion",
             "call to '" + edge.calleeName + "' is recursive (" + cycle + ")");
    }
  }

  // --- loops -----------------------------------------------------------------

  /// The variable `expr` names (under casts and parentheses), or "".
  std::string variableOf(CXCursor expr) {
    CXCursor c = strip(expr);
    if (clang_getCursorKind(c) != CXCursor_DeclRefExpr)
      return "";
    CXCursor decl = clang_getCursorReferenced(c);
    CXCursorKind kind = clang_getCursorKind(decl);
    if (kind != CXCursor_VarDecl && kind != CXCursor_ParmDecl)
      return "";
    return take(clang_getCursorUSR(decl)) + "@" +
           std::to_string(position(clang_getCursorLocation(decl)).offset);
  }

  /// Whether `expr` is a compile-time integer: clang can evaluate it, or it
  /// is built from literals, template parameters, enumerators and const
  /// variables with such initializers (inside templates clang cannot
  /// evaluate `N - 1` before instantiation).
  bool isStatic(CXCursor expr, int depth = 0) {
    if (depth > 16)
      return false;
    if (CXEvalResult result = clang_Cursor_Evaluate(expr)) {
      CXEvalResultKind kind = clang_EvalResult_getKind(result);
      clang_EvalResult_dispose(result);
      if (kind == CXEval_Int)
        return true;
    }
    CXCursorKind kind = clang_getCursorKind(expr);
    switch (kind) {
    case CXCursor_IntegerLiteral:
    case CXCursor_CharacterLiteral:
    case CXCursor_CXXBoolLiteralExpr:
    case CXCursor_TypeRef:
    case CXCursor_TemplateRef:
    case CXCursor_NamespaceRef:
    case CXCursor_UnaryExpr: // sizeof, alignof
    case CXCursor_SizeOfPackExpr:
      return true;
    case CXCursor_DeclRefExpr: {
      CXCursor decl = clang_getCursorReferenced(expr);
      CXCursorKind declKind = clang_getCursorKind(decl);
      if (declKind == CXCursor_NonTypeTemplateParameter || declKind == CXCursor_EnumConstantDecl)
        return true;
      if (declKind == CXCursor_VarDecl && clang_isConstQualifiedType(clang_getCursorType(decl))) {
        CXCursor init = clang_Cursor_getVarDeclInitializer(decl);
        return !clang_Cursor_isNull(init) && isStatic(init, depth + 1);
      }
      return false;
    }
    case CXCursor_UnexposedExpr:
    case CXCursor_ParenExpr:
    case CXCursor_BinaryOperator:
    case CXCursor_UnaryOperator:
    case CXCursor_ConditionalOperator:
    case CXCursor_CStyleCastExpr:
    case CXCursor_CXXStaticCastExpr:
    case CXCursor_CXXFunctionalCastExpr: {
      std::vector<CXCursor> kids = children(expr);
      if (kids.empty())
        return false;
      for (CXCursor kid : kids)
        if (!isStatic(kid, depth + 1))
          return false;
      return true;
    }
    default:
      return false;
    }
  }

  /// The variables `expr` steps by a constant (i++, --i, i += C, i = i - C,
  /// and comma lists of them); nullopt if it does anything else.
  std::optional<std::set<std::string>> constantSteps(CXCursor expr) {
    CXCursor c = strip(expr);
    CXCursorKind kind = clang_getCursorKind(c);
    std::vector<CXCursor> kids = children(c);
    if (kind == CXCursor_UnaryOperator && kids.size() == 1) {
      CXUnaryOperatorKind op = clang_getCursorUnaryOperatorKind(c);
      std::string var = variableOf(kids[0]);
      if (!var.empty() && (op == CXUnaryOperator_PostInc || op == CXUnaryOperator_PreInc ||
                           op == CXUnaryOperator_PostDec || op == CXUnaryOperator_PreDec))
        return std::set<std::string>{var};
      return std::nullopt;
    }
    if ((kind == CXCursor_CompoundAssignOperator || kind == CXCursor_BinaryOperator) &&
        kids.size() == 2) {
      CXBinaryOperatorKind op = clang_getCursorBinaryOperatorKind(c);
      if (op == CXBinaryOperator_Comma) {
        auto left = constantSteps(kids[0]), right = constantSteps(kids[1]);
        if (!left || !right)
          return std::nullopt;
        left->insert(right->begin(), right->end());
        return left;
      }
      std::string var = variableOf(kids[0]);
      if (var.empty())
        return std::nullopt;
      if ((op == CXBinaryOperator_AddAssign || op == CXBinaryOperator_SubAssign) &&
          isStatic(kids[1]))
        return std::set<std::string>{var};
      if (op == CXBinaryOperator_Assign) {
        CXCursor rhs = strip(kids[1]);
        std::vector<CXCursor> operands = children(rhs);
        if (clang_getCursorKind(rhs) != CXCursor_BinaryOperator || operands.size() != 2)
          return std::nullopt;
        CXBinaryOperatorKind rhsOp = clang_getCursorBinaryOperatorKind(rhs);
        bool stepsLeft = variableOf(operands[0]) == var && isStatic(operands[1]);
        bool stepsRight = variableOf(operands[1]) == var && isStatic(operands[0]);
        if ((rhsOp == CXBinaryOperator_Add && (stepsLeft || stepsRight)) ||
            (rhsOp == CXBinaryOperator_Sub && stepsLeft))
          return std::set<std::string>{var};
      }
    }
    return std::nullopt;
  }

  std::string sourceText(unsigned begin, unsigned end) {
    size_t size = 0;
    const char *text = clang_getFileContents(tu_, file_, &size);
    if (!text || begin > end || end > size)
      return "";
    std::string result(text + begin, text + end);
    // One line, single spaces: the text goes into a one-line message.
    std::string collapsed;
    for (char ch : result) {
      bool space = std::isspace(static_cast<unsigned char>(ch));
      if (space && (collapsed.empty() || collapsed.back() == ' '))
        continue;
      collapsed += space ? ' ' : ch;
    }
    while (!collapsed.empty() && collapsed.back() == ' ')
      collapsed.pop_back();
    return collapsed;
  }

  void checkFor(CXCursor loop) {
    // libclang leaves out the absent parts of `for (init; cond; inc)`, so
    // the children are told apart by where they lie against the semicolons.
    CXToken *tokens = nullptr;
    unsigned count = 0;
    clang_tokenize(tu_, clang_getCursorExtent(loop), &tokens, &count);
    std::vector<unsigned> semicolons;
    unsigned close = 0;
    int depth = 0;
    for (unsigned i = 0; i < count; ++i) {
      if (clang_getTokenKind(tokens[i]) != CXToken_Punctuation)
        continue;
      std::string text = take(clang_getTokenSpelling(tu_, tokens[i]));
      unsigned offset = position(clang_getTokenLocation(tu_, tokens[i])).offset;
      if (text == "(" || text == "[" || text == "{")
        ++depth;
      else if (text == ")" || text == "]" || text == "}") {
        if (--depth == 0) {
          close = offset;
          break;
        }
      } else if (text == ";" && depth == 1)
        semicolons.push_back(offset);
    }
    if (tokens)
      clang_disposeTokens(tu_, tokens, count);
    if (semicolons.size() != 2 || close == 0)
      return; // a loop header made by a macro: nothing to read
    std::optional<CXCursor> cond, inc;
    for (CXCursor kid : children(loop)) {
      unsigned at = position(clang_getRangeStart(clang_getCursorExtent(kid))).offset;
      if (at > semicolons[0] && at < semicolons[1])
        cond = kid;
      else if (at > semicolons[1] && at < close)
        inc = kid;
    }
    std::string condText = sourceText(semicolons[0] + 1, semicolons[1]);
    if (!cond) {
      report(loop, "unbounded-loop", "for loop has no condition, so no static trip count");
      return;
    }
    std::string var;
    CXCursor compare = strip(*cond);
    std::vector<CXCursor> sides = children(compare);
    if (clang_getCursorKind(compare) == CXCursor_BinaryOperator && sides.size() == 2) {
      CXBinaryOperatorKind op = clang_getCursorBinaryOperatorKind(compare);
      if (op == CXBinaryOperator_LT || op == CXBinaryOperator_GT || op == CXBinaryOperator_LE ||
          op == CXBinaryOperator_GE || op == CXBinaryOperator_NE) {
        if (!variableOf(sides[0]).empty() && isStatic(sides[1]))
          var = variableOf(sides[0]);
        else if (!variableOf(sides[1]).empty() && isStatic(sides[0]))
          var = variableOf(sides[1]);
      }
    }
    if (var.empty()) {
      report(*cond, "unbounded-loop",
             "for loop condition '" + condText +
                 "' does not compare the loop variable with a compile-time constant");
      return;
    }
    std::optional<std::set<std::string>> steps;
    if (inc)
      steps = constantSteps(*inc);
    if (!steps || !steps->count(var)) {
      std::string incText = sourceText(semicolons[1] + 1, close);
      if (!inc)
        report(loop, "unbounded-loop", "for loop has no increment, so no static trip count");
      else
        report(*inc, "unbounded-loop",
               "for loop increment '" + incText + "' does not step the loop variable of '" +
                   condText + "' by a constant");
    }
  }

  void checkRangeFor(CXCursor loop) {
    std::vector<CXCursor> kids = children(loop);
    if (kids.size() < 2)
      return;
    CXType range = clang_getCanonicalType(clang_getCursorType(kids[1]));
    if (range.kind == CXType_LValueReference || range.kind == CXType_RValueReference)
      range = clang_getCanonicalType(clang_getPointeeType(range));
    if (range.kind == CXType_ConstantArray || range.kind == CXType_Unexposed ||
        range.kind == CXType_Invalid)
      return;
    CXCursor decl = clang_getTypeDeclaration(range);
    CXCursor pattern = clang_getSpecializedCursorTemplate(decl);
    if (!clang_Cursor_isNull(pattern) && spelling(pattern) == "array" && isInStd(pattern))
      return;
    report(loop, "unbounded-loop",
           "range-based for over '" + typeSpelling(clang_getCursorType(kids[1])) +
               "' has no static trip count (iterate over a fixed-size array)");
  }

  // --- pragmas ---------------------------------------------------------------

  struct Token {
    std::string text;
    CXTokenKind kind;
    Position at;
  };

  void readPragmas() {
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

  static bool isWord(const Token &t) {
    return t.kind == CXToken_Identifier || t.kind == CXToken_Keyword;
  }

  void checkPragma(const Token &hls, const std::vector<Token> &words) {
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

  void reportOption(const PragmaSpec &spec, const Token &word, std::string reason) {
    std::string name(spec.keyword);
    if (reason.empty()) {
      std::string guess = closestOption(spec, word.text);
      reason = "HLS " + name + " has no option '" + word.text + "'" +
               (guess.empty() ? std::string() : " (did you mean '" + guess + "'?)");
    }
    report(word.at, "pragma-option", std::move(reason));
  }

  // --- top functions ---------------------------------------------------------

  static bool isExternC(CXCursor function) {
    std::string name = spelling(function);
    std::string mangled = take(clang_Cursor_getMangling(function));
    return name != "main" && !mangled.empty() && mangled.rfind("_Z", 0) != 0;
  }

  void checkInterfaces(CXCursor function) {
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
};

Status checkReadable(const std::string &path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0)
    return Error(path + ": " + std::strerror(errno));
  if (S_ISDIR(info.st_mode))
    return Error(path + ": a folder, expected a C++ file");
  if (FILE *f = std::fopen(path.c_str(), "rb"))
    std::fclose(f);
  else
    return Error(path + ": " + std::strerror(errno));
  return Status::ok();
}

} // namespace

Expected<std::vector<LintFinding>> lintFiles(const LintOptions &options) {
  for (const std::string &path : options.files)
    if (Status readable = checkReadable(path); !readable)
      return readable.error();
  std::vector<std::string> arguments = {"-x", "c++", "-std=c++17"};
  for (const std::string &dir : options.includeDirs)
    arguments.push_back("-I" + dir);
  std::vector<const char *> argv;
  for (const std::string &a : arguments)
    argv.push_back(a.c_str());

  CXIndex index = clang_createIndex(/*excludeDeclarationsFromPCH=*/0, /*displayDiagnostics=*/0);
  std::vector<LintFinding> all;
  std::set<std::string> definedTops;
  std::optional<Error> failure;
  for (const std::string &path : options.files) {
    CXTranslationUnit tu = nullptr;
    CXErrorCode code =
        clang_parseTranslationUnit2(index, path.c_str(), argv.data(), static_cast<int>(argv.size()),
                                    nullptr, 0, CXTranslationUnit_DetailedPreprocessingRecord, &tu);
    if (code != CXError_Success || !tu) {
      failure = Error(path + ": libclang could not parse the file (error " +
                      std::to_string(static_cast<int>(code)) + ")");
      break;
    }
    for (unsigned i = 0, n = clang_getNumDiagnostics(tu); i < n && !failure; ++i) {
      CXDiagnostic diagnostic = clang_getDiagnostic(tu, i);
      if (clang_getDiagnosticSeverity(diagnostic) >= CXDiagnostic_Error)
        failure = Error(take(clang_formatDiagnostic(diagnostic, CXDiagnostic_DisplaySourceLocation |
                                                                    CXDiagnostic_DisplayColumn)));
      clang_disposeDiagnostic(diagnostic);
    }
    if (!failure) {
      std::vector<LintFinding> findings;
      if (!FileLinter(tu, path, findings).run(options.tops, definedTops))
        failure = Error(path + ": libclang parsed the file but cannot find it among its inputs");
      std::sort(findings.begin(), findings.end(), [](const auto &a, const auto &b) {
        return std::tie(a.line, a.column, a.rule, a.reason) <
               std::tie(b.line, b.column, b.rule, b.reason);
      });
      for (LintFinding &finding : findings)
        if (all.empty() || all.back().file != finding.file || all.back().line != finding.line ||
            all.back().column != finding.column || all.back().rule != finding.rule ||
            all.back().reason != finding.reason)
          all.push_back(std::move(finding));
    }
    clang_disposeTranslationUnit(tu);
    if (failure)
      break;
  }
  clang_disposeIndex(index);
  if (failure)
    return *failure;
  for (const std::string &top : options.tops)
    if (!definedTops.count(top))
      return Error("--top " + top + ": no given file defines a function named '" + top + "'");
  return all;
}

} // namespace lathe::hls
