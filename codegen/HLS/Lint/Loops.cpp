// The unbounded-loop rule: while and do loops, for loops without a
// compile-time bound and step, range-based for over run-time ranges.
#include "codegen/HLS/Lint/FileLinter.h"

#include <cctype>

namespace lathe::hls::lint {

/// The variable `expr` names (under casts and parentheses), or "".
std::string FileLinter::variableOf(CXCursor expr) {
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
bool FileLinter::isStatic(CXCursor expr, int depth) {
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
std::optional<std::set<std::string>> FileLinter::constantSteps(CXCursor expr) {
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

std::string FileLinter::sourceText(unsigned begin, unsigned end) {
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

void FileLinter::checkFor(CXCursor loop) {
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

void FileLinter::checkRangeFor(CXCursor loop) {
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

} // namespace lathe::hls::lint
