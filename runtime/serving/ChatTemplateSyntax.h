// The syntax tree of a chat template (ChatTemplate.h): ChatTemplateParser.cpp
// builds it, ChatTemplateRenderer.cpp walks it. Node shapes follow jinja2's own
// nodes, so a reader can compare with jinja2/parser.py.
#pragma once

#include "runtime/support/Expected.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lathe::serving::chat_template {

/// Values keep the key order of dict literals, as Python dicts do (tojson).
using Json = nlohmann::ordered_json;

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

/// A call or filter argument; `name` is empty for a positional one.
struct Arg {
  std::string name;
  ExprPtr value;
};

struct Expr {
  enum class Kind {
    Literal,  // literal
    Name,     // name
    List,     // items
    Dict,     // items: key, value, key, value, ...
    Attr,     // items[0] . name
    Item,     // items[0] [ items[1] ]
    Slice,    // items[0] [ items[1] : items[2] : items[3] ], each may be null
    Call,     // items[0] ( args )
    Filter,   // items[0] | name ( args )
    Test,     // items[0] is [not] name ( args )
    Unary,    // name ("-", "+", "not") items[0]
    Binary,   // items[0] name items[1]: + - * / // % ** ~ and or
    Compare,  // items[0] ops[0] items[1] ops[1] ...: == != < <= > >= in notin
    Cond,     // items[0] if items[1] else items[2] (null: undefined)
  };
  Kind kind;
  int line = 0;
  Json literal;
  std::string name;
  std::vector<ExprPtr> items;
  std::vector<Arg> args;
  std::vector<std::string> ops;
  bool negated = false;
};

struct Node;
using Body = std::vector<Node>;

struct Node {
  enum class Kind {
    Text,      // text
    Output,    // {{ expr }}
    If,        // branches (cond, body) ..., elseBody
    For,       // for targets in expr [if cond]: body, else elseBody
    Set,       // set targets = expr, or set targets[0].attr = expr
    SetBlock,  // set targets[0] %} body {% endset
    Scope,     // generation %} body {% endgeneration
    Break,
    Continue,
  };
  Kind kind;
  int line = 0;
  std::string text;
  std::vector<std::string> targets;
  std::string attr;
  ExprPtr expr, cond;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, elseBody;
};

struct Program {
  Body body;
};

/// Parses `source`; errors read "<name>: line L: <what>".
Expected<std::shared_ptr<const Program>> parseProgram(std::string_view source, const std::string &name);

/// The filters and tests the renderer knows: the parser refuses others.
bool isKnownFilter(std::string_view name);
bool isKnownTest(std::string_view name);

} // namespace lathe::serving::chat_template
