// The renderer of chat templates: a tree walk over ChatTemplateSyntax.h that
// mirrors jinja2's runtime (Python values, jinja2's default Undefined, the
// sandbox's immutable containers) for the subset ChatTemplate.h lists:
// statements, expressions, and the filters, tests, methods and globals.
#include "runtime/serving/ChatTemplateRenderer.h"

#include "runtime/serving/ChatTemplate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <ctime>

namespace lathe::serving::chat_template {
namespace {

// --- the renderer ------------------------------------------------------------

enum class Flow { Normal, Break, Continue, Fail };

struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> named;
  /// The argument at `index` or named `name`, or null.
  const Value *get(size_t index, std::string_view name) const {
    for (const auto &[k, v] : named)
      if (k == name)
        return &v;
    return index < positional.size() ? &positional[index] : nullptr;
  }
};

class Renderer {
public:
  explicit Renderer(const std::string &name) : name_(name) {}

  Expected<std::string> run(const Program &program, std::unordered_map<std::string, Value> globals) {
    scopes_.push_back(std::move(globals));
    scopes_.emplace_back();
    exec(program.body);
    if (error_)
      return Error(*error_);
    return std::move(out_);
  }

private:
  using Scope = std::unordered_map<std::string, Value>;

  Value fail(int line, const std::string &what) {
    if (!error_)
      error_ = fmt::format("{}: line {}: {}", name_, line, what);
    return {};
  }
  bool failed() const { return error_.has_value(); }
  bool tick(int line) {
    if (++steps_ > ChatTemplate::kMaxSteps) {
      fail(line, fmt::format("the template ran past {} steps", ChatTemplate::kMaxSteps));
      return false;
    }
    return true;
  }
  bool checkSize(size_t bytes, int line) {
    if (bytes > ChatTemplate::kMaxOutputBytes) {
      fail(line, fmt::format("the template made a string longer than {} bytes", ChatTemplate::kMaxOutputBytes));
      return false;
    }
    return true;
  }

  const Value *lookup(const std::string &name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end())
        return &f->second;
    }
    return nullptr;
  }

  // --- statements ---

  Flow exec(const Body &body) {
    for (const Node &n : body) {
      Flow f = execNode(n);
      if (f != Flow::Normal)
        return f;
    }
    return Flow::Normal;
  }

  Flow execNode(const Node &n) {
    if (!tick(n.line))
      return Flow::Fail;
    switch (n.kind) {
    case Node::Kind::Text:
      out_ += n.text;
      return checkSize(out_.size(), n.line) ? Flow::Normal : Flow::Fail;
    case Node::Kind::Output: {
      Value v = eval(*n.expr);
      if (failed())
        return Flow::Fail;
      out_ += toStr(v);
      return checkSize(out_.size(), n.line) ? Flow::Normal : Flow::Fail;
    }
    case Node::Kind::If:
      for (const auto &[cond, body] : n.branches) {
        Value c = eval(*cond);
        if (failed())
          return Flow::Fail;
        if (truthy(c))
          return exec(body);
      }
      return exec(n.elseBody);
    case Node::Kind::For:
      return execFor(n);
    case Node::Kind::Set: {
      Value v = eval(*n.expr);
      if (failed())
        return Flow::Fail;
      if (!n.attr.empty()) {
        const Value *target = lookup(n.targets[0]);
        if (!target || target->kind != Value::Kind::Namespace) {
          fail(n.line, "cannot assign attribute on non-namespace object");
          return Flow::Fail;
        }
        if (Value *slot = target->ns->find(n.attr))
          *slot = std::move(v);
        else
          target->ns->attrs.emplace_back(n.attr, std::move(v));
        return Flow::Normal;
      }
      return assign(n.targets, std::move(v), n.line) ? Flow::Normal : Flow::Fail;
    }
    case Node::Kind::SetBlock: {
      std::string saved = std::move(out_);
      out_.clear();
      scopes_.emplace_back();
      Flow f = exec(n.body);
      scopes_.pop_back();
      std::string captured = std::move(out_);
      out_ = std::move(saved);
      if (f == Flow::Fail)
        return f;
      scopes_.back()[n.targets[0]] = Value::of(captured);
      return Flow::Normal;
    }
    case Node::Kind::Scope: {
      scopes_.emplace_back();
      Flow f = exec(n.body);
      scopes_.pop_back();
      return f;
    }
    case Node::Kind::Break:
      return Flow::Break;
    case Node::Kind::Continue:
      return Flow::Continue;
    }
    return Flow::Normal;
  }

  bool assign(const std::vector<std::string> &targets, Value v, int line) {
    if (targets.size() == 1) {
      scopes_.back()[targets[0]] = std::move(v);
      return true;
    }
    std::vector<Json> items;
    if (!iterate(v, items, line))
      return false;
    if (items.size() != targets.size()) {
      fail(line, items.size() < targets.size()
                     ? fmt::format("not enough values to unpack (expected {}, got {})", targets.size(), items.size())
                     : fmt::format("too many values to unpack (expected {})", targets.size()));
      return false;
    }
    for (size_t i = 0; i < targets.size(); ++i)
      scopes_.back()[targets[i]] = Value::of(std::move(items[i]));
    return true;
  }

  Flow execFor(const Node &n) {
    Value seq = eval(*n.expr);
    if (failed())
      return Flow::Fail;
    std::vector<Json> items;
    if (!iterate(seq, items, n.line))
      return Flow::Fail;
    if (n.cond) {
      std::vector<Json> kept;
      for (Json &item : items) {
        scopes_.emplace_back();
        bool ok = assign(n.targets, Value::of(item), n.line);
        Value c = ok ? eval(*n.cond) : Value();
        scopes_.pop_back();
        if (failed())
          return Flow::Fail;
        if (truthy(c))
          kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty())
      return exec(n.elseBody);
    const int64_t length = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < length; ++i) {
      if (!tick(n.line))
        return Flow::Fail;
      Json loop = Json::object();
      loop["index"] = i + 1;
      loop["index0"] = i;
      loop["revindex"] = length - i;
      loop["revindex0"] = length - i - 1;
      loop["first"] = i == 0;
      loop["last"] = i == length - 1;
      loop["length"] = length;
      loop["depth"] = 1;
      loop["depth0"] = 0;
      if (i > 0)
        loop["previtem"] = items[i - 1];
      if (i + 1 < length)
        loop["nextitem"] = items[i + 1];
      scopes_.emplace_back();
      scopes_.back()["loop"] = Value::of(std::move(loop));
      Flow f = assign(n.targets, Value::of(items[i]), n.line) ? exec(n.body) : Flow::Fail;
      scopes_.pop_back();
      if (f == Flow::Fail)
        return f;
      if (f == Flow::Break)
        break;
    }
    return Flow::Normal;
  }

  /// Python's iter(): list items, dict keys, string characters; Undefined
  /// iterates as empty (jinja2's default Undefined).
  bool iterate(const Value &v, std::vector<Json> &items, int line) {
    if (v.isUndefined())
      return true;
    if (v.isData()) {
      const Json &j = v.data;
      if (j.is_array()) {
        items.assign(j.begin(), j.end());
        return true;
      }
      if (j.is_object()) {
        for (auto it = j.begin(); it != j.end(); ++it)
          items.push_back(it.key());
        return true;
      }
      if (j.is_string()) {
        const std::string &s = j.get_ref<const std::string &>();
        std::vector<size_t> cp = codePoints(s);
        for (size_t i = 0; i + 1 < cp.size(); ++i)
          items.push_back(s.substr(cp[i], cp[i + 1] - cp[i]));
        return true;
      }
    }
    fail(line, fmt::format("'{}' object is not iterable", typeName(v)));
    return false;
  }

  // --- expressions ---

  /// The data a chain of names, attributes and subscripts denotes, in
  /// place: `messages[i].role` must not copy every message. Null when the
  /// chain does not end at data (eval then gives the undefined or error).
  const Json *refData(const Expr &e) {
    if (e.kind == Expr::Kind::Name) {
      const Value *v = lookup(e.name);
      return v && v->isData() ? &v->data : nullptr;
    }
    if (e.kind != Expr::Kind::Attr && e.kind != Expr::Kind::Item)
      return nullptr;
    if (!tick(e.line))
      return nullptr;
    const Json *base = refData(*e.items[0]);
    if (!base)
      return nullptr;
    if (e.kind == Expr::Kind::Attr) {
      if (!base->is_object())
        return nullptr;
      auto f = base->find(e.name);
      return f == base->end() ? nullptr : &*f;
    }
    const Expr &keyExpr = *e.items[1];
    if (keyExpr.kind != Expr::Kind::Literal && keyExpr.kind != Expr::Kind::Name && keyExpr.kind != Expr::Kind::Attr &&
        keyExpr.kind != Expr::Kind::Binary && keyExpr.kind != Expr::Kind::Unary)
      return nullptr;
    Value key = eval(keyExpr);
    if (failed() || !key.isData())
      return nullptr;
    if (base->is_object() && key.data.is_string()) {
      auto f = base->find(key.data.get_ref<const std::string &>());
      return f == base->end() ? nullptr : &*f;
    }
    if (base->is_array() && isInt(key.data)) {
      int64_t i = asInt(key.data), n = static_cast<int64_t>(base->size());
      if (i < 0)
        i += n;
      return i >= 0 && i < n ? &(*base)[static_cast<size_t>(i)] : nullptr;
    }
    return nullptr;
  }

  Value eval(const Expr &e) {
    if (!tick(e.line))
      return {};
    if (e.kind == Expr::Kind::Attr || e.kind == Expr::Kind::Item) {
      if (const Json *r = refData(e))
        return Value::of(*r);
      if (failed())
        return {};
    }
    if (e.kind == Expr::Kind::Filter && (e.name == "length" || e.name == "count")) {
      if (const Json *r = refData(*e.items[0]); r && (r->is_array() || r->is_object()))
        return Value::of(static_cast<int64_t>(r->size()));
      if (failed())
        return {};
    }
    switch (e.kind) {
    case Expr::Kind::Literal:
      return Value::of(e.literal);
    case Expr::Kind::Name: {
      if (const Value *v = lookup(e.name))
        return *v;
      return Value::undefined(fmt::format("'{}' is undefined", e.name));
    }
    case Expr::Kind::List: {
      Json list = Json::array();
      for (const ExprPtr &item : e.items) {
        Value v = eval(*item);
        if (failed())
          return {};
        list.push_back(v.isData() ? std::move(v.data) : Json());
      }
      return Value::of(std::move(list));
    }
    case Expr::Kind::Dict: {
      Json dict = Json::object();
      for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
        Value k = eval(*e.items[i]);
        Value v = eval(*e.items[i + 1]);
        if (failed())
          return {};
        if (!k.isData() || !k.data.is_string())
          return fail(e.line, "dict keys must be strings");
        dict[k.data.get<std::string>()] = v.isData() ? std::move(v.data) : Json();
      }
      return Value::of(std::move(dict));
    }
    case Expr::Kind::Attr: {
      Value obj = eval(*e.items[0]);
      if (failed())
        return {};
      return getAttr(obj, e.name, e.line);
    }
    case Expr::Kind::Item: {
      Value obj = eval(*e.items[0]);
      Value key = eval(*e.items[1]);
      if (failed())
        return {};
      return getItem(obj, key, e.line);
    }
    case Expr::Kind::Slice:
      return evalSlice(e);
    case Expr::Kind::Call:
      return evalCall(e);
    case Expr::Kind::Filter: {
      Value input = eval(*e.items[0]);
      Args args;
      if (failed() || !evalArgs(e.args, args))
        return {};
      return applyFilter(e.name, std::move(input), args, e.line);
    }
    case Expr::Kind::Test: {
      Value input = eval(*e.items[0]);
      Args args;
      if (failed() || !evalArgs(e.args, args))
        return {};
      bool r = applyTest(e.name, input, args, e.line);
      if (failed())
        return {};
      return Value::of(r != e.negated);
    }
    case Expr::Kind::Unary: {
      Value v = eval(*e.items[0]);
      if (failed())
        return {};
      if (e.name == "not")
        return Value::of(!truthy(v));
      if (!v.isData() || !isNum(v.data))
        return fail(e.line, fmt::format("bad operand type for unary {}: '{}'", e.name, typeName(v)));
      if (e.name == "+")
        return Value::of(v.data.is_number_float() ? Json(v.data.get<double>()) : Json(asInt(v.data)));
      if (v.data.is_number_float())
        return Value::of(-v.data.get<double>());
      return Value::of(-asInt(v.data));
    }
    case Expr::Kind::Binary: {
      Value l = eval(*e.items[0]);
      if (failed())
        return {};
      if (e.name == "and")
        return truthy(l) ? eval(*e.items[1]) : l;
      if (e.name == "or")
        return truthy(l) ? l : eval(*e.items[1]);
      Value r = eval(*e.items[1]);
      if (failed())
        return {};
      return binary(e.name, l, r, e.line);
    }
    case Expr::Kind::Compare: {
      Value l = eval(*e.items[0]);
      if (failed())
        return {};
      for (size_t i = 0; i < e.ops.size(); ++i) {
        Value r = eval(*e.items[i + 1]);
        if (failed())
          return {};
        bool ok = compare(e.ops[i], l, r, e.line);
        if (failed())
          return {};
        if (!ok)
          return Value::of(false);
        l = std::move(r);
      }
      return Value::of(true);
    }
    case Expr::Kind::Cond: {
      Value c = eval(*e.items[1]);
      if (failed())
        return {};
      if (truthy(c))
        return eval(*e.items[0]);
      if (e.items[2])
        return eval(*e.items[2]);
      return Value::undefined("the inline if expression evaluated to false and no else section was defined");
    }
    }
    return {};
  }

  bool evalArgs(const std::vector<Arg> &in, Args &out) {
    for (const Arg &a : in) {
      Value v = eval(*a.value);
      if (failed())
        return false;
      if (a.name.empty())
        out.positional.push_back(std::move(v));
      else
        out.named.emplace_back(a.name, std::move(v));
    }
    return true;
  }

  Value getAttr(const Value &obj, const std::string &name, int line) {
    if (obj.isUndefined())
      return fail(line, obj.hint);
    if (obj.kind == Value::Kind::Namespace) {
      if (Value *v = obj.ns->find(name))
        return *v;
      return Value::undefined(fmt::format("'Namespace' object has no attribute '{}'", name));
    }
    if (obj.data.is_object()) {
      auto f = obj.data.find(name);
      if (f != obj.data.end())
        return Value::of(*f);
      return Value::undefined(fmt::format("'dict object' has no attribute '{}'", name));
    }
    return Value::undefined(fmt::format("'{} object' has no attribute '{}'", typeName(obj), name));
  }

  Value getItem(const Value &obj, const Value &key, int line) {
    if (obj.isUndefined())
      return fail(line, obj.hint);
    if (obj.kind == Value::Kind::Namespace || (obj.data.is_object() && key.isData() && key.data.is_string()))
      return getAttr(obj, key.data.is_string() ? key.data.get<std::string>() : "", line);
    std::string keyText = key.isData() ? pyRepr(key.data) : "Undefined";
    if ((obj.data.is_array() || obj.data.is_string()) && key.isData() && isInt(key.data)) {
      int64_t i = asInt(key.data);
      if (obj.data.is_array()) {
        int64_t n = static_cast<int64_t>(obj.data.size());
        if (i < 0)
          i += n;
        if (i >= 0 && i < n)
          return Value::of(obj.data[static_cast<size_t>(i)]);
      } else {
        const std::string &s = obj.data.get_ref<const std::string &>();
        std::vector<size_t> cp = codePoints(s);
        int64_t n = static_cast<int64_t>(cp.size()) - 1;
        if (i < 0)
          i += n;
        if (i >= 0 && i < n)
          return Value::of(s.substr(cp[i], cp[i + 1] - cp[i]));
      }
    }
    return Value::undefined(fmt::format("'{} object' has no attribute {}", typeName(obj), keyText));
  }

  Value evalSlice(const Expr &e) {
    Value obj = eval(*e.items[0]);
    std::optional<int64_t> parts[3];
    for (int i = 0; i < 3; ++i) {
      if (!e.items[i + 1])
        continue;
      Value v = eval(*e.items[i + 1]);
      if (failed())
        return {};
      if (v.isData() && v.data.is_null())
        continue;
      if (!v.isData() || !isInt(v.data))
        return fail(e.line, "slice indices must be integers or None");
      parts[i] = asInt(v.data);
    }
    if (failed())
      return {};
    if (obj.isUndefined())
      return fail(e.line, obj.hint);
    int64_t step = parts[2].value_or(1);
    if (step == 0)
      return fail(e.line, "slice step cannot be zero");
    auto pick = [&](int64_t len, auto &&add) {
      int64_t b, en;
      sliceIndices(len, parts[0], parts[1], step, b, en);
      for (int64_t i = b; step > 0 ? i < en : i > en; i += step)
        add(i);
    };
    if (obj.isData() && obj.data.is_array()) {
      Json out = Json::array();
      pick(static_cast<int64_t>(obj.data.size()), [&](int64_t i) { out.push_back(obj.data[i]); });
      return Value::of(std::move(out));
    }
    if (obj.isData() && obj.data.is_string()) {
      const std::string &s = obj.data.get_ref<const std::string &>();
      std::vector<size_t> cp = codePoints(s);
      std::string out;
      pick(static_cast<int64_t>(cp.size()) - 1, [&](int64_t i) { out.append(s, cp[i], cp[i + 1] - cp[i]); });
      return Value::of(std::move(out));
    }
    return fail(e.line, fmt::format("'{}' object is not subscriptable", typeName(obj)));
  }

  Value binary(const std::string &op, const Value &l, const Value &r, int line) {
    if (op == "~") {
      std::string s = toStr(l) + toStr(r);
      if (!checkSize(s.size(), line))
        return {};
      return Value::of(std::move(s));
    }
    if (l.isUndefined())
      return fail(line, l.hint);
    if (r.isUndefined())
      return fail(line, r.hint);
    auto unsupported = [&] {
      return fail(line, fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, typeName(l),
                                    typeName(r)));
    };
    if (!l.isData() || !r.isData())
      return unsupported();
    const Json &a = l.data, &b = r.data;
    if (isNum(a) && isNum(b)) {
      if (isInt(a) && isInt(b) && op != "/") {
        int64_t x = asInt(a), y = asInt(b), z = 0;
        bool overflow = false;
        if (op == "+")
          overflow = __builtin_add_overflow(x, y, &z);
        else if (op == "-")
          overflow = __builtin_sub_overflow(x, y, &z);
        else if (op == "*")
          overflow = __builtin_mul_overflow(x, y, &z);
        else if (op == "//" || op == "%") {
          if (y == 0)
            return fail(line, "integer division or modulo by zero");
          if (x == INT64_MIN && y == -1)
            overflow = true;
          else {
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0)))
              --q, m += y;
            z = op == "//" ? q : m;
          }
        } else if (op == "**") {
          if (y < 0)
            return Value::of(std::pow(static_cast<double>(x), static_cast<double>(y)));
          z = 1;
          for (int64_t i = 0; i < y && !overflow; ++i) {
            overflow = __builtin_mul_overflow(z, x, &z);
            if (z == 0 || z == 1 || (z == -1 && i > 64))
              break;
          }
          if (!overflow && (x == -1))
            z = (y % 2) ? -1 : 1;
        }
        if (overflow)
          return fail(line, "integer overflow");
        return Value::of(z);
      }
      double x = asDouble(a), y = asDouble(b);
      if (op == "+")
        return Value::of(x + y);
      if (op == "-")
        return Value::of(x - y);
      if (op == "*")
        return Value::of(x * y);
      if (op == "**")
        return Value::of(std::pow(x, y));
      if (y == 0)
        return fail(line, op == "/" ? "division by zero" : "float division by zero");
      if (op == "/")
        return Value::of(x / y);
      if (op == "//")
        return Value::of(std::floor(x / y));
      double m = std::fmod(x, y);
      if (m != 0 && ((m < 0) != (y < 0)))
        m += y;
      return Value::of(m);
    }
    if (op == "+" && a.is_string() && b.is_string()) {
      std::string s = a.get<std::string>() + b.get<std::string>();
      if (!checkSize(s.size(), line))
        return {};
      return Value::of(std::move(s));
    }
    if (op == "+" && a.is_array() && b.is_array()) {
      Json out = a;
      for (const Json &x : b)
        out.push_back(x);
      return Value::of(std::move(out));
    }
    if (op == "*" && ((isInt(a) && (b.is_string() || b.is_array())) || (isInt(b) && (a.is_string() || a.is_array())))) {
      const Json &seq = isInt(a) ? b : a;
      int64_t n = std::max<int64_t>(0, asInt(isInt(a) ? a : b));
      size_t unit = seq.is_string() ? seq.get_ref<const std::string &>().size() : seq.size() * 8;
      if (unit && !checkSize(static_cast<size_t>(std::min<int64_t>(n, INT32_MAX)) * unit, line))
        return {};
      if (seq.is_string()) {
        std::string s;
        for (int64_t i = 0; i < n; ++i)
          s += seq.get_ref<const std::string &>();
        return Value::of(std::move(s));
      }
      Json out = Json::array();
      for (int64_t i = 0; i < n; ++i)
        for (const Json &x : seq)
          out.push_back(x);
      return Value::of(std::move(out));
    }
    return unsupported();
  }

  bool contains(const Value &container, const Value &item, int line) {
    if (container.isUndefined())
      return false;
    if (!container.isData()) {
      fail(line, fmt::format("argument of type '{}' is not iterable", typeName(container)));
      return false;
    }
    const Json &c = container.data;
    if (c.is_string()) {
      if (!item.isData() || !item.data.is_string()) {
        fail(line, fmt::format("'in <string>' requires string as left operand, not {}", typeName(item)));
        return false;
      }
      return c.get_ref<const std::string &>().find(item.data.get_ref<const std::string &>()) != std::string::npos;
    }
    if (c.is_array()) {
      if (!item.isData())
        return false;
      return std::any_of(c.begin(), c.end(), [&](const Json &x) { return pyEqual(x, item.data); });
    }
    if (c.is_object())
      return item.isData() && item.data.is_string() && c.contains(item.data.get<std::string>());
    fail(line, fmt::format("argument of type '{}' is not iterable", typeName(container)));
    return false;
  }

  bool compare(const std::string &op, const Value &l, const Value &r, int line) {
    if (op == "==")
      return valueEqual(l, r);
    if (op == "!=")
      return !valueEqual(l, r);
    if (op == "in")
      return contains(r, l, line);
    if (op == "notin") {
      bool c = contains(r, l, line);
      return !c;
    }
    int c = 0;
    if (l.isData() && r.isData() && isNum(l.data) && isNum(r.data)) {
      if (isInt(l.data) && isInt(r.data))
        c = asInt(l.data) < asInt(r.data) ? -1 : asInt(l.data) > asInt(r.data);
      else
        c = asDouble(l.data) < asDouble(r.data) ? -1 : asDouble(l.data) > asDouble(r.data);
    } else if (l.isData() && r.isData() && l.data.is_string() && r.data.is_string()) {
      c = l.data.get_ref<const std::string &>().compare(r.data.get_ref<const std::string &>());
    } else if (l.isData() && r.isData() && l.data.is_array() && r.data.is_array()) {
      c = l.data < r.data ? -1 : r.data < l.data ? 1 : 0;
    } else {
      if (l.isUndefined() || r.isUndefined())
        fail(line, (l.isUndefined() ? l : r).hint);
      else
        fail(line, fmt::format("'{}' not supported between instances of '{}' and '{}'", op, typeName(l),
                               typeName(r)));
      return false;
    }
    if (op == "<")
      return c < 0;
    if (op == "<=")
      return c <= 0;
    if (op == ">")
      return c > 0;
    return c >= 0;
  }

  // --- calls: globals and methods ---

  Value evalCall(const Expr &e) {
    const Expr &callee = *e.items[0];
    if (callee.kind == Expr::Kind::Attr) {
      Value obj = eval(*callee.items[0]);
      Args args;
      if (failed() || !evalArgs(e.args, args))
        return {};
      return callMethod(obj, callee.name, args, e.line);
    }
    Args args;
    if (!evalArgs(e.args, args))
      return {};
    if (callee.kind == Expr::Kind::Name && !lookup(callee.name))
      return callGlobal(callee.name, args, e.line);
    Value v = eval(callee);
    if (failed())
      return {};
    if (v.isUndefined())
      return fail(e.line, v.hint);
    return fail(e.line, fmt::format("'{}' object is not callable", typeName(v)));
  }

  std::optional<std::string> stringArg(const Args &args, size_t i, std::string_view name, int line) {
    const Value *v = args.get(i, name);
    if (!v || (v->isData() && v->data.is_null()))
      return std::nullopt;
    if (!v->isData() || !v->data.is_string()) {
      fail(line, fmt::format("expected a string argument, got '{}'", typeName(*v)));
      return std::nullopt;
    }
    return v->data.get<std::string>();
  }
  std::optional<int64_t> intArg(const Args &args, size_t i, std::string_view name, int line) {
    const Value *v = args.get(i, name);
    if (!v || (v->isData() && v->data.is_null()))
      return std::nullopt;
    if (!v->isData() || !isInt(v->data)) {
      fail(line, fmt::format("expected an integer argument, got '{}'", typeName(*v)));
      return std::nullopt;
    }
    return asInt(v->data);
  }

  Value callGlobal(const std::string &name, const Args &args, int line) {
    if (name == "raise_exception") {
      const Value *msg = args.get(0, "message");
      std::string text = msg ? toStr(*msg) : "";
      std::replace(text.begin(), text.end(), '\n', ' ');
      if (!error_)
        error_ = text;
      return {};
    }
    if (name == "strftime_now") {
      std::optional<std::string> format = stringArg(args, 0, "format", line);
      if (failed())
        return {};
      std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      char buf[256];
      size_t n = std::strftime(buf, sizeof buf, format.value_or("").c_str(), &tm);
      return Value::of(std::string(buf, n));
    }
    if (name == "namespace" || name == "dict") {
      auto ns = std::make_shared<Namespace>();
      for (const Value &p : args.positional) {
        if (!p.isData() || !p.data.is_object())
          return fail(line, fmt::format("{}() takes a mapping as its positional argument", name));
        for (auto it = p.data.begin(); it != p.data.end(); ++it)
          ns->attrs.emplace_back(it.key(), Value::of(it.value()));
      }
      for (const auto &[k, v] : args.named) {
        if (Value *slot = ns->find(k))
          *slot = v;
        else
          ns->attrs.emplace_back(k, v);
      }
      if (name == "namespace") {
        Value v;
        v.kind = Value::Kind::Namespace;
        v.ns = std::move(ns);
        return v;
      }
      Json d = Json::object();
      for (auto &[k, v] : ns->attrs)
        d[k] = v.isData() ? v.data : Json();
      return Value::of(std::move(d));
    }
    if (name == "range") {
      std::vector<int64_t> a;
      for (const Value &p : args.positional) {
        if (!p.isData() || !isInt(p.data))
          return fail(line, "range() takes integers");
        a.push_back(asInt(p.data));
      }
      if (a.empty() || a.size() > 3)
        return fail(line, "range() takes 1 to 3 arguments");
      int64_t start = a.size() > 1 ? a[0] : 0, stop = a.size() > 1 ? a[1] : a[0], step = a.size() > 2 ? a[2] : 1;
      if (step == 0)
        return fail(line, "range() arg 3 must not be zero");
      Json out = Json::array();
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        if (!tick(line))
          return {};
        out.push_back(i);
      }
      return Value::of(std::move(out));
    }
    return fail(line, fmt::format("'{}' is undefined", name));
  }

  /// str.replace(old, new[, count]) and the replace filter, which take the
  /// same arguments; `what` names the one called in the error.
  Value replace(const std::string &s, const Args &args, const char *what, int line) {
    std::optional<std::string> from = stringArg(args, 0, "old", line);
    std::optional<std::string> to = stringArg(args, 1, "new", line);
    std::optional<int64_t> count = intArg(args, 2, "count", line);
    if (failed())
      return {};
    if (!from || !to)
      return fail(line, std::string(what) + " takes 2 string arguments");
    std::string r = pyReplace(s, *from, *to, count.value_or(-1));
    if (!checkSize(r.size(), line))
      return {};
    return Value::of(std::move(r));
  }

  Value callMethod(const Value &obj, const std::string &name, const Args &args, int line) {
    if (obj.isUndefined())
      return fail(line, obj.hint);
    auto noMethod = [&] {
      return fail(line, fmt::format("'{}' object has no attribute '{}'", typeName(obj), name));
    };
    if (!obj.isData())
      return noMethod();
    const Json &j = obj.data;
    if (j.is_string()) {
      const std::string &s = j.get_ref<const std::string &>();
      if (name == "strip" || name == "lstrip" || name == "rstrip") {
        std::optional<std::string> chars = stringArg(args, 0, "chars", line);
        if (failed())
          return {};
        return Value::of(pyStrip(s, chars, name != "rstrip", name != "lstrip"));
      }
      if (name == "upper")
        return Value::of(asciiUpper(s));
      if (name == "lower")
        return Value::of(asciiLower(s));
      if (name == "title")
        return Value::of(pyTitle(s));
      if (name == "capitalize")
        return Value::of(capitalize(s));
      if (name == "startswith" || name == "endswith") {
        const Value *p = args.get(0, "prefix");
        std::vector<std::string> options;
        if (p && p->isData() && p->data.is_string())
          options.push_back(p->data.get<std::string>());
        else if (p && p->isData() && p->data.is_array())
          for (const Json &x : p->data)
            if (x.is_string())
              options.push_back(x.get<std::string>());
        if (!p)
          return fail(line, fmt::format("{}() takes at least 1 argument", name));
        for (const std::string &o : options) {
          if (o.size() <= s.size() &&
              (name == "startswith" ? s.compare(0, o.size(), o) == 0 : s.compare(s.size() - o.size(), o.size(), o) == 0))
            return Value::of(true);
        }
        return Value::of(false);
      }
      if (name == "split" || name == "rsplit") {
        std::optional<std::string> sep = stringArg(args, 0, "sep", line);
        std::optional<int64_t> maxsplit = intArg(args, 1, "maxsplit", line);
        if (failed())
          return {};
        if (sep && sep->empty())
          return fail(line, "empty separator");
        return Value::of(split(s, sep, maxsplit.value_or(-1), name == "rsplit"));
      }
      if (name == "replace")
        return replace(s, args, "replace()", line);
      if (name == "find" || name == "count") {
        std::optional<std::string> sub = stringArg(args, 0, "sub", line);
        if (failed())
          return {};
        if (!sub)
          return fail(line, fmt::format("{}() takes a string argument", name));
        if (name == "find") {
          size_t f = s.find(*sub);
          return Value::of(f == std::string::npos ? int64_t(-1) : int64_t(codePointCount(s.substr(0, f))));
        }
        int64_t n = 0;
        if (sub->empty())
          return Value::of(int64_t(codePointCount(s) + 1));
        for (size_t p = s.find(*sub); p != std::string::npos; p = s.find(*sub, p + sub->size()))
          ++n;
        return Value::of(n);
      }
      if (name == "join") {
        const Value *items = args.get(0, "iterable");
        std::vector<Json> list;
        if (!items || !iterate(*items, list, line))
          return failed() ? Value() : fail(line, "join() takes an iterable");
        std::string out;
        for (size_t i = 0; i < list.size(); ++i) {
          if (!list[i].is_string())
            return fail(line, "sequence item: expected str instance");
          out += (i ? s : "") + list[i].get<std::string>();
        }
        return Value::of(std::move(out));
      }
      return noMethod();
    }
    if (j.is_object()) {
      if (name == "items" || name == "keys" || name == "values") {
        Json out = Json::array();
        for (auto it = j.begin(); it != j.end(); ++it) {
          if (name == "items")
            out.push_back(Json::array({it.key(), it.value()}));
          else if (name == "keys")
            out.push_back(it.key());
          else
            out.push_back(it.value());
        }
        return Value::of(std::move(out));
      }
      if (name == "get") {
        const Value *key = args.get(0, "key");
        const Value *def = args.get(1, "default");
        if (!key)
          return fail(line, "get() takes a key");
        if (key->isData() && key->data.is_string()) {
          auto f = j.find(key->data.get<std::string>());
          if (f != j.end())
            return Value::of(*f);
        }
        return def ? *def : Value::of(nullptr);
      }
    }
    return noMethod();
  }

  static std::string capitalize(const std::string &s) {
    if (s.empty())
      return s;
    return asciiUpper(s.substr(0, 1)) + asciiLower(s.substr(1));
  }

  static Json split(const std::string &s, const std::optional<std::string> &sep, int64_t maxsplit, bool fromRight) {
    std::vector<std::string> parts;
    if (sep) {
      if (!fromRight) {
        size_t pos = 0;
        for (;;) {
          size_t f = s.find(*sep, pos);
          if (f == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit))
            break;
          parts.push_back(s.substr(pos, f - pos));
          pos = f + sep->size();
        }
        parts.push_back(s.substr(pos));
      } else {
        size_t end = s.size();
        std::vector<std::string> rev;
        for (;;) {
          if (end < sep->size())
            break;
          size_t f = s.rfind(*sep, end - sep->size());
          if (f == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(rev.size()) >= maxsplit))
            break;
          rev.push_back(s.substr(f + sep->size(), end - f - sep->size()));
          end = f;
        }
        rev.push_back(s.substr(0, end));
        parts.assign(rev.rbegin(), rev.rend());
      }
    } else {
      // Whitespace split: runs of whitespace separate, none at the ends.
      size_t i = 0;
      while (i < s.size()) {
        while (i < s.size() && isPySpace(s[i]))
          ++i;
        if (i >= s.size())
          break;
        if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) {
          size_t e = s.size();
          while (e > i && isPySpace(s[e - 1]))
            --e;
          parts.push_back(s.substr(i, e - i));
          break;
        }
        size_t b = i;
        while (i < s.size() && !isPySpace(s[i]))
          ++i;
        parts.push_back(s.substr(b, i - b));
      }
    }
    Json out = Json::array();
    for (std::string &p : parts)
      out.push_back(std::move(p));
    return out;
  }

  // --- filters and tests ---

  Value applyFilter(const std::string &name, Value input, const Args &args, int line) {
    auto asString = [&](const Value &v) { return toStr(v); };
    if (name == "default" || name == "d") {
      const Value *def = args.get(0, "default_value");
      const Value *boolean = args.get(1, "boolean");
      bool useDefault = input.isUndefined() || (boolean && truthy(*boolean) && !truthy(input));
      if (useDefault)
        return def ? *def : Value::of("");
      return input;
    }
    if (name == "safe") // Markup(str(value)): a string
      return Value::of(toStr(input));
    if (name == "e" || name == "escape") {
      std::string out;
      for (char c : asString(input)) {
        switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
        }
      }
      return Value::of(std::move(out));
    }
    if (name == "length" || name == "count") {
      if (input.isUndefined())
        return Value::of(0);
      if (input.isData() && input.data.is_string())
        return Value::of(static_cast<int64_t>(codePointCount(input.data.get<std::string>())));
      if (input.isData() && (input.data.is_array() || input.data.is_object()))
        return Value::of(static_cast<int64_t>(input.data.size()));
      return fail(line, fmt::format("object of type '{}' has no len()", typeName(input)));
    }
    if (name == "string")
      return Value::of(asString(input));
    if (name == "upper")
      return Value::of(asciiUpper(asString(input)));
    if (name == "lower")
      return Value::of(asciiLower(asString(input)));
    if (name == "capitalize")
      return Value::of(capitalize(asString(input)));
    if (name == "title") {
      // jinja2's do_title: words start after whitespace, '-', or an opening bracket.
      std::string s = asString(input), out;
      bool start = true;
      for (char c : s) {
        bool sep = isPySpace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
        out += sep ? c : start ? asciiUpper(std::string(1, c))[0] : asciiLower(std::string(1, c))[0];
        start = sep;
      }
      return Value::of(std::move(out));
    }
    if (name == "trim") {
      std::optional<std::string> chars = stringArg(args, 0, "chars", line);
      if (failed())
        return {};
      return Value::of(pyStrip(asString(input), chars, true, true));
    }
    if (name == "replace")
      return replace(asString(input), args, "replace", line);
    if (name == "tojson") {
      std::optional<int64_t> indent = intArg(args, 0, "indent", line);
      if (failed())
        return {};
      if (!input.isData())
        return fail(line, fmt::format("Object of type {} is not JSON serializable", typeName(input)));
      std::string out;
      dumps(input.data, indent ? static_cast<int>(std::clamp<int64_t>(*indent, 0, 64)) : -1, 0, out);
      if (!checkSize(out.size(), line))
        return {};
      return Value::of(std::move(out));
    }
    if (name == "int" || name == "float") {
      const Value *def = args.get(0, "default");
      Json fallback = def && def->isData() ? def->data : name == "int" ? Json(0) : Json(0.0);
      if (input.isData() && isNum(input.data))
        return Value::of(name == "int" ? Json(asInt(input.data)) : Json(asDouble(input.data)));
      if (input.isData() && input.data.is_string()) {
        std::string s = pyStrip(input.data.get<std::string>(), std::nullopt, true, true);
        s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
        if (!s.empty()) {
          const char *b = s.c_str() + (s[0] == '+' ? 1 : 0);
          char *end = nullptr;
          errno = 0;
          long long i = std::strtoll(b, &end, 10);
          if (*end == '\0' && errno == 0 && end != b)
            return Value::of(name == "int" ? Json(int64_t(i)) : Json(double(i)));
          double d = std::strtod(s.c_str(), &end);
          if (*end == '\0' && end != s.c_str())
            return Value::of(name == "int" ? Json(int64_t(d)) : Json(d));
        }
      }
      return Value::of(fallback);
    }
    if (name == "abs") {
      if (!input.isData() || !isNum(input.data))
        return fail(line, fmt::format("bad operand type for abs(): '{}'", typeName(input)));
      if (input.data.is_number_float())
        return Value::of(std::fabs(input.data.get<double>()));
      return Value::of(std::llabs(asInt(input.data)));
    }
    if (name == "indent") {
      const Value *w = args.get(0, "width");
      std::string pad = w && w->isData() && w->data.is_string() ? w->data.get<std::string>()
                        : std::string(static_cast<size_t>(std::clamp<int64_t>(
                                          w && w->isData() && isInt(w->data) ? asInt(w->data) : 4, 0, 1024)),
                                      ' ');
      const Value *first = args.get(1, "first");
      const Value *blank = args.get(2, "blank");
      std::string s = asString(input) + "\n";
      std::vector<std::string> lines;
      size_t b = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\n' || s[i] == '\r') {
          lines.push_back(s.substr(b, i - b));
          if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n')
            ++i;
          b = i + 1;
        }
      }
      if (b < s.size())
        lines.push_back(s.substr(b));
      std::string out;
      for (size_t i = 0; i < lines.size(); ++i) {
        if (i > 0) {
          out += "\n";
          if ((blank && truthy(*blank)) || !lines[i].empty())
            out += pad;
        }
        out += lines[i];
      }
      if (first && truthy(*first))
        out = pad + out;
      if (!checkSize(out.size(), line))
        return {};
      return Value::of(std::move(out));
    }
    if (name == "items") {
      if (input.isUndefined())
        return Value::of(Json::array());
      if (!input.isData() || !input.data.is_object())
        return fail(line, "Can only get item pairs from a mapping.");
      return callMethod(input, "items", {}, line);
    }
    // The rest work on the items of an iterable.
    std::vector<Json> items;
    if (!iterate(input, items, line))
      return {};
    if (name == "list")
      return Value::of(Json(items));
    if (name == "first" || name == "last") {
      if (items.empty())
        return Value::undefined(fmt::format("No {} item, sequence was empty.", name));
      return Value::of(name == "first" ? items.front() : items.back());
    }
    if (name == "reverse") {
      std::reverse(items.begin(), items.end());
      if (input.isData() && input.data.is_string()) {
        std::string s;
        for (const Json &c : items)
          s += c.get<std::string>();
        return Value::of(std::move(s));
      }
      return Value::of(Json(items));
    }
    if (name == "join") {
      std::optional<std::string> sep = stringArg(args, 0, "d", line);
      const Value *attr = args.get(1, "attribute");
      if (failed())
        return {};
      std::string out;
      for (size_t i = 0; i < items.size(); ++i) {
        Value item = Value::of(items[i]);
        if (attr) {
          item = getAttr(item, toStr(*attr), line);
          if (failed())
            return {};
        }
        out += (i ? sep.value_or("") : "") + toStr(item);
        if (!checkSize(out.size(), line))
          return {};
      }
      return Value::of(std::move(out));
    }
    if (name == "unique") {
      const Value *cs = args.get(0, "case_sensitive");
      const Value *attr = args.get(1, "attribute");
      bool caseSensitive = cs && truthy(*cs);
      Json out = Json::array();
      std::vector<Json> seen;
      for (const Json &item : items) {
        Json key = item;
        if (attr) {
          Value a = getAttr(Value::of(item), toStr(*attr), line);
          if (failed())
            return {};
          key = a.isData() ? a.data : Json();
        }
        if (!caseSensitive && key.is_string())
          key = asciiLower(key.get<std::string>());
        if (std::none_of(seen.begin(), seen.end(), [&](const Json &s) { return pyEqual(s, key); })) {
          seen.push_back(key);
          out.push_back(item);
        }
      }
      return Value::of(std::move(out));
    }
    if (name == "map") {
      Json out = Json::array();
      const Value *attr = nullptr;
      for (const auto &[k, v] : args.named)
        if (k == "attribute")
          attr = &v;
      if (attr) {
        const Value *def = nullptr;
        for (const auto &[k, v] : args.named)
          if (k == "default")
            def = &v;
        for (const Json &item : items) {
          Value a = getAttr(Value::of(item), toStr(*attr), line);
          if (failed())
            return {};
          if (a.isUndefined() && def)
            a = *def;
          out.push_back(a.isData() ? a.data : Json());
        }
        return Value::of(std::move(out));
      }
      if (args.positional.empty() || !args.positional[0].isData() || !args.positional[0].data.is_string())
        return fail(line, "map() needs a filter name or attribute=");
      std::string filter = args.positional[0].data.get<std::string>();
      if (!isKnownFilter(filter) || filter == "map")
        return fail(line, fmt::format("no filter named '{}'", filter));
      Args rest;
      rest.positional.assign(args.positional.begin() + 1, args.positional.end());
      rest.named = args.named;
      for (const Json &item : items) {
        Value v = applyFilter(filter, Value::of(item), rest, line);
        if (failed())
          return {};
        out.push_back(v.isData() ? v.data : Json());
      }
      return Value::of(std::move(out));
    }
    if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
      bool byAttr = name.ends_with("attr");
      bool keep = name.starts_with("select");
      size_t at = 0;
      std::string attr;
      if (byAttr) {
        if (args.positional.empty())
          return fail(line, fmt::format("{}() needs an attribute name", name));
        attr = toStr(args.positional[0]);
        at = 1;
      }
      std::optional<std::string> test;
      if (args.positional.size() > at) {
        test = toStr(args.positional[at]);
        if (!isKnownTest(*test))
          return fail(line, fmt::format("no test named '{}'", *test));
      }
      Args testArgs;
      if (args.positional.size() > at + 1)
        testArgs.positional.assign(args.positional.begin() + at + 1, args.positional.end());
      Json out = Json::array();
      for (const Json &item : items) {
        Value v = Value::of(item);
        if (byAttr) {
          v = getAttr(v, attr, line);
          if (failed())
            return {};
        }
        bool r = test ? applyTest(*test, v, testArgs, line) : truthy(v);
        if (failed())
          return {};
        if (r == keep)
          out.push_back(item);
      }
      return Value::of(std::move(out));
    }
    return fail(line, fmt::format("no filter named '{}'", name));
  }

  bool applyTest(const std::string &name, const Value &v, const Args &args, int line) {
    const Json &j = v.data;
    bool data = v.isData();
    const Value *arg = args.get(0, "other");
    auto need = [&]() -> bool {
      if (!arg)
        fail(line, fmt::format("test '{}' takes an argument", name));
      return arg != nullptr;
    };
    if (name == "defined")
      return !v.isUndefined();
    if (name == "undefined")
      return v.isUndefined();
    if (name == "none")
      return data && j.is_null();
    if (name == "string")
      return data && j.is_string();
    if (name == "number")
      return data && isNum(j);
    if (name == "integer")
      return data && j.is_number_integer();
    if (name == "float")
      return data && j.is_number_float();
    if (name == "boolean")
      return data && j.is_boolean();
    if (name == "true")
      return data && j.is_boolean() && j.get<bool>();
    if (name == "false")
      return data && j.is_boolean() && !j.get<bool>();
    if (name == "mapping")
      return data && j.is_object();
    if (name == "iterable" || name == "sequence")
      return v.isUndefined() || (data && (j.is_string() || j.is_array() || j.is_object()));
    if (name == "lower" || name == "upper") {
      std::string s = toStr(v);
      return name == "lower" ? asciiLower(s) == s : asciiUpper(s) == s;
    }
    if (name == "even" || name == "odd" || name == "divisibleby") {
      if (!data || !isNum(j)) {
        fail(line, fmt::format("unsupported operand type(s) for %: '{}' and 'int'", typeName(v)));
        return false;
      }
      double d = 2;
      if (name == "divisibleby") {
        if (!need())
          return false;
        if (!arg->isData() || !isNum(arg->data) || asDouble(arg->data) == 0) {
          fail(line, "divisibleby needs a non-zero number");
          return false;
        }
        d = asDouble(arg->data);
      }
      double m = std::fmod(asDouble(j), d);
      if (m != 0 && ((m < 0) != (d < 0)))
        m += d;
      return name == "odd" ? m == 1 : m == 0;
    }
    if (name == "eq" || name == "equalto" || name == "==")
      return need() && valueEqual(v, *arg);
    if (name == "ne" || name == "!=")
      return need() && !valueEqual(v, *arg);
    if (name == "sameas") {
      if (!need())
        return false;
      if (data && arg->isData() && (j.is_null() || j.is_boolean()))
        return j == arg->data;
      return v.kind == Value::Kind::Namespace && v.ns == arg->ns;
    }
    if (name == "in")
      return need() && contains(*arg, v, line);
    static const std::pair<const char *, const char *> order[] = {
        {"lt", "<"}, {"<", "<"}, {"le", "<="}, {"<=", "<="}, {"gt", ">"}, {">", ">"}, {"ge", ">="}, {">=", ">="},
        {"lessthan", "<"}, {"greaterthan", ">"}};
    for (const auto &[test, op] : order)
      if (name == test)
        return need() && compare(op, v, *arg, line);
    fail(line, fmt::format("no test named '{}'", name));
    return false;
  }

  const std::string &name_;
  std::vector<Scope> scopes_;
  std::string out_;
  std::optional<std::string> error_;
  uint64_t steps_ = 0;
};


} // namespace

Expected<std::string> renderProgram(const Program &program, const std::string &name,
                                    std::unordered_map<std::string, Value> globals) {
  return Renderer(name).run(program, std::move(globals));
}

bool isKnownFilter(std::string_view name) {
  static constexpr std::string_view known[] = {
      "abs",    "capitalize", "count",      "d",    "default", "e",       "escape",  "first",   "float",
      "indent", "int",        "items",      "join", "last",    "length",  "list",    "lower",   "map",
      "reject", "rejectattr", "replace",    "reverse", "safe", "select",  "selectattr", "string", "title",
      "tojson", "trim",       "unique",     "upper"};
  return std::find(std::begin(known), std::end(known), name) != std::end(known);
}

bool isKnownTest(std::string_view name) {
  static constexpr std::string_view known[] = {
      "defined", "undefined", "none",  "string", "number", "integer",  "float",   "boolean", "true", "false",
      "mapping", "iterable",  "sequence", "lower", "upper", "even",    "odd",     "divisibleby", "eq", "equalto",
      "==",      "ne",        "!=",    "sameas", "in",     "lt",       "<",       "le",      "<=",   "gt",
      ">",       "ge",        ">=",    "lessthan", "greaterthan"};
  return std::find(std::begin(known), std::end(known), name) != std::end(known);
}


} // namespace lathe::serving::chat_template
