// The syntax tree of a parsed Jinja template: expressions and statements.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "jinja/jinja_value.h"

namespace nanovllm::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,   // literal
    Name,      // name
    List,      // args = items
    Tuple,     // args = items
    Dict,      // args = key0, value0, key1, value1, ...
    GetAttr,   // args[0].name
    GetItem,   // args[0][args[1]]
    Slice,     // args[0][args[1]:args[2]:args[3]], absent parts null
    Call,      // args[0](args[1:], kwargs)
    Filter,    // args[0] | name(args[1:], kwargs)
    Test,      // args[0] is [not] name(args[1:], kwargs)
    Unary,     // name in {"-", "+", "not"} applied to args[0]
    Binary,    // args[0] name args[1]: arithmetic, "~", "and", "or"
    Compare,   // args[0] ops[0] args[1] ops[1] args[2] ...
    Cond,      // args[1] if args[0] else args[2] (args[2] null when absent)
  };
  Kind kind;
  int line = 0, col = 0;
  int depth = 1;  // levels of the tree below and including this node
  Value literal;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  bool negated = false;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // null when the parameter has no default
};

struct Stmt {
  enum class Kind {
    Text,        // text
    Output,      // {{ expr }}
    If,          // branches (cond, body)..., else_body
    For,         // for targets in expr [if cond] body [else else_body]
    Set,         // set targets = expr, or set targets[0].attr = expr (namespace)
    SetBlock,    // set targets[0] [| filters in expr] body endset
    Macro,       // macro name(params) body
    CallBlock,   // call(params) expr body: the body becomes `caller` inside the macro
    FilterBlock, // filter expr body: expr is a Filter chain whose innermost operand is null
    Break,
    Continue,
    Scope,       // body only: {% generation %} (transformers) and {% with %} without targets
  };
  Kind kind;
  int line = 0, col = 0;
  std::string text;  // Text; Macro name; Set attribute for namespace targets
  ExprPtr expr;      // Output / For iterable / Set value / CallBlock call / filters
  ExprPtr cond;      // For filter condition
  std::vector<std::string> targets;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  std::vector<MacroParam> params;
};

}  // namespace nanovllm::jinja
