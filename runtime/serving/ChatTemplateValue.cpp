// Python semantics over template values (ChatTemplateValue.h).
#include "runtime/serving/ChatTemplateValue.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

namespace lathe::serving::chat_template {

// --- Python-like helpers over Json -----------------------------------------

bool isInt(const Json &j) { return j.is_number_integer() || j.is_boolean(); }
bool isNum(const Json &j) { return j.is_number() || j.is_boolean(); }
int64_t asInt(const Json &j) {
  if (j.is_boolean())
    return j.get<bool>() ? 1 : 0;
  if (j.is_number_unsigned())
    return static_cast<int64_t>(j.get<uint64_t>());
  if (j.is_number_integer())
    return j.get<int64_t>();
  return static_cast<int64_t>(j.get<double>());
}
double asDouble(const Json &j) {
  if (j.is_number_float())
    return j.get<double>();
  return static_cast<double>(asInt(j));
}

std::string typeName(const Value &v) {
  if (v.kind == Value::Kind::Undefined)
    return "Undefined";
  if (v.kind == Value::Kind::Namespace)
    return "Namespace";
  const Json &j = v.data;
  if (j.is_null())
    return "NoneType";
  if (j.is_boolean())
    return "bool";
  if (j.is_number_integer())
    return "int";
  if (j.is_number_float())
    return "float";
  if (j.is_string())
    return "str";
  if (j.is_array())
    return "list";
  return "dict";
}

/// Byte offsets of each code point of a UTF-8 string, plus the end.
std::vector<size_t> codePoints(const std::string &s) {
  std::vector<size_t> offsets;
  offsets.reserve(s.size() + 1);
  for (size_t i = 0; i < s.size();) {
    offsets.push_back(i);
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    i = std::min(s.size(), i + n);
  }
  offsets.push_back(s.size());
  return offsets;
}
size_t codePointCount(const std::string &s) { return codePoints(s).size() - 1; }

/// Python's repr of a float: the shortest digits that round-trip.
std::string pyFloat(double d) {
  if (std::isnan(d))
    return "nan";
  if (std::isinf(d))
    return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  size_t e = sci.find('e');
  std::string mant = sci.substr(0, e);
  int exp = std::stoi(sci.substr(e + 1));
  bool neg = mant[0] == '-';
  if (neg)
    mant.erase(0, 1);
  std::string digits;
  for (char c : mant)
    if (c != '.')
      digits += c;
  std::string out;
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out = "0." + std::string(-exp - 1, '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exp + 1) {
      out = digits + std::string(exp + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1)
      out += "." + digits.substr(1);
    out += fmt::format("e{}{:02d}", exp < 0 ? '-' : '+', std::abs(exp));
  }
  return neg ? "-" + out : out;
}

std::string pyStrRepr(const std::string &s) {
  bool hasSingle = s.find('\'') != std::string::npos, hasDouble = s.find('"') != std::string::npos;
  char q = hasSingle && !hasDouble ? '"' : '\'';
  std::string out(1, q);
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == q || c == '\\')
      out += '\\', out += c;
    else if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else if (u < 0x20 || u == 0x7f)
      out += fmt::format("\\x{:02x}", u);
    else
      out += c;
  }
  return out + q;
}

std::string pyRepr(const Json &j) {
  if (j.is_string())
    return pyStrRepr(j.get_ref<const std::string &>());
  if (j.is_null())
    return "None";
  if (j.is_boolean())
    return j.get<bool>() ? "True" : "False";
  if (j.is_number_float())
    return pyFloat(j.get<double>());
  if (j.is_number())
    return std::to_string(asInt(j));
  std::string out;
  if (j.is_array()) {
    out = "[";
    for (size_t i = 0; i < j.size(); ++i)
      out += (i ? ", " : "") + pyRepr(j[i]);
    return out + "]";
  }
  out = "{";
  bool first = true;
  for (auto it = j.begin(); it != j.end(); ++it) {
    out += (first ? "" : ", ") + pyStrRepr(it.key()) + ": " + pyRepr(it.value());
    first = false;
  }
  return out + "}";
}

/// str(): how {{ }} prints a value.
std::string toStr(const Value &v) {
  if (v.kind == Value::Kind::Undefined)
    return "";
  if (v.kind == Value::Kind::Namespace) {
    std::string out = "<Namespace {";
    for (size_t i = 0; i < v.ns->attrs.size(); ++i)
      out += (i ? ", " : "") + pyStrRepr(v.ns->attrs[i].first) + ": " +
             (v.ns->attrs[i].second.isData() ? pyRepr(v.ns->attrs[i].second.data) : "?");
    return out + "}>";
  }
  if (v.data.is_string())
    return v.data.get<std::string>();
  return pyRepr(v.data);
}

namespace {
void jsonString(const std::string &s, std::string &out) {
  out += '"';
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    case '\b': out += "\\b"; break;
    case '\f': out += "\\f"; break;
    default:
      // Python's json.dumps with ensure_ascii=False escapes the C0
      // controls only (DEL, 0x7f, stays as it is).
      if (u < 0x20)
        out += fmt::format("\\u{:04x}", u);
      else
        out += c;
    }
  }
  out += '"';
}
} // namespace

/// json.dumps(j, ensure_ascii=False, indent=indent) (indent < 0: none).
void dumps(const Json &j, int indent, int level, std::string &out) {
  auto newline = [&](int l) {
    out += '\n';
    out.append(static_cast<size_t>(indent) * l, ' ');
  };
  if (j.is_string()) {
    jsonString(j.get_ref<const std::string &>(), out);
  } else if (j.is_null()) {
    out += "null";
  } else if (j.is_boolean()) {
    out += j.get<bool>() ? "true" : "false";
  } else if (j.is_number_float()) {
    double d = j.get<double>();
    out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d < 0 ? "-Infinity" : "Infinity") : pyFloat(d);
  } else if (j.is_number()) {
    out += std::to_string(asInt(j));
  } else if (j.is_array() || j.is_object()) {
    bool arr = j.is_array();
    out += arr ? '[' : '{';
    if (j.empty()) {
      out += arr ? ']' : '}';
      return;
    }
    bool first = true;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!first)
        out += indent >= 0 ? "," : ", ";
      first = false;
      if (indent >= 0)
        newline(level + 1);
      if (!arr) {
        jsonString(it.key(), out);
        out += ": ";
      }
      dumps(it.value(), indent, level + 1, out);
    }
    if (indent >= 0)
      newline(level);
    out += arr ? ']' : '}';
  }
}

bool truthy(const Value &v) {
  if (v.kind == Value::Kind::Undefined)
    return false;
  if (v.kind == Value::Kind::Namespace)
    return true;
  const Json &j = v.data;
  if (j.is_null())
    return false;
  if (j.is_boolean())
    return j.get<bool>();
  if (j.is_number_float())
    return j.get<double>() != 0;
  if (j.is_number())
    return asInt(j) != 0;
  if (j.is_string())
    return !j.get_ref<const std::string &>().empty();
  return !j.empty();
}

bool pyEqual(const Json &a, const Json &b) {
  if (isNum(a) && isNum(b)) {
    if (isInt(a) && isInt(b))
      return asInt(a) == asInt(b);
    return asDouble(a) == asDouble(b);
  }
  if (a.type() != b.type())
    return false;
  if (a.is_array()) {
    if (a.size() != b.size())
      return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!pyEqual(a[i], b[i]))
        return false;
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size())
      return false;
    for (auto it = a.begin(); it != a.end(); ++it) {
      auto f = b.find(it.key());
      if (f == b.end() || !pyEqual(it.value(), *f))
        return false;
    }
    return true;
  }
  return a == b;
}

bool valueEqual(const Value &a, const Value &b) {
  if (a.isUndefined() || b.isUndefined())
    return a.isUndefined() && b.isUndefined();
  if (a.kind == Value::Kind::Namespace || b.kind == Value::Kind::Namespace)
    return a.ns == b.ns;
  return pyEqual(a.data, b.data);
}

std::string asciiLower(std::string s) {
  for (char &c : s)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return s;
}
std::string asciiUpper(std::string s) {
  for (char &c : s)
    if (c >= 'a' && c <= 'z')
      c = static_cast<char>(c - 'a' + 'A');
  return s;
}
bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || static_cast<unsigned char>(c) >= 0x80; }
bool isPySpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1f); }

/// str.strip / lstrip / rstrip with Python's optional set of characters.
std::string pyStrip(const std::string &s, const std::optional<std::string> &chars, bool left, bool right) {
  std::vector<size_t> cp = codePoints(s);
  std::vector<std::string> set;
  if (chars) {
    std::vector<size_t> cc = codePoints(*chars);
    for (size_t i = 0; i + 1 < cc.size(); ++i)
      set.push_back(chars->substr(cc[i], cc[i + 1] - cc[i]));
  }
  auto strip = [&](size_t i) {
    std::string ch = s.substr(cp[i], cp[i + 1] - cp[i]);
    if (chars)
      return std::find(set.begin(), set.end(), ch) != set.end();
    return ch.size() == 1 && isPySpace(ch[0]);
  };
  size_t b = 0, e = cp.size() - 1;
  if (left)
    while (b < e && strip(b))
      ++b;
  if (right)
    while (e > b && strip(e - 1))
      --e;
  return s.substr(cp[b], cp[e] - cp[b]);
}

std::string pyReplace(const std::string &s, const std::string &from, const std::string &to, int64_t count) {
  std::string out;
  if (from.empty()) {
    std::vector<size_t> cp = codePoints(s);
    int64_t done = 0;
    for (size_t i = 0; i + 1 < cp.size(); ++i) {
      if (count < 0 || done < count)
        out += to, ++done;
      out.append(s, cp[i], cp[i + 1] - cp[i]);
    }
    if (count < 0 || done < count)
      out += to;
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  for (;;) {
    size_t f = s.find(from, pos);
    if (f == std::string::npos || (count >= 0 && done >= count))
      break;
    out.append(s, pos, f - pos);
    out += to;
    pos = f + from.size();
    ++done;
  }
  out.append(s, pos);
  return out;
}

/// Python's str.title(): a letter after a non-letter is upper-cased.
std::string pyTitle(const std::string &s) {
  std::string out = s;
  bool prevLetter = false;
  for (char &c : out) {
    bool letter = isAlpha(c);
    if (letter && static_cast<unsigned char>(c) < 0x80)
      c = prevLetter ? asciiLower(std::string(1, c))[0] : asciiUpper(std::string(1, c))[0];
    prevLetter = letter;
  }
  return out;
}

/// Python's slice.indices(): start, stop, step clamped to a length.
void sliceIndices(int64_t len, std::optional<int64_t> start, std::optional<int64_t> stop, int64_t step, int64_t &b,
                  int64_t &e) {
  auto clamp = [&](std::optional<int64_t> v, int64_t def) {
    if (!v)
      return def;
    int64_t x = *v;
    if (x < 0) {
      x += len;
      if (x < 0)
        x = step < 0 ? -1 : 0;
    } else if (x >= len) {
      x = step < 0 ? len - 1 : len;
    }
    return x;
  };
  b = clamp(start, step < 0 ? len - 1 : 0);
  e = clamp(stop, step < 0 ? -1 : len);
}


Json toOrdered(const nlohmann::json &j) {
  if (j.is_object()) {
    Json out = Json::object();
    for (auto it = j.begin(); it != j.end(); ++it)
      out[it.key()] = toOrdered(it.value());
    return out;
  }
  if (j.is_array()) {
    Json out = Json::array();
    for (const auto &x : j)
      out.push_back(toOrdered(x));
    return out;
  }
  if (j.is_string())
    return j.get<std::string>();
  if (j.is_boolean())
    return j.get<bool>();
  if (j.is_number_float())
    return j.get<double>();
  if (j.is_number_unsigned())
    return j.get<uint64_t>();
  if (j.is_number_integer())
    return j.get<int64_t>();
  return nullptr;
}


} // namespace lathe::serving::chat_template
