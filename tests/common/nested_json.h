// Test inputs shared by the suites that check nesting limits.
#pragma once

#include <nlohmann/json.hpp>
#include <utility>

namespace nanovllm::test {

// An array nested `depth` deep, built by moves: copying one (as an initializer list does)
// recurses once per level, which would overflow the test's own stack.
inline nlohmann::ordered_json nested_array(int depth) {
  nlohmann::ordered_json j = nlohmann::ordered_json::array();
  for (int i = 0; i < depth; ++i) {
    nlohmann::ordered_json outer = nlohmann::ordered_json::array();
    outer.push_back(std::move(j));
    j = std::move(outer);
  }
  return j;
}

}  // namespace nanovllm::test
