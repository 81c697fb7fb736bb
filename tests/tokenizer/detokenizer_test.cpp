// IncrementalDetokenizer on real tokenizers: the streamed text adds up to decode() of all ids
// and every emission extends a prefix of it (no half characters, no take-backs).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "engine/detokenizer.h"
#include "tokenizer/hf_tokenizer.h"

namespace nanovllm {
namespace {

using json = nlohmann::json;

std::vector<std::string> corpus() {
  std::ifstream in(std::string(NANOVLLM_SOURCE_DIR) + "/tests/data/tokenizer/corpus.jsonl");
  std::vector<std::string> texts;
  for (std::string line; std::getline(in, line);) texts.push_back(json::parse(line)["text"].get<std::string>());
  return texts;
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// Streams ids after prompt; returns false (with a message) on the first broken promise.
::testing::AssertionResult stream_matches(const Tokenizer& tok, const std::vector<int>& prompt,
                                          const std::vector<int>& out, bool skip) {
  std::vector<int> all = prompt;
  all.insert(all.end(), out.begin(), out.end());
  const std::string prompt_text = tok.decode(prompt, skip), full = tok.decode(all, skip);
  if (!starts_with(full, prompt_text)) return ::testing::AssertionSuccess();  // prompt ends mid-character
  const std::string expected = full.substr(prompt_text.size());
  IncrementalDetokenizer detok(tok, prompt, skip);
  std::string got;
  for (size_t i = 0; i < out.size(); ++i) {
    got += detok.push(out[i]);
    if (!starts_with(expected, got))
      return ::testing::AssertionFailure() << "after id #" << i << " emitted " << json(got).dump()
                                           << ", which is not a prefix of " << json(expected).dump();
  }
  got += detok.flush();
  if (got != expected) return ::testing::AssertionFailure() << json(got).dump() << " != " << json(expected).dump();
  return ::testing::AssertionSuccess();
}

class Streaming : public ::testing::TestWithParam<std::string> {};

TEST_P(Streaming, AddsUpToDecodeOfAllIds) {
  auto tok = HfTokenizer::from_dir(std::string(NANOVLLM_SHARED_DIR) + "/" + GetParam());
  size_t checked = 0;
  for (const std::string& text : corpus()) {
    const std::vector<int> ids = tok->encode(text, true);
    for (bool skip : {true, false}) {
      EXPECT_TRUE(stream_matches(*tok, {}, ids, skip)) << json(text).dump();
      const std::vector<int> prompt(ids.begin(), ids.begin() + ids.size() / 2);
      EXPECT_TRUE(stream_matches(*tok, prompt, std::vector<int>(ids.begin() + prompt.size(), ids.end()), skip))
          << "with a prompt: " << json(text).dump();
    }
    ++checked;
  }
  EXPECT_GE(checked, 1000u);
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, Streaming,
                         ::testing::Values("tokenizers/qwen3", "tokenizers/llama3", "tokenizers/gpt2", "tokenizers/mistral",
                                           "tokenizers/tinyllama", "models/tinystories-656k"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return n;
                         });

// A Chinese character split over byte-level tokens is held back until it is complete.
TEST(Streaming, HoldsIncompleteCharacters) {
  auto tok = HfTokenizer::from_dir(std::string(NANOVLLM_SHARED_DIR) + "/tokenizers/gpt2");
  const std::vector<int> ids = tok->encode("😀", false);
  ASSERT_GT(ids.size(), 1u);
  IncrementalDetokenizer detok(*tok, {}, true);
  std::string got;
  for (size_t i = 0; i + 1 < ids.size(); ++i) EXPECT_EQ(detok.push(ids[i]), "");
  EXPECT_EQ(detok.push(ids.back()), "😀");
  EXPECT_EQ(detok.flush(), "");
  IncrementalDetokenizer cut(*tok, {}, true);
  EXPECT_EQ(cut.push(ids[0]), "");
  EXPECT_EQ(cut.flush(), "\xEF\xBF\xBD");  // what decode() gives for the lone byte
}

}  // namespace
}  // namespace nanovllm
