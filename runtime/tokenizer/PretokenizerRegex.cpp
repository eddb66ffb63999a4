#include "runtime/tokenizer/PretokenizerRegex.h"

#include "runtime/tokenizer/UnicodeTables.h"
#include "runtime/tokenizer/Utf8.h"

#include <fmt/format.h>
#include <limits>

namespace lathe {

using Node = PretokenizerRegex::Node;
using Kind = PretokenizerRegex::Kind;
using ClassItem = PretokenizerRegex::ClassItem;

// Messages quote the pattern, cut short: a pattern that breaks a bound can
// be tens of kilobytes.
static std::string shownPattern(const std::string &pattern) {
  constexpr size_t kShown = 80;
  if (pattern.size() <= kShown)
    return pattern;
  size_t cut = kShown;
  while (cut > 0 && (static_cast<unsigned char>(pattern[cut]) & 0xC0) == 0x80)
    --cut; // not inside a character
  return pattern.substr(0, cut) + "...";
}

static Node makeNode(Kind kind) {
  Node n;
  n.kind = kind;
  return n;
}

class RegexParser {
public:
  RegexParser(PretokenizerRegex &re, std::string_view pattern) : re_(re) {
    for (size_t pos = 0; pos < pattern.size();) {
      offsets_.push_back(pos);
      cps_.push_back(utf8::next(pattern, pos));
    }
    offsets_.push_back(pattern.size());
  }

  Status parse() {
    Expected<uint32_t> root = parseAlt(false);
    if (!root)
      return root.error();
    if (pos_ != cps_.size())
      return fail("unbalanced ')'");
    re_.root_ = *root;
    return Status::ok();
  }

private:
  Error fail(std::string_view what) const {
    size_t byte = offsets_[std::min(pos_, cps_.size())];
    return Error(fmt::format("pre-tokenizer regex: {} at offset {} of '{}' (supported: "
                             "classes, \\p{{L}} \\p{{N}} \\s \\d, groups, (?i:...), "
                             "lookahead, alternation, quantifiers)",
                             what, byte, shownPattern(re_.pattern_)));
  }
  bool atEnd() const { return pos_ >= cps_.size(); }
  char32_t peek(size_t ahead = 0) const {
    return pos_ + ahead < cps_.size() ? cps_[pos_ + ahead] : 0;
  }
  uint32_t add(Node n) {
    re_.nodes_.push_back(std::move(n));
    return static_cast<uint32_t>(re_.nodes_.size() - 1);
  }
  static ClassItem range(char32_t a, char32_t b) {
    return {ClassItem::Range, false, a, b};
  }
  // A literal, with its other cases when case-insensitive (ASCII, plus the
  // long s and the Kelvin sign that Unicode folds onto s and k).
  uint32_t literal(char32_t c) {
    Node n = makeNode(Kind::Set);
    n.items.push_back(range(c, c));
    if (caseless_) {
      char32_t lower = c | 0x20;
      if (lower >= 'a' && lower <= 'z') {
        n.items.push_back(range(lower, lower));
        n.items.push_back(range(lower - 0x20, lower - 0x20));
        if (lower == 's') n.items.push_back(range(0x17F, 0x17F));
        if (lower == 'k') n.items.push_back(range(0x212A, 0x212A));
      }
    }
    return add(std::move(n));
  }

  Expected<uint32_t> parseAlt(bool inGroup) {
    std::vector<uint32_t> alternatives;
    while (true) {
      Expected<uint32_t> seq = parseSeq();
      if (!seq)
        return seq;
      alternatives.push_back(*seq);
      if (atEnd() || peek() != '|')
        break;
      ++pos_;
    }
    if (inGroup && (atEnd() || peek() != ')'))
      return fail("unclosed group");
    if (alternatives.size() == 1)
      return alternatives[0];
    Node n = makeNode(Kind::Alt);
    n.children = std::move(alternatives);
    return add(std::move(n));
  }

  Expected<uint32_t> parseSeq() {
    Node seq = makeNode(Kind::Seq);
    while (!atEnd() && peek() != '|' && peek() != ')') {
      Expected<uint32_t> atom = parseAtom();
      if (!atom)
        return atom;
      Expected<uint32_t> quantified = parseQuantifier(*atom);
      if (!quantified)
        return quantified;
      seq.children.push_back(*quantified);
    }
    return add(std::move(seq));
  }

  Expected<uint32_t> parseQuantifier(uint32_t atom) {
    if (atEnd())
      return atom;
    uint32_t min, max;
    constexpr uint32_t kMany = std::numeric_limits<uint32_t>::max();
    char32_t c = peek();
    if (c == '?') min = 0, max = 1;
    else if (c == '*') min = 0, max = kMany;
    else if (c == '+') min = 1, max = kMany;
    else if (c == '{') {
      size_t save = pos_++;
      auto number = [&](uint32_t &out) {
        size_t start = pos_;
        out = 0;
        while (!atEnd() && peek() >= '0' && peek() <= '9' && out < 100000)
          out = out * 10 + (cps_[pos_++] - '0');
        return pos_ > start;
      };
      if (!number(min)) {
        pos_ = save;
        return fail("a '{' that is not a counted repetition");
      }
      max = min;
      if (peek() == ',') {
        ++pos_;
        if (!number(max))
          max = kMany;
      }
      if (peek() != '}' || max < min)
        return fail("malformed counted repetition");
    } else {
      return atom;
    }
    ++pos_;
    Node n = makeNode(Kind::Repeat);
    n.min = min, n.max = max;
    n.children = {atom};
    if (peek() == '?') {
      n.lazy = true;
      ++pos_;
    } else if (peek() == '+') {
      return fail("possessive quantifier");
    }
    return add(std::move(n));
  }

  Expected<uint32_t> parseAtom() {
    char32_t c = peek();
    if (c == '(')
      return parseGroup();
    if (c == '[')
      return parseClass();
    if (c == '.') {
      ++pos_;
      return add(makeNode(Kind::Any));
    }
    if (c == '^' || c == '$')
      return fail("anchor");
    if (c == '*' || c == '+' || c == '?' || c == '{')
      return fail("quantifier with nothing to repeat");
    if (c == '\\') {
      Expected<ClassItem> item = parseEscape();
      if (!item)
        return item.error();
      if (item->type == ClassItem::Range && item->first == item->last)
        return literal(item->first);
      Node n = makeNode(Kind::Set);
      n.items.push_back(*item);
      return add(std::move(n));
    }
    ++pos_;
    return literal(c);
  }

  Expected<uint32_t> parseGroup() {
    // The parser recurses once a group: bound it before the stack does.
    if (groupDepth_ == PretokenizerRegex::kMaxGroupDepth)
      return fail(fmt::format("groups nested more than {} deep", PretokenizerRegex::kMaxGroupDepth));
    ++groupDepth_;
    Expected<uint32_t> group = parseGroupBody();
    --groupDepth_;
    return group;
  }

  Expected<uint32_t> parseGroupBody() {
    size_t start = pos_++; // '('
    bool caseless = caseless_;
    int look = 0; // 1: (?=, -1: (?!
    if (peek() == '?') {
      if (peek(1) == ':') {
        pos_ += 2;
      } else if (peek(1) == 'i' && peek(2) == ':') {
        pos_ += 3;
        caseless_ = true;
      } else if (peek(1) == '=' || peek(1) == '!') {
        look = peek(1) == '=' ? 1 : -1;
        pos_ += 2;
      } else {
        std::string kind(1, static_cast<char>(peek(1) & 0x7F));
        pos_ = start;
        return fail("group kind '(?" + kind + "'");
      }
    }
    Expected<uint32_t> inner = parseAlt(true);
    caseless_ = caseless;
    if (!inner)
      return inner;
    ++pos_; // ')'
    if (!look)
      return inner;
    Node n = makeNode(Kind::Look);
    n.negated = look < 0;
    n.children = {*inner};
    return add(std::move(n));
  }

  Expected<uint32_t> parseClass() {
    ++pos_; // '['
    Node n = makeNode(Kind::Set);
    if (peek() == '^') {
      n.negated = true;
      ++pos_;
    }
    bool first = true;
    while (true) {
      if (atEnd())
        return fail("unclosed class");
      char32_t c = peek();
      if (c == ']' && !first)
        break;
      first = false;
      if (c == '[')
        return fail("nested class or class operation");
      ClassItem item;
      if (c == '\\') {
        Expected<ClassItem> e = parseEscape();
        if (!e)
          return e.error();
        item = *e;
      } else {
        ++pos_;
        item = range(c, c);
      }
      if (item.type == ClassItem::Range && peek() == '-' && peek(1) != ']' && pos_ + 1 < cps_.size()) {
        ++pos_;
        char32_t hi;
        if (peek() == '\\') {
          Expected<ClassItem> e = parseEscape();
          if (!e)
            return e.error();
          if (e->type != ClassItem::Range)
            return fail("class range ending in a class");
          hi = e->last;
        } else {
          hi = cps_[pos_++];
        }
        if (hi < item.first)
          return fail("class range out of order");
        item.last = hi;
      }
      n.items.push_back(item);
    }
    ++pos_; // ']'
    if (caseless_)
      return fail("case-insensitive class");
    return add(std::move(n));
  }

  Expected<ClassItem> parseEscape() {
    size_t start = pos_++; // '\'
    if (atEnd())
      return fail("pattern ends in '\\'");
    char32_t c = cps_[pos_++];
    switch (c) {
    case 'r': return range('\r', '\r');
    case 'n': return range('\n', '\n');
    case 't': return range('\t', '\t');
    case 'f': return range('\f', '\f');
    case 'v': return range('\v', '\v');
    case 's': return ClassItem{ClassItem::Space, false};
    case 'S': return ClassItem{ClassItem::Space, true};
    case 'd': return ClassItem{ClassItem::Digit, false};
    case 'D': return ClassItem{ClassItem::Digit, true};
    case 'p':
    case 'P': {
      bool negated = c == 'P';
      std::string name;
      if (peek() == '{') {
        ++pos_;
        while (!atEnd() && peek() != '}')
          name += static_cast<char>(cps_[pos_++] & 0x7F);
        if (atEnd())
          return fail("unclosed \\p{");
        ++pos_;
      } else if (!atEnd()) {
        name = static_cast<char>(cps_[pos_++] & 0x7F);
      }
      if (name == "L" || name == "Letter")
        return ClassItem{ClassItem::Letter, negated};
      if (name == "N" || name == "Number")
        return ClassItem{ClassItem::Number, negated};
      if (name == "Nd")
        return ClassItem{ClassItem::Digit, negated};
      return fail("Unicode class \\p{" + name + "}");
    }
    case 'x': {
      std::string hex;
      if (peek() == '{') {
        ++pos_;
        while (!atEnd() && peek() != '}')
          hex += static_cast<char>(cps_[pos_++] & 0x7F);
        ++pos_;
      } else {
        for (int i = 0; i < 2 && !atEnd(); ++i)
          hex += static_cast<char>(cps_[pos_++] & 0x7F);
      }
      char32_t value = 0;
      if (hex.empty() || hex.size() > 6)
        return fail("malformed \\x escape");
      for (char h : hex) {
        int digit = h >= '0' && h <= '9' ? h - '0'
                    : (h | 0x20) >= 'a' && (h | 0x20) <= 'f' ? (h | 0x20) - 'a' + 10 : -1;
        if (digit < 0)
          return fail("malformed \\x escape");
        value = value * 16 + digit;
      }
      return range(value, value);
    }
    default:
      // Escaped punctuation stands for itself; escaped letters and digits
      // are classes or back-references this matcher does not know.
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        pos_ = start;
        return fail(fmt::format("escape '\\{}'", static_cast<char>(c)));
      }
      return range(c, c);
    }
  }

  PretokenizerRegex &re_;
  std::vector<char32_t> cps_;
  std::vector<size_t> offsets_;
  size_t pos_ = 0;
  bool caseless_ = false;
  uint32_t groupDepth_ = 0;
};

Expected<PretokenizerRegex> PretokenizerRegex::compile(std::string_view pattern) {
  PretokenizerRegex re;
  re.pattern_ = std::string(pattern);
  RegexParser parser(re, pattern);
  if (Status s = parser.parse(); !s)
    return s.error();
  return re;
}

namespace {

// A non-owning callable reference: continuations are passed down the
// recursion without allocating.
template <typename Sig> class FunctionRef;
template <typename R, typename... A> class FunctionRef<R(A...)> {
public:
  template <typename F>
  FunctionRef(const F &f)
      : object_(&f), call_([](const void *o, A... a) { return (*static_cast<const F *>(o))(a...); }) {}
  R operator()(A... a) const { return call_(object_, a...); }

private:
  const void *object_;
  R (*call_)(const void *, A...);
};

} // namespace

class RegexMatcher {
public:
  using Cont = FunctionRef<bool(size_t)>;
  RegexMatcher(const PretokenizerRegex &re, const std::vector<char32_t> &text)
      : nodes_(re.nodes_), text_(text) {}

  // Why the last search stopped short, or nullptr: a search past either
  // bound is abandoned (every match() then fails) and must not be trusted.
  const char *overBudget() const { return overBudget_; }
  void resetBudget() const {
    steps_ = 0;
    overBudget_ = nullptr;
  }

  bool match(uint32_t id, size_t i, Cont k) const {
    if (overBudget_)
      return false;
    if (++steps_ > PretokenizerRegex::kMaxSteps) {
      overBudget_ = "took more than the step limit (nested quantifiers such as (a*)* "
                    "backtrack exponentially)";
      return false;
    }
    if (depth_ == PretokenizerRegex::kMaxDepth) {
      overBudget_ = "nested deeper than the recursion limit (a repeated group or a long "
                    "sequence over a long run of text)";
      return false;
    }
    ++depth_;
    bool matched = matchNode(nodes_[id], i, k);
    --depth_;
    return matched;
  }

private:
  bool matchNode(const Node &n, size_t i, Cont k) const {
    switch (n.kind) {
    case Kind::Set:
    case Kind::Any:
      return i < text_.size() && single(n, text_[i]) && k(i + 1);
    case Kind::Seq:
      return sequence(n, 0, i, k);
    case Kind::Alt:
      for (uint32_t child : n.children)
        if (match(child, i, k))
          return true;
      return false;
    case Kind::Look: {
      bool found = match(n.children[0], i, [](size_t) { return true; });
      return found != n.negated && k(i);
    }
    case Kind::Repeat:
      if (isSingle(n.children[0]))
        return repeatSingle(n, i, k);
      return repeat(n, 0, i, k);
    }
    return false;
  }

  bool isSingle(uint32_t id) const {
    return nodes_[id].kind == Kind::Set || nodes_[id].kind == Kind::Any;
  }

  static bool itemHolds(const ClassItem &item, char32_t c) {
    if (c == utf8::kInvalid)
      return item.negated; // a stray byte is in no class, so in every negated one
    bool in = false;
    switch (item.type) {
    case ClassItem::Range: in = c >= item.first && c <= item.last; break;
    case ClassItem::Letter: in = unicode::isLetter(c); break;
    case ClassItem::Number: in = unicode::isNumber(c); break;
    case ClassItem::Digit: in = unicode::isDecimalDigit(c); break;
    case ClassItem::Space: in = unicode::isWhiteSpace(c); break;
    }
    return in != item.negated;
  }

  bool single(const Node &n, char32_t c) const {
    if (n.kind == Kind::Any)
      return c != '\n';
    bool in = false;
    for (const ClassItem &item : n.items)
      if (itemHolds(item, c)) {
        in = true;
        break;
      }
    return in != n.negated;
  }

  bool sequence(const Node &n, size_t j, size_t i, Cont k) const {
    if (j == n.children.size())
      return k(i);
    return match(n.children[j], i, [&](size_t p) { return sequence(n, j + 1, p, k); });
  }

  // A repeated single character needs no recursion: count how far it
  // reaches, then hand the continuation each length, longest first.
  bool repeatSingle(const Node &n, size_t i, Cont k) const {
    const Node &atom = nodes_[n.children[0]];
    size_t count = 0;
    while (count < n.max && i + count < text_.size() && single(atom, text_[i + count]))
      ++count;
    if (count < n.min)
      return false;
    if (n.lazy) {
      for (size_t c = n.min; c <= count; ++c)
        if (k(i + c))
          return true;
      return false;
    }
    for (size_t c = count + 1; c-- > n.min;)
      if (k(i + c))
        return true;
    return false;
  }

  bool repeat(const Node &n, uint32_t count, size_t i, Cont k) const {
    auto more = [&] {
      return count < n.max && match(n.children[0], i, [&](size_t p) {
               // An empty iteration cannot make progress: stop there.
               return p != i && repeat(n, count + 1, p, k);
             });
    };
    bool enough = count >= n.min;
    if (n.lazy)
      return (enough && k(i)) || more();
    return more() || (enough && k(i));
  }

  const std::vector<Node> &nodes_;
  const std::vector<char32_t> &text_;
  // Oniguruma, which HF runs these patterns on, bounds a search's
  // backtracking the same way (its retry limit) and fails the search.
  mutable uint64_t steps_ = 0;
  mutable uint32_t depth_ = 0;
  mutable const char *overBudget_ = nullptr;
};

Expected<std::vector<std::pair<size_t, size_t>>>
PretokenizerRegex::findAll(std::string_view text) const {
  std::vector<char32_t> cps;
  std::vector<size_t> offsets;
  for (size_t pos = 0; pos < text.size();) {
    offsets.push_back(pos);
    cps.push_back(utf8::next(text, pos));
  }
  offsets.push_back(text.size());
  RegexMatcher matcher(*this, cps);
  std::vector<std::pair<size_t, size_t>> matches;
  for (size_t i = 0; i < cps.size();) {
    size_t end = 0;
    matcher.resetBudget();
    bool found = matcher.match(root_, i, [&](size_t p) {
      end = p;
      return true;
    });
    if (const char *why = matcher.overBudget())
      return Error(fmt::format("pre-tokenizer regex '{}': matching at byte {} of the text {}",
                               shownPattern(pattern_), offsets[i], why));
    if (found && end > i) {
      matches.emplace_back(offsets[i], offsets[end]);
      i = end;
    } else {
      ++i;
    }
  }
  return matches;
}

} // namespace lathe
