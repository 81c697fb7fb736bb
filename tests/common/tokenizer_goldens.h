// Where the tokenizer goldens live (tests/data/tokenizer, made by scripts/gen_tokenizer_goldens.py)
// and how to read them: one JSON value per line.
#pragma once

#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace nanovllm::test {

inline const std::string kTokenizerData = std::string(NANOVLLM_SOURCE_DIR) + "/tests/data/tokenizer/";

inline std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "missing " << path;
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  return rows;
}

}  // namespace nanovllm::test
