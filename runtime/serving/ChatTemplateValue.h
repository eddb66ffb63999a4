// Values of the chat-template renderer (ChatTemplateRenderer.cpp) and the
// Python semantics it needs: str() and repr(), json.dumps, truthiness,
// equality, and the str methods templates call.
#pragma once

#include "runtime/serving/ChatTemplateSyntax.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace lathe::serving::chat_template {

struct Namespace;

/// A template value: JSON data, jinja2's Undefined (with the message an
/// error about it gives), or a mutable namespace() object.
struct Value {
  enum class Kind { Undefined, Data, Namespace };
  Kind kind = Kind::Undefined;
  Json data;
  std::shared_ptr<Namespace> ns;
  std::string hint;

  static Value undefined(std::string hint) {
    Value v;
    v.hint = std::move(hint);
    return v;
  }
  static Value of(Json j) {
    Value v;
    v.kind = Kind::Data;
    v.data = std::move(j);
    return v;
  }
  bool isUndefined() const { return kind == Kind::Undefined; }
  bool isData() const { return kind == Kind::Data; }
};

struct Namespace {
  std::vector<std::pair<std::string, Value>> attrs;
  Value *find(const std::string &name) {
    for (auto &[k, v] : attrs)
      if (k == name)
        return &v;
    return nullptr;
  }
};


/// Numbers as Python sees them: bool is an int.
bool isInt(const Json &j);
bool isNum(const Json &j);
int64_t asInt(const Json &j);
double asDouble(const Json &j);
/// Python's type name ("str", "int", "list", "dict", "NoneType", ...).
std::string typeName(const Value &v);

/// Byte offsets of each code point of a UTF-8 string, plus the end.
std::vector<size_t> codePoints(const std::string &s);
size_t codePointCount(const std::string &s);

/// repr() of a float, a string, any value; str() as {{ }} prints it.
std::string pyFloat(double d);
std::string pyStrRepr(const std::string &s);
std::string pyRepr(const Json &j);
std::string toStr(const Value &v);
/// json.dumps(j, ensure_ascii=False, indent=indent) (indent < 0: none).
void dumps(const Json &j, int indent, int level, std::string &out);

bool truthy(const Value &v);
/// Python's ==: 1 == 1.0 == True.
bool pyEqual(const Json &a, const Json &b);
bool valueEqual(const Value &a, const Value &b);

std::string asciiLower(std::string s);
std::string asciiUpper(std::string s);
bool isAlpha(char c);
bool isPySpace(char c);
/// str.strip / lstrip / rstrip with Python's optional set of characters.
std::string pyStrip(const std::string &s, const std::optional<std::string> &chars, bool left, bool right);
/// str.replace(from, to, count), count < 0: all.
std::string pyReplace(const std::string &s, const std::string &from, const std::string &to, int64_t count);
/// str.title(): a letter after a non-letter is upper-cased.
std::string pyTitle(const std::string &s);
/// Python's slice.indices(): start and stop clamped to a length.
void sliceIndices(int64_t len, std::optional<int64_t> start, std::optional<int64_t> stop, int64_t step, int64_t &b,
                  int64_t &e);

/// The caller's JSON as template data (keys stay in their sorted order).
Json toOrdered(const nlohmann::json &j);

} // namespace lathe::serving::chat_template
