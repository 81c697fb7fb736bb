// Jinja's built-in filters, tests, globals and the Python methods of str/dict/list values.
#pragma once

#include <string>
#include <string_view>

#include "nanovllm/error.h"
#include "jinja/jinja_value.h"

namespace nanovllm::jinja {


bool has_filter(std::string_view name);
bool has_test(std::string_view name);
Value apply_filter(std::string_view name, const Value& operand, Args& args);
bool apply_test(std::string_view name, const Value& operand, Args& args);

// obj.name: a dict key, a bound method of str/dict, or Undefined as Jinja's sandbox gives.
Value get_attr(const Value& obj, const std::string& name);
// obj[key]: list index (negative from the end), dict key, string code point, or Undefined.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] with Python semantics on lists and strings (by code point).
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// The global names every chat template sees: range, dict, namespace, raise_exception,
// strftime_now (the last two as transformers defines them).
Value global_function(std::string_view name);

// Python's `a in b` (substring, element, dict key) and iteration order of a value.
bool py_contains(const Value& container, const Value& item);
std::vector<Value> iterate(const Value& v);  // throws BuiltinError for non-iterables
bool py_less(const Value& a, const Value& b);  // a < b, throws BuiltinError for mixed types

}  // namespace nanovllm::jinja
