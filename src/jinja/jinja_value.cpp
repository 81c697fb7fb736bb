// The dynamic value of the Jinja engine: conversions, Python str()/repr(), equality, json.dumps.
#include "jinja/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include <nlohmann/json.hpp>

#include "nanovllm/error.h"
#include "jinja/jinja_text.h"

namespace nanovllm::jinja {

namespace {

thread_local RenderBudget* current_budget = nullptr;
thread_local RenderBudget::Usage last_usage;

// Recursion over a value (repr, ==, tojson) stops at kMaxValueDepth: values that deep are built
// only by hostile templates, and a namespace that contains itself would recurse forever.
void check_depth(int depth) {
  if (depth > kMaxValueDepth)
    throw BuiltinError("value nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
}

}  // namespace

RenderBudget::RenderBudget() : previous_(current_budget) { current_budget = this; }
RenderBudget::~RenderBudget() {
  current_budget = previous_;
  last_usage = {steps_, bytes_};
}

RenderBudget::Usage RenderBudget::last_render() { return last_usage; }

void RenderBudget::step(int64_t n) {
  RenderBudget* b = current_budget;
  if (b && (b->steps_ += n) > kMaxSteps)
    throw BuiltinError("template rendering exceeded its budget of " + std::to_string(kMaxSteps) +
                       " steps (a loop without bound?)");
}

void RenderBudget::fits(size_t bytes) {
  RenderBudget* b = current_budget;
  if (b && bytes > kMaxBytes - b->bytes_)
    throw BuiltinError("template rendering exceeded its memory budget of " + std::to_string(kMaxBytes >> 20) +
                       " MiB (" + std::to_string(bytes) + " more bytes wanted)");
}

void RenderBudget::charge(size_t bytes) {
  fits(bytes);
  if (RenderBudget* b = current_budget) b->bytes_ += bytes;
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void Dict::set(std::string key, Value value) {
  for (auto& [k, v] : items) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

Value Value::undefined(std::string hint) {
  Value v;
  v.s_ = std::make_shared<const std::string>(std::move(hint));
  return v;
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::None;
  return v;
}

Value::Value(bool b) : kind_(Kind::Bool), b_(b) {}
Value::Value(int64_t i) : kind_(Kind::Int), i_(i) {}
Value::Value(double f) : kind_(Kind::Float), f_(f) {}
Value::Value(std::string s) : kind_(Kind::String) {
  RenderBudget::charge(s.size());
  s_ = std::make_shared<const std::string>(std::move(s));
}

Value Value::list(std::vector<Value> items, bool is_tuple) {
  RenderBudget::charge(items.size() * sizeof(Value));
  Value v;
  v.kind_ = Kind::List;
  v.list_ = std::make_shared<List>(List{std::move(items), is_tuple});
  return v;
}

Value Value::dict(std::vector<std::pair<std::string, Value>> items) {
  Value v;
  v.kind_ = Kind::Dict;
  v.dict_ = std::make_shared<Dict>(Dict{std::move(items), false});
  return v;
}

Value Value::function(std::string name, std::function<Value(Args&)> fn) {
  Value v;
  v.kind_ = Kind::Function;
  v.fn_ = std::make_shared<Function>(Function{std::move(name), std::move(fn)});
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j, int depth) {
  if (depth > kMaxValueDepth)
    throw Error("chat template: argument nested deeper than " + std::to_string(kMaxValueDepth) + " levels");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return none();
    case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw Error("chat template: integer " + std::to_string(u) + " is out of the supported range");
      return Value(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e, depth + 1));
      return list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      std::vector<std::pair<std::string, Value>> items;
      items.reserve(j.size());
      for (const auto& [k, e] : j.items()) items.emplace_back(k, from_json(e, depth + 1));
      return dict(std::move(items));
    }
    default: throw Error("chat template: unsupported JSON value (binary or discarded)");
  }
}

nlohmann::ordered_json Value::to_json(int depth) const {
  check_depth(depth);
  switch (kind_) {
    case Kind::None: return nullptr;
    case Kind::Bool: return b_;
    case Kind::Int: return i_;
    case Kind::Float: return f_;
    case Kind::String: return *s_;
    case Kind::List: {
      auto a = nlohmann::ordered_json::array();
      for (const auto& e : list_->items) a.push_back(e.to_json(depth + 1));
      return a;
    }
    case Kind::Dict: {
      auto o = nlohmann::ordered_json::object();
      for (const auto& [k, e] : dict_->items) o[k] = e.to_json(depth + 1);
      return o;
    }
    default: throw Error("chat template: a " + type_name() + " value cannot be converted to JSON");
  }
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::Undefined:
    case Kind::None: return false;
    case Kind::Bool: return b_;
    case Kind::Int: return i_ != 0;
    case Kind::Float: return f_ != 0.0;
    case Kind::String: return !s_->empty();
    case Kind::List: return !list_->items.empty();
    case Kind::Dict: return dict_->is_namespace || !dict_->items.empty();
    case Kind::Function: return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind_) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::List: return list_->is_tuple ? "tuple" : "list";
    case Kind::Dict: return dict_->is_namespace ? "Namespace" : "dict";
    case Kind::Function: return "function";
  }
  return "?";
}

std::string py_float_repr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // like "-1.2345e+02": shortest digits that round-trip
  bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  size_t e = sci.find('e');
  int exp = std::atoi(sci.c_str() + e + 1);
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  std::string out = negative ? "-" : "";
  if (exp >= -4 && exp < 16) {  // repr() switches to exponent notation outside this range
    if (exp < 0) {
      out += "0." + std::string(-exp - 1, '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exp + 1) {
      out += digits + std::string(exp + 1 - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  std::snprintf(buf, sizeof buf, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
  return out + buf;
}

std::string Value::str() const {
  switch (kind_) {
    case Kind::Undefined: return "";
    case Kind::None: return "None";
    case Kind::Bool: return b_ ? "True" : "False";
    case Kind::Int: return std::to_string(i_);
    case Kind::Float: return py_float_repr(f_);
    case Kind::String: return *s_;
    case Kind::Function: return "<function " + fn_->name + ">";
    default: return repr();
  }
}

std::string Value::repr(int depth) const {
  check_depth(depth);
  switch (kind_) {
    case Kind::Undefined: return "Undefined";
    case Kind::String: return py_repr_string(*s_);
    case Kind::List: {
      const auto& items = list_->items;
      std::string out = list_->is_tuple ? "(" : "[";
      for (size_t i = 0; i < items.size(); ++i) {
        out += (i ? ", " : "") + items[i].repr(depth + 1);
        RenderBudget::fits(out.size());  // one string may appear many times in a list
      }
      if (list_->is_tuple && items.size() == 1) out += ",";
      return out + (list_->is_tuple ? ")" : "]");
    }
    case Kind::Dict: {
      std::string out = dict_->is_namespace ? "<Namespace {" : "{";
      bool first = true;
      for (const auto& [k, v] : dict_->items) {
        out += (first ? "" : ", ") + py_repr_string(k) + ": " + v.repr(depth + 1);
        RenderBudget::fits(out.size());
        first = false;
      }
      return out + (dict_->is_namespace ? "}>" : "}");
    }
    default: return str();
  }
}

bool py_equal(const Value& a, const Value& b, int depth) {
  check_depth(depth);
  using K = Value::Kind;
  if (a.is_number() && b.is_number()) {
    if (a.is_int() && b.is_int()) return a.as_int() == b.as_int();
    return a.as_float() == b.as_float();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case K::Undefined:
    case K::None: return true;
    case K::String: return a.as_string() == b.as_string();
    case K::List: {
      const auto& x = a.as_list();
      const auto& y = b.as_list();
      if (x.is_tuple != y.is_tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!py_equal(x.items[i], y.items[i], depth + 1)) return false;
      return true;
    }
    case K::Dict: {
      const auto& x = a.as_dict();
      const auto& y = b.as_dict();
      if (x.is_namespace || y.is_namespace) return &x == &y;
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* w = y.find(k);
        if (!w || !py_equal(v, *w, depth + 1)) return false;
      }
      return true;
    }
    case K::Function: return &a.as_function() == &b.as_function();
    default: return false;
  }
}

namespace {

void json_escape_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out.push_back('"');
  for (char32_t c : utf8_decode(s)) {
    char buf[16];
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (c < 0x20 || (ensure_ascii && c >= 0x7F)) {
      if (c >= 0x10000) {  // a surrogate pair, as Python writes astral code points
        char32_t v = c - 0x10000;
        std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (unsigned)(v >> 10), 0xDC00 + (unsigned)(v & 0x3FF));
      } else {
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      }
      out += buf;
    } else {
      utf8_append(out, c);
    }
  }
  out.push_back('"');
}

void json_dump(std::string& out, const Value& v, const JsonDumpOptions& o, int level);

void json_newline(std::string& out, const JsonDumpOptions& o, int level) {
  out.push_back('\n');
  for (int i = 0; i < level; ++i) out += o.indent;
}

void json_dump_list(std::string& out, const List& l, const JsonDumpOptions& o, int level) {
  if (l.items.empty()) {
    out += "[]";
    return;
  }
  out.push_back('[');
  for (size_t i = 0; i < l.items.size(); ++i) {
    if (i) out += o.item_separator;
    if (o.has_indent) json_newline(out, o, level + 1);
    json_dump(out, l.items[i], o, level + 1);
  }
  if (o.has_indent) json_newline(out, o, level);
  out.push_back(']');
}

void json_dump_dict(std::string& out, const Dict& d, const JsonDumpOptions& o, int level) {
  if (d.is_namespace) throw Error("chat template: Object of type Namespace is not JSON serializable");
  if (d.items.empty()) {
    out += "{}";
    return;
  }
  std::vector<const std::pair<std::string, Value>*> items;
  for (const auto& kv : d.items) items.push_back(&kv);
  if (o.sort_keys)
    std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
  out.push_back('{');
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += o.item_separator;
    if (o.has_indent) json_newline(out, o, level + 1);
    json_escape_string(out, items[i]->first, o.ensure_ascii);
    out += o.key_separator;
    json_dump(out, items[i]->second, o, level + 1);
  }
  if (o.has_indent) json_newline(out, o, level);
  out.push_back('}');
}

void json_dump(std::string& out, const Value& v, const JsonDumpOptions& o, int level) {
  check_depth(level);
  RenderBudget::fits(out.size());  // one string may appear many times in a list
  using K = Value::Kind;
  switch (v.kind()) {
    case K::None: out += "null"; return;
    case K::Bool: out += v.as_bool() ? "true" : "false"; return;
    case K::Int: out += std::to_string(v.as_int()); return;
    case K::Float: {
      double f = v.as_float();
      out += std::isnan(f) ? "NaN" : std::isinf(f) ? (f > 0 ? "Infinity" : "-Infinity") : py_float_repr(f);
      return;
    }
    case K::String: json_escape_string(out, v.as_string(), o.ensure_ascii); return;
    case K::List: json_dump_list(out, v.as_list(), o, level); return;
    case K::Dict: json_dump_dict(out, v.as_dict(), o, level); return;
    default: throw Error("chat template: Object of type " + v.type_name() + " is not JSON serializable");
  }
}

}  // namespace

std::string py_json_dumps(const Value& v, const JsonDumpOptions& opts) {
  std::string out;
  json_dump(out, v, opts, 0);
  return out;
}

}  // namespace nanovllm::jinja
