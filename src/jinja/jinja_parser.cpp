// Parses Jinja tokens into a statement tree, with Jinja's operator precedence.
#include "jinja/jinja_parser.h"

#include <algorithm>
#include <cstdlib>
#include <initializer_list>
#include <string_view>

#include "nanovllm/error.h"
#include "jinja/jinja_builtins.h"

namespace nanovllm::jinja {

namespace {

using T = Token::Type;
using EK = Expr::Kind;
using SK = Stmt::Kind;

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : toks_(tokens) {}

  Body parse_template() {
    Body body = parse_body({});
    return body;
  }

 private:
  const std::vector<Token>& toks_;
  size_t i_ = 0;

  const Token& cur() const { return toks_[i_]; }
  const Token& peek(size_t k = 1) const { return toks_[std::min(i_ + k, toks_.size() - 1)]; }
  const Token& next() { return toks_[i_ < toks_.size() - 1 ? i_++ : i_]; }

  [[noreturn]] void fail(const Token& t, const std::string& msg) const { throw Error(location(t.line, t.col) + msg); }

  bool is_op(std::string_view op) const { return cur().type == T::Op && cur().text == op; }
  bool is_name(std::string_view n) const { return cur().type == T::Name && cur().text == n; }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  void expect_op(std::string_view op) {
    if (!skip_op(op)) fail(cur(), "expected '" + std::string(op) + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().type != T::Name) fail(cur(), "expected a name, got " + describe(cur()));
    return next().text;
  }
  void expect_block_end() {
    if (cur().type != T::BlockEnd) fail(cur(), "expected end of statement '%}', got " + describe(cur()));
    next();
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case T::End: return "end of template";
      case T::BlockEnd: return "'%}'";
      case T::VarEnd: return "'}}'";
      case T::String: return "a string";
      default: return "'" + t.text + "'";
    }
  }

  // Nesting: recursion of the parser (statements in statements, parenthesised expressions) is
  // counted by Nest, and the depth of every expression tree by deepen(), since left-nested
  // chains such as `a + a + ... + a` or `x|trim|trim...` grow the tree without recursion here.
  // Both the evaluator and the tree's destructor recurse once per level.
  int nesting_ = 0;

  struct Nest {
    Parser& p;
    Nest(Parser& parser, const Token& at) : p(parser) {
      if (++p.nesting_ > kMaxTemplateNesting) p.fail(at, too_deep());
    }
    ~Nest() { --p.nesting_; }
  };

  static std::string too_deep() { return "template nested deeper than " + std::to_string(kMaxTemplateNesting) + " levels"; }

  void deepen(Expr& parent, const Expr* child) {
    if (!child) return;
    parent.depth = std::max(parent.depth, child->depth + 1);
    if (parent.depth > kMaxTemplateNesting) throw Error(location(parent.line, parent.col) + too_deep());
  }

  void add(Expr& parent, ExprPtr child) {
    deepen(parent, child.get());
    parent.args.push_back(std::move(child));
  }

  ExprPtr node(EK kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->col = at.col;
    return e;
  }

  StmtPtr stmt(SK kind, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = at.line;
    s->col = at.col;
    return s;
  }

  // ---- statements ------------------------------------------------------------------------

  // Parses until a block tag named in `stop` (left unconsumed, after its '{%') or the end.
  Body parse_body(std::initializer_list<std::string_view> stop) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == T::End) {
        if (stop.size()) fail(t, "unexpected end of template, expected '" + std::string(*stop.begin()) + "'");
        return body;
      }
      if (t.type == T::Text) {
        auto s = stmt(SK::Text, t);
        s->text = next().text;
        body.push_back(std::move(s));
      } else if (t.type == T::VarBegin) {
        next();
        auto s = stmt(SK::Output, t);
        s->expr = parse_tuple(true);
        if (cur().type != T::VarEnd) fail(cur(), "expected '}}', got " + describe(cur()));
        next();
        body.push_back(std::move(s));
      } else if (t.type == T::BlockBegin) {
        const Token& tag = peek();
        for (std::string_view s : stop)
          if (tag.type == T::Name && tag.text == s) {
            next();
            return body;
          }
        next();
        body.push_back(parse_statement());
      } else {
        fail(t, "unexpected " + describe(t));
      }
    }
  }

  StmtPtr parse_statement() {
    const Token& tag = cur();
    Nest nest(*this, tag);
    if (tag.type != T::Name) fail(tag, "expected a tag name, got " + describe(tag));
    const std::string& n = tag.text;
    if (n == "if") return parse_if();
    if (n == "for") return parse_for();
    if (n == "set") return parse_set();
    if (n == "macro") return parse_macro();
    if (n == "call") return parse_call_block();
    if (n == "filter") return parse_filter_block();
    if (n == "break" || n == "continue") {
      auto s = stmt(n == "break" ? SK::Break : SK::Continue, next());
      expect_block_end();
      return s;
    }
    if (n == "generation") return parse_scope("endgeneration");
    if (n == "with" && peek().type == T::BlockEnd) return parse_scope("endwith");
    fail(tag, "unsupported template tag '" + n + "'");
  }

  StmtPtr parse_scope(const char* end) {
    auto s = stmt(SK::Scope, next());
    expect_block_end();
    s->body = parse_body({end});
    next();
    expect_block_end();
    return s;
  }

  StmtPtr parse_if() {
    auto s = stmt(SK::If, next());
    while (true) {
      ExprPtr cond = parse_tuple(true);
      expect_block_end();
      Body body = parse_body({"elif", "else", "endif"});
      s->branches.emplace_back(std::move(cond), std::move(body));
      std::string tag = next().text;
      if (tag == "elif") continue;
      if (tag == "else") {
        expect_block_end();
        s->else_body = parse_body({"endif"});
        next();
      }
      expect_block_end();
      return s;
    }
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> targets;
    bool paren = skip_op("(");
    do {
      targets.push_back(expect_name());
    } while (skip_op(","));
    if (paren) expect_op(")");
    return targets;
  }

  StmtPtr parse_for() {
    auto s = stmt(SK::For, next());
    s->targets = parse_targets();
    if (!skip_name("in")) fail(cur(), "expected 'in' in for loop, got " + describe(cur()));
    s->expr = parse_tuple(false);
    if (skip_name("if")) s->cond = parse_expression(true);
    if (is_name("recursive")) fail(cur(), "recursive for loops are not supported");
    expect_block_end();
    s->body = parse_body({"endfor", "else"});
    if (next().text == "else") {
      expect_block_end();
      s->else_body = parse_body({"endfor"});
      next();
    }
    expect_block_end();
    return s;
  }

  StmtPtr parse_set() {
    const Token& at = next();
    std::vector<std::string> targets = parse_targets();
    std::string attr;
    if (targets.size() == 1 && skip_op(".")) attr = expect_name();
    if (skip_op("=")) {
      auto s = stmt(SK::Set, at);
      s->targets = std::move(targets);
      s->text = std::move(attr);
      s->expr = parse_tuple(true);
      expect_block_end();
      return s;
    }
    if (targets.size() != 1 || !attr.empty()) fail(cur(), "expected '=' in set statement");
    auto s = stmt(SK::SetBlock, at);
    s->targets = std::move(targets);
    if (is_op("|")) s->expr = parse_filter_chain(nullptr);
    expect_block_end();
    s->body = parse_body({"endset"});
    next();
    expect_block_end();
    return s;
  }

  std::vector<MacroParam> parse_params() {
    std::vector<MacroParam> params;
    expect_op("(");
    while (!is_op(")")) {
      if (!params.empty()) expect_op(",");
      if (is_op(")")) break;
      MacroParam p;
      p.name = expect_name();
      if (skip_op("=")) p.default_value = parse_expression(true);
      params.push_back(std::move(p));
    }
    expect_op(")");
    return params;
  }

  StmtPtr parse_macro() {
    auto s = stmt(SK::Macro, next());
    s->text = expect_name();
    s->params = parse_params();
    expect_block_end();
    s->body = parse_body({"endmacro"});
    next();
    expect_block_end();
    return s;
  }

  StmtPtr parse_call_block() {
    auto s = stmt(SK::CallBlock, next());
    if (is_op("(")) s->params = parse_params();
    s->expr = parse_expression(true);
    if (s->expr->kind != EK::Call) fail(cur(), "expected a macro call in call block");
    expect_block_end();
    s->body = parse_body({"endcall"});
    next();
    expect_block_end();
    return s;
  }

  StmtPtr parse_filter_block() {
    auto s = stmt(SK::FilterBlock, next());
    s->expr = parse_filter_chain(nullptr, /*leading_bar=*/false);
    expect_block_end();
    s->body = parse_body({"endfilter"});
    next();
    expect_block_end();
    return s;
  }

  // ---- expressions -----------------------------------------------------------------------

  // An expression, or several separated by commas making a tuple (as in `{% set a = 1, 2 %}`).
  ExprPtr parse_tuple(bool with_condexpr) {
    const Token& at = cur();
    ExprPtr first = parse_expression(with_condexpr);
    if (!is_op(",")) return first;
    auto t = node(EK::Tuple, at);
    add(*t, std::move(first));
    while (skip_op(",")) {
      if (cur().type == T::BlockEnd || cur().type == T::VarEnd || is_name("if")) break;
      add(*t, parse_expression(with_condexpr));
    }
    return t;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    Nest nest(*this, cur());
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    ExprPtr e1 = parse_or();
    while (is_name("if")) {
      auto c = node(EK::Cond, next());
      ExprPtr cond = parse_or();
      ExprPtr other = skip_name("else") ? parse_expression(true) : nullptr;
      add(*c, std::move(cond));
      add(*c, std::move(e1));
      add(*c, std::move(other));
      e1 = std::move(c);
    }
    return e1;
  }

  ExprPtr binary(const Token& at, std::string op, ExprPtr l, ExprPtr r) {
    auto b = node(EK::Binary, at);
    b->name = std::move(op);
    add(*b, std::move(l));
    add(*b, std::move(r));
    return b;
  }

  ExprPtr parse_or() {
    ExprPtr l = parse_and();
    while (is_name("or")) {
      const Token& at = next();
      l = binary(at, "or", std::move(l), parse_and());
    }
    return l;
  }

  ExprPtr parse_and() {
    ExprPtr l = parse_not();
    while (is_name("and")) {
      const Token& at = next();
      l = binary(at, "and", std::move(l), parse_not());
    }
    return l;
  }

  ExprPtr parse_not() {
    if (!is_name("not")) return parse_compare();
    Nest nest(*this, cur());
    auto u = node(EK::Unary, next());
    u->name = "not";
    add(*u, parse_not());
    return u;
  }

  ExprPtr parse_compare() {
    const Token& at = cur();
    ExprPtr first = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == T::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                  cur().text == ">" || cur().text == "<=" || cur().text == ">=")) {
        op = next().text;
      } else if (skip_name("in")) {
        op = "in";
      } else if (is_name("not") && peek().type == T::Name && peek().text == "in") {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = node(EK::Compare, at);
        add(*cmp, std::move(first));
      }
      cmp->ops.push_back(op);
      add(*cmp, parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  ExprPtr parse_math1() {
    ExprPtr l = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& at = next();
      l = binary(at, at.text, std::move(l), parse_concat());
    }
    return l;
  }

  ExprPtr parse_concat() {
    ExprPtr l = parse_math2();
    while (is_op("~")) {
      const Token& at = next();
      l = binary(at, "~", std::move(l), parse_math2());
    }
    return l;
  }

  ExprPtr parse_math2() {
    ExprPtr l = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& at = next();
      l = binary(at, at.text, std::move(l), parse_pow());
    }
    return l;
  }

  ExprPtr parse_pow() {
    ExprPtr l = parse_unary(true);
    while (is_op("**")) {
      const Token& at = next();
      l = binary(at, "**", std::move(l), parse_unary(true));
    }
    return l;
  }

  ExprPtr parse_unary(bool with_filter) {
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      Nest nest(*this, cur());
      e = node(EK::Unary, cur());
      e->name = next().text;
      add(*e, parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    return with_filter ? parse_filter_expr(std::move(e)) : std::move(e);
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    switch (t.type) {
      case T::Name: return parse_name();
      case T::String: {
        auto e = node(EK::Literal, t);
        std::string s;
        while (cur().type == T::String) s += next().text;  // adjacent literals concatenate
        e->literal = Value(std::move(s));
        return e;
      }
      case T::Int: {
        auto e = node(EK::Literal, next());
        e->literal = Value(static_cast<int64_t>(std::strtoll(t.text.c_str(), nullptr, 10)));
        return e;
      }
      case T::Float: {
        auto e = node(EK::Literal, next());
        e->literal = Value(std::strtod(t.text.c_str(), nullptr));
        return e;
      }
      case T::Op:
        if (t.text == "(") return parse_paren();
        if (t.text == "[") return parse_list();
        if (t.text == "{") return parse_dict();
        [[fallthrough]];
      default: fail(t, "unexpected " + describe(t));
    }
  }

  ExprPtr parse_name() {
    const Token& t = next();
    auto e = node(EK::Literal, t);
    if (t.text == "true" || t.text == "True") e->literal = Value(true);
    else if (t.text == "false" || t.text == "False") e->literal = Value(false);
    else if (t.text == "none" || t.text == "None") e->literal = Value::none();
    else {
      e->kind = EK::Name;
      e->name = t.text;
    }
    return e;
  }

  ExprPtr parse_paren() {
    const Token& at = next();
    if (skip_op(")")) return node(EK::Tuple, at);
    ExprPtr first = parse_expression(true);
    if (skip_op(")")) return first;
    auto t = node(EK::Tuple, at);
    add(*t, std::move(first));
    while (skip_op(",")) {
      if (is_op(")")) break;
      add(*t, parse_expression(true));
    }
    expect_op(")");
    return t;
  }

  ExprPtr parse_list() {
    auto l = node(EK::List, next());
    while (!is_op("]")) {
      if (!l->args.empty()) expect_op(",");
      if (is_op("]")) break;
      add(*l, parse_expression(true));
    }
    expect_op("]");
    return l;
  }

  ExprPtr parse_dict() {
    auto d = node(EK::Dict, next());
    while (!is_op("}")) {
      if (!d->args.empty()) expect_op(",");
      if (is_op("}")) break;
      add(*d, parse_expression(true));
      expect_op(":");
      add(*d, parse_expression(true));
    }
    expect_op("}");
    return d;
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".") ) {
        const Token& at = next();
        if (cur().type == T::Int) {  // foo.0 is foo[0]
          auto g = node(EK::GetItem, at);
          add(*g, std::move(e));
          add(*g, parse_primary());
          e = std::move(g);
          continue;
        }
        auto g = node(EK::GetAttr, at);
        g->name = expect_name();
        add(*g, std::move(e));
        e = std::move(g);
      } else if (is_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    const Token& at = next();
    ExprPtr parts[3];
    int colons = 0;
    if (!is_op(":")) parts[0] = parse_expression(true);
    while (colons < 2 && skip_op(":")) {
      ++colons;
      if (!is_op(":") && !is_op("]")) parts[colons] = parse_expression(true);
    }
    expect_op("]");
    auto e = node(colons ? EK::Slice : EK::GetItem, at);
    add(*e, std::move(obj));
    if (!colons) {
      if (!parts[0]) fail(at, "expected an index");
      add(*e, std::move(parts[0]));
      return e;
    }
    for (auto& p : parts) add(*e, std::move(p));
    return e;
  }

  void parse_call_args(Expr& e) {
    expect_op("(");
    for (size_t n = 0; !is_op(")"); ++n) {
      if (n > 0) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) fail(cur(), "*args and **kwargs in calls are not supported");
      if (cur().type == T::Name && peek().type == T::Op && peek().text == "=") {
        std::string key = next().text;
        next();
        ExprPtr value = parse_expression(true);
        deepen(e, value.get());
        e.kwargs.emplace_back(std::move(key), std::move(value));
      } else {
        if (!e.kwargs.empty()) fail(cur(), "positional argument after keyword argument");
        add(e, parse_expression(true));
      }
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto c = node(EK::Call, cur());
    add(*c, std::move(callee));
    parse_call_args(*c);
    return c;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        e = parse_filter_chain(std::move(e));
      } else if (is_name("is")) {
        e = parse_test(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  // `| f1(args) | f2 ...` applied to e (null inside filter blocks, filled in at run time).
  ExprPtr parse_filter_chain(ExprPtr e, bool leading_bar = true) {
    bool first = true;
    while ((first && !leading_bar) || skip_op("|")) {
      first = false;
      const Token& at = cur();
      std::string name = expect_name();
      if (!has_filter(name)) fail(at, "unsupported filter '" + name + "'");
      auto f = node(EK::Filter, at);
      f->name = std::move(name);
      add(*f, std::move(e));
      if (is_op("(")) parse_call_args(*f);
      e = std::move(f);
    }
    return e;
  }

  ExprPtr parse_test(ExprPtr e) {
    const Token& at = next();  // "is"
    auto t = node(EK::Test, at);
    t->negated = skip_name("not");
    const Token& name_tok = cur();
    t->name = expect_name();
    if (!has_test(t->name)) fail(name_tok, "unsupported test '" + t->name + "'");
    add(*t, std::move(e));
    if (is_op("(")) {
      parse_call_args(*t);
    } else if ((cur().type == T::Name || cur().type == T::String || cur().type == T::Int || cur().type == T::Float ||
                is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail(cur(), "you cannot chain multiple tests with is");
      add(*t, parse_postfix(parse_primary()));
    }
    return t;
  }
};

}  // namespace

Body parse(const std::vector<Token>& tokens) { return Parser(tokens).parse_template(); }

}  // namespace nanovllm::jinja
