// JSON parsing with a nesting limit, for every document that comes from outside: request
// bodies, config.json, tokenizer files, safetensors headers, template arguments. Code that
// walks a parsed document recursively (template values, dumps, our validators) would
// otherwise overflow the stack on a small, deeply nested input.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "nanovllm/error.h"

namespace nanovllm {

// Deep enough for any real config, tokenizer, tool schema or chat history (they stay under
// 20 levels), far below what recursion over the parsed value could survive.
constexpr int kMaxJsonDepth = 128;

namespace detail {

// Builds the document from nlohmann's SAX events. nlohmann's own builder inserts each key with
// operator[], which for ordered_json scans the object's vector: quadratic in the number of keys
// (an object of 160k keys, 1.8 MB, took 40-65 s). Here a large object gets a hash index of its
// keys, so parsing stays linear. Semantics are nlohmann's: a repeated key keeps its first
// place and takes its last value.
template <class Json>
class JsonBuilder : public nlohmann::json_sax<Json> {
 public:
  using typename nlohmann::json_sax<Json>::number_integer_t;
  using typename nlohmann::json_sax<Json>::number_unsigned_t;
  using typename nlohmann::json_sax<Json>::number_float_t;
  using typename nlohmann::json_sax<Json>::string_t;
  using typename nlohmann::json_sax<Json>::binary_t;

  JsonBuilder(Json& root, const std::string& what, int max_depth) : root_(root), what_(what), max_depth_(max_depth) {}

  bool null() override { return put(nullptr); }
  bool boolean(bool v) override { return put(v); }
  bool number_integer(number_integer_t v) override { return put(v); }
  bool number_unsigned(number_unsigned_t v) override { return put(v); }
  bool number_float(number_float_t v, const string_t&) override { return put(v); }
  bool string(string_t& v) override { return put(std::move(v)); }
  bool binary(binary_t& v) override { return put(Json::binary(std::move(v))); }
  bool start_object(std::size_t) override { return open(Json::object()); }
  bool start_array(std::size_t) override { return open(Json::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool key(string_t& k) override {
    Level& level = stack_.back();
    auto& object = level.value->template get_ref<typename Json::object_t&>();
    if constexpr (requires { typename Json::object_t::Container; }) {  // ordered_map: a vector
      auto& items = static_cast<typename Json::object_t::Container&>(object);
      // Small objects are scanned (as nlohmann does); from kIndexFrom keys on, the index decides.
      constexpr std::size_t kIndexFrom = 16;
      if (items.size() >= kIndexFrom && level.index.empty()) {
        for (std::size_t i = 0; i < items.size(); ++i) level.index.emplace(items[i].first, i);
      }
      std::size_t at = items.size();
      if (level.index.empty()) {
        for (std::size_t i = 0; i < items.size(); ++i)
          if (items[i].first == k) at = i;
      } else if (auto it = level.index.find(k); it != level.index.end()) {
        at = it->second;
      }
      if (at == items.size()) {
        if (!level.index.empty()) level.index.emplace(k, at);
        items.emplace_back(std::move(k), nullptr);  // the vector's own append: no scan
      }
      next_ = &items[at].second;
    } else {
      next_ = &object[std::move(k)];
    }
    return true;
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    throw Error(what_ + ": invalid JSON: " + e.what());
  }

 private:
  struct Level {
    Json* value;
    std::unordered_map<string_t, std::size_t> index;  // key -> place, for large ordered objects
  };

  // Where the next value goes: the root, the slot key() made, or the end of an array.
  Json* slot() {
    if (stack_.empty()) return &root_;
    Json* parent = stack_.back().value;
    if (parent->is_array()) {
      parent->push_back(nullptr);
      return &parent->back();
    }
    return next_;
  }

  template <class V>
  bool put(V&& v) {
    *slot() = Json(std::forward<V>(v));
    return true;
  }

  bool open(Json&& container) {
    if (static_cast<int>(stack_.size()) > max_depth_)
      throw Error(what_ + ": JSON nested deeper than " + std::to_string(max_depth_) + " levels");
    Json* at = slot();
    *at = std::move(container);
    stack_.push_back(Level{at, {}});
    return true;
  }

  bool close() {
    stack_.pop_back();
    return true;
  }

  Json& root_;
  const std::string& what_;
  const int max_depth_;
  std::vector<Level> stack_;
  Json* next_ = nullptr;
};

}  // namespace detail

// Parses `text`; `what` names the document in errors. Throws Error on invalid JSON and on
// nesting deeper than max_depth (checked while parsing, before any deep value exists). Time is
// linear in the text, for ordered_json too.
template <class Json = nlohmann::json>
Json parse_json(std::string_view text, const std::string& what, int max_depth = kMaxJsonDepth) {
  Json root;
  detail::JsonBuilder<Json> builder(root, what, max_depth);
  try {
    Json::sax_parse(text.begin(), text.end(), &builder);
  } catch (const nlohmann::json::exception& e) {
    throw Error(what + ": invalid JSON: " + e.what());
  }
  return root;
}

}  // namespace nanovllm
