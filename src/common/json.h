// JSON parsing with a nesting limit, for every document that comes from outside: request
// bodies, config.json, tokenizer files, safetensors headers, template arguments. Code that
// walks a parsed document recursively (template values, dumps, our validators) would
// otherwise overflow the stack on a small, deeply nested input.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "nanovllm/error.h"

namespace nanovllm {

// Deep enough for any real config, tokenizer, tool schema or chat history (they stay under
// 20 levels), far below what recursion over the parsed value could survive.
constexpr int kMaxJsonDepth = 128;

// Parses `text`; `what` names the document in errors. Throws Error on invalid JSON and on
// nesting deeper than max_depth (checked while parsing, before any deep value exists).
template <class Json = nlohmann::json>
Json parse_json(std::string_view text, const std::string& what, int max_depth = kMaxJsonDepth) {
  const auto limit = [&](int depth, nlohmann::json::parse_event_t event, Json&) {
    if (depth > max_depth &&
        (event == nlohmann::json::parse_event_t::object_start ||
         event == nlohmann::json::parse_event_t::array_start))
      throw Error(what + ": JSON nested deeper than " + std::to_string(max_depth) + " levels");
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), limit);
  } catch (const nlohmann::json::exception& e) {
    throw Error(what + ": invalid JSON: " + e.what());
  }
}

}  // namespace nanovllm
