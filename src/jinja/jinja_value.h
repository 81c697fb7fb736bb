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

#include "nanovllm/error.h"

namespace nanovllm::jinja {

// A failure inside a builtin or a value operation, reported without a position; the evaluator
// adds the template line.
class BuiltinError : public Error {
 public:
  using Error::Error;
};

// How deep values may nest: JSON arguments (messages, tools, template kwargs) and values a
// template builds (a list wrapped in a list in a loop). Everything that walks a value (repr,
// tojson, ==) recurses once per level, so this bounds their stack. Real chat data nests under 20
// levels; the request JSON itself is limited to kMaxJsonDepth (128) before it gets here.
constexpr int kMaxValueDepth = 256;

// What one render may spend, so that a hostile template (nested range() loops, a string doubled
// 40 times) ends with an Error instead of hanging or exhausting memory. The budget is per thread,
// installed by Template::render for the duration of one render; outside a render nothing is
// counted. Real templates stay far below both limits: every golden conversation of
// tests/data/chat_template (the templates of ../shared/tokenizers and inline ones, tools
// included) renders in at most 536 steps and 6 KB created, about 130 steps a message, and
// chat_template_test fails if one uses 1 % of either limit.
class RenderBudget {
 public:
  // Statement executions, expression evaluations and loop iterations: about a second of rendering.
  static constexpr int64_t kMaxSteps = 10'000'000;
  // Bytes of every string, list and output the render creates, summed (so also a bound on the
  // time spent copying): 32x the server's 8 MiB body limit, enough for any prompt that fits a
  // request, while a template cannot hold more than this in memory at once.
  static constexpr size_t kMaxBytes = size_t{256} << 20;

  RenderBudget();   // becomes this thread's budget
  ~RenderBudget();  // restores the previous one
  RenderBudget(const RenderBudget&) = delete;
  RenderBudget& operator=(const RenderBudget&) = delete;

  // Each throws BuiltinError when the current render's budget runs out; no-ops outside a render.
  static void step(int64_t n = 1);
  static void charge(size_t bytes);      // bytes the render creates
  static void fits(size_t bytes);        // checks, before allocating, that `bytes` more could fit
  static void scan(size_t bytes) { step(static_cast<int64_t>(bytes / kBytesPerStep)); }  // a search

  static constexpr size_t kBytesPerStep = 64;  // what a scan of a long string costs in steps

  // What the last render finished on this thread spent, to compare real templates with the limits.
  struct Usage {
    int64_t steps = 0;
    size_t bytes = 0;
  };
  static Usage last_render();

 private:
  int64_t steps_ = 0;
  size_t bytes_ = 0;
  RenderBudget* previous_;
};

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

  // Throws nanovllm::Error for values nested deeper than kMaxValueDepth (and out-of-range ints).
  static Value from_json(const nlohmann::ordered_json& j, int depth = 0);
  nlohmann::ordered_json to_json(int depth = 0) const;  // throws nanovllm::Error on values JSON cannot hold

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
  std::string repr(int depth = 0) const;  // Python repr()
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
bool py_equal(const Value& a, const Value& b, int depth = 0);
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
