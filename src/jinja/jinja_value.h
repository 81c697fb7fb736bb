// The dynamic value of the Jinja engine: Python-like null/bool/int/float/string/list/dict/callable.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace nanovllm::jinja {

class Value;

// A Python list (or tuple, which only prints differently). Shared by reference like Python's.
struct List {
  std::vector<Value> items;
  bool is_tuple = false;
};

// A Python dict with string keys in insertion order; also Jinja's namespace() object, the one
// mutable container templates can write to (`{% set ns.x = ... %}`).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;

  const Value* find(std::string_view key) const;
  void set(std::string key, Value value);
};

// Call arguments as Jinja passes them: positional, then keyword.
struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

struct Function {
  std::string name;
  std::function<Value(Args&)> call;
};

class Value {
 public:
  enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Function };

  Value() = default;  // Undefined
  static Value undefined(std::string hint = {});
  static Value none();
  Value(bool b);
  Value(int64_t i);
  Value(int i) : Value(static_cast<int64_t>(i)) {}
  Value(double f);
  Value(std::string s);
  Value(const char* s) : Value(std::string(s)) {}
  static Value list(std::vector<Value> items, bool is_tuple = false);
  static Value dict(std::vector<std::pair<std::string, Value>> items = {});
  static Value function(std::string name, std::function<Value(Args&)> fn);

  static Value from_json(const nlohmann::ordered_json& j);
  nlohmann::ordered_json to_json() const;  // throws nanovllm::Error on values JSON cannot hold

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_int() const { return kind_ == Kind::Int || kind_ == Kind::Bool; }  // bool is an int in Python
  bool is_number() const { return is_int() || kind_ == Kind::Float; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_list() const { return kind_ == Kind::List; }
  bool is_dict() const { return kind_ == Kind::Dict; }
  bool is_function() const { return kind_ == Kind::Function; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return kind_ == Kind::Bool ? (b_ ? 1 : 0) : i_; }
  double as_float() const { return kind_ == Kind::Float ? f_ : static_cast<double>(as_int()); }
  const std::string& as_string() const { return *s_; }
  List& as_list() const { return *list_; }
  Dict& as_dict() const { return *dict_; }
  Function& as_function() const { return *fn_; }
  const std::string& undefined_hint() const { return *s_; }

  bool truthy() const;                   // Python bool()
  std::string str() const;               // Python str(), with Undefined as ""
  std::string repr() const;              // Python repr()
  std::string type_name() const;         // for error messages: "str", "list", ...

 private:
  Kind kind_ = Kind::Undefined;
  bool b_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::shared_ptr<const std::string> s_;  // string contents, or the hint of an Undefined
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<Function> fn_;
};

// Python semantics shared by the evaluator and the filters.
bool py_equal(const Value& a, const Value& b);
std::string py_float_repr(double f);  // float.__repr__: shortest round-trip, "1.0", "1e+16"

// json.dumps(value, ensure_ascii=..., indent=..., separators=..., sort_keys=...) as Python prints it.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  bool has_indent = false;
  std::string indent;  // the indent unit when has_indent
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
std::string py_json_dumps(const Value& v, const JsonDumpOptions& opts);

}  // namespace nanovllm::jinja
