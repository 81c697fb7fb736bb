// Per-request sampling and stopping parameters (vLLM's SamplingParams, trimmed to what we implement).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nanovllm {

// Structured output (vLLM's StructuredOutputsParams): at most one of these constrains the
// output, decoded under a grammar so that it always parses. Plain fields, so bindings map them.
struct StructuredOutputs {
  std::string json;                 // a JSON schema (as JSON text): the output is a valid instance
  bool json_object = false;         // any JSON object (OpenAI's response_format json_object)
  std::string regex;                // the output matches this regular expression (Rust regex syntax)
  std::vector<std::string> choice;  // the output is exactly one of these strings
  std::string grammar;              // a Lark grammar as llguidance takes it, or GBNF (llama.cpp)

  bool active() const { return !json.empty() || json_object || !regex.empty() || !choice.empty() || !grammar.empty(); }
};

struct SamplingParams {
  float temperature = 1.0f;         // 0 = greedy
  float top_p = 1.0f;               // (0, 1]; 1 = off
  int top_k = 0;                    // <= 0 = off
  float min_p = 0.0f;               // [0, 1]; 0 = off
  int max_tokens = 64;              // new tokens at most
  int min_tokens = 0;               // eos / stop tokens are masked, stop strings unchecked, until this many
  bool ignore_eos = false;
  std::vector<int> stop_token_ids;  // extra ids that end the request (kept in the output ids)
  std::vector<std::string> stop;    // stop strings; cut from the returned text with what follows
  // As in vLLM: the stop string, or the text of the token that ended the request (EOS or a
  // stop_token_ids hit), stays in the output text. Off: the text ends before it.
  bool include_stop_str_in_output = false;
  std::optional<uint64_t> seed;     // per-request generator; same seed, same text, any batch
  float repetition_penalty = 1.0f;  // > 0; 1 = off; applies to prompt and output tokens
  float presence_penalty = 0.0f;    // [-2, 2]; output tokens only
  float frequency_penalty = 0.0f;   // [-2, 2]; output tokens only
  std::optional<int> logprobs;      // return the chosen token's logprob and this many top ones
  bool skip_special_tokens = true;  // when detokenizing the output
  std::map<int, float> logit_bias;  // token id -> added to its logit before sampling, in [-100, 100]
  StructuredOutputs structured_outputs;  // a grammar the output must follow; none by default

  // Throws std::invalid_argument naming the first bad field and its allowed range.
  void validate() const;
};

}  // namespace nanovllm
