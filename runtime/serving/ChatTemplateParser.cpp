// Lexer and parser for chat templates, after jinja2's lexer.py and
// parser.py with trim_blocks and lstrip_blocks on (the whitespace rules are
// jinja2's, applied while lexing, as jinja2 does).
#include "runtime/serving/ChatTemplateSyntax.h"
#include "runtime/tokenizer/Utf8.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <set>

namespace lathe::serving::chat_template {
namespace {

struct Token {
  enum class Type { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };
  Type type;
  std::string text; // Text: the data; Name, Op: the spelling; String: the value
  Json value;       // Int, Float
  int line;
};

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool isNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}
bool isDigit(char c) { return c >= '0' && c <= '9'; }

std::string describe(const Token &t) {
  switch (t.type) {
  case Token::Type::Text: return "template data";
  case Token::Type::VarBegin: return "'{{'";
  case Token::Type::VarEnd: return "end of print statement";
  case Token::Type::BlockBegin: return "'{%'";
  case Token::Type::BlockEnd: return "end of statement block";
  case Token::Type::Eof: return "end of template";
  case Token::Type::String: return "string";
  default: return "'" + t.text + "'";
  }
}

class Lexer {
public:
  Lexer(std::string_view source, const std::string &name) : name_(name) {
    // jinja2 reads \r\n and \r as \n and drops one trailing newline.
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n')
          ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n')
      src_.pop_back();
  }

  Status run(std::vector<Token> &out) {
    size_t pos = 0;
    bool lineStarting = true;
    while (pos < src_.size()) {
      size_t p = pos;
      for (;;) {
        p = src_.find('{', p);
        if (p == std::string::npos || p + 1 >= src_.size())
          break;
        char k = src_[p + 1];
        if (k == '{' || k == '%' || k == '#')
          break;
        ++p;
      }
      if (p == std::string::npos || p + 1 >= src_.size()) {
        emitText(src_.substr(pos), out);
        break;
      }
      char kind = src_[p + 1];
      char sign = p + 2 < src_.size() ? src_[p + 2] : 0;
      std::string text = src_.substr(pos, p - pos);
      int textLines = static_cast<int>(std::count(text.begin(), text.end(), '\n'));
      if (sign == '-') {
        size_t e = text.size();
        while (e > 0 && isSpace(text[e - 1]))
          --e;
        text.resize(e);
      } else if (sign != '+' && kind != '{') {
        size_t lpos = text.rfind('\n');
        lpos = lpos == std::string::npos ? 0 : lpos + 1;
        if ((lpos > 0 || lineStarting) && lpos < text.size() &&
            std::all_of(text.begin() + lpos, text.end(), isSpace))
          text.resize(lpos);
      }
      emitText(std::move(text), out);
      line_ += textLines;
      pos = p + 2 + (sign == '-' || sign == '+' ? 1 : 0);
      if (kind == '#') {
        size_t e = src_.find("#}", pos);
        if (e == std::string::npos)
          return fail("missing end of comment tag");
        size_t after = e + 2;
        if (e > pos && src_[e - 1] == '-') {
          while (after < src_.size() && isSpace(src_[after]))
            ++after;
        } else if (!(e > pos && src_[e - 1] == '+') && after < src_.size() && src_[after] == '\n') {
          ++after;
        }
        line_ += static_cast<int>(std::count(src_.begin() + pos, src_.begin() + after, '\n'));
        lineStarting = after > 0 && src_[after - 1] == '\n';
        pos = after;
        continue;
      }
      bool block = kind == '%';
      out.push_back({block ? Token::Type::BlockBegin : Token::Type::VarBegin, "", {}, line_});
      if (Status s = lexTag(pos, block, lineStarting, out); !s)
        return s;
    }
    out.push_back({Token::Type::Eof, "", {}, line_});
    return Status::ok();
  }

private:
  Status fail(const std::string &what) { return Error(fmt::format("{}: line {}: {}", name_, line_, what)); }

  void emitText(std::string text, std::vector<Token> &out) {
    if (!text.empty())
      out.push_back({Token::Type::Text, std::move(text), {}, line_});
  }

  /// Tokens inside {{ }} or {% %} from `pos` through the closing delimiter.
  Status lexTag(size_t &pos, bool block, bool &lineStarting, std::vector<Token> &out) {
    const char close = block ? '%' : '}';
    int depth = 0;
    for (;;) {
      while (pos < src_.size() && isSpace(src_[pos])) {
        if (src_[pos] == '\n')
          ++line_;
        ++pos;
      }
      if (pos >= src_.size())
        return fail(block ? "unexpected end of template, expected end of statement block"
                          : "unexpected end of template, expected end of print statement");
      auto at = [&](size_t i) { return i < src_.size() ? src_[i] : '\0'; };
      char c = src_[pos];
      if (depth == 0) {
        size_t endAt = std::string::npos;
        bool strip = false, keep = false;
        if ((c == '-' || c == '+') && at(pos + 1) == close && at(pos + 2) == '}') {
          strip = c == '-';
          keep = c == '+' && block;
          if (c == '-' || block)
            endAt = pos + 3;
        } else if (c == close && at(pos + 1) == '}') {
          endAt = pos + 2;
        }
        if (endAt != std::string::npos) {
          out.push_back({block ? Token::Type::BlockEnd : Token::Type::VarEnd, "", {}, line_});
          pos = endAt;
          if (strip) {
            while (pos < src_.size() && isSpace(src_[pos])) {
              if (src_[pos] == '\n')
                ++line_;
              ++pos;
            }
          } else if (block && !keep && at(pos) == '\n') { // trim_blocks
            ++pos;
            ++line_;
          }
          lineStarting = pos > 0 && src_[pos - 1] == '\n';
          return Status::ok();
        }
      }
      if (isNameStart(c)) {
        size_t b = pos;
        while (pos < src_.size() && (isNameStart(src_[pos]) || isDigit(src_[pos])))
          ++pos;
        out.push_back({Token::Type::Name, src_.substr(b, pos - b), {}, line_});
        continue;
      }
      if (isDigit(c)) {
        if (Status s = lexNumber(pos, out); !s)
          return s;
        continue;
      }
      if (c == '\'' || c == '"') {
        if (Status s = lexString(pos, out); !s)
          return s;
        continue;
      }
      static constexpr std::array<std::string_view, 6> twoChar = {"//", "**", "==", "!=", "<=", ">="};
      std::string_view rest(src_.data() + pos, std::min<size_t>(2, src_.size() - pos));
      if (std::find(twoChar.begin(), twoChar.end(), rest) != twoChar.end()) {
        out.push_back({Token::Type::Op, std::string(rest), {}, line_});
        pos += 2;
        continue;
      }
      if (std::string_view("+-*/%~[](){}<>=.:|,;").find(c) != std::string_view::npos) {
        if (c == '(' || c == '[' || c == '{')
          ++depth;
        if ((c == ')' || c == ']' || c == '}') && depth > 0)
          --depth;
        out.push_back({Token::Type::Op, std::string(1, c), {}, line_});
        ++pos;
        continue;
      }
      return fail(fmt::format("unexpected char '{}'", c));
    }
  }

  Status lexNumber(size_t &pos, std::vector<Token> &out) {
    std::string digits;
    auto run = [&] {
      while (pos < src_.size() && (isDigit(src_[pos]) || (src_[pos] == '_' && pos + 1 < src_.size() &&
                                                          isDigit(src_[pos + 1])))) {
        if (src_[pos] != '_')
          digits += src_[pos];
        ++pos;
      }
    };
    run();
    bool isFloat = false;
    if (pos + 1 < src_.size() && src_[pos] == '.' && isDigit(src_[pos + 1])) {
      isFloat = true;
      digits += '.';
      ++pos;
      run();
    }
    if (pos < src_.size() && (src_[pos] == 'e' || src_[pos] == 'E')) {
      size_t q = pos + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-'))
        ++q;
      if (q < src_.size() && isDigit(src_[q])) {
        isFloat = true;
        digits += 'e';
        digits.append(src_, pos + 1, q - pos - 1);
        pos = q;
        run();
      }
    }
    Token t{isFloat ? Token::Type::Float : Token::Type::Int, digits, {}, line_};
    if (isFloat) {
      t.value = std::strtod(digits.c_str(), nullptr);
    } else {
      int64_t v = 0;
      auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
      if (ec != std::errc())
        return fail("integer literal " + digits + " is too large");
      t.value = v;
    }
    out.push_back(std::move(t));
    return Status::ok();
  }

  /// A Python string literal (jinja2 unescapes as Python does).
  Status lexString(size_t &pos, std::vector<Token> &out) {
    char quote = src_[pos];
    int startLine = line_;
    std::string value;
    ++pos;
    for (;;) {
      if (pos >= src_.size())
        return fail("unterminated string");
      char c = src_[pos++];
      if (c == quote)
        break;
      if (c == '\n')
        ++line_;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (pos >= src_.size())
        return fail("unterminated string");
      char e = src_[pos++];
      auto hex = [&](int n) -> int64_t {
        if (pos + n > src_.size())
          return -1;
        uint32_t v = 0;
        for (int i = 0; i < n; ++i) {
          char h = src_[pos + i];
          int d = isDigit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
          if (d < 0)
            return -1;
          v = v * 16 + d;
        }
        pos += n;
        return v;
      };
      switch (e) {
      case 'n': value += '\n'; break;
      case 't': value += '\t'; break;
      case 'r': value += '\r'; break;
      case '0': value += '\0'; break;
      case 'a': value += '\a'; break;
      case 'b': value += '\b'; break;
      case 'f': value += '\f'; break;
      case 'v': value += '\v'; break;
      case '\\': value += '\\'; break;
      case '\'': value += '\''; break;
      case '"': value += '"'; break;
      case '\n': ++line_; break;
      case 'x': case 'u': case 'U': {
        int64_t v = hex(e == 'x' ? 2 : e == 'u' ? 4 : 8);
        if (v < 0 || v > 0x10FFFF)
          return fail("bad escape in string literal");
        utf8::append(value, static_cast<char32_t>(v));
        break;
      }
      default: value += '\\'; value += e; break;
      }
    }
    out.push_back({Token::Type::String, std::move(value), {}, startLine});
    return Status::ok();
  }

  std::string src_;
  const std::string &name_;
  int line_ = 1;
};

constexpr int kMaxDepth = 200;

class Parser {
public:
  Parser(std::vector<Token> tokens, const std::string &name) : t_(std::move(tokens)), name_(name) {}

  Expected<std::shared_ptr<const Program>> run() {
    auto program = std::make_shared<Program>();
    std::string endTag;
    program->body = parseBody({}, endTag);
    if (error_)
      return Error(*error_);
    return std::shared_ptr<const Program>(std::move(program));
  }

private:
  using T = Token::Type;

  const Token &cur() const { return t_[pos_]; }
  const Token &peek(size_t n = 1) const { return t_[std::min(pos_ + n, t_.size() - 1)]; }
  void advance() {
    if (pos_ + 1 < t_.size())
      ++pos_;
  }
  bool isOp(std::string_view op) const { return cur().type == T::Op && cur().text == op; }
  bool isName(std::string_view n) const { return cur().type == T::Name && cur().text == n; }
  bool skipOp(std::string_view op) {
    if (!isOp(op))
      return false;
    advance();
    return true;
  }
  bool skipName(std::string_view n) {
    if (!isName(n))
      return false;
    advance();
    return true;
  }

  /// Records the first error; parsing then unwinds quickly.
  void fail(int line, const std::string &what) {
    if (!error_)
      error_ = fmt::format("{}: line {}: {}", name_, line, what);
    pos_ = t_.size() - 1; // Eof stops every loop
  }
  bool failed() const { return error_.has_value(); }
  void expectOp(std::string_view op) {
    if (!skipOp(op))
      fail(cur().line, fmt::format("expected token '{}', got {}", op, describe(cur())));
  }
  void expectBlockEnd() {
    if (cur().type != T::BlockEnd) {
      fail(cur().line, fmt::format("expected end of statement block, got {}", describe(cur())));
      return;
    }
    advance();
  }

  ExprPtr make(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  /// Parses nodes until a block tag named in `endTags` (consumed up to its
  /// name, returned in `found`) or the end of the template.
  Body parseBody(const std::set<std::string> &endTags, std::string &found) {
    Body body;
    if (++depth_ > kMaxDepth)
      fail(cur().line, "template nested too deeply");
    while (!failed()) {
      const Token &tok = cur();
      if (tok.type == T::Eof) {
        if (!endTags.empty()) {
          std::string names;
          for (const std::string &n : endTags)
            names += (names.empty() ? "'" : " or '") + n + "'";
          fail(tok.line, "unexpected end of template, expected " + names);
        }
        break;
      }
      if (tok.type == T::Text) {
        Node n;
        n.kind = Node::Kind::Text;
        n.line = tok.line;
        n.text = tok.text;
        body.push_back(std::move(n));
        advance();
      } else if (tok.type == T::VarBegin) {
        Node n;
        n.kind = Node::Kind::Output;
        n.line = tok.line;
        advance();
        n.expr = parseTuple(true);
        if (!failed() && cur().type != T::VarEnd)
          fail(cur().line, fmt::format("expected end of print statement, got {}", describe(cur())));
        advance();
        body.push_back(std::move(n));
      } else if (tok.type == T::BlockBegin) {
        advance();
        if (cur().type != T::Name) {
          fail(cur().line, "tag name expected");
          break;
        }
        if (endTags.count(cur().text)) {
          found = cur().text;
          advance();
          break;
        }
        parseStatement(body);
      } else {
        fail(tok.line, "unexpected " + describe(tok));
      }
    }
    --depth_;
    return body;
  }

  void parseStatement(Body &body) {
    const Token &tok = cur();
    const std::string tag = tok.text;
    Node n;
    n.line = tok.line;
    advance();
    std::string found;
    if (tag == "if") {
      n.kind = Node::Kind::If;
      for (;;) {
        ExprPtr cond = parseTuple(false);
        expectBlockEnd();
        Body b = parseBody({"elif", "else", "endif"}, found);
        n.branches.emplace_back(std::move(cond), std::move(b));
        if (failed() || found != "elif")
          break;
      }
      if (found == "else") {
        expectBlockEnd();
        n.elseBody = parseBody({"endif"}, found);
      }
    } else if (tag == "for") {
      n.kind = Node::Kind::For;
      parseTargets(n.targets);
      if (!skipName("in"))
        fail(cur().line, fmt::format("expected 'in', got {}", describe(cur())));
      n.expr = parseTuple(false, false);
      if (skipName("if"))
        n.cond = parseExpression(true);
      if (isName("recursive"))
        fail(cur().line, "recursive loops are not supported");
      expectBlockEnd();
      ++loops_;
      n.body = parseBody({"endfor", "else"}, found);
      --loops_;
      if (found == "else") {
        expectBlockEnd();
        n.elseBody = parseBody({"endfor"}, found);
      }
    } else if (tag == "set") {
      if (cur().type != T::Name) {
        fail(cur().line, fmt::format("expected a name after 'set', got {}", describe(cur())));
        return;
      }
      if (peek().type == T::Op && peek().text == ".") {
        n.targets.push_back(cur().text);
        advance();
        advance();
        if (cur().type != T::Name) {
          fail(cur().line, fmt::format("expected an attribute name, got {}", describe(cur())));
          return;
        }
        n.attr = cur().text;
        advance();
      } else {
        parseTargets(n.targets);
      }
      if (skipOp("=")) {
        n.kind = Node::Kind::Set;
        n.expr = parseTuple(true);
      } else if (n.targets.size() == 1 && n.attr.empty() && cur().type == T::BlockEnd) {
        n.kind = Node::Kind::SetBlock;
        advance();
        n.body = parseBody({"endset"}, found);
      } else {
        fail(cur().line, fmt::format("expected token '=', got {}", describe(cur())));
        return;
      }
    } else if (tag == "generation") {
      n.kind = Node::Kind::Scope;
      expectBlockEnd();
      n.body = parseBody({"endgeneration"}, found);
    } else if (tag == "break" || tag == "continue") {
      if (loops_ == 0) {
        fail(tok.line, fmt::format("'{}' outside of a loop", tag));
        return;
      }
      n.kind = tag == "break" ? Node::Kind::Break : Node::Kind::Continue;
    } else {
      static const std::set<std::string> unsupported = {"macro", "call", "filter", "raw", "include", "import",
                                                        "from", "extends", "block", "with", "autoescape", "do"};
      if (unsupported.count(tag))
        fail(n.line, fmt::format("unsupported tag '{}'", tag));
      else
        fail(n.line, fmt::format("unknown tag '{}'", tag));
      return;
    }
    expectBlockEnd();
    body.push_back(std::move(n));
  }

  void parseTargets(std::vector<std::string> &targets) {
    bool paren = skipOp("(");
    for (;;) {
      if (cur().type != T::Name) {
        fail(cur().line, fmt::format("expected a name, got {}", describe(cur())));
        return;
      }
      targets.push_back(cur().text);
      advance();
      if (!skipOp(","))
        break;
    }
    if (paren)
      expectOp(")");
  }

  /// Comma-separated expressions: a tuple (kept as a list) when a comma appears.
  ExprPtr parseTuple(bool withCondexpr, bool explicitParens = false) {
    int line = cur().line;
    std::vector<ExprPtr> items;
    bool comma = false;
    for (;;) {
      if (!items.empty()) {
        if (!skipOp(","))
          break;
        comma = true;
      }
      if (cur().type == T::VarEnd || cur().type == T::BlockEnd || isOp(")") ||
          (!items.empty() && isName("in")))
        break;
      items.push_back(parseExpression(withCondexpr));
      if (failed())
        break;
    }
    if (items.empty()) {
      if (explicitParens)
        return make(Expr::Kind::List, line);
      fail(line, fmt::format("expected an expression, got {}", describe(cur())));
      return make(Expr::Kind::Literal, line);
    }
    if (!comma)
      return std::move(items[0]);
    ExprPtr list = make(Expr::Kind::List, line);
    list->items = std::move(items);
    return list;
  }

  ExprPtr parseExpression(bool withCondexpr = true) {
    if (++depth_ > kMaxDepth) {
      fail(cur().line, "expression nested too deeply");
      --depth_;
      return make(Expr::Kind::Literal, cur().line);
    }
    ExprPtr e = withCondexpr ? parseCondexpr() : parseOr();
    --depth_;
    return e;
  }

  ExprPtr parseCondexpr() {
    ExprPtr expr1 = parseOr();
    while (!failed() && isName("if")) {
      int line = cur().line;
      advance();
      ExprPtr cond = parseOr();
      ExprPtr other;
      if (skipName("else"))
        other = parseCondexpr();
      ExprPtr c = make(Expr::Kind::Cond, line);
      c->items.push_back(std::move(expr1));
      c->items.push_back(std::move(cond));
      c->items.push_back(std::move(other));
      expr1 = std::move(c);
    }
    return expr1;
  }

  ExprPtr binary(std::string op, ExprPtr l, ExprPtr r, int line) {
    ExprPtr b = make(Expr::Kind::Binary, line);
    b->name = std::move(op);
    b->items.push_back(std::move(l));
    b->items.push_back(std::move(r));
    return b;
  }

  ExprPtr parseOr() {
    ExprPtr l = parseAnd();
    while (!failed() && isName("or")) {
      int line = cur().line;
      advance();
      l = binary("or", std::move(l), parseAnd(), line);
    }
    return l;
  }
  ExprPtr parseAnd() {
    ExprPtr l = parseNot();
    while (!failed() && isName("and")) {
      int line = cur().line;
      advance();
      l = binary("and", std::move(l), parseNot(), line);
    }
    return l;
  }
  ExprPtr parseNot() {
    if (isName("not")) {
      int line = cur().line;
      advance();
      if (++depth_ > kMaxDepth) {
        fail(line, "expression nested too deeply");
        return make(Expr::Kind::Literal, line);
      }
      ExprPtr u = make(Expr::Kind::Unary, line);
      u->name = "not";
      u->items.push_back(parseNot());
      --depth_;
      return u;
    }
    return parseCompare();
  }
  ExprPtr parseCompare() {
    int line = cur().line;
    ExprPtr first = parseMath1();
    ExprPtr cmp;
    while (!failed()) {
      std::string op;
      if (cur().type == T::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                  cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        advance();
      } else if (isName("in")) {
        op = "in";
        advance();
      } else if (isName("not") && peek().type == T::Name && peek().text == "in") {
        op = "notin";
        advance();
        advance();
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::Compare, line);
        cmp->items.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->items.push_back(parseMath1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }
  ExprPtr parseMath1() {
    ExprPtr l = parseConcat();
    while (!failed() && (isOp("+") || isOp("-"))) {
      std::string op = cur().text;
      int line = cur().line;
      advance();
      l = binary(op, std::move(l), parseConcat(), line);
    }
    return l;
  }
  ExprPtr parseConcat() {
    ExprPtr l = parseMath2();
    while (!failed() && isOp("~")) {
      int line = cur().line;
      advance();
      l = binary("~", std::move(l), parseMath2(), line);
    }
    return l;
  }
  ExprPtr parseMath2() {
    ExprPtr l = parsePow();
    while (!failed() && (isOp("*") || isOp("/") || isOp("//") || isOp("%"))) {
      std::string op = cur().text;
      int line = cur().line;
      advance();
      l = binary(op, std::move(l), parsePow(), line);
    }
    return l;
  }
  ExprPtr parsePow() {
    ExprPtr l = parseUnary(true);
    while (!failed() && isOp("**")) {
      int line = cur().line;
      advance();
      l = binary("**", std::move(l), parseUnary(true), line);
    }
    return l;
  }
  ExprPtr parseUnary(bool withFilter) {
    int line = cur().line;
    if (++depth_ > kMaxDepth) {
      fail(line, "expression nested too deeply");
      return make(Expr::Kind::Literal, line);
    }
    ExprPtr node;
    if (isOp("-") || isOp("+")) {
      node = make(Expr::Kind::Unary, line);
      node->name = cur().text;
      advance();
      node->items.push_back(parseUnary(false));
    } else {
      node = parsePrimary();
    }
    node = parsePostfix(std::move(node));
    if (withFilter)
      node = parseFilterExpr(std::move(node));
    --depth_;
    return node;
  }

  ExprPtr parsePrimary() {
    const Token &tok = cur();
    int line = tok.line;
    ExprPtr node;
    switch (tok.type) {
    case T::Name: {
      const std::string &n = tok.text;
      node = make(Expr::Kind::Literal, line);
      if (n == "true" || n == "True")
        node->literal = true;
      else if (n == "false" || n == "False")
        node->literal = false;
      else if (n == "none" || n == "None")
        node->literal = nullptr;
      else {
        node->kind = Expr::Kind::Name;
        node->name = n;
      }
      advance();
      return node;
    }
    case T::String: {
      std::string s;
      while (cur().type == T::String) { // adjacent literals concatenate
        s += cur().text;
        advance();
      }
      node = make(Expr::Kind::Literal, line);
      node->literal = s;
      return node;
    }
    case T::Int:
    case T::Float:
      node = make(Expr::Kind::Literal, line);
      node->literal = tok.value;
      advance();
      return node;
    case T::Op:
      if (tok.text == "(") {
        advance();
        node = parseTuple(true, true);
        expectOp(")");
        return node;
      }
      if (tok.text == "[") {
        advance();
        node = make(Expr::Kind::List, line);
        while (!failed() && !isOp("]")) {
          if (!node->items.empty()) {
            expectOp(",");
            if (isOp("]"))
              break;
          }
          node->items.push_back(parseExpression());
        }
        expectOp("]");
        return node;
      }
      if (tok.text == "{") {
        advance();
        node = make(Expr::Kind::Dict, line);
        while (!failed() && !isOp("}")) {
          if (!node->items.empty()) {
            expectOp(",");
            if (isOp("}"))
              break;
          }
          node->items.push_back(parseExpression());
          expectOp(":");
          node->items.push_back(parseExpression());
        }
        expectOp("}");
        return node;
      }
      break;
    default:
      break;
    }
    fail(line, "unexpected " + describe(tok));
    return make(Expr::Kind::Literal, line);
  }

  ExprPtr parsePostfix(ExprPtr node) {
    while (!failed()) {
      int line = cur().line;
      if (isOp(".")) {
        advance();
        if (cur().type == T::Name) {
          ExprPtr a = make(Expr::Kind::Attr, line);
          a->name = cur().text;
          a->items.push_back(std::move(node));
          node = std::move(a);
          advance();
        } else if (cur().type == T::Int) {
          ExprPtr a = make(Expr::Kind::Item, line);
          a->items.push_back(std::move(node));
          ExprPtr k = make(Expr::Kind::Literal, line);
          k->literal = cur().value;
          a->items.push_back(std::move(k));
          node = std::move(a);
          advance();
        } else {
          fail(line, fmt::format("expected an attribute name, got {}", describe(cur())));
        }
      } else if (isOp("[")) {
        advance();
        node = parseSubscript(std::move(node), line);
      } else if (isOp("(")) {
        node = parseCall(std::move(node));
      } else {
        break;
      }
    }
    return node;
  }

  ExprPtr parseSubscript(ExprPtr obj, int line) {
    ExprPtr parts[3];
    bool slice = false;
    if (!isOp(":"))
      parts[0] = parseExpression();
    if (skipOp(":")) {
      slice = true;
      if (!isOp("]") && !isOp(":"))
        parts[1] = parseExpression();
      if (skipOp(":") && !isOp("]"))
        parts[2] = parseExpression();
    }
    expectOp("]");
    ExprPtr node = make(slice ? Expr::Kind::Slice : Expr::Kind::Item, line);
    node->items.push_back(std::move(obj));
    if (slice) {
      for (ExprPtr &p : parts)
        node->items.push_back(std::move(p));
    } else {
      node->items.push_back(std::move(parts[0]));
    }
    return node;
  }

  void parseArgs(std::vector<Arg> &args) {
    expectOp("(");
    while (!failed() && !isOp(")")) {
      if (!args.empty()) {
        expectOp(",");
        if (isOp(")"))
          break;
      }
      if (isOp("*") || isOp("**")) {
        fail(cur().line, "*args and **kwargs are not supported");
        return;
      }
      Arg a;
      if (cur().type == T::Name && peek().type == T::Op && peek().text == "=") {
        a.name = cur().text;
        advance();
        advance();
      } else if (!args.empty() && !args.back().name.empty()) {
        fail(cur().line, "positional argument follows keyword argument");
        return;
      }
      a.value = parseExpression();
      args.push_back(std::move(a));
    }
    expectOp(")");
  }

  ExprPtr parseCall(ExprPtr callee) {
    ExprPtr c = make(Expr::Kind::Call, cur().line);
    c->items.push_back(std::move(callee));
    parseArgs(c->args);
    return c;
  }

  ExprPtr parseFilterExpr(ExprPtr node) {
    while (!failed()) {
      int line = cur().line;
      if (isOp("|")) {
        advance();
        if (cur().type != T::Name) {
          fail(line, fmt::format("expected a filter name, got {}", describe(cur())));
          break;
        }
        ExprPtr f = make(Expr::Kind::Filter, line);
        f->name = cur().text;
        if (!isKnownFilter(f->name)) {
          fail(line, fmt::format("no filter named '{}'", f->name));
          break;
        }
        advance();
        f->items.push_back(std::move(node));
        if (isOp("("))
          parseArgs(f->args);
        node = std::move(f);
      } else if (isName("is")) {
        advance();
        ExprPtr t = make(Expr::Kind::Test, line);
        t->negated = skipName("not");
        if (cur().type != T::Name) {
          fail(line, fmt::format("expected a test name, got {}", describe(cur())));
          break;
        }
        t->name = cur().text;
        if (t->name == "none" || t->name == "true" || t->name == "false")
          ; // literal names double as tests
        if (!isKnownTest(t->name)) {
          fail(line, fmt::format("no test named '{}'", t->name));
          break;
        }
        advance();
        t->items.push_back(std::move(node));
        if (isOp("(")) {
          parseArgs(t->args);
        } else if ((cur().type == T::Name || cur().type == T::String || cur().type == T::Int ||
                    cur().type == T::Float || isOp("[") || isOp("{")) &&
                   !isName("else") && !isName("or") && !isName("and")) {
          // `x is divisibleby 3`: one argument without parentheses.
          Arg a;
          a.value = parsePostfix(parsePrimary());
          t->args.push_back(std::move(a));
        }
        node = std::move(t);
      } else if (isOp("(")) {
        node = parseCall(std::move(node));
      } else {
        break;
      }
    }
    return node;
  }

  std::vector<Token> t_;
  size_t pos_ = 0;
  const std::string &name_;
  std::optional<std::string> error_;
  int depth_ = 0;
  int loops_ = 0;
};

} // namespace

Expected<std::shared_ptr<const Program>> parseProgram(std::string_view source, const std::string &name) {
  std::vector<Token> tokens;
  Lexer lexer(source, name);
  if (Status s = lexer.run(tokens); !s)
    return s.error();
  return Parser(std::move(tokens), name).run();
}

} // namespace lathe::serving::chat_template
