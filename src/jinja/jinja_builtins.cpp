// Jinja's built-in filters and tests, and Python semantics of attribute, item and slice access.
#include "jinja/jinja_builtins.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cerrno>
#include <cmath>
#include <ctime>
#include <optional>
#include <initializer_list>
#include <unordered_map>

#include "jinja/jinja_text.h"

namespace nanovllm::jinja {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw BuiltinError(msg); }

const std::string kNewline = "\n";

// Binds Python-style call arguments to named parameters: positional first, then by keyword.
class Params {
 public:
  Params(std::string_view fn, Args& args, std::initializer_list<const char*> names, bool varargs = false)
      : values_(names.size()), present_(names.size(), false) {
    size_t npos = args.positional.size();
    if (npos > names.size() && !varargs)
      fail(std::string(fn) + "() takes at most " + std::to_string(names.size()) + " arguments");
    for (size_t i = 0; i < npos && i < names.size(); ++i) set(i, args.positional[i]);
    for (size_t i = names.size(); i < npos; ++i) rest_.push_back(args.positional[i]);
    for (auto& [key, v] : args.keyword) {
      auto it = std::find_if(names.begin(), names.end(), [&](const char* n) { return key == n; });
      if (it == names.end()) fail(std::string(fn) + "() got an unexpected keyword argument '" + key + "'");
      set(it - names.begin(), v);
    }
  }
  bool has(size_t i) const { return present_[i]; }
  const Value& operator[](size_t i) const { return values_[i]; }
  const std::vector<Value>& rest() const { return rest_; }
  std::string str_or(size_t i, std::string fallback) const { return has(i) ? values_[i].str() : fallback; }
  int64_t int_or(size_t i, int64_t fallback) const {
    if (!has(i) || values_[i].is_none()) return fallback;
    if (!values_[i].is_int()) fail("an integer is required, got " + values_[i].type_name());
    return values_[i].as_int();
  }
  bool bool_or(size_t i, bool fallback) const { return has(i) ? values_[i].truthy() : fallback; }

 private:
  void set(size_t i, const Value& v) {
    values_[i] = v;
    present_[i] = true;
  }
  std::vector<Value> values_;
  std::vector<bool> present_;
  std::vector<Value> rest_;
};

const std::string* str_arg(const Params& p, size_t i) {
  if (!p.has(i) || p[i].is_none()) return nullptr;
  if (!p[i].is_string()) fail("expected a string argument, got " + p[i].type_name());
  return &p[i].as_string();
}

const std::string& need_string(const Value& v, const char* what) {
  if (!v.is_string()) fail(std::string(what) + " expects a string, got " + v.type_name());
  return v.as_string();
}

Value list_of_strings(const std::vector<std::string>& parts) {
  std::vector<Value> items;
  items.reserve(parts.size());
  for (const auto& s : parts) items.emplace_back(s);
  return Value::list(std::move(items));
}

// ---- filters -------------------------------------------------------------------------------

int64_t py_len(const Value& v) {
  if (v.is_string()) return static_cast<int64_t>(utf8_length(v.as_string()));
  if (v.is_list()) return static_cast<int64_t>(v.as_list().items.size());
  if (v.is_dict() && !v.as_dict().is_namespace) return static_cast<int64_t>(v.as_dict().items.size());
  if (v.is_undefined()) return 0;
  fail("object of type '" + v.type_name() + "' has no len()");
}

Value filter_tojson(const Value& v, Args& a) {
  Params p("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions o;
  o.ensure_ascii = p.bool_or(0, false);
  if (p.has(1) && !p[1].is_none()) {
    o.has_indent = true;
    o.indent = p[1].is_string() ? p[1].as_string() : std::string(std::max<int64_t>(0, p.int_or(1, 0)), ' ');
    o.item_separator = ",";
  }
  if (p.has(2) && !p[2].is_none()) {
    auto seps = iterate(p[2]);
    if (seps.size() != 2) fail("tojson separators must be a pair (item, key)");
    o.item_separator = need_string(seps[0], "tojson separators");
    o.key_separator = need_string(seps[1], "tojson separators");
  }
  o.sort_keys = p.bool_or(3, false);
  return Value(py_json_dumps(v, o));
}

Value filter_default(const Value& v, Args& a) {
  Params p("default", a, {"default_value", "boolean"});
  bool use_default = v.is_undefined() || (p.bool_or(1, false) && !v.truthy());
  if (!use_default) return v;
  return p.has(0) ? p[0] : Value(std::string());
}

Value filter_join(const Value& v, Args& a) {
  Params p("join", a, {"d", "attribute"});
  std::string sep = p.str_or(0, "");
  std::string out;
  bool first = true;
  for (const Value& item : iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += (p.has(1) && !p[1].is_none()) ? get_attr(item, p[1].str()).str() : item.str();
    RenderBudget::fits(out.size());  // a long separator over a long list
  }
  return Value(std::move(out));
}

Value filter_int(const Value& v, Args& a) {
  Params p("int", a, {"default", "base"});
  Value fallback = p.has(0) ? p[0] : Value(int64_t{0});
  if (v.is_int()) return Value(v.as_int());
  if (v.is_number()) return std::isfinite(v.as_float()) ? Value(static_cast<int64_t>(v.as_float())) : fallback;
  if (!v.is_string()) return fallback;
  std::string s = py_strip(v.as_string(), nullptr, true, true);
  std::erase(s, '_');
  int base = static_cast<int>(p.int_or(1, 10));
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(s.c_str(), &end, base);
  if (!s.empty() && end && *end == '\0' && errno == 0) return Value(static_cast<int64_t>(n));
  double d = std::strtod(s.c_str(), &end);
  if (!s.empty() && end && *end == '\0' && std::isfinite(d)) return Value(static_cast<int64_t>(d));
  return fallback;
}

Value filter_float(const Value& v, Args& a) {
  Params p("float", a, {"default"});
  Value fallback = p.has(0) ? p[0] : Value(0.0);
  if (v.is_number()) return Value(v.as_float());
  if (!v.is_string()) return fallback;
  std::string s = py_strip(v.as_string(), nullptr, true, true);
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  return (!s.empty() && end && *end == '\0') ? Value(d) : fallback;
}

Value filter_items(const Value& v, Args& a) {
  Params p("items", a, {});
  if (v.is_undefined()) return Value::list({});
  if (!v.is_dict()) fail("items filter expects a mapping, got " + v.type_name());
  std::vector<Value> out;
  for (const auto& [k, e] : v.as_dict().items) out.push_back(Value::list({Value(k), e}, true));
  return Value::list(std::move(out));
}

// select / reject / selectattr / rejectattr share one loop.
Value filter_select(const Value& v, Args& a, bool by_attr, bool keep) {
  std::vector<Value> rest = a.positional;
  std::string attr;
  if (by_attr) {
    if (rest.empty()) fail("selectattr/rejectattr need an attribute name");
    attr = rest.front().str();
    rest.erase(rest.begin());
  }
  std::string test = rest.empty() ? "" : rest.front().str();
  Args targs;
  if (!rest.empty()) targs.positional.assign(rest.begin() + 1, rest.end());
  if (!test.empty() && !has_test(test)) fail("unsupported test '" + test + "'");
  std::vector<Value> out;
  for (const Value& item : iterate(v)) {
    Value x = by_attr ? get_attr(item, attr) : item;
    bool ok = test.empty() ? x.truthy() : apply_test(test, x, targs);
    if (ok == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

Value filter_map(const Value& v, Args& a) {
  for (auto& [k, val] : a.keyword) {
    if (k != "attribute") continue;
    Value fallback;
    for (auto& [k2, d] : a.keyword)
      if (k2 == "default") fallback = d;
    std::vector<Value> out;
    for (const Value& item : iterate(v)) {
      Value x = get_attr(item, val.str());
      out.push_back(x.is_undefined() && !fallback.is_undefined() ? fallback : x);
    }
    return Value::list(std::move(out));
  }
  if (a.positional.empty()) fail("map needs a filter name or attribute=");
  std::string name = a.positional.front().str();
  if (!has_filter(name)) fail("unsupported filter '" + name + "'");
  Args fargs;
  fargs.positional.assign(a.positional.begin() + 1, a.positional.end());
  fargs.keyword = a.keyword;
  std::vector<Value> out;
  for (const Value& item : iterate(v)) {
    Args copy = fargs;
    out.push_back(apply_filter(name, item, copy));
  }
  return Value::list(std::move(out));
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

// Jinja's title filter: words are split at runs of whitespace, dashes and opening brackets;
// each piece gets its first character upper-cased and the rest lower-cased.
std::string jinja_title(const std::string& s) {
  auto is_sep = [](char32_t c) { return py_isspace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<'; };
  std::u32string cps = utf8_decode(s);
  std::string out;
  for (size_t i = 0; i < cps.size(); ++i) {
    bool starts_piece = i == 0 || is_sep(cps[i]) != is_sep(cps[i - 1]);
    std::string one = utf8_encode(std::u32string(1, cps[i]));
    out += starts_piece ? py_upper(one) : py_lower(one);
  }
  return out;
}

std::string filter_indent(const std::string& text, Args& a) {
  Params p("indent", a, {"width", "first", "blank"});
  int64_t width = p.has(0) && p[0].is_string() ? 0 : p.int_or(0, 4);
  RenderBudget::fits(static_cast<size_t>(std::max<int64_t>(width, 0)));
  std::string ind = p.has(0) && p[0].is_string() ? p[0].as_string() : std::string(std::max<int64_t>(width, 0), ' ');
  std::vector<std::string> lines = py_split(text, &kNewline, -1);
  RenderBudget::fits(text.size() + lines.size() * ind.size());
  std::string rv;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i == 0) {
      rv = lines[0];
      continue;
    }
    rv += "\n";
    if (p.bool_or(2, false) || !lines[i].empty()) rv += ind;
    rv += lines[i];
  }
  if (p.bool_or(1, false)) rv = ind + rv;
  return rv;
}

Value sorted(const Value& v, Args& a) {
  Params p("sort", a, {"reverse", "case_sensitive", "attribute"});
  std::vector<Value> items = iterate(v);
  bool cs = p.bool_or(1, false);
  auto key = [&](const Value& x) {
    Value k = (p.has(2) && !p[2].is_none()) ? get_attr(x, p[2].str()) : x;
    return (!cs && k.is_string()) ? Value(py_lower(k.as_string())) : k;
  };
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) { return py_less(key(x), key(y)); });
  if (p.bool_or(0, false)) std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value reversed(const Value& v) {
  if (v.is_string()) {
    std::u32string cps = utf8_decode(v.as_string());
    std::reverse(cps.begin(), cps.end());
    return Value(utf8_encode(cps));
  }
  std::vector<Value> items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value unique(const Value& v, Args& a) {
  Params p("unique", a, {"case_sensitive", "attribute"});
  std::vector<Value> out, seen;
  for (const Value& item : iterate(v)) {
    Value k = p.has(1) ? get_attr(item, p[1].str()) : item;
    if (!p.bool_or(0, false) && k.is_string()) k = Value(py_lower(k.as_string()));
    RenderBudget::step(static_cast<int64_t>(seen.size()));  // quadratic: each item against those kept
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return py_equal(s, k); })) {
      seen.push_back(k);
      out.push_back(item);
    }
  }
  return Value::list(std::move(out));
}

Value add(const Value& a, const Value& b) {
  int64_t sum;
  if (a.is_int() && b.is_int()) {
    if (__builtin_add_overflow(a.as_int(), b.as_int(), &sum)) fail("integer overflow (integers are limited to 64 bits)");
    return Value(sum);
  }
  if (a.is_number() && b.is_number()) return Value(a.as_float() + b.as_float());
  fail("unsupported operand types for +: '" + a.type_name() + "' and '" + b.type_name() + "'");
}

Value extreme(const Value& v, Args& a, bool want_max) {
  Params p(want_max ? "max" : "min", a, {"case_sensitive", "attribute"});
  Value best, best_key;
  for (const Value& item : iterate(v)) {
    Value k = p.has(1) ? get_attr(item, p[1].str()) : item;
    if (!p.bool_or(0, false) && k.is_string()) k = Value(py_lower(k.as_string()));
    if (best.is_undefined() || (want_max ? py_less(best_key, k) : py_less(k, best_key))) {
      best = item;
      best_key = k;
    }
  }
  return best;
}

using FilterFn = Value (*)(const Value&, Args&);

const std::unordered_map<std::string_view, FilterFn>& filters() {
  static const std::unordered_map<std::string_view, FilterFn> table = {
      {"trim", [](const Value& v, Args& a) { Params p("trim", a, {"chars"}); return Value(py_strip(v.str(), str_arg(p, 0), true, true)); }},
      {"tojson", filter_tojson},
      {"length", [](const Value& v, Args& a) { Params p("length", a, {}); return Value(py_len(v)); }},
      {"count", [](const Value& v, Args& a) { Params p("count", a, {}); return Value(py_len(v)); }},
      {"upper", [](const Value& v, Args& a) { Params p("upper", a, {}); return Value(py_upper(v.str())); }},
      {"lower", [](const Value& v, Args& a) { Params p("lower", a, {}); return Value(py_lower(v.str())); }},
      {"title", [](const Value& v, Args& a) { Params p("title", a, {}); return Value(jinja_title(v.str())); }},
      {"capitalize", [](const Value& v, Args& a) { Params p("capitalize", a, {}); return Value(py_capitalize(v.str())); }},
      {"replace", [](const Value& v, Args& a) {
         Params p("replace", a, {"old", "new", "count"});
         return Value(py_replace(v.str(), p[0].str(), p[1].str(), p.int_or(2, -1)));
       }},
      {"join", filter_join},
      {"default", filter_default},
      {"d", filter_default},
      {"first", [](const Value& v, Args& a) { Params p("first", a, {}); auto it = iterate(v); return it.empty() ? Value::undefined("no first item") : it.front(); }},
      {"last", [](const Value& v, Args& a) { Params p("last", a, {}); auto it = iterate(v); return it.empty() ? Value::undefined("no last item") : it.back(); }},
      {"list", [](const Value& v, Args& a) { Params p("list", a, {}); return Value::list(iterate(v)); }},
      {"string", [](const Value& v, Args& a) { Params p("string", a, {}); return Value(v.str()); }},
      {"int", filter_int},
      {"float", filter_float},
      {"items", filter_items},
      {"select", [](const Value& v, Args& a) { return filter_select(v, a, false, true); }},
      {"reject", [](const Value& v, Args& a) { return filter_select(v, a, false, false); }},
      {"selectattr", [](const Value& v, Args& a) { return filter_select(v, a, true, true); }},
      {"rejectattr", [](const Value& v, Args& a) { return filter_select(v, a, true, false); }},
      {"map", filter_map},
      {"safe", [](const Value& v, Args& a) { Params p("safe", a, {}); return v; }},
      {"escape", [](const Value& v, Args& a) { Params p("escape", a, {}); return Value(html_escape(v.str())); }},
      {"e", [](const Value& v, Args& a) { Params p("e", a, {}); return Value(html_escape(v.str())); }},
      {"reverse", [](const Value& v, Args& a) { Params p("reverse", a, {}); return reversed(v); }},
      {"sort", sorted},
      {"unique", unique},
      {"abs", [](const Value& v, Args& a) {
         Params p("abs", a, {});
         if (v.is_int() && v.as_int() == INT64_MIN) fail("integer overflow (integers are limited to 64 bits)");
         if (v.is_int()) return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
         if (!v.is_number()) fail("bad operand type for abs(): '" + v.type_name() + "'");
         return Value(std::fabs(v.as_float()));
       }},
      {"sum", [](const Value& v, Args& a) {
         Params p("sum", a, {"attribute", "start"});
         Value total = p.has(1) ? p[1] : Value(int64_t{0});
         for (const Value& item : iterate(v)) total = add(total, p.has(0) ? get_attr(item, p[0].str()) : item);
         return total;
       }},
      {"min", [](const Value& v, Args& a) { return extreme(v, a, false); }},
      {"max", [](const Value& v, Args& a) { return extreme(v, a, true); }},
      {"indent", [](const Value& v, Args& a) { return Value(filter_indent(v.str(), a)); }},
      {"attr", [](const Value& v, Args& a) { Params p("attr", a, {"name"}); return get_attr(v, p[0].str()); }},
      {"wordcount", [](const Value& v, Args& a) { Params p("wordcount", a, {}); return Value(static_cast<int64_t>(py_split(v.str(), nullptr, -1).size())); }},
  };
  return table;
}

// ---- tests ---------------------------------------------------------------------------------

using TestFn = bool (*)(const Value&, Args&);

const Value& one_arg(const char* name, Args& a) {
  if (a.positional.size() != 1 || !a.keyword.empty()) fail(std::string("test '") + name + "' takes one argument");
  return a.positional[0];
}

const std::unordered_map<std::string_view, TestFn>& tests() {
  static const std::unordered_map<std::string_view, TestFn> table = {
      {"defined", [](const Value& v, Args&) { return !v.is_undefined(); }},
      {"undefined", [](const Value& v, Args&) { return v.is_undefined(); }},
      {"none", [](const Value& v, Args&) { return v.is_none(); }},
      {"string", [](const Value& v, Args&) { return v.is_string(); }},
      {"mapping", [](const Value& v, Args&) { return v.is_dict() && !v.as_dict().is_namespace; }},
      {"iterable", [](const Value& v, Args&) { return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined(); }},
      {"sequence", [](const Value& v, Args&) { return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined(); }},
      {"number", [](const Value& v, Args&) { return v.is_number(); }},
      {"integer", [](const Value& v, Args&) { return v.kind() == Value::Kind::Int; }},
      {"float", [](const Value& v, Args&) { return v.kind() == Value::Kind::Float; }},
      {"boolean", [](const Value& v, Args&) { return v.is_bool(); }},
      {"true", [](const Value& v, Args&) { return v.is_bool() && v.as_bool(); }},
      {"false", [](const Value& v, Args&) { return v.is_bool() && !v.as_bool(); }},
      {"callable", [](const Value& v, Args&) { return v.is_function(); }},
      {"lower", [](const Value& v, Args&) { return v.is_string() && py_lower(v.as_string()) == v.as_string(); }},
      {"upper", [](const Value& v, Args&) { return v.is_string() && py_upper(v.as_string()) == v.as_string(); }},
      {"odd", [](const Value& v, Args&) { return v.is_int() && v.as_int() % 2 != 0; }},
      {"even", [](const Value& v, Args&) { return v.is_int() && v.as_int() % 2 == 0; }},
      {"divisibleby", [](const Value& v, Args& a) {
         const Value& n = one_arg("divisibleby", a);
         if (!v.is_int() || !n.is_int() || n.as_int() == 0) fail("divisibleby needs non-zero integers");
         return v.as_int() % n.as_int() == 0;
       }},
      {"equalto", [](const Value& v, Args& a) { return py_equal(v, one_arg("equalto", a)); }},
      {"eq", [](const Value& v, Args& a) { return py_equal(v, one_arg("eq", a)); }},
      {"==", [](const Value& v, Args& a) { return py_equal(v, one_arg("==", a)); }},
      {"ne", [](const Value& v, Args& a) { return !py_equal(v, one_arg("ne", a)); }},
      {"!=", [](const Value& v, Args& a) { return !py_equal(v, one_arg("!=", a)); }},
      {"lt", [](const Value& v, Args& a) { return py_less(v, one_arg("lt", a)); }},
      {"<", [](const Value& v, Args& a) { return py_less(v, one_arg("<", a)); }},
      {"gt", [](const Value& v, Args& a) { return py_less(one_arg("gt", a), v); }},
      {">", [](const Value& v, Args& a) { return py_less(one_arg(">", a), v); }},
      {"le", [](const Value& v, Args& a) { return !py_less(one_arg("le", a), v); }},
      {"<=", [](const Value& v, Args& a) { return !py_less(one_arg("<=", a), v); }},
      {"ge", [](const Value& v, Args& a) { return !py_less(v, one_arg("ge", a)); }},
      {">=", [](const Value& v, Args& a) { return !py_less(v, one_arg(">=", a)); }},
      {"in", [](const Value& v, Args& a) { return py_contains(one_arg("in", a), v); }},
      {"sameas", [](const Value& v, Args& a) {
         const Value& o = one_arg("sameas", a);
         if (v.is_list() && o.is_list()) return &v.as_list() == &o.as_list();
         if (v.is_dict() && o.is_dict()) return &v.as_dict() == &o.as_dict();
         return (v.is_none() && o.is_none()) || (v.is_bool() && o.is_bool() && v.as_bool() == o.as_bool());
       }},
  };
  return table;
}

}  // namespace

bool has_filter(std::string_view name) { return filters().count(name) > 0; }
bool has_test(std::string_view name) { return tests().count(name) > 0; }

Value apply_filter(std::string_view name, const Value& operand, Args& args) {
  auto it = filters().find(name);
  if (it == filters().end()) fail("unsupported filter '" + std::string(name) + "'");
  return it->second(operand, args);
}

bool apply_test(std::string_view name, const Value& operand, Args& args) {
  auto it = tests().find(name);
  if (it == tests().end()) fail("unsupported test '" + std::string(name) + "'");
  return it->second(operand, args);
}

std::vector<Value> iterate(const Value& v) {
  if (v.is_list()) {
    RenderBudget::step(static_cast<int64_t>(v.as_list().items.size()));  // the copy, and what the caller does per item
    return v.as_list().items;
  }
  if (v.is_undefined()) return {};
  if (v.is_string()) {
    RenderBudget::fits(v.as_string().size() * sizeof(Value));
    std::vector<Value> out;
    for (char32_t c : utf8_decode(v.as_string())) out.emplace_back(utf8_encode(std::u32string(1, c)));
    return out;
  }
  if (v.is_dict() && !v.as_dict().is_namespace) {
    std::vector<Value> out;
    for (const auto& kv : v.as_dict().items) out.emplace_back(kv.first);
    return out;
  }
  fail("'" + v.type_name() + "' object is not iterable");
}

bool py_contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    if (!item.is_string()) fail("'in <string>' requires string as left operand, not " + item.type_name());
    RenderBudget::scan(container.as_string().size());
    return container.as_string().find(item.as_string()) != std::string::npos;
  }
  if (container.is_dict() && !container.as_dict().is_namespace)
    return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
  for (const Value& x : iterate(container))  // iterate() counts the steps
    if (py_equal(x, item)) return true;
  return false;
}

bool py_less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_int() && b.is_int()) return a.as_int() < b.as_int();
    return a.as_float() < b.as_float();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();  // UTF-8 order = code point order
  if (a.is_list() && b.is_list()) {
    const auto& x = a.as_list().items;
    const auto& y = b.as_list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!py_equal(x[i], y[i])) return py_less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  fail("'<' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() + "'");
}

// ---- attribute and item access -------------------------------------------------------------

namespace {

bool str_affix(const std::string& s, const Value& arg, bool prefix) {
  auto match = [&](const Value& x) {
    const std::string& t = need_string(x, prefix ? "startswith" : "endswith");
    return prefix ? s.starts_with(t) : s.ends_with(t);
  };
  if (arg.is_list()) return std::any_of(arg.as_list().items.begin(), arg.as_list().items.end(), match);
  return match(arg);
}

bool all_chars(const std::string& s, int (*pred)(int)) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) { return pred(static_cast<unsigned char>(c)) != 0; });
}

// str.format with "{}", "{0}" and "{name}" fields (no format specs).
std::string py_format(const std::string& fmt, Args& a) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if ((c == '{' || c == '}') && i + 1 < fmt.size() && fmt[i + 1] == c) {
      out.push_back(c);
      ++i;
      continue;
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    size_t close = fmt.find('}', i);
    if (close == std::string::npos) fail("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    if (field.find_first_of(":!.[") != std::string::npos) fail("format specs in str.format are not supported");
    const Value* v = nullptr;
    if (field.empty() || std::isdigit(static_cast<unsigned char>(field[0]))) {
      size_t idx = auto_index;
      if (field.empty()) ++auto_index;
      else if (std::from_chars(field.data(), field.data() + field.size(), idx).ptr != field.data() + field.size())
        fail("format: bad field '{" + field + "}'");
      if (idx >= a.positional.size()) fail("Replacement index " + std::to_string(idx) + " out of range");
      v = &a.positional[idx];
    } else {
      for (auto& [k, x] : a.keyword)
        if (k == field) v = &x;
      if (!v) fail("format: missing keyword '" + field + "'");
    }
    out += v->str();
    RenderBudget::fits(out.size());
    i = close;
  }
  return out;
}

Value call_str_query(const std::string& s, const std::string& name, Args& a);

// The text-editing methods of str; the rest are in call_str_query.
Value call_str_method(const std::string& s, const std::string& name, Args& a) {
  if (name == "startswith" || name == "endswith") {
    Params p(name, a, {"prefix"});
    return Value(str_affix(s, p[0], name == "startswith"));
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    Params p(name, a, {"chars"});
    return Value(py_strip(s, str_arg(p, 0), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    Params p(name, a, {"sep", "maxsplit"});
    const std::string* sep = str_arg(p, 0);
    if (sep && sep->empty()) fail("empty separator");
    int64_t maxsplit = p.int_or(1, -1);
    return list_of_strings(name == "split" ? py_split(s, sep, maxsplit) : py_rsplit(s, sep, maxsplit));
  }
  if (name == "replace") {
    Params p(name, a, {"old", "new", "count"});
    return Value(py_replace(s, need_string(p[0], "replace"), need_string(p[1], "replace"), p.int_or(2, -1)));
  }
  if (name == "upper") return Value(py_upper(s));
  if (name == "lower" || name == "casefold") return Value(py_lower(s));
  if (name == "title") return Value(py_title(s));
  if (name == "capitalize") return Value(py_capitalize(s));
  return call_str_query(s, name, a);
}

// The searching, joining and predicate methods of str.
Value call_str_query(const std::string& s, const std::string& name, Args& a) {
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    Params p(name, a, {"sub"});
    const std::string& sub = need_string(p[0], name.c_str());
    if (name == "count") return Value(py_count(s, sub));
    int64_t at = py_find(s, sub, name[0] == 'r');
    if (at < 0 && name.find("index") != std::string::npos) fail("substring not found");
    return Value(at);
  }
  if (name == "join") {
    Params p(name, a, {"iterable"});
    std::string out;
    bool first = true;
    for (const Value& x : iterate(p[0])) {
      if (!first) out += s;
      first = false;
      out += need_string(x, "str.join");
    }
    return Value(std::move(out));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    Params p(name, a, {"affix"});
    const std::string& t = need_string(p[0], name.c_str());
    if (name == "removeprefix") return Value(s.starts_with(t) ? s.substr(t.size()) : s);
    return Value(s.ends_with(t) ? s.substr(0, s.size() - t.size()) : s);
  }
  if (name == "splitlines") {
    std::vector<std::string> lines = py_split(s, &kNewline, -1);
    if (!lines.empty() && lines.back().empty()) lines.pop_back();
    return list_of_strings(lines);
  }
  if (name == "isdigit") return Value(all_chars(s, ::isdigit));
  if (name == "isalpha") return Value(all_chars(s, ::isalpha));
  if (name == "isalnum") return Value(all_chars(s, ::isalnum));
  if (name == "isspace") return Value(all_chars(s, ::isspace));
  if (name == "isupper") return Value(py_upper(s) == s && py_lower(s) != s);
  if (name == "islower") return Value(py_lower(s) == s && py_upper(s) != s);
  if (name == "format") return Value(py_format(s, a));
  fail("str method '" + name + "' is not supported");
}

Value call_dict_method(const Value& d, const std::string& name, Args& a) {
  Params p(name, a, {"key", "default"});
  if (name == "get") {
    if (!p[0].is_string()) return p.has(1) ? p[1] : Value::none();
    const Value* v = d.as_dict().find(p[0].as_string());
    return v ? *v : (p.has(1) ? p[1] : Value::none());
  }
  std::vector<Value> out;
  for (const auto& [k, v] : d.as_dict().items) {
    if (name == "keys") out.emplace_back(k);
    if (name == "values") out.push_back(v);
    if (name == "items") out.push_back(Value::list({Value(k), v}, true));
  }
  if (name == "copy") {
    Value c = Value::dict(d.as_dict().items);
    return c;
  }
  return Value::list(std::move(out));
}

bool is_any_of(const std::string& name, std::initializer_list<const char*> names) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return name == n; });
}

bool is_str_attribute(const std::string& n) {
  return is_any_of(n, {"capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find",
                       "format", "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit",
                       "isidentifier", "islower", "isnumeric", "isprintable", "isspace", "istitle", "isupper",
                       "join", "ljust", "lower", "lstrip", "maketrans", "partition", "removeprefix",
                       "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip",
                       "split", "splitlines", "startswith", "strip", "swapcase", "title", "translate", "upper",
                       "zfill"});
}

Value bound_method(const Value& obj, const std::string& name) {
  return Value::function(name, [obj, name](Args& a) {
    if (obj.is_string()) return call_str_method(obj.as_string(), name, a);
    return call_dict_method(obj, name, a);
  });
}

}  // namespace

Value get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) fail(obj.undefined_hint().empty() ? "undefined value has no attribute '" + name + "'" : obj.undefined_hint());
  if (obj.is_dict()) {
    const Dict& d = obj.as_dict();
    if (!d.is_namespace && is_any_of(name, {"items", "keys", "values", "get", "copy"})) return bound_method(obj, name);
    if (!d.is_namespace && is_any_of(name, {"clear", "fromkeys", "pop", "popitem", "setdefault", "update"}))
      fail("dict method '" + name + "' is not supported in chat templates");
    if (const Value* v = d.find(name)) return *v;
    return Value::undefined("'" + std::string(d.is_namespace ? "Namespace" : "dict object") + "' has no attribute '" + name + "'");
  }
  if (obj.is_string() && is_str_attribute(name)) return bound_method(obj, name);
  if (obj.is_list() && is_any_of(name, {"append", "clear", "copy", "count", "extend", "index", "insert", "pop",
                                        "remove", "reverse", "sort"}))
    fail("list method '" + name + "' is not supported in chat templates");
  return Value::undefined("'" + obj.type_name() + " object' has no attribute '" + name + "'");
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail(obj.undefined_hint().empty() ? "undefined value is not subscriptable" : obj.undefined_hint());
  if (obj.is_dict()) {
    if (key.is_string()) {
      if (const Value* v = obj.as_dict().find(key.as_string())) return *v;
      return get_attr(obj, key.as_string());
    }
    return Value::undefined("'dict object' has no attribute " + key.repr());
  }
  if ((obj.is_list() || obj.is_string()) && key.is_int()) {
    int64_t n = obj.is_list() ? static_cast<int64_t>(obj.as_list().items.size()) : 0;
    std::u32string cps;
    if (obj.is_string()) {
      RenderBudget::scan(obj.as_string().size());
      cps = utf8_decode(obj.as_string());
      n = static_cast<int64_t>(cps.size());
    }
    int64_t i = key.as_int() < 0 ? key.as_int() + n : key.as_int();
    if (i < 0 || i >= n) return Value::undefined(obj.type_name() + " index out of range");
    return obj.is_list() ? obj.as_list().items[i] : Value(utf8_encode(cps.substr(i, 1)));
  }
  if (key.is_string()) return get_attr(obj, key.as_string());
  return Value::undefined("'" + obj.type_name() + " object' has no item " + key.repr());
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  auto opt_int = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_undefined() || v.is_none()) return std::nullopt;
    if (!v.is_int()) fail(std::string("slice ") + what + " must be an integer or None");
    return v.as_int();
  };
  int64_t st = opt_int(step, "step").value_or(1);
  if (st == 0) fail("slice step cannot be zero");
  std::u32string cps;
  int64_t n;
  if (obj.is_string()) {
    RenderBudget::scan(obj.as_string().size());
    cps = utf8_decode(obj.as_string());
    n = static_cast<int64_t>(cps.size());
  } else if (obj.is_list()) {
    n = static_cast<int64_t>(obj.as_list().items.size());
  } else {
    fail("'" + obj.type_name() + "' object is not subscriptable");
  }
  auto clamp = [&](std::optional<int64_t> v, int64_t def) {
    if (!v) return def;
    int64_t x = *v < 0 ? *v + n : *v;
    int64_t lo = st > 0 ? 0 : -1, hi = st > 0 ? n : n - 1;
    return std::clamp(x, lo, hi);
  };
  int64_t b = clamp(opt_int(start, "start"), st > 0 ? 0 : n - 1);
  int64_t e = clamp(opt_int(stop, "stop"), st > 0 ? n : -1);
  std::vector<Value> items;
  std::u32string sub;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) {
    if (obj.is_string()) sub.push_back(cps[i]);
    else items.push_back(obj.as_list().items[i]);
  }
  if (obj.is_string()) return Value(utf8_encode(sub));
  return Value::list(std::move(items), obj.as_list().is_tuple);
}

// ---- globals -----------------------------------------------------------------------------

namespace {

Value make_range(Args& a) {
  Params p("range", a, {"start", "stop", "step"});
  int64_t start = 0, stop, step = p.int_or(2, 1);
  if (p.has(1)) {
    start = p.int_or(0, 0);
    stop = p.int_or(1, 0);
  } else {
    stop = p.int_or(0, 0);
  }
  if (step == 0) fail("range() arg 3 must not be zero");
  std::vector<Value> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (out.size() >= 100000) fail("range too big");  // the sandbox's MAX_RANGE
    RenderBudget::step();  // building the list is work too: range() in a loop must run out
    out.emplace_back(i);
  }
  return Value::list(std::move(out));
}

// dict(mapping, **kw) and namespace(mapping, **kw) build their items the same way.
std::vector<std::pair<std::string, Value>> mapping_args(const char* fn, Args& a) {
  if (a.positional.size() > 1) fail(std::string(fn) + "() takes at most 1 positional argument");
  std::vector<std::pair<std::string, Value>> items;
  Value d = Value::dict();
  if (!a.positional.empty()) {
    if (!a.positional[0].is_dict()) fail(std::string(fn) + "() argument must be a mapping");
    for (const auto& [k, v] : a.positional[0].as_dict().items) d.as_dict().set(k, v);
  }
  for (const auto& [k, v] : a.keyword) d.as_dict().set(k, v);
  return d.as_dict().items;
}

Value strftime_now(Args& a) {
  Params p("strftime_now", a, {"format"});
  const std::string& fmt = need_string(p[0], "strftime_now");
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[512];
  size_t n = std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
  if (n == 0 && !fmt.empty()) fail("strftime_now: format result too long or empty");
  return Value(std::string(buf, n));
}

}  // namespace

Value global_function(std::string_view name) {
  if (name == "range") return Value::function("range", make_range);
  if (name == "dict") return Value::function("dict", [](Args& a) { return Value::dict(mapping_args("dict", a)); });
  if (name == "namespace") {
    return Value::function("namespace", [](Args& a) {
      Value ns = Value::dict(mapping_args("namespace", a));
      ns.as_dict().is_namespace = true;
      return ns;
    });
  }
  if (name == "raise_exception") {
    return Value::function("raise_exception", [](Args& a) -> Value {
      Params p("raise_exception", a, {"message"});
      fail("raise_exception: " + p[0].str());
    });
  }
  if (name == "strftime_now") return Value::function("strftime_now", strftime_now);
  return Value();
}

}  // namespace nanovllm::jinja
