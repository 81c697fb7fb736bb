// The llguidance bridge on real tokenizers from ../shared: each token's bytes, grammars that
// compile (or fail naming the problem), and a walk that samples only allowed tokens and
// must produce text that parses. Prints the mask cost per token on Qwen3's 152k vocabulary.
#include "constraint/llguidance_compiler.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <regex>

#include <nlohmann/json.hpp>

#include "nanovllm/error.h"
#include "tokenizer/hf_tokenizer.h"

namespace nanovllm {
namespace {

std::shared_ptr<const HfTokenizer> load(const std::string& name) {
  return HfTokenizer::from_dir(std::string(NANOVLLM_SHARED_DIR) + "/tokenizers/" + name);
}

struct Qwen {
  std::shared_ptr<const HfTokenizer> tok = load("qwen3");
  std::vector<int> eos = {*tok->token_to_id("<|im_end|>"), *tok->token_to_id("<|endoftext|>")};
  int vocab = 151936;  // Qwen3's logits width: wider than the tokenizer's 151669 ids
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  std::shared_ptr<const ConstraintCompiler> compiler = make_llguidance_compiler(tok, vocab, eos);
  double init_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
};

Qwen& qwen() {
  static Qwen q;
  return q;
}

// The tokens' bytes concatenate to the text they encode, partial UTF-8 characters included.
TEST(Llguidance, TokenBytesConcatenateToTheEncodedText) {
  const std::string text = "Grüße, 世界! \xF0\x9F\x98\x80 tabs\tand\nlines  {\"k\": [1, 2.5]}";
  for (const char* name : {"qwen3", "llama3", "mistral", "tinyllama"}) {
    auto tok = load(name);
    std::string joined;
    for (int id : tok->encode(text, false)) joined += tok->token_bytes(id);
    // SentencePiece-style vocabularies carry the prepended "▁" of the first word as a space.
    if (joined.size() == text.size() + 1 && joined[0] == ' ') joined.erase(0, 1);
    EXPECT_EQ(joined, text) << name;
  }
  EXPECT_EQ(qwen().tok->token_bytes(*qwen().tok->token_to_id("<|im_end|>")), "<|im_end|>");
}

// Samples uniformly among the allowed tokens (a "model" with no preference at all) until the
// grammar ends: what comes out must still be in the language.
std::string walk(Constraint& c, uint64_t seed, int max_tokens, std::vector<double>* mask_us = nullptr) {
  std::mt19937_64 rng(seed);
  std::vector<uint32_t> mask((qwen().vocab + 31) / 32);
  std::vector<int> ids;
  for (int i = 0; i < max_tokens && !c.is_stopped(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    c.fill_mask(mask);
    if (mask_us) mask_us->push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    std::vector<int> allowed;
    for (int t = 0; t < qwen().vocab; ++t)
      if (mask_allows(mask, t)) allowed.push_back(t);
    EXPECT_FALSE(allowed.empty());
    if (allowed.empty()) break;
    // Prefer ending tokens now and then, so that a free-running walk terminates.
    int pick = allowed[rng() % allowed.size()];
    for (int t : allowed)
      if ((t == qwen().eos[0] || t == qwen().eos[1]) && rng() % 2 == 0) pick = t;
    c.accept(pick);
    if (pick == qwen().eos[0] || pick == qwen().eos[1]) break;
    ids.push_back(pick);
  }
  EXPECT_TRUE(c.is_stopped());
  return qwen().tok->decode(ids, true);
}

StructuredOutputs schema(const char* text) {
  StructuredOutputs s;
  s.json = text;
  return s;
}

TEST(Llguidance, JsonSchemaWalksAlwaysParseAndMatch) {
  const char* s = R"({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 9},
                    "tag": {"enum": ["a", "bb"]}, "xs": {"type": "array", "items": {"type": "boolean"}, "maxItems": 3}},
                    "required": ["n", "tag", "xs"], "additionalProperties": false})";
  for (uint64_t seed = 0; seed < 5; ++seed) {
    auto c = qwen().compiler->compile(schema(s));
    const std::string out = walk(*c, seed, 200);
    const nlohmann::json j = nlohmann::json::parse(out);
    EXPECT_TRUE(j["n"].get<int>() >= 1 && j["n"].get<int>() <= 9) << out;
    EXPECT_TRUE(j["tag"] == "a" || j["tag"] == "bb") << out;
    EXPECT_LE(j["xs"].size(), 3u) << out;
    EXPECT_EQ(out.find(' '), std::string::npos) << "compact JSON expected: " << out;
  }
}

TEST(Llguidance, RegexChoiceAndGrammars) {
  StructuredOutputs r;
  r.regex = "[0-9]{3}-[a-z]{2}";
  EXPECT_TRUE(std::regex_match(walk(*qwen().compiler->compile(r), 1, 50), std::regex("[0-9]{3}-[a-z]{2}")));
  StructuredOutputs c;
  c.choice = {"yes", "no \"quoted\""};
  for (uint64_t seed = 0; seed < 4; ++seed) {
    const std::string out = walk(*qwen().compiler->compile(c), seed, 20);
    EXPECT_TRUE(out == "yes" || out == "no \"quoted\"") << out;
  }
  StructuredOutputs g;
  g.grammar = "root ::= \"id-\" digit-run\ndigit-run ::= [0-9] [0-9]?  # GBNF";
  EXPECT_TRUE(std::regex_match(walk(*qwen().compiler->compile(g), 2, 20), std::regex("id-[0-9]{1,2}")));
  EXPECT_EQ(gbnf_to_lark("a: \"x\""), "a: \"x\"");  // Lark passes through
}

TEST(Llguidance, InvalidInputNamesTheProblem) {
  auto message = [](const StructuredOutputs& s) {
    try {
      qwen().compiler->compile(s);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(message(schema(R"({"type": "frobnicate"})")).find("JSON schema is invalid"), std::string::npos);
  StructuredOutputs r;
  r.regex = "(unclosed";
  EXPECT_NE(message(r).find("regular expression is invalid"), std::string::npos);
  StructuredOutputs g;
  g.grammar = "start: missing_rule";
  EXPECT_NE(message(g).find("grammar is invalid"), std::string::npos);
}

// The cost of one mask on the 152k vocabulary, per generated token (bench/RESULTS.md).
TEST(Llguidance, MaskCostPerTokenOnQwen3) {
  const char* s = R"({"type": "object", "properties": {"name": {"type": "string", "maxLength": 12},
                    "age": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 4},
                    "address": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 10},
                    "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}, "required": ["city", "zip"], "additionalProperties": false}},
                    "required": ["name", "age", "tags", "address"], "additionalProperties": false})";
  std::vector<double> us;
  const auto t0 = std::chrono::steady_clock::now();
  auto c = qwen().compiler->compile(schema(s));
  const double compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  for (uint64_t seed = 0; seed < 4; ++seed) {
    auto w = qwen().compiler->compile(schema(s));
    nlohmann::json::parse(walk(*w, seed, 400, &us));
  }
  std::sort(us.begin(), us.end());
  double sum = 0;
  for (double v : us) sum += v;
  std::printf("llguidance mask, Qwen3 vocabulary (151936): %zu masks, mean %.0f us, median %.0f us, p90 %.0f us, max %.0f us; "
              "schema compile %.1f ms; tokenizer set-up %.0f ms\n", us.size(), sum / us.size(), us[us.size() / 2],
              us[us.size() * 9 / 10], us.back(), compile_ms, qwen().init_ms);
  EXPECT_LT(us[us.size() / 2], 20000.0);  // far below a forward of any real model on this CPU
}

}  // namespace
}  // namespace nanovllm
