// Renders a parsed Jinja template: scopes, loops, macros and Python expression semantics.
#include <cmath>
#include <cstdint>
#include <cstdio>

#include "jinja/jinja.h"
#include "jinja/jinja_ast.h"
#include "jinja/jinja_builtins.h"
#include "jinja/jinja_parser.h"

namespace nanovllm::jinja {

namespace {

using EK = Expr::Kind;
using SK = Stmt::Kind;

// One scope of variables. A for-loop iteration, macro call or block gets its own, so `set`
// inside it does not leak out (the reason templates use namespace()).
struct Frame {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Frame> parent;

  const Value* lookup(const std::string& name) const {
    for (const Frame* f = this; f; f = f->parent.get())
      for (const auto& [k, v] : f->vars)
        if (k == name) return &v;
    return nullptr;
  }
  void set(const std::string& name, Value v) {
    for (auto& [k, old] : vars)
      if (k == name) {
        old = std::move(v);
        return;
      }
    vars.emplace_back(name, std::move(v));
  }
};
using FramePtr = std::shared_ptr<Frame>;

FramePtr child(const FramePtr& parent) {
  auto f = std::make_shared<Frame>();
  f->parent = parent;
  return f;
}

enum class Flow { Normal, Break, Continue };

// Whether `target` is inside v. A namespace stored into itself (directly or through lists,
// dicts and other namespaces) would make every walk over it endless and, holding itself by
// shared_ptr, never be freed.
bool contains_dict(const Value& v, const Dict* target, int depth = 0) {
  if (!v.is_list() && !v.is_dict()) return false;
  if (depth > kMaxValueDepth) throw BuiltinError("value nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
  RenderBudget::step();
  if (v.is_dict()) {
    if (&v.as_dict() == target) return true;
    for (const auto& [k, x] : v.as_dict().items)
      if (contains_dict(x, target, depth + 1)) return true;
    return false;
  }
  for (const Value& x : v.as_list().items)
    if (contains_dict(x, target, depth + 1)) return true;
  return false;
}

[[noreturn]] void fail_at(int line, int col, const std::string& msg) { throw Error(location(line, col) + msg); }
[[noreturn]] void fail_at(const Expr& e, const std::string& msg) { fail_at(e.line, e.col, msg); }

[[noreturn]] void type_error(const Expr& e, const char* op, const Value& a, const Value& b) {
  if (a.is_undefined() || b.is_undefined()) {
    const Value& u = a.is_undefined() ? a : b;
    fail_at(e, u.undefined_hint().empty() ? "undefined value in expression" : u.undefined_hint());
  }
  fail_at(e, std::string("unsupported operand types for ") + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
}

// Python's ints are unbounded, ours 64-bit: a result that does not fit is an error, never
// wrapped (and never undefined behaviour).
[[noreturn]] void int_overflow() { throw BuiltinError("integer overflow (integers are limited to 64 bits)"); }

int64_t int_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) int_overflow();
  return r;
}

int64_t int_sub(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) int_overflow();
  return r;
}

int64_t int_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) int_overflow();
  return r;
}

// a ** b for b >= 0 by squaring: 64 multiplications at most, where a loop of b would hang.
int64_t int_pow(int64_t a, int64_t b) {
  int64_t r = 1;
  while (b > 0) {
    if (b & 1) r = int_mul(r, a);
    b >>= 1;
    if (b > 0) a = int_mul(a, a);
  }
  return r;
}

int64_t floor_div(int64_t a, int64_t b) {
  if (a == INT64_MIN && b == -1) int_overflow();
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

int64_t floor_mod(int64_t a, int64_t b) {
  if (b == -1) return 0;  // INT64_MIN % -1 traps on x86
  int64_t m = a % b;
  return (m != 0 && ((m < 0) != (b < 0))) ? m + b : m;
}

Value repeat(const Expr& e, const Value& seq, int64_t n) {
  size_t unit = seq.is_string() ? seq.as_string().size() : seq.as_list().items.size() * sizeof(Value);
  if (n > 0 && unit > 0 && static_cast<uint64_t>(n) > RenderBudget::kMaxBytes / unit)
    fail_at(e, "repetition result too large");  // a template must not exhaust memory
  if (n <= 0 || unit == 0) n = 0;  // also '' * 10**18, which would loop doing nothing
  else RenderBudget::fits(static_cast<size_t>(n) * unit);
  if (seq.is_string()) {
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.as_string();
    return Value(std::move(out));
  }
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.as_list().items.begin(), seq.as_list().items.end());
  return Value::list(std::move(out), seq.as_list().is_tuple);
}

// printf-style `'%s' % value` for %s, %d, %i, %r and %%.
Value percent_format(const Expr& e, const std::string& fmt, const Value& arg) {
  std::vector<Value> args = (arg.is_list() && arg.as_list().is_tuple) ? arg.as_list().items : std::vector<Value>{arg};
  std::string out;
  size_t k = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out.push_back(fmt[i]);
      continue;
    }
    char c = i + 1 < fmt.size() ? fmt[++i] : 0;
    if (c == '%') {
      out.push_back('%');
      continue;
    }
    if (c != 's' && c != 'd' && c != 'i' && c != 'r') fail_at(e, std::string("unsupported format '%") + c + "'");
    if (k >= args.size()) fail_at(e, "not enough arguments for format string");
    const Value& v = args[k++];
    RenderBudget::fits(out.size());
    if ((c == 'd' || c == 'i') && !v.is_number()) fail_at(e, "%d format: a real number is required");
    out += c == 'r' ? v.repr() : (c == 's' ? v.str() : std::to_string(v.is_int() ? v.as_int() : (int64_t)v.as_float()));
  }
  if (k != args.size()) fail_at(e, "not all arguments converted during string formatting");
  return Value(std::move(out));
}

Value arithmetic(const Expr& e, const std::string& op, const Value& a, const Value& b) {
  bool ints = a.is_int() && b.is_int();
  bool nums = a.is_number() && b.is_number();
  if (op == "+") {
    if (ints) return Value(int_add(a.as_int(), b.as_int()));
    if (nums) return Value(a.as_float() + b.as_float());
    if (a.is_string() && b.is_string()) {
      RenderBudget::fits(a.as_string().size() + b.as_string().size());
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list()) {
      RenderBudget::fits((a.as_list().items.size() + b.as_list().items.size()) * sizeof(Value));
      std::vector<Value> items = a.as_list().items;
      items.insert(items.end(), b.as_list().items.begin(), b.as_list().items.end());
      return Value::list(std::move(items), a.as_list().is_tuple);
    }
  } else if (op == "-") {
    if (ints) return Value(int_sub(a.as_int(), b.as_int()));
    if (nums) return Value(a.as_float() - b.as_float());
  } else if (op == "*") {
    if (ints) return Value(int_mul(a.as_int(), b.as_int()));
    if (nums) return Value(a.as_float() * b.as_float());
    if ((a.is_string() || a.is_list()) && b.is_int()) return repeat(e, a, b.as_int());
    if (a.is_int() && (b.is_string() || b.is_list())) return repeat(e, b, a.as_int());
  } else if (op == "/" || op == "//" || op == "%") {
    if (a.is_string() && op == "%") return percent_format(e, a.as_string(), b);
    if (nums && b.as_float() == 0.0) fail_at(e, "division by zero");
    if (op == "/" && nums) return Value(a.as_float() / b.as_float());
    if (ints) return Value(op == "//" ? floor_div(a.as_int(), b.as_int()) : floor_mod(a.as_int(), b.as_int()));
    if (nums && op == "//") return Value(std::floor(a.as_float() / b.as_float()));
    if (nums) {
      double m = std::fmod(a.as_float(), b.as_float());
      return Value((m != 0 && ((m < 0) != (b.as_float() < 0))) ? m + b.as_float() : m);
    }
  } else if (op == "**") {
    if (ints && b.as_int() >= 0) return Value(int_pow(a.as_int(), b.as_int()));
    if (nums) return Value(std::pow(a.as_float(), b.as_float()));
  }
  type_error(e, op.c_str(), a, b);
}

// How deeply rendering may recurse: statements, expressions and macro calls, each a level.
// The parser bounds one template's nesting (kMaxTemplateNesting), so only macros calling macros
// (or themselves) go deeper; real templates nest 6 statements and 12 expressions, and their
// recursive macros (JSON schema printers) a few levels of schema. Measured: a level takes about
// 1.3 KB of stack in a release build and up to 6 KB under ASan, so 256 levels stay under 2 MB
// of the 8 MB a thread gets (1000 overflowed it under ASan).
constexpr int kMaxRenderDepth = 256;

class Interpreter {
 public:
  std::string out;

  Flow exec(const Body& body, const FramePtr& f) {
    for (const auto& s : body) {
      Flow flow = exec(*s, f);
      if (flow != Flow::Normal) return flow;
    }
    return Flow::Normal;
  }

 private:
  int depth_ = 0;  // macro calls in progress
  int render_depth_ = 0;  // statements, expressions and macro calls in progress

  // Counts a level of recursion and a step of the render's budget.
  struct Level {
    int& depth;
    Level(int& d, int line, int col) : depth(d) {
      if (++depth > kMaxRenderDepth)
        fail_at(line, col, "template recursion deeper than " + std::to_string(kMaxRenderDepth) + " levels");
      RenderBudget::step();
    }
    ~Level() { --depth; }
  };

  void emit(const std::string& text) {
    RenderBudget::charge(text.size());
    out += text;
  }

  Flow exec(const Stmt& s, const FramePtr& f) {
    try {
      Level level(render_depth_, s.line, s.col);
      return exec_inner(s, f);
    } catch (const BuiltinError& err) {  // a budget ran out outside any expression
      fail_at(s.line, s.col, err.what());
    }
  }

  Flow exec_inner(const Stmt& s, const FramePtr& f) {
    switch (s.kind) {
      case SK::Text: emit(s.text); return Flow::Normal;
      case SK::Output: emit(eval(*s.expr, f).str()); return Flow::Normal;
      case SK::If: return exec_if(s, f);
      case SK::For: return exec_for(s, f);
      case SK::Set: exec_set(s, f); return Flow::Normal;
      case SK::SetBlock: f->set(s.targets[0], render_block(s, f)); return Flow::Normal;
      case SK::Macro: f->set(s.text, make_macro(s, f)); return Flow::Normal;
      case SK::CallBlock: emit(call(*s.expr, f, make_caller(s, f)).str()); return Flow::Normal;
      case SK::FilterBlock: emit(render_block(s, f).str()); return Flow::Normal;
      case SK::Break: return Flow::Break;
      case SK::Continue: return Flow::Continue;
      case SK::Scope: return exec(s.body, child(f));
    }
    return Flow::Normal;
  }

  Flow exec_if(const Stmt& s, const FramePtr& f) {
    for (const auto& [cond, body] : s.branches)
      if (eval(*cond, f).truthy()) return exec(body, f);
    return exec(s.else_body, f);
  }

  void bind_targets(const Stmt& s, const std::vector<std::string>& targets, const Value& v, Frame& f) {
    if (targets.size() == 1) return f.set(targets[0], v);
    std::vector<Value> parts;
    try {
      parts = iterate(v);
    } catch (const BuiltinError& e) {
      fail_at(s.line, s.col, e.what());
    }
    if (parts.size() != targets.size())
      fail_at(s.line, s.col, "cannot unpack " + std::to_string(parts.size()) + " values into " +
                                 std::to_string(targets.size()) + " names");
    for (size_t i = 0; i < parts.size(); ++i) f.set(targets[i], parts[i]);
  }

  std::vector<Value> loop_items(const Stmt& s, const FramePtr& f) {
    Value seq = eval(*s.expr, f);
    std::vector<Value> items;
    try {
      items = iterate(seq);
    } catch (const BuiltinError& e) {
      fail_at(*s.expr, e.what());
    }
    if (!s.cond) return items;
    std::vector<Value> kept;  // `for x in y if c` filters first, so loop.length counts kept items
    for (const Value& item : items) {
      FramePtr g = child(f);
      bind_targets(s, s.targets, item, *g);
      if (eval(*s.cond, g).truthy()) kept.push_back(item);
    }
    return kept;
  }

  static Value loop_object(const std::vector<Value>& items, size_t i) {
    int64_t n = static_cast<int64_t>(items.size()), k = static_cast<int64_t>(i);
    Value cycle = Value::function("cycle", [k](Args& a) {
      if (a.positional.empty()) throw BuiltinError("no items for cycling given");
      return a.positional[k % a.positional.size()];
    });
    return Value::dict({{"index", Value(k + 1)},
                        {"index0", Value(k)},
                        {"revindex", Value(n - k)},
                        {"revindex0", Value(n - k - 1)},
                        {"first", Value(k == 0)},
                        {"last", Value(k == n - 1)},
                        {"length", Value(n)},
                        {"depth", Value(int64_t{1})},
                        {"depth0", Value(int64_t{0})},
                        {"previtem", k > 0 ? items[i - 1] : Value::undefined("there is no previous item")},
                        {"nextitem", k + 1 < n ? items[i + 1] : Value::undefined("there is no next item")},
                        {"cycle", cycle}});
  }

  Flow exec_for(const Stmt& s, const FramePtr& f) {
    std::vector<Value> items = loop_items(s, f);
    for (size_t i = 0; i < items.size(); ++i) {
      RenderBudget::step();  // an empty body costs no steps of its own
      FramePtr g = child(f);
      bind_targets(s, s.targets, items[i], *g);
      g->set("loop", loop_object(items, i));
      if (exec(s.body, g) == Flow::Break) break;
    }
    if (items.empty()) exec(s.else_body, child(f));
    return Flow::Normal;
  }

  void exec_set(const Stmt& s, const FramePtr& f) {
    Value v = eval(*s.expr, f);
    if (s.text.empty()) return bind_targets(s, s.targets, v, *f);
    const Value* ns = f->lookup(s.targets[0]);
    if (!ns || !ns->is_dict() || !ns->as_dict().is_namespace)
      fail_at(s.line, s.col, "cannot assign attribute on non-namespace object '" + s.targets[0] + "'");
    if (contains_dict(v, &ns->as_dict()))
      fail_at(s.line, s.col, "cannot store namespace '" + s.targets[0] + "' inside itself");
    ns->as_dict().set(s.text, std::move(v));
  }

  // Renders a block body into a string (set blocks, filter blocks, macro bodies).
  std::string capture(const Body& body, const FramePtr& f) {
    std::string saved;
    saved.swap(out);
    try {
      exec(body, f);
    } catch (...) {
      out.swap(saved);
      throw;
    }
    saved.swap(out);
    return saved;
  }

  Value render_block(const Stmt& s, const FramePtr& f) {
    Value text(capture(s.body, child(f)));
    return s.expr ? eval_filter(*s.expr, f, &text) : text;
  }

  // The macro holds its scope weakly: the scope holds the macro, and a strong reference both
  // ways would leak every render that defines a macro.
  Value make_macro(const Stmt& s, const FramePtr& defined_in) {
    const Stmt* macro = &s;
    std::weak_ptr<Frame> scope = defined_in;
    return Value::function(s.text, [this, macro, scope](Args& a) {
      FramePtr f = scope.lock();
      if (!f) fail_at(macro->line, macro->col, "macro '" + macro->text + "' called outside the scope that defined it");
      return Value(run_macro(*macro, f, a));
    });
  }

  std::string run_macro(const Stmt& m, const FramePtr& defined_in, Args& a) {
    if (++depth_ > 200) fail_at(m.line, m.col, "macro recursion too deep");
    FramePtr g = child(defined_in);
    std::vector<Value> extra;
    for (size_t i = 0; i < a.positional.size(); ++i) {
      if (i < m.params.size()) g->set(m.params[i].name, a.positional[i]);
      else extra.push_back(a.positional[i]);
    }
    Value kwargs = Value::dict();
    for (auto& [k, v] : a.keyword) {
      bool is_param = k == "caller";
      for (const auto& p : m.params) is_param = is_param || p.name == k;
      if (is_param) g->set(k, v);
      else kwargs.as_dict().set(k, v);
    }
    for (size_t i = 0; i < m.params.size(); ++i) {
      const auto& p = m.params[i];
      bool given = i < a.positional.size() || std::any_of(a.keyword.begin(), a.keyword.end(), [&](auto& kv) { return kv.first == p.name; });
      if (!given) g->set(p.name, p.default_value ? eval(*p.default_value, g) : Value::undefined("'" + p.name + "' is undefined"));
    }
    g->set("varargs", Value::list(std::move(extra), true));
    g->set("kwargs", kwargs);
    std::string text = capture(m.body, g);
    --depth_;
    return text;
  }

  Value make_caller(const Stmt& s, const FramePtr& f) {
    const Stmt* block = &s;
    std::weak_ptr<Frame> scope = f;
    return Value::function("caller", [this, block, scope](Args& a) {
      FramePtr outer = scope.lock();
      if (!outer) fail_at(block->line, block->col, "caller() used outside its call block");
      FramePtr g = child(outer);
      for (size_t i = 0; i < block->params.size(); ++i) {
        const auto& p = block->params[i];
        g->set(p.name, i < a.positional.size() ? a.positional[i] : p.default_value ? eval(*p.default_value, g) : Value());
      }
      return Value(capture(block->body, g));
    });
  }

  // ---- expressions -----------------------------------------------------------------------

  Value eval(const Expr& e, const FramePtr& f) {
    try {
      Level level(render_depth_, e.line, e.col);
      return eval_inner(e, f);
    } catch (const BuiltinError& err) {
      fail_at(e, err.what());
    }
  }

  Value eval_inner(const Expr& e, const FramePtr& f) {
    switch (e.kind) {
      case EK::Literal: return e.literal;
      case EK::Name: return lookup(e.name, f);
      case EK::List:
      case EK::Tuple: {
        std::vector<Value> items;
        for (const auto& x : e.args) items.push_back(eval(*x, f));
        return Value::list(std::move(items), e.kind == EK::Tuple);
      }
      case EK::Dict: {
        Value d = Value::dict();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          Value k = eval(*e.args[i], f);
          if (!k.is_string()) fail_at(*e.args[i], "only string keys are supported in dict literals");
          d.as_dict().set(k.as_string(), eval(*e.args[i + 1], f));
        }
        return d;
      }
      case EK::GetAttr: return get_attr(eval(*e.args[0], f), e.name);
      case EK::GetItem: return get_item(eval(*e.args[0], f), eval(*e.args[1], f));
      case EK::Slice: {
        auto part = [&](int i) { return e.args[i] ? eval(*e.args[i], f) : Value::none(); };
        return get_slice(eval(*e.args[0], f), part(1), part(2), part(3));
      }
      case EK::Call: return call(e, f, Value());
      case EK::Filter: return eval_filter(e, f, nullptr);
      case EK::Test: {
        Value v = eval(*e.args[0], f);
        Args a = eval_args(e, f);
        return Value(apply_test(e.name, v, a) != e.negated);
      }
      case EK::Unary: return unary(e, eval(*e.args[0], f));
      case EK::Binary: return binary(e, f);
      case EK::Compare: return compare(e, f);
      case EK::Cond:
        if (eval(*e.args[0], f).truthy()) return eval(*e.args[1], f);
        return e.args[2] ? eval(*e.args[2], f) : Value::undefined("the condition was false and there is no else");
    }
    fail_at(e, "unknown expression");
  }

  Value lookup(const std::string& name, const FramePtr& f) {
    if (const Value* v = f->lookup(name)) return *v;
    Value g = global_function(name);
    return g.is_undefined() ? Value::undefined("'" + name + "' is undefined") : g;
  }

  Args eval_args(const Expr& e, const FramePtr& f) {
    Args a;
    for (size_t i = 1; i < e.args.size(); ++i) a.positional.push_back(eval(*e.args[i], f));
    for (const auto& [k, x] : e.kwargs) a.keyword.emplace_back(k, eval(*x, f));
    return a;
  }

  Value call(const Expr& e, const FramePtr& f, const Value& caller) {
    Value fn = eval(*e.args[0], f);
    Args a = eval_args(e, f);
    if (!caller.is_undefined()) a.keyword.emplace_back("caller", caller);
    if (!fn.is_function()) {
      if (fn.is_undefined()) fail_at(e, fn.undefined_hint().empty() ? "call of an undefined value" : fn.undefined_hint());
      fail_at(e, "'" + fn.type_name() + "' object is not callable");
    }
    try {
      return fn.as_function().call(a);
    } catch (const BuiltinError& err) {
      fail_at(e, err.what());
    }
  }

  // A filter chain; `operand` replaces the innermost (null) operand of a filter block.
  Value eval_filter(const Expr& e, const FramePtr& f, const Value* operand) {
    if (e.kind != EK::Filter) return operand ? *operand : eval(e, f);
    Value v = e.args[0] ? eval_filter(*e.args[0], f, operand) : *operand;
    Args a = eval_args(e, f);
    try {
      return apply_filter(e.name, v, a);
    } catch (const BuiltinError& err) {
      fail_at(e, err.what());
    }
  }

  Value unary(const Expr& e, const Value& v) {
    if (e.name == "not") return Value(!v.truthy());
    if (v.is_int()) return Value(e.name == "-" ? int_sub(0, v.as_int()) : v.as_int());
    if (v.is_number()) return Value(e.name == "-" ? -v.as_float() : v.as_float());
    if (v.is_undefined()) fail_at(e, v.undefined_hint());
    fail_at(e, "bad operand type for unary " + e.name + ": '" + v.type_name() + "'");
  }

  Value binary(const Expr& e, const FramePtr& f) {
    Value a = eval(*e.args[0], f);
    if (e.name == "and") return a.truthy() ? eval(*e.args[1], f) : a;
    if (e.name == "or") return a.truthy() ? a : eval(*e.args[1], f);
    Value b = eval(*e.args[1], f);
    if (e.name == "~") {
      std::string x = a.str(), y = b.str();
      RenderBudget::fits(x.size() + y.size());
      return Value(x + y);
    }
    return arithmetic(e, e.name, a, b);
  }

  Value compare(const Expr& e, const FramePtr& f) {
    Value left = eval(*e.args[0], f);
    for (size_t i = 0; i < e.ops.size(); ++i) {
      Value right = eval(*e.args[i + 1], f);
      const std::string& op = e.ops[i];
      bool ok;
      try {
        if (op == "==") ok = py_equal(left, right);
        else if (op == "!=") ok = !py_equal(left, right);
        else if (op == "<") ok = py_less(left, right);
        else if (op == ">") ok = py_less(right, left);
        else if (op == "<=") ok = py_less(left, right) || py_equal(left, right);
        else if (op == ">=") ok = py_less(right, left) || py_equal(left, right);
        else if (op == "in") ok = py_contains(right, left);
        else ok = !py_contains(right, left);
      } catch (const BuiltinError& err) {
        fail_at(e, err.what());
      }
      if (!ok) return Value(false);
      left = std::move(right);
    }
    return Value(true);
  }
};

}  // namespace

Template::Template(std::string_view source, const LexOptions& options)
    : body_(std::make_shared<const Body>(parse(lex(source, options)))) {}

std::string Template::render(const Value& context) const {
  if (!context.is_dict()) throw Error("chat template: the render context must be a dict");
  auto root = std::make_shared<Frame>();
  for (const auto& [k, v] : context.as_dict().items) root->set(k, v);
  RenderBudget budget;
  Interpreter interp;
  interp.exec(*body_, root);
  return std::move(interp.out);
}

}  // namespace nanovllm::jinja
